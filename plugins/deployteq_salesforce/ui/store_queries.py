"""Read-only queries of the Salesforce pages against the Deployteq store, plus the one retry write.

Every function takes an open psycopg connection whose ``search_path`` is our schema (as
``DeployteqHook.connect()`` gives).  Tables come from several flows and migrations; a table that is
not there yet is reported as missing (the page says "not configured yet"), never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

SYNCHRONIZE_EXITS = ("on_success", "on_error", "on_limit", "pending")


def existing_tables(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}


def table_columns(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
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
        "SELECT DISTINCT ON (flow) flow, dag_id, started_at, finished_at, outcome, message, "
        " count(*) OVER (PARTITION BY flow) AS runs "
        "FROM run_log ORDER BY flow, started_at DESC, run_log_id DESC",
    )


def runs(
    conn: psycopg.Connection, *, flow: str | None = None, dag_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT * FROM run_log WHERE (%(flow)s::text IS NULL OR flow = %(flow)s) "
        "AND (%(dag_id)s::text IS NULL OR dag_id = %(dag_id)s) "
        "ORDER BY started_at DESC, run_log_id DESC LIMIT %(limit)s",
        {"flow": flow, "dag_id": dag_id, "limit": int(limit)},
    )


def flows_of_dag(conn: psycopg.Connection, dag_id: str) -> list[str]:
    return [row[0] for row in conn.execute("SELECT DISTINCT flow FROM run_log WHERE dag_id = %s ORDER BY 1", (dag_id,))]


def dags_of_flow(conn: psycopg.Connection, flow: str) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT dag_id FROM run_log WHERE flow = %s AND dag_id IS NOT NULL ORDER BY 1", (flow,)
        )
    ]


# ------------------------------------------------------------------------------------ errors


def open_errors(conn: psycopg.Connection, *, flow: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    return _dicts(
        conn,
        "SELECT sync_error_id, flow, record_id, reason, detail, first_seen, last_seen, retry_count, retry_requested "
        "FROM sync_error WHERE resolved_at IS NULL AND (%(flow)s::text IS NULL OR flow = %(flow)s) "
        "ORDER BY last_seen DESC, sync_error_id DESC LIMIT %(limit)s",
        {"flow": flow, "limit": int(limit)},
    )


def open_error_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM sync_error WHERE resolved_at IS NULL").fetchone()[0]


def flows_of_errors(conn: psycopg.Connection, error_ids: Sequence[int]) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT flow FROM sync_error WHERE sync_error_id = ANY(%s) ORDER BY 1", (list(error_ids),)
        )
    ]


def request_retry(conn: psycopg.Connection, error_ids: Sequence[int]) -> int:
    """Mark open errors for retry by their flow's next run; returns how many were marked."""
    cur = conn.execute(
        "UPDATE sync_error SET retry_requested = true WHERE sync_error_id = ANY(%s) AND resolved_at IS NULL",
        (list(error_ids),),
    )
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
