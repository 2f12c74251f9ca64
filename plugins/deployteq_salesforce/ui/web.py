"""Web plumbing of the page routers: Airflow's login and permissions, rendering, CSRF, error pages.

Every page and action authenticates with Airflow's own FastAPI dependency (``get_user`` reads the
UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT) and asks the configured auth manager.
A browser that is not logged in is sent to Airflow's login page (like Airflow's own pages); a
browser-facing error is a page with the message and a way back; API clients (no ``text/html`` in
``Accept``) get JSON as from any FastAPI app.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.core_api.security import get_user

from deployteq_salesforce.flows.customers.config import VARIABLE_NAME as OBJECTS_VARIABLE
from deployteq_salesforce.ui import csrf, view_models

URL_PREFIX = "/deployteq-salesforce"
HERE = Path(__file__).parent

CurrentUser = Annotated[BaseUser, Depends(get_user)]

TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
TEMPLATES.env.filters.update(
    moment=view_models.format_moment,
    short_moment=view_models.format_short_moment,
    seconds=view_models.format_seconds,
    plain=view_models.plain_words,
    yes_no=view_models.yes_no,
)
TEMPLATES.env.globals.update(
    duration=view_models.format_duration,
    ago=view_models.format_ago,
    run_url=view_models.airflow_run_url,
    task_log_url=view_models.airflow_task_log_url,
)


# ------------------------------------------------------------------------------ permissions


def _auth_manager():
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def requires_dag(method: str, entity: str | None = None) -> Any:
    """Airflow's own ``requires_access_dag`` as a route dependency."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag(method, DagAccessEntity[entity] if entity else None))


def can_edit_variable(user: Any, key: str) -> bool:
    from airflow.api_fastapi.auth.managers.models.resource_details import VariableDetails

    return _auth_manager().is_authorized_variable(method="PUT", details=VariableDetails(key=key), user=user)


def can_trigger(user: Any, dag_id: str | None) -> bool:
    """Like triggering a DAG run (of ``dag_id``, or of DAGs in general)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return _auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def can_use_connection(user: Any, method: str, conn_id: str) -> bool:
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    return _auth_manager().is_authorized_connection(method=method, details=ConnectionDetails(conn_id=conn_id), user=user)


def require(allowed: bool, why: str) -> None:
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: {why}")


# ------------------------------------------------------------------------------ rendering


def base_url(request: Request) -> str:
    """Where this app is mounted (the pages' links start with it)."""
    return request.scope.get("root_path", "").rstrip("/")


def airflow_root(request: Request) -> str:
    """Where Airflow's own UI lives: our mount point without our prefix."""
    return base_url(request).removesuffix(URL_PREFIX)


def _user_key(user: Any) -> str:
    return f"{user.get_id()}:{user.get_name()}"


def _csrf_secret() -> str:
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback=None) or conf.get("api_auth", "jwt_secret", fallback=None)
    return secret or _PROCESS_SECRET  # single-process fallback; a real API server always has [api] secret_key


_PROCESS_SECRET = secrets.token_hex(32)


def render(
    request: Request, template: str, user: Any | None, *, status_code: int = 200, embedded: bool = False, **context: Any
) -> HTMLResponse:
    """A page of ours; ``embedded`` pages (a DAG's tab, a task's view) show their content only."""
    context.setdefault("store_problem", None)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "base": base_url(request),
            "airflow": airflow_root(request),
            "embedded": embedded,
            "user_name": user.get_name() if user is not None else None,
            "csrf_token": csrf.form_token(_csrf_secret(), _user_key(user)) if user is not None else "",
            "can_edit": user is not None and can_edit_variable(user, OBJECTS_VARIABLE),
            "can_retry": user is not None and can_trigger(user, None),
            "can_see_account": user is not None and can_use_connection(user, "GET", request.app.state.ui.salesforce_conn_id),
            **context,
        },
        status_code=status_code,
    )
    return response


def redirect(request: Request, path: str, **query: Any) -> RedirectResponse:
    """303 to one of our pages after a POST (query values that are None are left out)."""
    kept = {key: value for key, value in query.items() if value is not None}
    url = f"{base_url(request)}{path}" + (f"?{urlencode(kept)}" if kept else "")
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


# ------------------------------------------------------------------------------ CSRF


async def form_fields(request: Request, user: Any) -> dict[str, Any]:
    """The fields of a state-changing POST after the CSRF checks (multi-valued fields as lists)."""
    form = await request.form()
    fields: dict[str, Any] = {}
    for key in form.keys():
        values = [str(value) for value in form.getlist(key)]
        fields[key] = values if len(values) > 1 else values[0]
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return fields  # an explicit token, which a browser never adds on its own
    reason = csrf.cross_origin_reason(request.headers, host=request.headers.get("host"))
    if reason:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Refused: {reason}")
    if not csrf.token_matches(_csrf_secret(), _user_key(user), fields.get(csrf.FORM_FIELD)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "Refused: the form token is missing or wrong; reload the page and try again"
        )
    fields.pop(csrf.FORM_FIELD, None)
    return fields


def as_list(value: Any) -> list[str]:
    """A form field that may be sent once or several times."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------ error pages


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _not_logged_in(exc: StarletteHTTPException) -> bool:
    """Airflow's answers when there is no valid login (its own UI sends the browser to log in on these)."""
    return exc.status_code == 401 or (exc.status_code == 403 and exc.detail == "Invalid JWT token")


def install_error_pages(app: FastAPI) -> None:
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_html(request):
            return await http_exception_handler(request, exc)
        if _not_logged_in(exc):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = f"{airflow_root(request)}/api/v2/auth/login?{urlencode({'next': target})}"
            return RedirectResponse(login, status_code=status.HTTP_303_SEE_OTHER)
        return _error_page(request, exc.status_code, str(exc.detail))

    async def on_invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not wants_html(request):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}" for error in exc.errors())
        return _error_page(request, status.HTTP_422_UNPROCESSABLE_CONTENT, f"The request is not valid: {problems}")

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)


def _error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    back = request.headers.get("referer") or ""
    referer = urlsplit(back)
    same_site = referer.netloc == request.url.netloc and referer.path.startswith(f"{base_url(request)}/")
    return render(
        request, "error.html", None, status_code=status_code, message=message,
        back=back if same_site else f"{base_url(request)}/", title=_TITLES.get(status_code, "Something went wrong"),
    )


_TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Not found",
    409: "Cannot edit this here",
    422: "That did not work",
}

