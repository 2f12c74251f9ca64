"""What the page routers share: the Deployteq store, the Salesforce connection (tested and described,
cached because each costs API budget) and the two configuration Variables.

One ``UiServices`` per app (``app.state.ui``); routers get it with ``Depends(ui_services)``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import Request

from deployteq_salesforce.flows.customers.config import (
    VARIABLE_NAME as OBJECTS_VARIABLE,
    ConfigProblem,
    InvalidConfiguration,
    ObjectsConfig,
    load_objects_config,
)
from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME as LINKS_VARIABLE
from deployteq_salesforce.ui import airflow_meta, editor, store_queries, view_models

log = logging.getLogger(__name__)

HOURLY_BUDGET_VARIABLE = "deployteq_salesforce_hourly_budget"
# a Salesforce request each: cached so that viewing a page does not spend the API budget every time
CONNECTION_TEST_TTL = 300.0
DESCRIBE_TTL = 600.0


class TtlCache:
    """Values computed at most once per ``ttl`` seconds; ``keep`` decides whether a result is cached at all."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, ttl: float, compute: Callable[[], Any], *, keep: Callable[[Any], bool] = lambda _: True) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is not None and time.monotonic() - item[1] < ttl:
                return item[0]
        value = compute()
        if keep(value):
            with self._lock:
                self._items[key] = (value, time.monotonic())
        return value

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


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
            self.problem = f"Deployteq store (connection '{self.conn_id}') not reachable: {type(exc).__name__}: {first_line(exc)}"
            log.warning("%s", self.problem)
            return None

    def latest_runs(self) -> dict[str, dict[str, Any]]:
        """Every flow's latest run, by flow (empty before the first run, or when the store cannot be read)."""
        flows = self.read(lambda conn, tables: store_queries.flows(conn) if "run_log" in tables else [])
        return {flow["flow"]: flow for flow in flows or []}

    def customer_columns(self) -> dict[str, str] | None:
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        try:
            return DeployteqHook(self.conn_id).table_columns("customer") or None
        except Exception:  # noqa: BLE001 - without the columns the editors check less, and say so
            return None


@dataclass(frozen=True)
class ConnectionTest:
    """The result of the Salesforce connection test, and when it ran (the overview says how old it is)."""

    ok: bool
    message: str
    tested_at: datetime
    environment: str | None = None
    login: str | None = None
    hourly_limit: int | None = None

    @property
    def summary(self) -> str:
        """The verdict without the usage figures the message carries: the budget card owns those numbers."""
        return self.message.split("; ")[0] if self.ok else self.message


@dataclass(frozen=True)
class Describe:
    """A describe of one object: the fields, or why there is none (``missing``: the object does not exist)."""

    sobject: str
    fields: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    missing: bool = False

    @property
    def found(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.sobject, "fields": self.fields}


@dataclass
class UiServices:
    deployteq_conn_id: str
    salesforce_conn_id: str
    cache: TtlCache = field(default_factory=TtlCache)

    def store(self) -> Store:
        return Store(self.deployteq_conn_id)

    # -- Salesforce (cached: each costs API budget) ----------------------------------------------------

    def _salesforce_hook(self):
        from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

        return BudgetedSalesforceHook(
            self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow="ui", hourly_budget=self._hourly_budget()
        )

    @staticmethod
    def _hourly_budget() -> int | None:
        try:
            value = airflow_meta.get_variable(HOURLY_BUDGET_VARIABLE)
            return int(value) if value not in (None, "") else None
        except Exception:  # noqa: BLE001 - a broken value is reported by the DAGs; here: the default
            return None

    def connection_test(self, *, fresh: bool = False) -> ConnectionTest:
        """The connection test (cached for ``CONNECTION_TEST_TTL``; ``fresh`` runs it now)."""
        if fresh:
            self.cache.forget("connection-test")
        return self.cache.get("connection-test", CONNECTION_TEST_TTL, self._run_connection_test)

    def _run_connection_test(self) -> ConnectionTest:
        from airflow.models import Connection

        now = datetime.now(timezone.utc)
        try:
            connection = Connection.get_connection_from_secrets(self.salesforce_conn_id)
        except Exception as exc:  # noqa: BLE001
            return ConnectionTest(False, f"Connection '{self.salesforce_conn_id}' is not configured: {first_line(exc)}", now)
        extras = connection.extra_dejson or {}
        environment = view_models.salesforce_environment(
            domain=extras.get("domain"), instance_url=extras.get("instance_url") or extras.get("instance")
        )
        login = connection.login or ("(session id)" if connection.password else "(OAuth client)")
        hook = self._salesforce_hook()
        hourly_limit = None
        try:
            ok, message = hook.test_connection()
            hourly_limit = hook.budget_settings.hourly_budget
        except Exception as exc:  # noqa: BLE001
            ok, message = False, f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            hook.close()
        return ConnectionTest(ok, message, now, environment, login, hourly_limit)

    def describe(self, sobject: str) -> Describe:
        """The describe of ``sobject`` (cached; a failed one is asked again next time)."""

        def compute() -> Describe:
            from simple_salesforce.exceptions import SalesforceResourceNotFound

            hook = self._salesforce_hook()
            try:
                found = getattr(hook.get_conn(), sobject).describe()
                return Describe(sobject, list(found.get("fields", [])))
            except SalesforceResourceNotFound:
                return Describe(sobject, problem=f"Salesforce has no object {sobject!r}", missing=True)
            except Exception as exc:  # noqa: BLE001 - no describe: the editors check the structure only, and say so
                return Describe(sobject, problem=f"no describe of {sobject} from Salesforce ({type(exc).__name__}: {first_line(exc)})")
            finally:
                hook.close()

        return self.cache.get(f"describe:{sobject}", DESCRIBE_TTL, compute, keep=lambda result: result.found)

    def preview(self, obj: Any, sample_size: int) -> Any:
        """The mapping preview of a candidate object (``flows/customers/preview.py``): 3 Salesforce requests,
        counted in the API budget as flow ``preview:<object>``; nothing is written.  Not cached: it is asked
        for by hand, for a mapping that is being edited."""
        from deployteq_salesforce.flows.customers.preview import preview_on_connections

        return preview_on_connections(obj, salesforce_conn_id=self.salesforce_conn_id,
                                      deployteq_conn_id=self.deployteq_conn_id, sample_size=sample_size,
                                      hourly_budget=self._hourly_budget())

    # -- the configuration Variables ---------------------------------------------------------------------

    @staticmethod
    def objects_config() -> tuple[ObjectsConfig | None, dict[str, Any], list[ConfigProblem]]:
        """(parsed config or None when invalid, the raw document, its structural problems)."""
        raw = airflow_meta.get_variable(OBJECTS_VARIABLE)
        if raw in (None, ""):
            return ObjectsConfig(), {"objects": []}, []
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = {}
        document = data if isinstance(data, dict) else {}
        try:
            return load_objects_config(raw), document, []
        except InvalidConfiguration as exc:
            return None, document, exc.problems

    @staticmethod
    def links_view() -> dict[str, Any]:
        """The links Variable as the links page shows it: its text, its links and its problems."""
        raw = airflow_meta.get_variable(LINKS_VARIABLE)
        view: dict[str, Any] = {"variable": LINKS_VARIABLE, "raw": raw or "", "links": [], "problems": []}
        if raw:
            parsed, problems, _ = editor.check_links_text(raw)
            view["problems"] = problems
            data = parsed if parsed is not None else _safe_json(raw)
            items = data.get("links") if isinstance(data, dict) else None
            view["links"] = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        return view


def _safe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None


def ui_services(request: Request) -> UiServices:
    """FastAPI dependency: the app's shared services."""
    return request.app.state.ui

