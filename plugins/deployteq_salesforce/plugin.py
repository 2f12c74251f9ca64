"""The Airflow plugin of the Deployteq <-> Salesforce integration.

Loaded by every Airflow component from the plugins folder, so importing it must stay cheap and
open no connection: the apps below load Airflow config, hooks and Variables per request.

- ``/deployteq-webhooks/<webhook>``: the webhook receivers (R10), served by the API server; they
  authenticate with their own bearer token (Connection ``deployteq_webhook``), not Airflow's login.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from deployteq_salesforce.webhook_app import URL_PREFIX
from deployteq_salesforce.webhook_app import app as webhook_app


class DeployteqSalesforcePlugin(AirflowPlugin):
    name = "deployteq_salesforce"
    fastapi_apps = [
        {"app": webhook_app, "url_prefix": URL_PREFIX, "name": "Deployteq webhook receivers"},
    ]
