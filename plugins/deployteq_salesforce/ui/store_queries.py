"""Every SQL statement of the Salesforce pages against the Deployteq store (reads, plus the retry marks).

Every function takes an open psycopg connection whose ``search_path`` is our schema (as
``DeployteqHook.connect()`` gives).  Tables come from several flows and migrations; a table that is
not there yet is reported as missing (the page says "not configured yet"), never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

SYNCHRONIZE_EXITS = ("on_success", "on_error", "on_limit", "pending")

# What the errors page groups and filters by: a leading Salesforce status code ("DUPLICATE_VALUE: ...")
# is the reason; otherwise the message with the record's own values (quoted text, ids, numbers) blanked,
# so that "email 'a@x' is not an e-mail address" of many records is one reason.  A leading requirement
# number ("R15: ...") is not the user's word and is dropped.
_RECORD_VALUES = r"""'[^']*'|"[^"]*"|\m\w*[0-9]\w*\M""".replace("'", "''")


def reason_kind_sql(column: str = "e.reason") -> str:
    """SQL: the reason of an error as the errors page groups it."""
    plain = f"regexp_replace({column}, '^R[0-9]+: ', '')"
    return (
        f"CASE WHEN {plain} ~ '^[A-Z][A-Z0-9_]+:' THEN split_part({plain}, ':', 1) "
        f"ELSE left(regexp_replace({plain}, '{_RECORD_VALUES}', '…', 'g'), 160) END"
    )


def existing_tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}


def _dicts(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def database_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


# ---------------------------------------------------------------------------------------- budget


def ledger_per_hour(conn: psycopg.Connection, *, hours: int = 24) -> list[tuple[datetime, str | None, int]]:
    """Requests per (clock hour, flow) in the last ``hours`` hours."""
    return [
        (hour, flow, count)
        for hour, flow, count in conn.execute(
            "SELECT date_trunc('hour', requested_at), flow, count(*) FROM api_ledger "
            "WHERE requested_at >= date_trunc('hour', now()) - make_interval(hours => %s) "
            "GROUP BY 1, 2 ORDER BY 1",
            (hours - 1,),
        ).fetchall()
    ]


def ledger_totals(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE requested_at > now() - interval '1 hour'), "
        "count(*) FILTER (WHERE requested_at > now() - interval '24 hours') FROM api_ledger"
    ).fetchone()
    return {"last_hour": row[0], "last_24h": row[1]}


def budget_states(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return _dicts(conn, "SELECT *, (blocked_until > now()) AS blocked_now FROM api_budget_state ORDER BY budget_key")


# -------------------------------------------------------------------------------------- run log


def flows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every flow with its latest run and totals."""
    return _dicts(
        conn,
        "SELECT DISTINCT ON (flow) flow, dag_id, run_id, started_at, finished_at, outcome, message, "
        " count(*) OVER (PARTITION BY flow) AS runs "
        "FROM run_log ORDER BY flow, started_at DESC, run_log_id DESC",
    )


def runs(
    conn: psycopg.Connection, *, flow: str | None = None, dag_id: str | None = None, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT * FROM run_log WHERE (%(flow)s::text IS NULL OR flow = %(flow)s) "
        "AND (%(dag_id)s::text IS NULL OR dag_id = %(dag_id)s) "
        "ORDER BY started_at DESC, run_log_id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {"flow": flow, "dag_id": dag_id, "limit": int(limit), "offset": int(offset)},
    )


def run_count(conn: psycopg.Connection, *, flow: str | None = None) -> int:
    return conn.execute(
        "SELECT count(*) FROM run_log WHERE %(flow)s::text IS NULL OR flow = %(flow)s", {"flow": flow}
    ).fetchone()[0]


def flows_of_dag(conn: psycopg.Connection, dag_id: str) -> list[str]:
    return [row[0] for row in conn.execute("SELECT DISTINCT flow FROM run_log WHERE dag_id = %s ORDER BY 1", (dag_id,))]


def dags_of_flows(conn: psycopg.Connection, flow_names: Sequence[str]) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT dag_id FROM run_log WHERE flow = ANY(%s) AND dag_id IS NOT NULL ORDER BY 1", (list(flow_names),)
        )
    ]


# ------------------------------------------------------------------------------------ errors


@dataclass(frozen=True)
class ErrorFilter:
    """What the errors page shows: a flow, a reason (see ``reason_kind_sql``), a record id or e-mail address."""

    flow: str | None = None
    reason: str | None = None
    search: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause over open errors ``e`` and its parameters."""
        clauses = ["e.resolved_at IS NULL"]
        params: dict[str, Any] = {}
        if self.flow:
            clauses.append("e.flow = %(flow)s")
            params["flow"] = self.flow
        if self.reason:
            clauses.append(f"{reason_kind_sql()} = %(reason)s")
            params["reason"] = self.reason
        if self.search:
            # a record id (or its start), or a customer's e-mail address: its lead, contact and
            # customer ids and its contact moments are the records the flows report
            clauses.append(
                "(e.record_id = %(search)s OR e.record_id LIKE %(prefix)s OR e.record_id IN ("
                " SELECT unnest(ARRAY[c.sf_lead_id, c.sf_contact_id, c.customer_id::text]) FROM customer c"
                "  WHERE c.email_key = lower(btrim(%(search)s))"
                " UNION ALL SELECT m.contact_moment_id::text FROM contact_moment m JOIN customer c USING (customer_id)"
                "  WHERE c.email_key = lower(btrim(%(search)s))))"
            )
            params["search"] = self.search.strip()
            params["prefix"] = self.search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return " AND ".join(clauses), params


# The run that last saw an error: the flow's latest run that started before it was last seen.
_LAST_RUN_OF_ERROR = (
    "LEFT JOIN LATERAL (SELECT r.dag_id, r.run_id FROM run_log r WHERE r.flow = e.flow AND r.started_at <= e.last_seen "
    "ORDER BY r.started_at DESC, r.run_log_id DESC LIMIT 1) r ON true"
)


def open_errors(conn: psycopg.Connection, selection: ErrorFilter, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    where, params = selection.where()
    return _dicts(
        conn,
        "SELECT e.sync_error_id, e.flow, e.record_id, e.reason, e.first_seen, e.last_seen, e.retry_count, "
        f"e.retry_requested, r.dag_id, r.run_id FROM sync_error e {_LAST_RUN_OF_ERROR} WHERE {where} "
        "ORDER BY e.last_seen DESC, e.sync_error_id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": int(limit), "offset": int(offset)},
    )


def open_error_count(conn: psycopg.Connection, selection: ErrorFilter = ErrorFilter()) -> int:
    where, params = selection.where()
    return conn.execute(f"SELECT count(*) FROM sync_error e WHERE {where}", params).fetchone()[0]


def error_reasons(conn: psycopg.Connection, *, flow: str | None = None, limit: int = 50) -> list[tuple[str, int]]:
    """The reasons of open errors (of one flow, or all) with how many records have them, most first."""
    where, params = ErrorFilter(flow=flow).where()
    return [
        (reason, count)
        for reason, count in conn.execute(
            f"SELECT {reason_kind_sql()} AS kind, count(*) FROM sync_error e WHERE {where} "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %(limit)s",
            {**params, "limit": int(limit)},
        )
    ]


def error_flows(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """Flows with open errors and how many."""
    return list(conn.execute("SELECT flow, count(*) FROM sync_error WHERE resolved_at IS NULL GROUP BY flow ORDER BY flow"))


def error_history(conn: psycopg.Connection, *, flow: str, record_id: str) -> list[dict[str, Any]]:
    """Every error row of one record of one flow, open and resolved, newest first."""
    return _dicts(
        conn,
        "SELECT e.*, r.dag_id, r.run_id FROM sync_error e "
        f"{_LAST_RUN_OF_ERROR} WHERE e.flow = %s AND e.record_id = %s ORDER BY e.first_seen DESC, e.sync_error_id DESC",
        (flow, record_id),
    )


def flows_of_errors(conn: psycopg.Connection, error_ids: Sequence[int]) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT flow FROM sync_error WHERE sync_error_id = ANY(%s) ORDER BY 1", (list(error_ids),)
        )
    ]


def flows_of_matching_errors(conn: psycopg.Connection, selection: ErrorFilter) -> list[str]:
    where, params = selection.where()
    return [row[0] for row in conn.execute(f"SELECT DISTINCT e.flow FROM sync_error e WHERE {where} ORDER BY 1", params)]


def request_retry(conn: psycopg.Connection, error_ids: Sequence[int]) -> int:
    """Mark open errors for retry by their flow's next run; returns how many were marked."""
    cur = conn.execute(
        "UPDATE sync_error SET retry_requested = true WHERE sync_error_id = ANY(%s) AND resolved_at IS NULL",
        (list(error_ids),),
    )
    return cur.rowcount


def request_retry_matching(conn: psycopg.Connection, selection: ErrorFilter) -> int:
    """Mark every open error the filter selects for retry; returns how many were marked."""
    where, params = selection.where()
    cur = conn.execute(f"UPDATE sync_error e SET retry_requested = true WHERE {where}", params)
    return cur.rowcount


# ----------------------------------------------------------------------------- contact moments


def contact_moment_backlog(conn: psycopg.Connection, tables: set[str]) -> dict[str, Any] | None:
    """Unsent contact moments and the age of the oldest, or None while contact-moment sync is not installed.

    Unsent = no ``contact_moment_sync`` row yet, or the moment changed since the version last dealt with.
    """
    if "contact_moment" not in tables or "contact_moment_sync" not in tables:
        return None
    row = conn.execute(
        "SELECT count(*), min(m.changed_at), now() - min(m.changed_at) FROM contact_moment m "
        "LEFT JOIN contact_moment_sync s USING (contact_moment_id) "
        "WHERE s.contact_moment_id IS NULL OR s.synced_changed_at IS DISTINCT FROM m.changed_at"
    ).fetchone()
    return {"unsent": row[0], "oldest": row[1], "oldest_age": row[2]}


def contact_moment_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM contact_moment").fetchone()[0]


# ------------------------------------------------------------------------------ synchronize


def synchronize_runs_of_task(conn: psycopg.Connection, *, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT * FROM synchronize_run WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY created_at",
        (dag_id, run_id, task_id),
    )


def synchronize_outcomes(conn: psycopg.Connection, run_key: str, *, limit: int = 2000) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT customer_id, exit, sobject, sf_id, reason, status_code, message, sent_via, attempts, updated_at "
        "FROM synchronize_outcome WHERE run_key = %s ORDER BY exit, customer_id LIMIT %s",
        (run_key, int(limit)),
    )


def synchronize_exit_counts(conn: psycopg.Connection, run_key: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT exit, count(*) FROM synchronize_outcome WHERE run_key = %s GROUP BY exit", (run_key,)
    ).fetchall()
    counts = {exit_: 0 for exit_ in SYNCHRONIZE_EXITS}
    counts.update(dict(rows))
    return counts
