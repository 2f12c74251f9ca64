"""Airflow Assets of the integration: schedule a DAG on "the Deployteq customers changed".

Each flow announces what it changed through one asset alias, with the real table or object as
the asset (``postgres://host:5432/db/schema/customer``, ``salesforce://instance/Lead``, see
``core.datasets``), so a DAG author needs no host name to depend on it::

    from deployteq_salesforce.assets import DEPLOYTEQ_CUSTOMERS

    with DAG("my_campaign", schedule=DEPLOYTEQ_CUSTOMERS, ...):  # after every sync that changed customers
        ...

or on one concrete asset, e.g. ``schedule=Asset("postgres://db.example.com:5432/deployteq/deployteq/customer")``.
A run that changed nothing announces nothing; the event's ``extra`` carries the run's counts.
"""

from __future__ import annotations

from airflow.sdk import AssetAlias

from deployteq_salesforce.core.datasets import DEPLOYTEQ, SALESFORCE, Written

#: The customer table, changed by the Lead/Contact syncs and initial loads.
DEPLOYTEQ_CUSTOMERS = AssetAlias(name="deployteq_customers")
#: The datamodel tables of the object links (one asset per table).
DEPLOYTEQ_DATAMODEL = AssetAlias(name="deployteq_datamodel")
#: Salesforce objects written by contact moments and Synchronize (one asset per object).
SALESFORCE_OBJECTS = AssetAlias(name="deployteq_salesforce_objects")


def alias_for(written: Written) -> AssetAlias:
    """The alias an event for ``written`` goes through."""
    if written.system == SALESFORCE:
        return SALESFORCE_OBJECTS
    if written.system == DEPLOYTEQ:
        return DEPLOYTEQ_CUSTOMERS if written.name == "customer" else DEPLOYTEQ_DATAMODEL
    raise ValueError(f"unknown system {written.system!r}")
