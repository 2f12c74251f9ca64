"""Registers the Deployteq <-> Salesforce plugin when this folder is Airflow's plugins folder.

When the provider is installed (``pip install``), its ``airflow.plugins`` entry point registers the
plugin instead, and this file stays silent so the plugin is not registered twice.
"""

from importlib.metadata import entry_points

if not any(ep.value.startswith("deployteq_salesforce.plugin:") for ep in entry_points(group="airflow.plugins")):
    from deployteq_salesforce.plugin import DeployteqSalesforcePlugin  # noqa: F401
