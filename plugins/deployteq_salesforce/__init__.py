"""Salesforce <-> Deployteq integration for Apache Airflow 3."""
