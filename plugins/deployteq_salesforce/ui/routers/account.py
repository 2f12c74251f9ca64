"""Account settings (the manual's "Account"): the Salesforce connection's login, password, security
token and sandbox switch, and the connection test.

Reading needs read access to the connection, saving edit access (Airflow's own connection
permissions); secrets are write-only.  A connection defined in an ``AIRFLOW_CONN_*`` environment
variable wins over the database, so the form does not pretend to change it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from deployteq_salesforce.ui import airflow_meta, connection_form
from deployteq_salesforce.ui.services import UiServices, ui_services
from deployteq_salesforce.ui.web import CurrentUser, can_use_connection, form_fields, redirect, render, require, requires_dag

log = logging.getLogger(__name__)
router = APIRouter()

Services = Annotated[UiServices, Depends(ui_services)]


def _current(stored: airflow_meta.StoredConnection) -> connection_form.CurrentConnection:
    return connection_form.CurrentConnection(stored.conn_type, stored.login, stored.extras, stored.has_password)


def _page(request: Request, user: Any, ui: UiServices, *, values: dict[str, Any] | None = None,
          problems: list[connection_form.FormProblem] = (), saved: bool = False, status_code: int = 200) -> HTMLResponse:
    stored = airflow_meta.stored_connection(ui.salesforce_conn_id)
    current = connection_form.form_values(_current(stored))
    return render(
        request, "account.html", user, active="account", status_code=status_code, stored=stored,
        values={**current, **(values or {})}, problems=list(problems), problem_fields={p.field for p in problems},
        saved=saved, test=ui.connection_test(), environments=connection_form.ENVIRONMENTS,
        can_save=can_use_connection(user, "PUT" if stored.in_database else "POST", ui.salesforce_conn_id),
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, user: CurrentUser, ui: Services, saved: bool = False) -> HTMLResponse:
    require(can_use_connection(user, "GET", ui.salesforce_conn_id), f"needs read access to connection {ui.salesforce_conn_id!r}")
    return _page(request, user, ui, saved=saved)


@router.post("/account", response_class=HTMLResponse)
async def save_account(request: Request, user: CurrentUser, ui: Services):
    stored = airflow_meta.stored_connection(ui.salesforce_conn_id)
    method = "PUT" if stored.in_database else "POST"
    require(can_use_connection(user, method, ui.salesforce_conn_id), f"saving needs edit rights on connection {ui.salesforce_conn_id!r}")
    form = await form_fields(request, user)
    if stored.from_environment:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Connection {ui.salesforce_conn_id!r} is set by the environment variable AIRFLOW_CONN_{ui.salesforce_conn_id.upper()}, "
            "which wins over anything saved here; change it where that variable is set",
        )
    change = connection_form.apply_form(_current(stored), form)
    if change.problems:
        values = {"login": form.get("login", ""), "environment": form.get("environment", "")}
        return _page(request, user, ui, values=values, problems=change.problems, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    airflow_meta.save_connection(
        ui.salesforce_conn_id, conn_type=change.conn_type, login=change.login, password=change.password,
        extras=change.extras, user=user,
    )
    log.info("User %s saved the account settings of connection %s", user.get_name(), ui.salesforce_conn_id)
    ui.connection_test(fresh=True)  # the page shows the test of what was just saved
    return redirect(request, "/account", saved="1")


@router.post("/account/test", dependencies=[requires_dag("GET")])
async def test_account(request: Request, user: CurrentUser, ui: Services, next: str = "/"):
    """Run the connection test now (one Salesforce request) and go back to the page that asked."""
    await form_fields(request, user)
    ui.connection_test(fresh=True)
    return redirect(request, next if next in ("/", "/account") else "/")
