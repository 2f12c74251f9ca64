"""Contact moments -> Salesforce: the backlog, the age of the oldest unsent moment, the flow's runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, store_queries
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, render, requires_dag

router = APIRouter()

FLOW = "contact_moments"


@router.get("/contact-moments", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def contact_moments_page(request: Request, user: CurrentUser, ui: Annotated[UiServices, Depends(ui_services)]) -> HTMLResponse:
    store = ui.store()

    def work(conn, tables):
        return {
            "backlog": store_queries.contact_moment_backlog(conn, tables),
            "runs": store_queries.runs(conn, flow=FLOW, limit=50) if "run_log" in tables else [],
            "moments": store_queries.contact_moment_count(conn) if "contact_moment" in tables else None,
        }

    data = store.read(work)
    tasks = airflow_meta.flow_tasks(data["runs"]) if data else {}
    return render(
        request, "contact_moments.html", user, active="contact_moments", data=data, tasks=tasks, store_problem=store.problem
    )
