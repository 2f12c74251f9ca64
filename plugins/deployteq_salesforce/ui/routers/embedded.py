"""The views Airflow embeds: the "Salesforce sync" tab of a DAG and the "Synchronize exits" view of a task
instance.  They show their content only (Airflow around them is the context), and say in one line
when the DAG or task is not one of ours: Airflow shows the tab on every DAG."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, charts, store_queries, view_models
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, render, requires_dag

router = APIRouter()

Services = Annotated[UiServices, Depends(ui_services)]


@router.get("/dag/{dag_id}", response_class=HTMLResponse, dependencies=[requires_dag("GET", "RUN")])
def dag_tab(request: Request, dag_id: str, user: CurrentUser, ui: Services) -> HTMLResponse:
    store = ui.store()

    def work(conn, tables):
        if "run_log" not in tables:
            return None
        return {"flows": store_queries.flows_of_dag(conn, dag_id), "runs": store_queries.runs(conn, dag_id=dag_id, limit=100)}

    data = store.read(work)
    chart = None
    if data and any(view_models.run_records(run) for run in data["runs"]):  # a chart of zeros says nothing
        labels, series, tooltips = view_models.records_per_run_series(data["runs"])
        chart = charts.stacked_bar_chart(
            labels, series, title=f"Records per run of {dag_id}, latest 30", tooltips=tooltips, label_every=5, mark_zero=True
        )
    tasks = airflow_meta.flow_tasks(data["runs"]) if data else {}
    return render(
        request, "dag.html", user, embedded=True, dag_id=dag_id, data=data, chart=chart, tasks=tasks,
        store_problem=store.problem,
    )


@router.get(
    "/dag/{dag_id}/run/{run_id}/task/{task_id}", response_class=HTMLResponse,
    dependencies=[requires_dag("GET", "TASK_INSTANCE")],
)
def task_view(request: Request, dag_id: str, run_id: str, task_id: str, user: CurrentUser, ui: Services) -> HTMLResponse:
    store = ui.store()

    def work(conn, tables):
        if "synchronize_run" not in tables or "synchronize_outcome" not in tables:
            return None
        result = []
        for run in store_queries.synchronize_runs_of_task(conn, dag_id=dag_id, run_id=run_id, task_id=task_id):
            counts = store_queries.synchronize_exit_counts(conn, run["run_key"])
            counts["continue"] = sum(v for k, v in counts.items() if k != "pending")
            result.append({"run": run, "counts": counts, "outcomes": store_queries.synchronize_outcomes(conn, run["run_key"])})
        return result

    data = store.read(work)
    return render(
        request, "task.html", user, embedded=True, dag_id=dag_id, run_id=run_id, task_id=task_id, data=data,
        store_problem=store.problem,
    )
