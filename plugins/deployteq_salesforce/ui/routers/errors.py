"""Records that could not be synchronised: filter by flow and reason, search by record id or e-mail
address, page through any number of them, queue retries (selected, or all of a reason) and see the
history of one record."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, store_queries, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.store_queries import ErrorFilter
from deployteq_salesforce.ui.web import CurrentUser, as_list, can_trigger, form_fields, redirect, render, require, requires_dag

log = logging.getLogger(__name__)
router = APIRouter()

PAGE_SIZE = 50
Services = Annotated[UiServices, Depends(ui_services)]


def _filter(flow: str | None, reason: str | None, q: str | None) -> ErrorFilter:
    return ErrorFilter(flow=flow or None, reason=reason or None, search=(q or "").strip() or None)


@router.get("/errors", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def errors_page(
    request: Request, user: CurrentUser, ui: Services, flow: str | None = None, reason: str | None = None,
    q: str | None = None, page: int = 1, queued: int | None = None,
) -> HTMLResponse:
    store = ui.store()
    selection = _filter(flow, reason, q)

    def work(conn, tables) -> dict[str, Any] | None:
        if "sync_error" not in tables:
            return None
        paging = view_models.Page.of(page, store_queries.open_error_count(conn, selection), PAGE_SIZE)
        return {
            "errors": store_queries.open_errors(conn, selection, limit=paging.size, offset=paging.offset),
            "page": paging,
            "flows": store_queries.error_flows(conn),
            "reasons": store_queries.error_reasons(conn, flow=selection.flow),
        }

    data = store.read(work)
    tasks = airflow_meta.flow_tasks(data["errors"]) if data else {}
    return render(
        request, "errors.html", user, active="errors", data=data, selection=selection, tasks=tasks, queued=queued,
        store_problem=store.problem,
    )


@router.post("/errors/retry", dependencies=[requires_dag("POST", "RUN")])
async def retry_errors(request: Request, user: CurrentUser, ui: Services):
    """Queue the selected records (``error_id``), or with ``all_matching`` every record the filter selects."""
    form = await form_fields(request, user)
    selection = _filter(form.get("flow"), form.get("reason"), form.get("q"))
    every = bool(form.get("all_matching"))
    ids = [int(value) for value in as_list(form.get("error_id")) if str(value).isdigit()]
    if every and not selection.reason:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Choose a reason first: 'retry all' queues every record with one reason")
    if not every and not ids:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Select at least one record to retry (tick its box), then press Retry")
    with ui.store().connection() as conn:
        flows = store_queries.flows_of_matching_errors(conn, selection) if every else store_queries.flows_of_errors(conn, ids)
        refused = sorted(dag for dag in store_queries.dags_of_flows(conn, flows) if not can_trigger(user, dag))
        require(not refused, f"retrying needs the right to trigger {', '.join(refused)}")
        marked = store_queries.request_retry_matching(conn, selection) if every else store_queries.request_retry(conn, ids)
    log.info("User %s queued %s record(s) for retry", user.get_name(), marked)
    return redirect(request, "/errors", flow=selection.flow, reason=selection.reason, q=selection.search, queued=marked)


@router.get("/errors/history", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def error_history(request: Request, user: CurrentUser, ui: Services, flow: str, record: str) -> HTMLResponse:
    store = ui.store()
    rows = store.read(lambda conn, tables: store_queries.error_history(conn, flow=flow, record_id=record) if "sync_error" in tables else None)
    tasks = airflow_meta.flow_tasks(rows or [])
    return render(
        request, "error_history.html", user, active="errors", flow=flow, record=record, rows=rows, tasks=tasks,
        store_problem=store.problem,
    )
