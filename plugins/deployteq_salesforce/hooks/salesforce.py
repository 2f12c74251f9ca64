"""The one Salesforce client of the provider: the stock SalesforceHook on a budgeted session.

Every request of every flow goes through ``BudgetedSession`` (``deployteq_salesforce.core.budget``),
which spends from a ledger shared by all workers in the Deployteq PostgreSQL database,
so all DAGs together stay under the hourly budget and the org's daily allocation (R12).

Connection (R1): everything the stock hook accepts keeps working (username + password +
security token, ``domain`` = ``test`` for a sandbox, ``instance_url``, OAuth JWT / client
credentials).  In addition a connection without login but with a password and an instance
URL is a *direct session*: the password is the session id (extra ``session_id`` works too).
Extras of this hook: ``ca_file`` (CA bundle for TLS), ``hourly_budget`` (3600),
``daily_share`` (0.5 of the org's daily allocation), ``block_hours`` (4: how long Salesforce
is expected to block the token after REQUEST_LIMIT_EXCEEDED), ``budget_key`` (default: the
instance URL, else login@domain), ``retry_attempts`` (4), ``retry_wait_seconds`` (0.5),
``retry_wait_max_seconds`` (8), ``request_timeout`` (300 s).  The Airflow Variable
``deployteq_salesforce_hourly_budget`` overrides the extra; constructor arguments override both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from deployteq_salesforce.core.budget import (
    DEFAULT_BLOCK_HOURS,
    DEFAULT_DAILY_SHARE,
    DEFAULT_HOURLY_BUDGET,
    ApiBudget,
    BudgetedSession,
    BudgetSettings,
    BudgetStatus,
    RetryPolicy,
)
from deployteq_salesforce.core.datasets import SalesforceOrg
from deployteq_salesforce.core.exceptions import BudgetExhausted, ConfigurationError, SalesforceSessionExpired
from deployteq_salesforce.core.timing import PhaseTimer
from deployteq_salesforce.provider_info import SALESFORCE_CONN_TYPE, SALESFORCE_HOOK_NAME

HOURLY_BUDGET_VARIABLE = "deployteq_salesforce_hourly_budget"
COMPOSITE_CHUNK = 200  # Salesforce's maximum for composite/sobjects
_COMPOSITE_METHODS = ("POST", "PATCH", "DELETE")
_SECRET_EXTRAS = ("security_token", "consumer_secret", "private_key", "session_id", "client_secret")


class BudgetedSalesforceHook(SalesforceHook):
    """``SalesforceHook`` whose every request is counted and guarded by the shared API budget.

    :param salesforce_conn_id: the Salesforce connection.
    :param deployteq_conn_id: the Deployteq PostgreSQL connection that holds the API ledger.
    :param flow: name of the sync flow, stored with every ledger row (who spent the budget).
    :param hourly_budget: requests per hour for this budget key (overrides Variable and extra).
    :param daily_share: fraction of the org's daily allocation this budget may use in 24 h.
    :param block_hours: expected block after REQUEST_LIMIT_EXCEEDED, in hours.
    :param budget_key: which ledger budget to spend from (default: instance URL or login@domain).
    :param retry: retry policy for 5xx answers and connection errors.
    """

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "salesforce_default"
    # Our own type (form fields for the budget extras, Test button through the budgeted client); the
    # hook reads connections of the stock "salesforce" type just as well.
    conn_type = SALESFORCE_CONN_TYPE
    hook_name = SALESFORCE_HOOK_NAME

    def __init__(
        self,
        salesforce_conn_id: str = default_conn_name,
        *,
        deployteq_conn_id: str = "deployteq_default",
        flow: str = "adhoc",
        hourly_budget: int | None = None,
        daily_share: float | None = None,
        block_hours: float | None = None,
        budget_key: str | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("session") is not None:
            raise TypeError(
                "BudgetedSalesforceHook builds its own budgeted requests session; do not pass session="
            )
        kwargs.pop("session", None)
        super().__init__(salesforce_conn_id=salesforce_conn_id, **kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.deployteq_conn_id = deployteq_conn_id
        self.flow = flow
        self._hourly_budget_arg = hourly_budget
        self._daily_share_arg = daily_share
        self._block_hours_arg = block_hours
        self._budget_key_arg = budget_key
        self._retry_arg = retry
        self._auth_mode = "unknown"
        self.phases = PhaseTimer()  # where this hook's run spends its time (requests, ledger, the flow's own phases)

    # -- settings ------------------------------------------------------------------------
    @cached_property
    def _connection(self):  # noqa: ANN202 - an Airflow Connection
        return self.get_connection(self.conn_id)

    @cached_property
    def _extras(self) -> dict[str, Any]:
        return dict(self._connection.extra_dejson or {})

    def _extra(self, name: str) -> Any:
        value = self._get_field(self._extras, name)
        return None if value in (None, "") else value

    @cached_property
    def budget_settings(self) -> BudgetSettings:
        hourly = self._hourly_budget_arg
        if hourly is None:
            hourly = self._hourly_budget_from_variable()
        if hourly is None:
            hourly = self._extra("hourly_budget")
        daily_share = self._daily_share_arg if self._daily_share_arg is not None else self._extra("daily_share")
        block_hours = self._block_hours_arg if self._block_hours_arg is not None else self._extra("block_hours")
        return BudgetSettings(
            budget_key=self._budget_key_arg or self._extra("budget_key") or self._default_budget_key(),
            hourly_budget=_as_int(hourly, self._where("hourly_budget")) if hourly is not None else DEFAULT_HOURLY_BUDGET,
            daily_share=_as_float(daily_share, self._where("daily_share"))
            if daily_share is not None
            else DEFAULT_DAILY_SHARE,
            block_hours=_as_float(block_hours, self._where("block_hours"))
            if block_hours is not None
            else DEFAULT_BLOCK_HOURS,
        )

    def _where(self, extra: str) -> str:
        return f"extra '{extra}' of Salesforce connection '{self.conn_id}'"

    def _hourly_budget_from_variable(self) -> int | None:
        """The Airflow Variable, read at runtime only; no metadata DB or API means "not set"."""
        try:
            from airflow.sdk import Variable

            value = Variable.get(HOURLY_BUDGET_VARIABLE, default=None)
        except Exception as exc:  # noqa: BLE001 - any failure to reach Variables means: not set
            self.log.debug("Variable %s not readable here (%s); using the connection", HOURLY_BUDGET_VARIABLE, exc)
            return None
        if value in (None, ""):
            return None
        return _as_int(value, f"Airflow Variable '{HOURLY_BUDGET_VARIABLE}'")

    def _default_budget_key(self) -> str:
        instance_url = self._extra("instance_url")
        if instance_url:
            parts = urlsplit(str(instance_url).strip())
            return f"{parts.scheme or 'https'}://{(parts.netloc or parts.path).lower().rstrip('/')}"
        instance = self._extra("instance")
        if instance:
            return f"https://{str(instance).strip().lower().rstrip('/')}"
        login = self._connection.login
        if login:
            return f"{login}@{self._extra('domain') or 'login'}"
        return f"connection:{self.conn_id}"

    @cached_property
    def _retry_policy(self) -> RetryPolicy:
        if self._retry_arg is not None:
            return self._retry_arg
        defaults = RetryPolicy()
        attempts = self._extra("retry_attempts")
        wait = self._extra("retry_wait_seconds")
        wait_max = self._extra("retry_wait_max_seconds")
        return RetryPolicy(
            attempts=_as_int(attempts, self._where("retry_attempts")) if attempts is not None else defaults.attempts,
            wait_initial=_as_float(wait, self._where("retry_wait_seconds")) if wait is not None else defaults.wait_initial,
            wait_max=_as_float(wait_max, self._where("retry_wait_max_seconds"))
            if wait_max is not None
            else defaults.wait_max,
        )

    # -- the budget and the session -----------------------------------------------------------
    @cached_property
    def budget(self) -> ApiBudget:
        """The shared ledger this hook spends from; it lives in the Deployteq database (``deployteq_conn_id``)."""
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        return DeployteqHook(self.deployteq_conn_id).api_budget(self.budget_settings)

    @cached_property
    def budgeted_session(self) -> BudgetedSession:
        timeout = self._extra("request_timeout")
        session = BudgetedSession(
            self.budget,
            flow=self.flow,
            retry=self._retry_policy,
            timeout=(30.0, _as_float(timeout, self._where("request_timeout"))) if timeout is not None else (30.0, 300.0),
            phases=self.phases,
        )
        ca_file = self._extra("ca_file")
        if ca_file:
            session.verify = str(ca_file)
        return session

    @property
    def requests_sent(self) -> int:
        """Salesforce requests this hook instance actually sent (retries included), for the run log."""
        session = self.__dict__.get("budgeted_session")
        return session.requests_sent if session is not None else 0

    @property
    def server_time(self) -> datetime | None:
        """Salesforce's clock as of the latest answer (its Date header), None before the first request."""
        session = self.__dict__.get("budgeted_session")
        return session.server_time if session is not None else None

    @cached_property
    def conn(self) -> Salesforce:
        """The simple-salesforce client on the budgeted session (cached)."""
        connection = self._connection
        extras = self._extras
        session = self.budgeted_session
        self.session = session
        if self.session_id is None:
            direct_session_id = self._get_field(extras, "session_id")
            has_instance = bool(self._extra("instance_url") or self._extra("instance"))
            if not direct_session_id and not connection.login and connection.password and has_instance:
                direct_session_id = connection.password
            if direct_session_id:
                self.session_id = direct_session_id
        # The stock hook's own construction: every stock auth mode keeps working as it does there.
        sf = SalesforceHook.conn.func(self)  # type: ignore[attr-defined]
        self._auth_mode = sf.auth_type
        session.set_current_token(sf.session_id)
        if sf._salesforce_login_partial is not None:  # password / OAuth / JWT: can log in again

            def renew() -> str:
                sf._refresh_session()
                return sf.session_id

            session.renew_session = renew
        else:
            session.expired_session_hint = (
                f"the session id in Salesforce connection '{self.conn_id}' expired or is invalid "
                "(Salesforce answered INVALID_SESSION_ID); paste a new session id into the connection's "
                "password field, or use username/password (+ security token) so sessions renew themselves"
            )
        return sf

    def get_conn(self) -> Salesforce:
        return self.conn

    def org(self) -> SalesforceOrg | None:
        """The instance this hook talks to, for Asset URIs and lineage, without a request: the logged-in
        client's instance, else the connection's ``instance_url``/``instance``; None when neither is known."""
        sf = self.__dict__.get("conn")
        instance = sf.sf_instance if sf is not None else (self._extra("instance_url") or self._extra("instance"))
        return SalesforceOrg.of(str(instance)) if instance else None

    def close(self) -> None:
        """Close the ledger connection and the HTTP session (the hook can be used again afterwards)."""
        budget = self.__dict__.get("budget")
        if budget is not None:
            budget.close()
        session = self.__dict__.get("budgeted_session")
        if session is not None:
            session.close()

    # -- API ----------------------------------------------------------------------------
    def query_pages(
        self, soql: str, *, include_deleted: bool = False, batch_size: int = 2000
    ) -> Iterator[list[dict]]:
        """Run a SOQL query and yield its records page by page (no ``attributes``), lazily.

        Each page is one request; the next page is only fetched when the caller asks for it.
        """
        if not isinstance(batch_size, int) or not 200 <= batch_size <= 2000:
            raise ValueError(f"batch_size must be a whole number from 200 to 2000 (Salesforce's range), got {batch_size!r}")
        sf = self.get_conn()
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}
        result = sf.query(soql, include_deleted=include_deleted, headers=headers)
        while True:
            records = [_plain(record) for record in result.get("records", [])]
            if records:
                yield records
            next_url = result.get("nextRecordsUrl")
            if result.get("done", True) or not next_url:
                return
            result = sf.query_more(next_url, identifier_is_url=True, headers=headers)

    def composite(
        self,
        method: Literal["POST", "PATCH", "DELETE"],
        sobject: str,
        records: Iterable[Mapping[str, Any] | str],
        *,
        all_or_none: bool = False,
        external_id_field: str | None = None,
    ) -> list[dict]:
        """Create (POST), update (PATCH; upsert with ``external_id_field``) or delete records.

        Sent as ``composite/sobjects`` in chunks of 200; returns one result per input record,
        in input order: ``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}``
        (+ ``created`` for upserts).  If the budget runs out part-way, the ``BudgetExhausted``
        propagates with ``completed_results`` holding the results of the chunks already sent.
        For DELETE, records may be ids or dicts with ``Id``.
        """
        method = method.upper()  # type: ignore[assignment]
        if method not in _COMPOSITE_METHODS:
            raise ValueError(f"composite method must be one of {', '.join(_COMPOSITE_METHODS)}, got {method!r}")
        if external_id_field and method != "PATCH":
            raise ValueError("external_id_field (upsert) only works with method PATCH")
        records = list(records)
        _check_composite_records(method, sobject, records, external_id_field)
        sf = self.get_conn()
        results: list[dict] = []
        try:
            for start in range(0, len(records), COMPOSITE_CHUNK):
                chunk = records[start : start + COMPOSITE_CHUNK]
                results.extend(self._composite_chunk(sf, method, sobject, chunk, all_or_none, external_id_field))
        except BudgetExhausted as exc:
            exc.completed_results = results  # type: ignore[attr-defined]
            raise
        return results

    def _composite_chunk(
        self,
        sf: Salesforce,
        method: str,
        sobject: str,
        chunk: list,
        all_or_none: bool,
        external_id_field: str | None,
    ) -> list[dict]:
        if method == "DELETE":
            ids = [record if isinstance(record, str) else record["Id"] for record in chunk]
            answer = sf.restful(
                "composite/sobjects",
                params={"ids": ",".join(ids), "allOrNone": str(all_or_none).lower()},
                method="DELETE",
            )
        else:
            path = f"composite/sobjects/{sobject}/{external_id_field}" if external_id_field else "composite/sobjects"
            body = {
                "allOrNone": all_or_none,
                "records": [{"attributes": {"type": sobject}, **dict(record)} for record in chunk],
            }
            answer = sf.restful(path, method=method, data=json.dumps(body, default=str))
        answer = [_plain(item) for item in (answer or [])]
        if len(answer) != len(chunk):
            raise RuntimeError(
                f"Salesforce answered {len(answer)} results for {len(chunk)} {sobject} records "
                f"({method} composite/sobjects); cannot match results to records"
            )
        return answer

    def limits(self) -> dict:
        """The org's limits (``limits/``): one request."""
        return _plain(self.get_conn().limits())

    def budget_status(self) -> BudgetStatus:
        """Hourly/daily use of this budget, block state and the org's last seen daily usage (no request)."""
        return self.budget.status()

    def test_connection(self) -> tuple[bool, str]:
        """Plain answer for the Airflow UI: OK with instance and user, or why not (never secrets)."""
        try:
            self.budget_settings  # noqa: B018 - reads the connection and checks its extras
        except Exception as exc:  # noqa: BLE001 - the UI wants a message, not a traceback
            return False, self._scrub(f"{type(exc).__name__}: {exc}")
        try:
            self.budget  # noqa: B018 - the request below is counted in this ledger, so it must work first
        except Exception as exc:  # noqa: BLE001
            return False, self._scrub(
                f"Salesforce not tested: its API budget is kept in Deployteq connection '{self.deployteq_conn_id}', "
                f"which cannot be used ({type(exc).__name__}: {exc}); create or fix that connection first"
            )
        try:
            sf = self.get_conn()
            limits = sf.limits()
        except BudgetExhausted as exc:
            return False, f"Credentials not checked: {exc}"
        except SalesforceSessionExpired as exc:
            return False, str(exc)
        except SalesforceAuthenticationFailed as exc:
            return False, self._scrub(f"Salesforce login failed: {exc.code}: {exc.message}")
        except SalesforceError as exc:
            return False, self._scrub(f"Salesforce answered HTTP {exc.status}: {exc.content!r}")
        except requests.exceptions.SSLError:
            return False, (
                f"TLS certificate of the Salesforce instance not trusted; set extra 'ca_file' of connection "
                f"'{self.conn_id}' to the CA bundle"
            )
        except requests.exceptions.RequestException as exc:
            return False, self._scrub(f"Salesforce not reachable: {type(exc).__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - the UI wants a message, not a traceback
            return False, self._scrub(f"{type(exc).__name__}: {exc}")
        daily = limits.get("DailyApiRequests") or {}
        who = (
            f"user {self._connection.login}"
            if self._connection.login
            else "client credentials"
            if self._auth_mode == "client-credentials"
            else "session id"
        )
        usage = ""
        if "Max" in daily and "Remaining" in daily:
            usage = f"; org daily API usage {daily['Max'] - daily['Remaining']}/{daily['Max']}"
        status = self.budget.status()
        return True, (
            f"Connection OK: https://{sf.sf_instance} ({self._auth_mode} login, {who}){usage}; "
            f"budget '{status.budget_key}': {status.hourly_used}/{status.hourly_limit} requests this hour"
        )

    def _scrub(self, text: str) -> str:
        """Remove every credential of the connection from ``text``."""
        secrets: list[Any] = [self.session_id]
        if "_extras" in self.__dict__:  # else the connection could not be read: it put nothing in the text
            secrets += [self._connection.password]
            secrets += [self._get_field(self._extras, name) for name in _SECRET_EXTRAS]
        sf = self.__dict__.get("conn")
        if sf is not None:
            secrets.append(getattr(sf, "session_id", None))
        for secret in secrets:
            if secret and isinstance(secret, str) and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _check_composite_records(method: str, sobject: str, records: list, external_id_field: str | None) -> None:
    for index, record in enumerate(records):
        if method == "DELETE":
            if isinstance(record, str):
                if record:
                    continue
            elif isinstance(record, Mapping) and record.get("Id"):
                continue
            raise ValueError(f"{sobject} record #{index} to delete has no Id; pass ids or dicts with 'Id'")
        if not isinstance(record, Mapping):
            raise ValueError(f"{sobject} record #{index} must be a dict of field values, got {type(record).__name__}")
        if method == "PATCH" and external_id_field:
            if record.get(external_id_field) in (None, ""):
                raise ValueError(
                    f"{sobject} record #{index} has no value for the external id field {external_id_field!r} "
                    "used for the upsert"
                )
        elif method == "PATCH" and not record.get("Id"):
            raise ValueError(f"{sobject} record #{index} to update has no 'Id'")


def _plain(value: Any) -> Any:
    """Plain dicts and lists (simple-salesforce answers OrderedDicts), without ``attributes``."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if k != "attributes"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _as_int(value: Any, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ConfigurationError(f"{where} must be a whole number, got {value!r}")
    return int(number)


def _as_float(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number, got {value!r}") from None
