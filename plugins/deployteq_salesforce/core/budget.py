"""The shared Salesforce API budget: a request ledger in PostgreSQL (no Airflow here).

Every Salesforce request of every worker first reserves one row in ``api_ledger`` inside
one short transaction that holds a transaction-level advisory lock per budget key, so
two processes can never both take the last free request.  The rules (R12):

* hourly: at most ``hourly_budget`` ledger rows of this budget key in the last hour;
* daily: once the org's daily allocation (``Sforce-Limit-Info`` max) has been seen, at
  most ``daily_share * max`` rows in the last 24 hours, and the org's last seen
  remaining allocation must be above zero;
* blocked: while Salesforce is expected to block the token (after a 403
  REQUEST_LIMIT_EXCEEDED) nothing is sent at all.

A refused reservation raises ``BudgetExhausted`` with ``resume_at``, the moment the
oldest counted request leaves its window (or the block ends); the request is not sent.
Time is always the database's clock, so every worker agrees on the windows.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg.rows
import requests
import tenacity
import urllib3

from deployteq_salesforce.core.exceptions import (
    BudgetExhausted,
    BudgetLedgerBusy,
    ConfigurationError,
    SalesforceRequestLimitExceeded,
    SalesforceSessionExpired,
)
from deployteq_salesforce.core.salesforce_errors import (
    ApiUsage,
    first_error_message,
    is_invalid_session,
    is_request_limit_exceeded,
    parse_limit_info,
)
from deployteq_salesforce.core.timing import LEDGER, SALESFORCE_HTTP, PhaseTimer

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
# A stale "org allocation used up" observation blocks only this long: after it one
# request may go out again to learn the org's current usage (the window is rolling).
ORG_USAGE_RECHECK = timedelta(hours=1)
# Ledger rows older than this are deleted (once per client): the rules need 24 hours, the
# rest is for "who spent the budget" questions.
LEDGER_RETENTION = timedelta(days=7)

# The ledger's per-key lock is held for milliseconds; waiting longer means a stuck process.
LEDGER_LOCK_TIMEOUT_SECONDS = 15
LEDGER_LOCK_ATTEMPTS = 5  # 75 s in all: longer than LEDGER_IDLE_TIMEOUT_SECONDS, so a frozen holder is gone by then
LEDGER_IDLE_TIMEOUT_SECONDS = 60

DEFAULT_HOURLY_BUDGET = 3600
DEFAULT_DAILY_SHARE = 0.5
DEFAULT_BLOCK_HOURS = 4.0

_MAX_ENDPOINT_LENGTH = 300


@dataclass(frozen=True)
class BudgetSettings:
    """Which budget a client spends from and how large it is."""

    budget_key: str
    hourly_budget: int = DEFAULT_HOURLY_BUDGET
    daily_share: float = DEFAULT_DAILY_SHARE
    block_hours: float = DEFAULT_BLOCK_HOURS

    def __post_init__(self) -> None:
        if not self.budget_key:
            raise ConfigurationError("budget_key must not be empty: name the Salesforce org or connection")
        if not isinstance(self.hourly_budget, int) or isinstance(self.hourly_budget, bool) or self.hourly_budget < 1:
            raise ConfigurationError(
                f"hourly_budget must be a whole number of requests per hour >= 1, got {self.hourly_budget!r}"
            )
        if not (0 < self.daily_share <= 1):
            raise ConfigurationError(
                f"daily_share must be a fraction of the org's daily allocation in (0, 1], got {self.daily_share!r}"
            )
        if not (self.block_hours > 0):
            raise ConfigurationError(f"block_hours must be > 0, got {self.block_hours!r}")

    @property
    def block_duration(self) -> timedelta:
        return timedelta(hours=self.block_hours)

    def daily_limit(self, org_daily_max: int | None) -> int | None:
        """Our own 24-hour allowance, or None while the org's allocation is unknown."""
        if org_daily_max is None:
            return None
        return math.floor(self.daily_share * org_daily_max)


@dataclass(frozen=True)
class BudgetStatus:
    """A snapshot of one budget, for logs, the UI and deferring tasks."""

    budget_key: str
    hourly_used: int
    hourly_limit: int
    daily_used: int
    daily_limit: int | None  # daily_share * org max; None until a max was seen
    blocked_since: datetime | None
    blocked_until: datetime | None  # only set while the block is still active
    block_message: str | None
    org_daily_used: int | None  # last seen Sforce-Limit-Info
    org_daily_max: int | None
    org_observed_at: datetime | None
    checked_at: datetime

    @property
    def hourly_remaining(self) -> int:
        return max(0, self.hourly_limit - self.hourly_used)

    @property
    def blocked(self) -> bool:
        return self.blocked_until is not None

    def refused_by(self) -> str | None:
        """Which rule refuses the next request right now (``blocked``, ``hourly``, ``daily``, ``org``), or None."""
        if self.blocked:
            return "blocked"
        if self.hourly_used >= self.hourly_limit:
            return "hourly"
        if self.daily_limit is not None and self.daily_used >= self.daily_limit:
            return "daily"
        if (
            self.org_daily_max is not None
            and self.org_daily_used is not None
            and self.org_daily_used >= self.org_daily_max
            and self.org_observed_at is not None
            and self.org_observed_at + ORG_USAGE_RECHECK > self.checked_at
        ):
            # a stale observation blocks only ORG_USAGE_RECHECK long: then one request may learn the current usage
            return "org"
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (datetimes as ISO strings) for XCom and the UI."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}


def advisory_lock_key(budget_key: str) -> int:
    """A stable signed 64-bit advisory lock id for one budget key (same in every process)."""
    digest = hashlib.blake2b(f"deployteq_salesforce.api_budget:{budget_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def endpoint_of(url: str) -> str:
    """The part of a request URL worth keeping in the ledger: path after the API version, no query."""
    path = urlsplit(url).path
    marker = "/services/data/"
    if path.startswith(marker):
        rest = path[len(marker) :]
        # drop "vNN.N/"
        _, _, rest = rest.partition("/")
        path = rest
    return path[:_MAX_ENDPOINT_LENGTH]


class ApiBudget:
    """Ledger bookkeeping for one budget key.

    ``connect`` returns an open psycopg connection whose ``search_path`` reaches the
    ledger tables; it is opened lazily, kept for the life of this object (one Salesforce
    request costs two short transactions, not two new connections) and reopened after a
    broken connection.  Methods are thread-safe.
    """

    def __init__(self, settings: BudgetSettings, connect: Callable[[], psycopg.Connection]) -> None:
        self.settings = settings
        self._connect = connect
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self._lock_id = advisory_lock_key(settings.budget_key)
        self._pruned = False

    # -- connection ------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.commit()  # e.g. a SET search_path the opener ran; session-level, so it stays
            conn.autocommit = True  # every unit of work below is an explicit transaction
            # A worker frozen inside a ledger transaction (SIGSTOP, a hung VM) would hold the budget
            # key's lock for good; PostgreSQL ends such a session and so releases the lock.
            conn.execute(f"SET idle_in_transaction_session_timeout = '{LEDGER_IDLE_TIMEOUT_SECONDS}s'")
            self._conn = conn
        return self._conn

    def _run(self, work: Callable[[psycopg.Connection], Any]) -> Any:
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    return work(conn)
            except psycopg.errors.LockNotAvailable:
                raise  # the connection is fine (the transaction rolled back); reserve() decides
            except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout):
                # The server restarted, the connection went stale, or PostgreSQL ended this session after
                # it sat inside a transaction too long (a frozen process): one fresh try.
                self._discard()
                conn = self._connection()
                with conn.transaction():
                    return work(conn)

    def _discard(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                pass
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._discard()

    # -- the rules -------------------------------------------------------------------
    def reserve(self, *, method: str, endpoint: str, flow: str | None) -> int:
        """Take one request from the budget (a ledger row) or raise ``BudgetExhausted``.

        The budget key's lock is waited for at most ``LEDGER_LOCK_TIMEOUT_SECONDS`` at a time; after
        ``LEDGER_LOCK_ATTEMPTS`` such waits ``BudgetLedgerBusy`` names the key and the process holding it.
        """
        for attempt in range(1, LEDGER_LOCK_ATTEMPTS + 1):
            try:
                return self._run(lambda conn: self._reserve(conn, method=method, endpoint=endpoint, flow=flow))
            except psycopg.errors.LockNotAvailable:
                holder = self._lock_holder()
                if attempt == LEDGER_LOCK_ATTEMPTS:
                    raise BudgetLedgerBusy(
                        f"the API ledger of budget '{self.settings.budget_key}' stayed locked for "
                        f"{LEDGER_LOCK_ATTEMPTS * LEDGER_LOCK_TIMEOUT_SECONDS} s by {holder}; the request was not sent. "
                        "PostgreSQL ends a session idle inside a transaction after "
                        f"{LEDGER_IDLE_TIMEOUT_SECONDS} s; if the lock stays, end that session "
                        "(SELECT pg_terminate_backend(<pid>)) and retry the task"
                    ) from None
                log.warning(
                    "The API ledger of budget '%s' is locked by %s for more than %s s; waiting again (%s of %s)",
                    self.settings.budget_key, holder, LEDGER_LOCK_TIMEOUT_SECONDS, attempt, LEDGER_LOCK_ATTEMPTS,
                )
        raise AssertionError("unreachable")

    def _lock_holder(self) -> str:
        """Who holds this budget key's advisory lock, for the message (best effort)."""
        high, low = (self._lock_id >> 32) & 0xFFFFFFFF, self._lock_id & 0xFFFFFFFF
        try:
            row = self._run(lambda conn: conn.execute(
                "SELECT a.pid, a.state, a.application_name, a.client_addr::text, a.xact_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s "
                "AND l.objsubid = 1",
                (high, low),
            ).fetchone())
        except psycopg.Error:
            row = None
        if row is None:
            return "another process (it has let go by now)"
        pid, state, app, client, since = row
        return f"PostgreSQL session pid {pid} ({state or 'unknown state'}, {app or 'no application name'}, " \
               f"client {client or 'local'}, transaction since {_fmt(since)})"

    def _reserve(self, conn: psycopg.Connection, *, method: str, endpoint: str, flow: str | None) -> int:
        key = self.settings.budget_key
        conn.execute(f"SET LOCAL lock_timeout = '{LEDGER_LOCK_TIMEOUT_SECONDS}s'")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
        now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        status = self._snapshot(conn, now)
        refusal = status.refused_by()
        if refusal == "blocked":
            raise SalesforceRequestLimitExceeded(
                f"Salesforce blocked API requests of {key} (REQUEST_LIMIT_EXCEEDED) since "
                f"{_fmt(status.blocked_since)}; expected to be lifted at {_fmt(status.blocked_until)}. "
                "The request was not sent; nothing is lost, runs resume automatically after that.",
                since=_utc(status.blocked_since or now),
                resume_at=_utc(status.blocked_until),
            )
        if refusal == "hourly":
            resume_at = self._window_exit(conn, now, HOUR, status.hourly_used - status.hourly_limit)
            raise BudgetExhausted(
                f"hourly Salesforce API budget of {key} used up ({status.hourly_used}/{status.hourly_limit} requests "
                f"in the last hour); the request was not sent; budget frees up at {_fmt(resume_at)}",
                resume_at=_utc(resume_at),
                reason="hourly",
            )
        if refusal == "daily":
            resume_at = self._window_exit(conn, now, DAY, status.daily_used - status.daily_limit)
            raise BudgetExhausted(
                f"daily Salesforce API share of {key} used up ({status.daily_used}/{status.daily_limit} requests in "
                f"the last 24 hours = {self.settings.daily_share:g} of the org's {status.org_daily_max}); the request "
                f"was not sent; budget frees up at {_fmt(resume_at)}",
                resume_at=_utc(resume_at),
                reason="daily",
            )
        if refusal == "org":
            resume_at = status.org_observed_at + ORG_USAGE_RECHECK
            raise BudgetExhausted(
                f"the Salesforce org's daily API allocation is used up (last seen {status.org_daily_used}/"
                f"{status.org_daily_max} at {_fmt(status.org_observed_at)}, by all its integrations); the request "
                f"was not sent; checking again at {_fmt(resume_at)}",
                resume_at=_utc(resume_at),
                reason="daily",
            )

        if not self._pruned:
            conn.execute(
                "DELETE FROM api_ledger WHERE budget_key = %s AND requested_at < %s",
                (key, now - LEDGER_RETENTION),
            )
            self._pruned = True
        return conn.execute(
            """
            INSERT INTO api_ledger (budget_key, requested_at, flow, method, endpoint)
            VALUES (%s, %s, %s, %s, %s)
            RETURNING api_request_id
            """,
            (key, now, flow, method.upper(), endpoint[:_MAX_ENDPOINT_LENGTH]),
        ).fetchone()[0]

    def _window_exit(self, conn: psycopg.Connection, now: datetime, window: timedelta, excess: int) -> datetime:
        """When enough counted requests have left ``window`` for one more to fit."""
        row = conn.execute(
            """
            SELECT requested_at FROM api_ledger
             WHERE budget_key = %s AND requested_at > %s
             ORDER BY requested_at, api_request_id
             OFFSET %s LIMIT 1
            """,
            (self.settings.budget_key, now - window, max(0, excess)),
        ).fetchone()
        return (row[0] if row else now) + window

    def _state_row(self, conn: psycopg.Connection) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            """
            SELECT blocked_since, blocked_until, block_message, daily_used, daily_max, observed_at
              FROM api_budget_state WHERE budget_key = %s
            """,
            (self.settings.budget_key,),
        ).fetchone()

    # -- after the answer --------------------------------------------------------------
    def record_response(self, request_id: int, status_code: int | None, usage: ApiUsage | None = None) -> None:
        """Store the answer's status and, when the answer told it, the org's daily usage."""

        def work(conn: psycopg.Connection) -> None:
            if status_code is not None:
                conn.execute(
                    "UPDATE api_ledger SET status_code = %s WHERE api_request_id = %s", (status_code, request_id)
                )
            if usage is not None:
                conn.execute(
                    """
                    INSERT INTO api_budget_state (budget_key, daily_used, daily_max, observed_at)
                    VALUES (%s, %s, %s, clock_timestamp())
                    ON CONFLICT (budget_key) DO UPDATE
                       SET daily_used = EXCLUDED.daily_used, daily_max = EXCLUDED.daily_max,
                           observed_at = EXCLUDED.observed_at
                    """,
                    (self.settings.budget_key, usage.used, usage.max),
                )

        self._run(work)

    def record_block(self, message: str) -> tuple[datetime, datetime]:
        """Salesforce answered REQUEST_LIMIT_EXCEEDED: block this budget from now for ``block_hours``.

        Returns ``(since, until)``.  A block already in force keeps its start.
        """

        def work(conn: psycopg.Connection) -> tuple[datetime, datetime]:
            row = conn.execute(
                """
                INSERT INTO api_budget_state (budget_key, blocked_since, blocked_until, block_message)
                SELECT %(key)s, now_.t, now_.t + %(duration)s, %(message)s
                  FROM (SELECT clock_timestamp() AS t) AS now_  -- one instant: until - since = block_hours exactly
                ON CONFLICT (budget_key) DO UPDATE
                   SET blocked_since = CASE
                           WHEN api_budget_state.blocked_until > clock_timestamp()
                           THEN api_budget_state.blocked_since ELSE EXCLUDED.blocked_since END,
                       blocked_until = GREATEST(EXCLUDED.blocked_until, api_budget_state.blocked_until),
                       block_message = EXCLUDED.block_message
                RETURNING blocked_since, blocked_until
                """,
                {"key": self.settings.budget_key, "duration": self.settings.block_duration, "message": message},
            ).fetchone()
            return _utc(row[0]), _utc(row[1])

        return self._run(work)

    def status(self) -> BudgetStatus:
        def work(conn: psycopg.Connection) -> BudgetStatus:
            return self._snapshot(conn, conn.execute("SELECT clock_timestamp()").fetchone()[0])

        return self._run(work)

    def _snapshot(self, conn: psycopg.Connection, now: datetime) -> BudgetStatus:
        """Use of this budget at ``now`` (the database's clock), as the rules see it."""
        hourly_used, daily_used = conn.execute(
            """
            SELECT count(*) FILTER (WHERE requested_at > %(now)s - %(hour)s), count(*)
              FROM api_ledger WHERE budget_key = %(key)s AND requested_at > %(now)s - %(day)s
            """,
            {"key": self.settings.budget_key, "now": now, "hour": HOUR, "day": DAY},
        ).fetchone()
        state = self._state_row(conn) or {}
        blocked_until = state.get("blocked_until")
        active_block = blocked_until is not None and blocked_until > now
        return BudgetStatus(
            budget_key=self.settings.budget_key,
            hourly_used=hourly_used,
            hourly_limit=self.settings.hourly_budget,
            daily_used=daily_used,
            daily_limit=self.settings.daily_limit(state.get("daily_max")),
            blocked_since=state.get("blocked_since") if active_block else None,
            blocked_until=blocked_until if active_block else None,
            block_message=state.get("block_message") if active_block else None,
            org_daily_used=state.get("daily_used"),
            org_daily_max=state.get("daily_max"),
            org_observed_at=state.get("observed_at"),
            checked_at=now,
        )


def _fmt(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------
# The budgeted HTTP session: simple-salesforce sends every REST and Bulk 2.0 call through
# ``session.request``, so this is the one place where requests are counted and guarded.
# ---------------------------------------------------------------------------------------

# Connection-level failures worth another try (the request may never have arrived).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ReadTimeout,
)
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_COLLECTION_RETRIEVE = re.compile(r"/composite/sobjects/[^/]+$")
# Logins do not count against the API allocation and carry credentials: they bypass the
# ledger and are never logged.
_LOGIN_PATHS = ("/services/oauth2/token", "/services/Soap/u/", "/services/oauth2/authorize")


@dataclass(frozen=True)
class RetryPolicy:
    """Few attempts, short waits: a sync that keeps failing should fail and be retried by Airflow."""

    attempts: int = 4  # total tries of one request, the first included
    wait_initial: float = 0.5  # seconds before the first retry, doubled each time
    wait_max: float = 8.0
    jitter: float = 0.5  # up to this many seconds added at random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"retry attempts must be >= 1, got {self.attempts!r}")
        if self.wait_initial < 0 or self.wait_max < 0 or self.jitter < 0:
            raise ConfigurationError("retry waits must not be negative")


def is_login_url(url: str) -> bool:
    path = urlsplit(url).path
    return any(path.startswith(prefix) for prefix in _LOGIN_PATHS)


def _is_transient(exc: BaseException) -> bool:
    # A certificate problem is a ConnectionError too, but another try cannot fix it.
    return isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, requests.exceptions.SSLError)


def _surely_not_delivered(exc: BaseException) -> bool:
    """The connection was never made, so the server cannot have acted on the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def creates_records(method: str, url: str) -> bool:
    """A POST that creates records (REST create, composite create, Bulk 1.0 batches).

    Repeating one after a lost answer could create everything twice, so such a request is
    only retried when it surely never arrived (no connection, or 503 Service Unavailable).
    POSTs that create no records are harmless to repeat: Bulk API 2.0 query jobs, creating an
    ingest job (a job whose answer was lost stays empty and expires unused), and sObject
    Collections retrieve (``POST composite/sobjects/{object}`` with ids and fields).
    """
    if method.upper() != "POST":
        return False
    path = urlsplit(url).path.rstrip("/")
    return not ("/jobs/query" in path or path.endswith("/jobs/ingest") or _COLLECTION_RETRIEVE.search(path))


def _retry_wanted(method: str, url: str) -> tenacity.retry_base:
    if creates_records(method, url):
        return tenacity.retry_if_exception(
            lambda exc: _is_transient(exc) and _surely_not_delivered(exc)
        ) | tenacity.retry_if_result(lambda r: r.status_code == 503)
    return tenacity.retry_if_exception(_is_transient) | tenacity.retry_if_result(
        lambda r: r.status_code in RETRY_STATUSES
    )


class BudgetedSession(requests.Session):
    """A ``requests.Session`` that spends from an ``ApiBudget`` for every Salesforce request.

    * before sending: ``budget.reserve`` (raises ``BudgetExhausted``: nothing is sent);
    * after the answer: status and ``Sforce-Limit-Info`` go to the ledger / budget state;
    * 403 REQUEST_LIMIT_EXCEEDED: the block is recorded, one clear line is logged and
      ``SalesforceRequestLimitExceeded`` raised; later requests are refused by the budget;
    * 5xx and connection errors: retried with exponential backoff and jitter, each try a
      new budgeted request; 4xx are never retried; a record-creating POST only when it
      surely never arrived (see ``creates_records``);
    * 401 INVALID_SESSION_ID: ``renew_session()`` (set by the hook where the auth mode
      can log in again) gets a new token and the request is sent once more; without it
      ``SalesforceSessionExpired`` carries ``expired_session_hint``.
    """

    def __init__(
        self,
        budget: ApiBudget,
        *,
        flow: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = (30.0, 300.0),
        logger: logging.Logger | None = None,
        phases: PhaseTimer | None = None,
    ) -> None:
        super().__init__()
        self.budget = budget
        self.phases = phases or PhaseTimer()  # time inside requests vs. in the ledger, for the run log
        self.flow = flow
        self.retry_policy = retry or RetryPolicy()
        self.default_timeout = timeout
        self.log = logger or log
        self.requests_sent = 0
        # Salesforce's clock, from the Date header of the latest answer: sync windows are bounded
        # by the server's "now", never by a local clock that may run ahead or behind.
        self.server_time: datetime | None = None
        self.renew_session: Callable[[], str] | None = None
        self.expired_session_hint = (
            "the Salesforce session expired or is invalid; renew the credentials in the connection"
        )
        # Tokens are kept in memory only, to swap a stale one in headers built before a renewal.
        self._current_token: str | None = None
        self._stale_tokens: set[str] = set()
        self._sleep: Callable[[float], None] = time.sleep

    def set_current_token(self, token: str | None) -> None:
        self._current_token = token

    # -- requests.Session API ------------------------------------------------------------
    def request(self, method, url, *args, **kwargs):  # noqa: ANN001, ANN201 - requests' own signature
        if is_login_url(str(url)):
            return super().request(method, url, *args, **kwargs)
        if args:  # requests allows params, data, headers... positionally; keep them as keywords
            names = ("params", "data", "headers", "cookies", "files", "auth", "timeout", "allow_redirects")
            kwargs.update(zip(names, args))
        if kwargs.get("timeout") is None and self.default_timeout is not None:
            kwargs["timeout"] = self.default_timeout
        if kwargs.get("verify") is None and self.verify is not True:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify; an
            # explicit CA file (extra ca_file) must win, so pass it per request.
            kwargs["verify"] = self.verify

        renewed = False
        while True:
            self._swap_stale_token(kwargs)
            response = self._send_with_retries(str(method), str(url), kwargs)
            self._note_server_time(response)
            # Only error answers are read here: a streamed 200 (Bulk 2.0 results) stays streamed.
            if response.status_code == 403 and is_request_limit_exceeded(403, response.content):
                self._raise_blocked(response)
            if response.status_code == 401 and is_invalid_session(401, response.content):
                if self.renew_session is None:
                    raise SalesforceSessionExpired(self.expired_session_hint)
                if renewed:
                    raise SalesforceSessionExpired(
                        "Salesforce rejected the session right after logging in again; check the user's "
                        "permissions and the connected app, then retry"
                    )
                self._renew(kwargs)
                renewed = True
                continue
            return response

    # -- internals ---------------------------------------------------------------------
    def _note_server_time(self, response: requests.Response) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        try:
            self.server_time = email.utils.parsedate_to_datetime(date).astimezone(timezone.utc)
        except (TypeError, ValueError):
            self.log.debug("Ignoring an unreadable Date header from Salesforce: %r", date)

    def _send_with_retries(self, method: str, url: str, kwargs: dict) -> requests.Response:
        policy = self.retry_policy
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            wait=tenacity.wait_exponential_jitter(initial=policy.wait_initial, max=policy.wait_max, jitter=policy.jitter),
            retry=_retry_wanted(method, url),
            # Out of attempts: hand back the last answer (simple-salesforce turns a 5xx into
            # its own error) or re-raise the last connection error as it was.
            retry_error_callback=lambda state: state.outcome.result(),
            before_sleep=lambda state: self._log_retry(method, url, state),
            sleep=self._sleep,
        )
        return retrying(self._send_once, method, url, kwargs)

    def _send_once(self, method: str, url: str, kwargs: dict) -> requests.Response:
        with self.phases.phase(LEDGER):
            request_id = self.budget.reserve(method=method, endpoint=endpoint_of(url), flow=self.flow)
        self.requests_sent += 1
        try:
            with self.phases.phase(SALESFORCE_HTTP):
                response = super().request(method, url, **kwargs)
        except TRANSIENT_ERRORS:
            self.budget.record_response(request_id, None)
            raise
        with self.phases.phase(LEDGER):
            self.budget.record_response(
                request_id, response.status_code, parse_limit_info(response.headers.get("Sforce-Limit-Info"))
            )
        return response

    def _log_retry(self, method: str, url: str, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            why = type(exc).__name__
        else:
            why = f"HTTP {outcome.result().status_code}" if outcome is not None else "unknown"
        wait = state.next_action.sleep if state.next_action else 0.0
        self.log.warning(
            "Salesforce %s %s failed (%s); retry %d of %d in %.1f s (each try counts against the API budget)",
            method.upper(),
            endpoint_of(url),
            why,
            state.attempt_number,
            self.retry_policy.attempts - 1,
            wait,
        )

    def _raise_blocked(self, response: requests.Response) -> None:
        detail = first_error_message(response.content) or "REQUEST_LIMIT_EXCEEDED"
        since, until = self.budget.record_block(detail)
        key = self.budget.settings.budget_key
        resume = until.strftime("%Y-%m-%d %H:%M UTC")
        self.log.error(
            "SALESFORCE API LIMIT REACHED for %s: Salesforce refuses its API requests since %s (%s); the block is "
            "expected to last until about %s. Nothing is lost; runs resume automatically after %s; lower "
            "hourly_budget if this recurs.",
            key,
            since.strftime("%Y-%m-%d %H:%M UTC"),
            detail,
            resume,
            resume,
        )
        raise SalesforceRequestLimitExceeded(
            f"Salesforce refused the request for {key} with {detail} (since {since:%Y-%m-%d %H:%M UTC}); "
            f"nothing is lost, runs resume automatically after {resume}; lower hourly_budget if this recurs",
            since=since,
            resume_at=until,
        )

    def _renew(self, kwargs: dict) -> None:
        used = _bearer_token(kwargs.get("headers"))
        if used:
            self._stale_tokens.add(used)
        # When another thread renewed while this request was under way, its newer token is used.
        if not self._current_token or self._current_token == used:
            self.log.info("Salesforce session expired; logging in again and repeating the request once")
            if self._current_token:
                self._stale_tokens.add(self._current_token)
            self._current_token = self.renew_session()  # type: ignore[misc]
        self._swap_stale_token(kwargs)

    def _swap_stale_token(self, kwargs: dict) -> None:
        headers = kwargs.get("headers")
        if not headers or not self._current_token or not self._stale_tokens:
            return
        headers = dict(headers)
        changed = False
        for name, value in list(headers.items()):
            lowered = name.lower()
            if lowered == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                if value[len("Bearer ") :] in self._stale_tokens:
                    headers[name] = "Bearer " + self._current_token
                    changed = True
            elif lowered == "x-sfdc-session" and value in self._stale_tokens:
                headers[name] = self._current_token
                changed = True
        if changed:
            kwargs["headers"] = headers


def _bearer_token(headers: Any) -> str | None:
    if not headers:
        return None
    for name, value in dict(headers).items():
        if name.lower() == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
        if name.lower() == "x-sfdc-session" and isinstance(value, str):
            return value
    return None
