"""The overview: the connection test, the API budget, records per run, every flow's last run."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, charts, store_queries, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, render, requires_dag

router = APIRouter()


@router.get("/", response_class=HTMLResponse, dependencies=[requires_dag("GET")])
def overview(request: Request, user: CurrentUser, ui: Annotated[UiServices, Depends(ui_services)]) -> HTMLResponse:
    store = ui.store()
    test = ui.connection_test()

    def work(conn, tables) -> dict[str, Any]:
        data: dict[str, Any] = {"now": store_queries.database_now(conn)}
        has_ledger = "api_ledger" in tables
        data["ledger_rows"] = store_queries.ledger_per_hour(conn) if has_ledger else None
        data["ledger_totals"] = store_queries.ledger_totals(conn) if has_ledger else None
        data["budget_states"] = store_queries.budget_states(conn) if "api_budget_state" in tables else []
        data["flows"] = store_queries.flows(conn) if "run_log" in tables else None
        data["runs"] = store_queries.runs(conn, limit=30) if "run_log" in tables else []
        data["open_errors"] = store_queries.open_error_count(conn) if "sync_error" in tables else None
        data["backlog"] = store_queries.contact_moment_backlog(conn, tables)
        return data

    data = store.read(work) or {}
    budget_chart = runs_chart = None
    if data.get("ledger_rows") is not None:
        labels, series = view_models.hourly_budget_series(data["ledger_rows"], now=data["now"])
        budget_chart = charts.stacked_bar_chart(
            labels, series, title="Salesforce API requests per hour, last 24 hours, per flow",
            limit=test.hourly_limit, limit_label="hourly budget", label_every=3, unit=" requests",
        )
    if data.get("runs"):
        labels, series, tooltips = view_models.records_per_run_by_flow(data["runs"])
        runs_chart = charts.stacked_bar_chart(
            labels, series, title="Records per run, latest 30 runs, by flow", tooltips=tooltips, label_every=5,
            mark_zero=True,
        )
    flows = data.get("flows") or []
    schedules = airflow_meta.dag_schedules(flow["dag_id"] for flow in flows if flow.get("dag_id"))
    config, _, _ = ui.objects_config()
    return render(
        request, "overview.html", user, active="overview", test=test, data=data, budget_chart=budget_chart,
        runs_chart=runs_chart, config=config, schedules=schedules, store_problem=store.problem,
        hourly_limit=test.hourly_limit,
    )
