"""FastAPI app of the "Integrations -> Salesforce" pages, mounted on Airflow's API server by the plugin.

Every page and action authenticates with Airflow's own FastAPI dependencies (``get_user`` reads the
UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT) and asks the configured auth manager:

* read pages -- read access to DAGs (the flows are DAGs; ``requires_access_dag("GET")``);
* the mapping / links editor -- edit rights on the Variable being saved (``is_authorized_variable(PUT)``);
* "retry selected records" -- like triggering a DAG run of the flows concerned (DAG RUN, POST).

State changes are POST only, protected against CSRF (see ``csrf.py``); nothing here renders a
password, security token or session id.  Nothing connects anywhere at import time.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from deployteq_salesforce.flows.customers.config import (
    VARIABLE_NAME,
    ConfigProblem,
    InvalidConfiguration,
    ObjectsConfig,
    load_objects_config,
    validate_against_salesforce,
)
from deployteq_salesforce.flows.object_links.config import SYNC_COLUMN, VARIABLE_NAME as LINKS_VARIABLE
from deployteq_salesforce.ui import charts, csrf, editor, store_queries, view_models

log = logging.getLogger(__name__)

URL_PREFIX = "/deployteq-salesforce"
HERE = Path(__file__).parent
DEPLOYTEQ_CONN_ID = "deployteq_default"
SALESFORCE_CONN_ID = "salesforce_default"
HOURLY_BUDGET_VARIABLE = "deployteq_salesforce_hourly_budget"
SOBJECTS = ("Lead", "Contact")
DEPLOYTEQ_TYPES = ("text", "email", "integer", "decimal", "boolean", "date", "datetime", "optin")
# a Salesforce request each: cached so the page does not spend the API budget on every view
CONNECTION_STATUS_TTL = 300.0
DESCRIBE_TTL = 600.0


# --------------------------------------------------------------------------------- Airflow auth


def _security():
    from airflow.api_fastapi.core_api import security

    return security


def _requires_dag(method: str, entity: str | None = None) -> Callable:
    """Airflow's ``requires_access_dag`` (imported when the app is built, i.e. inside the API server)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    return _security().requires_access_dag(method, DagAccessEntity[entity] if entity else None)


def _user_dependency() -> Callable:
    return _security().get_user


def _is_authorized_variable(user: Any, method: str, key: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import VariableDetails

    return get_auth_manager().is_authorized_variable(method=method, details=VariableDetails(key=key), user=user)


def _is_authorized_dag_run(user: Any, method: str, dag_id: str | None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    )


def _user_key(user: Any) -> str:
    return f"{user.get_id()}:{user.get_name()}"


def _csrf_secret() -> str:
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback=None) or conf.get("api_auth", "jwt_secret", fallback=None)
    if not secret:
        secret = _PROCESS_SECRET  # single-process fallback; a real API server always has [api] secret_key
    return secret


_PROCESS_SECRET = secrets.token_hex(32)


# ----------------------------------------------------------------------------------- helpers


@dataclass
class _Cached:
    value: Any
    at: float


class _TtlCache:
    def __init__(self) -> None:
        self._items: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, key: str, ttl: float, compute: Callable[[], Any]) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is not None and time.monotonic() - item.at < ttl:
                return item.value
        value = compute()
        with self._lock:
            self._items[key] = _Cached(value, time.monotonic())
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Store:
    """The Deployteq store as the pages see it: missing connection or tables are states, not errors."""

    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.problem: str | None = None

    @contextmanager
    def connection(self):
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        with DeployteqHook(self.conn_id).connect() as conn:
            yield conn

    def read(self, work: Callable[[Any, set[str]], Any]) -> Any:
        """Run ``work(conn, tables)``; on a store that cannot be reached, record why and return None."""
        try:
            with self.connection() as conn:
                return work(conn, store_queries.existing_tables(conn))
        except Exception as exc:  # noqa: BLE001 - the page shows the reason instead of a 500
            self.problem = f"Deployteq store (connection '{self.conn_id}') not reachable: {type(exc).__name__}: {_first_line(exc)}"
            log.warning("%s", self.problem)
            return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def _get_variable(key: str) -> str | None:
    from airflow.models import Variable

    return Variable.get(key, default_var=None)


def _set_variable(key: str, value: str) -> None:
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        existing = session.query(Variable).filter(Variable.key == key).one_or_none()
        description = existing.description if existing is not None else None
    Variable.set(key, value, description=description)


# ------------------------------------------------------------------------------------- the app


def create_app(
    *, deployteq_conn_id: str = DEPLOYTEQ_CONN_ID, salesforce_conn_id: str = SALESFORCE_CONN_ID
) -> FastAPI:
    app = FastAPI(title="Deployteq Salesforce integration", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["moment"] = view_models.format_moment
    templates.env.filters["seconds"] = view_models.format_seconds
    templates.env.globals["duration"] = view_models.format_duration
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    cache = _TtlCache()
    app.state.cache = cache

    get_user = _user_dependency()
    read_access = [Depends(_requires_dag("GET"))]

    def base_url(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def render(request: Request, template: str, user: Any, **context: Any) -> HTMLResponse:
        context.setdefault("store_problem", None)
        return templates.TemplateResponse(
            request,
            template,
            {
                "base": base_url(request),
                "user_name": user.get_name(),
                "csrf_token": csrf.form_token(_csrf_secret(), _user_key(user)),
                "can_edit": _is_authorized_variable(user, "PUT", VARIABLE_NAME),
                "can_retry": _is_authorized_dag_run(user, "POST", None),
                **context,
            },
        )

    async def protect_post(request: Request, user: Any) -> dict[str, str]:
        """CSRF check of a browser POST; returns the form fields."""
        form = await request.form()
        fields = {key: str(value) for key, value in form.items()}
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
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

    def require_variable_edit(key: str) -> Callable:
        def check(user: Any = Depends(get_user)) -> Any:
            if not _is_authorized_variable(user, "PUT", key):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: editing needs edit rights on Variable {key!r}")
            return user

        return check

    # -- Salesforce (cached: each costs API budget) ------------------------------------------------

    def salesforce_hook(hourly_budget: int | None):
        from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

        return BudgetedSalesforceHook(
            salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, flow="ui", hourly_budget=hourly_budget
        )

    def hourly_budget() -> int | None:
        try:
            value = _get_variable(HOURLY_BUDGET_VARIABLE)
            return int(value) if value not in (None, "") else None
        except Exception:  # noqa: BLE001 - a broken value is reported by the DAGs; here: the default
            return None

    def account_info() -> dict[str, Any]:
        """Connection status (test_connection), environment and login user -- never a secret."""

        def compute() -> dict[str, Any]:
            from airflow.models import Connection

            info: dict[str, Any] = {"conn_id": salesforce_conn_id}
            try:
                connection = Connection.get_connection_from_secrets(salesforce_conn_id)
            except Exception as exc:  # noqa: BLE001
                info.update(ok=False, message=f"Connection '{salesforce_conn_id}' is not configured: {_first_line(exc)}")
                return info
            extras = connection.extra_dejson or {}
            info["environment"] = view_models.salesforce_environment(
                domain=extras.get("domain"), instance_url=extras.get("instance_url") or extras.get("instance")
            )
            info["login"] = connection.login or ("(session id)" if connection.password else "(OAuth client)")
            hook = salesforce_hook(hourly_budget())
            try:
                ok, message = hook.test_connection()
                info["hourly_limit"] = hook.budget_settings.hourly_budget
                info["daily_share"] = hook.budget_settings.daily_share
                info["budget_key"] = hook.budget_settings.budget_key
            except Exception as exc:  # noqa: BLE001
                ok, message = False, f"{type(exc).__name__}: {_first_line(exc)}"
            finally:
                hook.close()
            info.update(ok=ok, message=message)
            return info

        return cache.get("account", CONNECTION_STATUS_TTL, compute)

    def describe(sobject: str) -> tuple[dict | None, str | None]:
        def compute() -> tuple[dict | None, str | None]:
            hook = salesforce_hook(hourly_budget())
            try:
                sf = hook.get_conn()
                return dict(getattr(sf, sobject).describe()), None
            except Exception as exc:  # noqa: BLE001 - no describe: validate structurally only, and say so
                return None, f"no describe of {sobject} from Salesforce ({type(exc).__name__}: {_first_line(exc)})"
            finally:
                hook.close()

        result = cache.get(f"describe:{sobject}", DESCRIBE_TTL, compute)
        if result[0] is None:
            cache._items.pop(f"describe:{sobject}", None)  # failed describes are retried next time
        return result

    def customer_columns(store: Store) -> dict[str, str] | None:
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        try:
            return DeployteqHook(store.conn_id).table_columns("customer") or None
        except Exception:  # noqa: BLE001
            return None

    def objects_config() -> tuple[ObjectsConfig | None, dict[str, Any], list[ConfigProblem], str | None]:
        """(parsed config or None, raw dict, structural problems, raw text)."""
        raw = _get_variable(VARIABLE_NAME)
        if raw in (None, ""):
            return ObjectsConfig(), {"objects": []}, [], raw
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = {}
        try:
            return load_objects_config(raw), data if isinstance(data, dict) else {}, [], raw
        except InvalidConfiguration as exc:
            return None, data if isinstance(data, dict) else {}, exc.problems, raw

    # -- pages ----------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, dependencies=read_access)
    def overview(request: Request, user: Any = Depends(get_user)) -> HTMLResponse:
        store = Store(deployteq_conn_id)
        account = account_info()

        def work(conn, tables):
            data: dict[str, Any] = {"now": store_queries.database_now(conn)}
            data["ledger_rows"] = store_queries.ledger_per_hour(conn) if "api_ledger" in tables else None
            data["ledger_totals"] = store_queries.ledger_totals(conn) if "api_ledger" in tables else None
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
                limit=account.get("hourly_limit"), limit_label="hourly budget", label_every=3,
            )
        if data.get("runs"):
            labels, series = view_models.records_per_run_series(data["runs"])
            runs_chart = charts.stacked_bar_chart(labels, series, title="Records per run (latest 30 runs)", label_every=5)
        config, _, config_problems, _ = objects_config()
        return render(
            request, "overview.html", user, account=account, data=data, budget_chart=budget_chart,
            runs_chart=runs_chart, config=config, config_problems=config_problems, store_problem=store.problem,
        )

    @app.get("/objects", response_class=HTMLResponse, dependencies=read_access)
    def objects_page(request: Request, user: Any = Depends(get_user), saved: str | None = None) -> HTMLResponse:
        config, _, config_problems, _ = objects_config()
        store = Store(deployteq_conn_id)
        columns = customer_columns(store)
        objects = []
        for obj in (config.objects if config else []):
            found, reason = describe(obj.sobject)
            problems = validate_against_salesforce(obj, found, columns or {}) if found is not None else None
            objects.append(
                {
                    "obj": obj,
                    "rows": view_models.mapping_rows(obj, problems or []),
                    "object_problems": view_models.object_level_problems(problems or []),
                    "validity": view_models.validity(problems, reason),
                }
            )
        return render(
            request, "objects.html", user, objects=objects, config_problems=config_problems,
            saved=saved, sobjects=SOBJECTS, variable=VARIABLE_NAME,
        )

    def _editor_context(sobject: str, data: dict[str, Any], form: dict[str, str] | None) -> dict[str, Any]:
        current = next((o for o in data.get("objects", []) if isinstance(o, dict) and o.get("sobject") == sobject), None)
        found, reason = describe(sobject)
        field_names = sorted(f["name"] for f in (found or {}).get("fields", []))
        if form is not None:  # re-show what the user submitted, with the problems
            rows = [
                {**row, "unique_key": form.get("unique_key") == row["index"]} for row in editor.form_rows(form)
            ]
            settings = {
                "enabled": bool(form.get("enabled")), "unique_field": form.get("unique_field", "id"),
                "sync_flag_field": form.get("sync_flag_field", ""), "schedule": form.get("schedule", ""),
            }
        else:
            rows = [
                {
                    "salesforce_field": m.get("salesforce_field", ""), "deployteq_type": m.get("deployteq_type", "text"),
                    "deployteq_field": m.get("deployteq_field", ""), "unique_key": bool(m.get("unique_key")),
                    "translations": editor.format_translations(m.get("translations") or {}),
                    "translate_default": m.get("translate_default", "keep"),
                }
                for m in (current or {}).get("mappings", [])
            ]
            settings = {
                "enabled": (current or {}).get("enabled", True), "unique_field": (current or {}).get("unique_field", "id"),
                "sync_flag_field": (current or {}).get("sync_flag_field") or "",
                "schedule": (current or {}).get("schedule", "@hourly") if current else "@hourly",
            }
        rows += [
            {"salesforce_field": "", "deployteq_type": "text", "deployteq_field": "", "unique_key": False,
             "translations": "", "translate_default": "keep"}
            for _ in range(3)
        ]
        return {
            "sobject": sobject, "rows": rows, "settings": settings, "field_names": field_names,
            "describe_problem": reason, "types": DEPLOYTEQ_TYPES, "is_new": current is None,
        }

    @app.get("/objects/{sobject}/edit", response_class=HTMLResponse)
    def edit_object_page(request: Request, sobject: str, user: Any = Depends(require_variable_edit(VARIABLE_NAME))) -> HTMLResponse:
        if sobject not in SOBJECTS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{sobject!r} is not a configurable object ({', '.join(SOBJECTS)})")
        _, data, _, _ = objects_config()
        return render(request, "edit_object.html", user, problems=[], warnings=[], **_editor_context(sobject, data, None))

    @app.post("/objects/{sobject}", response_class=HTMLResponse)
    async def save_object(request: Request, sobject: str, user: Any = Depends(require_variable_edit(VARIABLE_NAME))):
        if sobject not in SOBJECTS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{sobject!r} is not a configurable object ({', '.join(SOBJECTS)})")
        form = await protect_post(request, user)
        _, data, _, _ = objects_config()
        found, _ = describe(sobject)
        result = editor.edit_object(
            data, sobject, form, describe=found, customer_columns=customer_columns(Store(deployteq_conn_id)) if found else None
        )
        if not result.accepted:
            response = render(
                request, "edit_object.html", user, problems=result.problems, warnings=result.warnings,
                **_editor_context(sobject, data, form),
            )
            response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
            return response
        _set_variable(VARIABLE_NAME, result.variable_text)
        log.info("User %s saved the mapping of %s in Variable %s", user.get_name(), sobject, VARIABLE_NAME)
        return RedirectResponse(f"{base_url(request)}/objects?saved={sobject}", status_code=status.HTTP_303_SEE_OTHER)

    # -- object links (issue 4) -----------------------------------------------------------------------

    def links_view() -> dict[str, Any]:
        raw = _get_variable(LINKS_VARIABLE)
        view: dict[str, Any] = {"variable": LINKS_VARIABLE, "raw": raw or "", "links": [], "problems": []}
        if raw:
            parsed, problems = editor.check_links_text(raw)
            view["problems"] = problems
            data = parsed if parsed is not None else _safe_json(raw)
            items = data.get("links") if isinstance(data, dict) else None
            view["links"] = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        return view

    @app.get("/links", response_class=HTMLResponse, dependencies=read_access)
    def links_page(request: Request, user: Any = Depends(get_user), saved: str | None = None) -> HTMLResponse:
        view = links_view()
        can_edit_links = _is_authorized_variable(user, "PUT", LINKS_VARIABLE)
        return render(request, "links.html", user, view=view, saved=saved, can_edit_links=can_edit_links, problems=[])

    def require_links_editor(user: Any) -> None:
        """403 without edit rights on the links Variable."""
        if not _is_authorized_variable(user, "PUT", LINKS_VARIABLE):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: editing needs edit rights on Variable {LINKS_VARIABLE!r}")

    @app.post("/links", response_class=HTMLResponse)
    async def save_links(request: Request, user: Any = Depends(get_user)):
        require_links_editor(user)
        form = await protect_post(request, user)
        text = form.get("links", "")
        parsed, problems = editor.check_links_text(text)
        if problems:
            view = links_view()
            view["raw"] = text
            response = render(request, "links.html", user, view=view, saved=None, can_edit_links=True, problems=problems)
            response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
            return response
        _set_variable(LINKS_VARIABLE, json.dumps(parsed, indent=2, ensure_ascii=False))
        log.info("User %s saved the object links in Variable %s", user.get_name(), LINKS_VARIABLE)
        return RedirectResponse(f"{base_url(request)}/links?saved=1", status_code=status.HTTP_303_SEE_OTHER)

    # -- one object link as a form (the manual's gear) -------------------------------------------------

    def links_document() -> dict[str, Any]:
        """The links Variable as a document the forms can edit; 409 when it is not one."""
        document = editor.links_document(_get_variable(LINKS_VARIABLE))
        if document is None:  # a form cannot edit it safely: only the JSON editor can repair it
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Variable {LINKS_VARIABLE!r} is not a valid object-links document; fix it in the JSON editor on the links page",
            )
        return document

    def editable_links_document(user: Any) -> dict[str, Any]:
        require_links_editor(user)
        return links_document()

    def existing_link(document: dict[str, Any], name: str) -> dict[str, Any]:
        link = editor.find_link(document, name)
        if link is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no object link named {name!r}")
        return link

    async def link_form_post(request: Request, user: Any) -> tuple[dict[str, str], dict[str, Any]]:
        """A link form's POST: edit rights, then the CSRF token, then the current document."""
        require_links_editor(user)
        form = await protect_post(request, user)
        return form, links_document()

    def render_link_form(
        request: Request, user: Any, document: dict[str, Any], original_name: str, values: dict[str, str],
        problems: Sequence[editor.LinkProblem] = (),
    ) -> HTMLResponse:
        response = render(
            request, "edit_link.html", user, original_name=original_name, values=values, problems=list(problems),
            webhooks=editor.webhook_choices(document), labels=editor.LINK_FIELD_LABELS,
            sync_column=SYNC_COLUMN,
        )
        if problems:
            response.status_code = status.HTTP_422_UNPROCESSABLE_CONTENT
        return response

    @app.get("/links/new", response_class=HTMLResponse)
    def new_link_page(request: Request, user: Any = Depends(get_user)) -> HTMLResponse:
        document = editable_links_document(user)
        return render_link_form(request, user, document, "", editor.link_form_values(None))

    @app.get("/links/edit", response_class=HTMLResponse)
    def edit_link_page(request: Request, name: str, user: Any = Depends(get_user)) -> HTMLResponse:
        document = editable_links_document(user)
        return render_link_form(request, user, document, name, editor.link_form_values(existing_link(document, name)))

    @app.post("/links/edit", response_class=HTMLResponse)
    async def save_link(request: Request, user: Any = Depends(get_user)):
        form, document = await link_form_post(request, user)
        original_name = form.get("original_name", "")
        result = editor.edit_link(document, original_name, form)
        if not result.accepted:
            return render_link_form(request, user, document, original_name, editor.submitted_link_values(form), result.problems)
        _set_variable(LINKS_VARIABLE, result.variable_text)
        log.info("User %s saved object link %r in Variable %s", user.get_name(), form.get("name"), LINKS_VARIABLE)
        return RedirectResponse(f"{base_url(request)}/links?saved=1", status_code=status.HTTP_303_SEE_OTHER)

    @app.post("/links/delete", response_class=HTMLResponse)
    async def delete_link(request: Request, user: Any = Depends(get_user)):
        form, document = await link_form_post(request, user)
        name = form.get("name", "")
        link = existing_link(document, name)
        result = editor.delete_link(document, name)
        if not result.accepted:
            return render_link_form(request, user, document, name, editor.link_form_values(link), result.problems)
        _set_variable(LINKS_VARIABLE, result.variable_text)
        log.info("User %s deleted object link %r from Variable %s", user.get_name(), name, LINKS_VARIABLE)
        return RedirectResponse(f"{base_url(request)}/links?saved=1", status_code=status.HTTP_303_SEE_OTHER)

    # -- sync log, errors, contact moments ------------------------------------------------------------

    @app.get("/runs", response_class=HTMLResponse, dependencies=read_access)
    def runs_page(request: Request, user: Any = Depends(get_user), flow: str | None = None) -> HTMLResponse:
        store = Store(deployteq_conn_id)

        def work(conn, tables):
            if "run_log" not in tables:
                return None
            return {"flows": store_queries.flows(conn), "runs": store_queries.runs(conn, flow=flow or None, limit=200)}

        data = store.read(work)
        return render(request, "runs.html", user, data=data, flow=flow, store_problem=store.problem)

    @app.get("/errors", response_class=HTMLResponse, dependencies=read_access)
    def errors_page(request: Request, user: Any = Depends(get_user), flow: str | None = None, queued: int | None = None) -> HTMLResponse:
        store = Store(deployteq_conn_id)

        def work(conn, tables):
            if "sync_error" not in tables:
                return None
            return store_queries.open_errors(conn, flow=flow or None)

        errors = store.read(work)
        return render(request, "errors.html", user, errors=errors, flow=flow, queued=queued, store_problem=store.problem)

    @app.post("/errors/retry")
    async def retry_errors(request: Request, user: Any = Depends(get_user), _: None = Depends(_requires_dag("POST", "RUN"))):
        form = await request.form()
        ids = [int(value) for value in form.getlist("error_id") if str(value).isdigit()]
        await protect_post(request, user)
        if not ids:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "Select at least one record to retry")
        store = Store(deployteq_conn_id)
        with store.connection() as conn:
            dag_ids = {dag for flow in store_queries.flows_of_errors(conn, ids) for dag in store_queries.dags_of_flow(conn, flow)}
            refused = sorted(dag for dag in dag_ids if not _is_authorized_dag_run(user, "POST", dag))
            if refused:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"Forbidden: retrying needs the right to trigger {', '.join(refused)}")
            marked = store_queries.request_retry(conn, ids)
        log.info("User %s queued %s record(s) for retry", user.get_name(), marked)
        return RedirectResponse(f"{base_url(request)}/errors?queued={marked}", status_code=status.HTTP_303_SEE_OTHER)

    @app.get("/contact-moments", response_class=HTMLResponse, dependencies=read_access)
    def contact_moments_page(request: Request, user: Any = Depends(get_user)) -> HTMLResponse:
        store = Store(deployteq_conn_id)

        def work(conn, tables):
            return {
                "backlog": store_queries.contact_moment_backlog(conn, tables),
                "runs": store_queries.runs(conn, flow="contact_moments", limit=50) if "run_log" in tables else [],
                "moments": conn.execute("SELECT count(*) FROM contact_moment").fetchone()[0] if "contact_moment" in tables else None,
            }

        data = store.read(work)
        return render(request, "contact_moments.html", user, data=data, store_problem=store.problem)

    # -- DAG tab and task-instance view ---------------------------------------------------------------

    @app.get("/dag/{dag_id}", response_class=HTMLResponse, dependencies=[Depends(_requires_dag("GET", "RUN"))])
    def dag_tab(request: Request, dag_id: str, user: Any = Depends(get_user)) -> HTMLResponse:
        store = Store(deployteq_conn_id)

        def work(conn, tables):
            if "run_log" not in tables:
                return None
            return {"flows": store_queries.flows_of_dag(conn, dag_id), "runs": store_queries.runs(conn, dag_id=dag_id, limit=100)}

        data = store.read(work)
        chart = None
        if data and data["runs"]:
            labels, series = view_models.records_per_run_series(data["runs"])
            chart = charts.stacked_bar_chart(labels, series, title=f"Records per run of {dag_id}", label_every=5)
        return render(request, "dag.html", user, dag_id=dag_id, data=data, chart=chart, store_problem=store.problem)

    @app.get(
        "/dag/{dag_id}/run/{run_id}/task/{task_id}",
        response_class=HTMLResponse,
        dependencies=[Depends(_requires_dag("GET", "TASK_INSTANCE"))],
    )
    def task_view(request: Request, dag_id: str, run_id: str, task_id: str, user: Any = Depends(get_user)) -> HTMLResponse:
        store = Store(deployteq_conn_id)

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
            request, "task.html", user, dag_id=dag_id, run_id=run_id, task_id=task_id, data=data, store_problem=store.problem
        )

    return app


def _safe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None


def plugin_entries() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``fastapi_apps`` entry and the ``external_views`` of the Salesforce pages, for the AirflowPlugin."""
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

