"""Salesforce Synchronize's own tables: which customers a run covers and the exit each one took.

``synchronize_run`` / ``synchronize_outcome`` (migration 0004) make a run resumable: retrying or
clearing the task sends only ``pending`` and ``on_limit`` customers again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.core.timing import BOOKKEEPING, PhaseTimer
from deployteq_salesforce.flows.synchronize.logic import CONTINUE, EXITS, ON_SUCCESS, Outcome, Update
from deployteq_salesforce.hooks.deployteq import DeployteqHook

# customers read and sent per pass: bounds memory (one Bulk job per pass above the threshold)
WORK_CHUNK = 50_000


class SynchronizeStore:
    """The ``synchronize_run`` / ``synchronize_outcome`` tables (migration 0004)."""

    def __init__(self, store: DeployteqHook, *, phases: PhaseTimer | None = None):
        self.store = store
        self.phases = phases or PhaseTimer()

    def open_run(self, run_key: str, *, sobject: str, fields: Sequence[str], dag_id=None, task_id=None, run_id=None,
                 selection: str | None = None, conn=None) -> bool:
        """Register an attempt of the run; True when the run is new (its customers are still to be selected).

        Pass ``conn`` to select the customers in the same transaction: a worker that dies in between must not
        leave a run that a retry continues with no customers at all."""
        with self.store._unit_of_work(conn) as conn:
            row = conn.execute(
                "INSERT INTO synchronize_run (run_key, dag_id, task_id, run_id, sobject, fields, selection, attempts) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 1) "
                "ON CONFLICT (run_key) DO UPDATE SET attempts = synchronize_run.attempts + 1, finished_at = NULL "
                "RETURNING attempts",
                (run_key, dag_id, task_id, run_id, sobject, list(fields), selection),
            ).fetchone()
        return row[0] == 1

    def select_customers(self, run_key: str, *, selection_sql: str | None = None, customer_ids: Sequence[int] | None = None,
                         source_table: str | None = None, conn=None, new_run: bool = False) -> int:
        """Store the run's customers as ``pending``; returns how many.  Runs in one transaction (``conn``'s if given).

        ``new_run``: ``conn``'s transaction has just opened the run (:meth:`open_run` returned True), so none of
        its customers is stored yet: a plain INSERT, without the conflict check per row (a third of the time)."""
        insert = sql.SQL(
            "INSERT INTO synchronize_outcome (run_key, customer_id) SELECT DISTINCT %s, s.customer_id::bigint FROM ({}) AS s "
            "WHERE s.customer_id IS NOT NULL" + ("" if new_run else " ON CONFLICT DO NOTHING")
        )
        with self.store._unit_of_work(conn) as conn:
            if customer_ids is not None:
                query = insert.format(sql.SQL("SELECT unnest(%s::bigint[]) AS customer_id"))
                params: tuple = (run_key, list(customer_ids))
            elif source_table is not None:
                table = sql.Identifier(*source_table.split("."))
                query = insert.format(sql.SQL("SELECT customer_id FROM {}").format(table))
                params = (run_key,)
            else:
                query = insert.format(sql.SQL(selection_sql))  # the DAG author's own SQL, like SQLExecuteQueryOperator
                params = (run_key,)
            try:
                return conn.execute(query, params).rowcount
            except Exception as exc:
                what = (
                    f"source_table {source_table!r}" if source_table is not None
                    else "customer_ids" if customer_ids is not None else "selection_sql"
                )
                raise ConfigurationError(
                    f"Salesforce Synchronize could not select the customers from {what}: {exc}. It must yield a "
                    "column 'customer_id' (customer table ids); tables are looked up in the Deployteq schema "
                    f"{self.store.schema_name!r}"
                ) from exc

    def work(self, run_key: str, columns: Sequence[str]) -> Iterator[list[dict[str, Any]]]:
        """Customers of the run still to send (``pending`` or ``on_limit``), with the columns to send.

        Yields them in customer id order, WORK_CHUNK at a time, so memory does not grow with the run.
        """
        chunk_size = WORK_CHUNK
        wanted = list(dict.fromkeys(["sf_lead_id", "sf_contact_id", *columns]))
        query = sql.SQL(
            "SELECT o.customer_id, c.customer_id IS NOT NULL AS customer_exists, {cols} "
            "FROM synchronize_outcome o LEFT JOIN customer c ON c.customer_id = o.customer_id "
            "WHERE o.run_key = %s AND o.exit IN ('pending', 'on_limit') AND o.customer_id > %s "
            "ORDER BY o.customer_id LIMIT %s"
        ).format(cols=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in wanted))
        after = -1  # customer ids are positive (bigserial)
        while True:
            with self.store.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
                chunk = cur.execute(query, (run_key, after, chunk_size)).fetchall()
            if chunk:
                yield chunk
            if len(chunk) < chunk_size:
                return
            after = chunk[-1]["customer_id"]

    def contested_ids(self, run_key: str) -> set[str]:
        """Lower-case Salesforce ids that more than one customer of the run carries (in any case).

        Lead and contact ids are unique in the customer table, so only such case variants can make two
        customers update one Salesforce record; the run tracks these few instead of every id it sends."""
        with self.store.connect() as conn:
            rows = conn.execute(
                "SELECT id FROM (SELECT lower(c.sf_lead_id) AS id FROM synchronize_outcome o "
                "JOIN customer c USING (customer_id) WHERE o.run_key = %(key)s AND c.sf_lead_id IS NOT NULL "
                "UNION ALL SELECT lower(c.sf_contact_id) FROM synchronize_outcome o "
                "JOIN customer c USING (customer_id) WHERE o.run_key = %(key)s AND c.sf_contact_id IS NOT NULL) AS ids "
                "GROUP BY id HAVING count(*) > 1",
                {"key": run_key},
            ).fetchall()
        return {row[0] for row in rows}

    def save(self, run_key: str, outcomes: Sequence[Outcome]) -> None:
        """Record outcomes (one transaction); a record that reached Salesforce counts an attempt."""
        if not outcomes:
            return
        columns = list(zip(*[
            (o.customer_id, o.exit, o.sobject, o.sf_id, o.reason, o.status_code, o.message,
             ",".join(o.fields), o.sent_via)  # field API names never hold a comma
            for o in outcomes
        ]))
        # binary array parameters: psycopg renders text arrays in Python, value by value
        with self.phases.phase(BOOKKEEPING), self.store.connect() as conn:
            conn.execute(
                "UPDATE synchronize_outcome o SET exit = u.exit, sobject = u.sobject, sf_id = u.sf_id, reason = u.reason, "
                "status_code = u.status_code, message = u.message, "
                "error_fields = string_to_array(u.fields, ','), sent_via = u.sent_via, "
                "attempts = o.attempts + (u.sent_via IS NOT NULL)::int, updated_at = clock_timestamp() "
                "FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
                "%b::text[], %b::text[]) AS u (customer_id, exit, sobject, sf_id, reason, status_code, message, fields, sent_via) "
                "WHERE o.run_key = %s AND o.customer_id = u.customer_id",
                (*[list(c) for c in columns], run_key),
            )

    def save_succeeded(self, run_key: str, sobject: str, updates: Sequence[Update], *, sent_via: str) -> None:
        """Record updates of one object that Salesforce accepted, as ``save`` records ``Update.succeeded``
        outcomes; only the two columns that differ per record are sent (a Bulk job's worth at a time)."""
        if not updates:
            return
        with self.phases.phase(BOOKKEEPING), self.store.connect() as conn:
            conn.execute(
                "UPDATE synchronize_outcome o SET exit = %s, sobject = %s, sf_id = u.sf_id, reason = NULL, "
                "status_code = NULL, message = NULL, error_fields = '{}', sent_via = %s, attempts = o.attempts + 1, "
                "updated_at = clock_timestamp() FROM unnest(%b::bigint[], %b::text[]) AS u (customer_id, sf_id) "
                "WHERE o.run_key = %s AND o.customer_id = u.customer_id",
                (ON_SUCCESS, sobject, sent_via, [u.customer_id for u in updates], [u.sf_id for u in updates], run_key),
            )

    def finish(self, run_key: str) -> None:
        with self.store.connect() as conn:
            conn.execute("UPDATE synchronize_run SET finished_at = clock_timestamp() WHERE run_key = %s", (run_key,))

    def counts(self, run_key: str) -> dict[str, int]:
        with self.store.connect() as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT exit, count(*) FROM synchronize_outcome WHERE run_key = %s GROUP BY exit", (run_key,)
            ).fetchall()
        counts = {name: 0 for name in EXITS}
        for exit_name, number in rows:
            counts[CONTINUE] += number
            if exit_name in counts:
                counts[exit_name] = number
        return counts

    def succeeded_by_object(self, run_key: str) -> dict[str, int]:
        """Salesforce object -> customers of the run that reached it (``on_success``)."""
        with self.store.connect() as conn, conn.cursor(row_factory=tuple_row) as cur:
            return dict(cur.execute(
                "SELECT sobject, count(*) FROM synchronize_outcome WHERE run_key = %s AND exit = %s GROUP BY sobject "
                "ORDER BY sobject", (run_key, ON_SUCCESS),
            ).fetchall())

    def customer_ids(self, run_key: str, exit_name: str) -> list[int]:
        """The customers of one exit (``continue``: all of the run), in customer id order."""
        if exit_name not in EXITS:
            raise ValueError(f"exit must be one of {', '.join(EXITS)}, got {exit_name!r}")
        with self.store.connect() as conn, conn.cursor(row_factory=tuple_row) as cur:
            if exit_name == CONTINUE:
                rows = cur.execute(
                    "SELECT customer_id FROM synchronize_outcome WHERE run_key = %s ORDER BY customer_id", (run_key,)
                ).fetchall()
            else:
                rows = cur.execute(
                    "SELECT customer_id FROM synchronize_outcome WHERE run_key = %s AND exit = %s ORDER BY customer_id",
                    (run_key, exit_name),
                ).fetchall()
        return [row[0] for row in rows]

    def outcomes(self, run_key: str, exit_name: str | None = None) -> list[dict[str, Any]]:
        """Stored outcome rows (customer_id, exit, sobject, sf_id, reason, status_code, message, ...)."""
        with self.store.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT * FROM synchronize_outcome WHERE run_key = %(key)s AND (%(exit)s::text IS NULL OR exit = %(exit)s) "
                "ORDER BY customer_id",
                {"key": run_key, "exit": exit_name},
            ).fetchall()


