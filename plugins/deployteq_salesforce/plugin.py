"""The Airflow plugin of the Deployteq <-> Salesforce integration.

Loaded by every Airflow component from the plugins folder, so importing it must stay cheap and
open no connection: the apps below load Airflow config, hooks and Variables per request.

- ``/deployteq-webhooks/<webhook>``: the webhook receivers (R10), served by the API server; they
  authenticate with their own bearer token (Connection ``deployteq_webhook``), not Airflow's login.
- "Salesforce" and "Salesforce errors" in the nav category "Integrations" (Airflow 3.3 lists it in its
  "Plugins" menu), a "Salesforce sync" tab on DAGs and a "Synchronize exits" view on task instances:
  the pages of ``deployteq_salesforce.ui`` (R16), behind Airflow's own login.
- a root middleware that lets the Test button of Admin -> Connections reach our connection types
  (``deployteq_salesforce.connection_test_fix``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from deployteq_salesforce.connection_test_fix import PortlessConnectionTestMiddleware
from deployteq_salesforce.flows.object_links.webhooks import URL_PREFIX
from deployteq_salesforce.flows.object_links.webhooks import app as webhook_app
from deployteq_salesforce.ui.app import plugin_entries as ui_plugin_entries

_ui_app, _ui_views = ui_plugin_entries()


class DeployteqSalesforcePlugin(AirflowPlugin):
    name = "deployteq_salesforce"
    fastapi_apps = [
        {"app": webhook_app, "url_prefix": URL_PREFIX, "name": "Deployteq webhook receivers"},
        _ui_app,
    ]
    external_views = [*_ui_views]
    fastapi_root_middlewares = [
        {"middleware": PortlessConnectionTestMiddleware, "name": "Test button for connections without a port"}
    ]


def _installed_plugin() -> type[AirflowPlugin] | None:
    """The target of the ``airflow.plugins`` entry point of the installed package (pyproject.toml).

    With ``[core] lazy_discover_providers = False`` Airflow also loads the plugin that
    ``get_provider_info()`` lists, and a second registration of one name is recorded as a plugin
    import error (the task SDK even stops registering the plugins after it).  So the entry point
    hands the plugin over only when providers are discovered lazily (the default); a ``None``
    entry point is skipped silently.
    """
    from airflow import settings

    return DeployteqSalesforcePlugin if getattr(settings, "LAZY_LOAD_PROVIDERS", True) else None


installed_plugin = _installed_plugin()
