"""Salesforce <-> Deployteq integration for Apache Airflow 3."""

# The one place of the version: pyproject.toml reads it for the wheel, get_provider_info() for Airflow.
__version__ = "0.1.0"
