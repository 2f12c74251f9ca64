"""The sync log: every run of every flow (or of one), newest first, with links to Airflow's run and task log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, store_queries, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, render, requires_dag

router = APIRouter()

PAGE_SIZE = 50


@router.get("/runs", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def runs_page(
    request: Request, user: CurrentUser, ui: Annotated[UiServices, Depends(ui_services)],
    flow: str | None = None, page: int = 1,
) -> HTMLResponse:
    store = ui.store()

    def work(conn, tables):
        if "run_log" not in tables:
            return None
        paging = view_models.Page.of(page, store_queries.run_count(conn, flow=flow or None), PAGE_SIZE)
        runs = store_queries.runs(conn, flow=flow or None, limit=paging.size, offset=paging.offset)
        return {"flows": store_queries.flows(conn), "runs": runs, "page": paging}

    data = store.read(work)
    tasks = airflow_meta.flow_tasks(data["runs"]) if data else {}
    return render(
        request, "runs.html", user, active="runs", data=data, flow=flow, tasks=tasks, store_problem=store.problem
    )
