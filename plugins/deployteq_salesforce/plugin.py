"""The Airflow plugin of the Deployteq Salesforce integration (served by the API server).

- ``Integrations -> Salesforce`` in the nav, a "Salesforce sync" tab on DAGs and a "Synchronize exits"
  view on task instances: the pages of ``deployteq_salesforce.ui`` (R16).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from deployteq_salesforce.ui.app import plugin_entries

_ui_app, _ui_views = plugin_entries()


class DeployteqSalesforcePlugin(AirflowPlugin):
    name = "deployteq_salesforce"
    fastapi_apps = [_ui_app]
    external_views = [*_ui_views]
