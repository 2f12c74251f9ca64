"""Registers the Deployteq <-> Salesforce plugin when this folder is Airflow's plugins folder.

When the provider is installed (``pip install``, or ``make install``'s editable install), Airflow
registers the plugin itself (its ``airflow.plugins`` entry point, or with ``[core]
lazy_discover_providers = False`` its ``get_provider_info()``), and this file stays silent so the
plugin is not registered twice.
"""

from importlib.metadata import entry_points

if not any(ep.value.startswith("deployteq_salesforce.plugin:") for ep in entry_points(group="airflow.plugins")):
    from deployteq_salesforce.plugin import DeployteqSalesforcePlugin  # noqa: F401
