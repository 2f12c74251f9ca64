"""The FastAPI app of the "Integrations -> Salesforce" pages, mounted on Airflow's API server by the plugin.

One router per area of the pages (``routers/``); what they share -- the store, the cached
Salesforce calls, the Variables -- is the app's ``UiServices`` (``app.state.ui``); Airflow's login,
permissions, CSRF checks and error pages are in ``web.py``.  Nothing connects anywhere at import
time; nothing here renders a password, security token or session id.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from deployteq_salesforce.ui.services import UiServices
from deployteq_salesforce.ui.web import HERE, URL_PREFIX, install_error_pages

DEPLOYTEQ_CONN_ID = "deployteq_default"
SALESFORCE_CONN_ID = "salesforce_default"


def create_app(*, deployteq_conn_id: str = DEPLOYTEQ_CONN_ID, salesforce_conn_id: str = SALESFORCE_CONN_ID) -> FastAPI:
    from deployteq_salesforce.ui.routers import account, contact_moments, embedded, errors, links, objects, overview, sync_log

    app = FastAPI(title="Deployteq Salesforce integration", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = UiServices(deployteq_conn_id=deployteq_conn_id, salesforce_conn_id=salesforce_conn_id)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for area in (overview, objects, links, sync_log, errors, contact_moments, account, embedded):
        app.include_router(area.router)
    install_error_pages(app)
    return app


def plugin_entries() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``fastapi_apps`` entry and the ``external_views`` of the Salesforce pages, for the AirflowPlugin.

    The nav category "Integrations" has two entries (the pages, and the error list straight away):
    with a single entry Airflow would show it as a top-level item instead of under the category.
    """
    fastapi_app = {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Deployteq Salesforce pages"}
    external_views = [
        {
            "name": "Salesforce",
            "href": f"{URL_PREFIX}/",
            "category": "Integrations",
            "destination": "nav",
            "url_route": "salesforce",
        },
        {
            "name": "Salesforce errors",
            "href": f"{URL_PREFIX}/errors",
            "category": "Integrations",
            "destination": "nav",
            "url_route": "salesforce-errors",
        },
        {
            "name": "Salesforce sync",
            "href": f"{URL_PREFIX}/dag/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "salesforce-sync",
        },
        {
            "name": "Synchronize exits",
            "href": f"{URL_PREFIX}/dag/{{DAG_ID}}/run/{{RUN_ID}}/task/{{TASK_ID}}",
            "destination": "task_instance",
            "url_route": "salesforce-synchronize-exits",
        },
    ]
    return fastapi_app, external_views
