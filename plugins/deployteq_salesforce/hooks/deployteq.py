"""DeployteqHook: the Deployteq side (PostgreSQL) of the integration.

Builds on the stock ``PostgresHook`` (psycopg 3).  All our tables live in one schema, named by
the connection extra ``deployteq_schema`` (default ``deployteq``); every connection this hook
opens has ``search_path`` set to that schema, so SQL elsewhere uses unqualified names.

Every helper that writes takes an optional ``conn=``: pass the connection of an open
``with hook.connect() as conn:`` block to make several calls one transaction; without it the
helper opens, commits and closes its own connection.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from airflow.providers.postgres.hooks.postgres import USE_PSYCOPG3, PostgresHook
from deployteq_salesforce.core.budget import ApiBudget, BudgetSettings
from deployteq_salesforce.core.datasets import DeployteqDatabase
from deployteq_salesforce.core.params import text_array
from deployteq_salesforce.core.timing import COPY, UPSERT, PhaseTimer
from deployteq_salesforce.core.store import (
    DEFAULT_SCHEMA,
    FINAL_RUN_OUTCOMES,
    MIGRATIONS_DIR,
    Migration,
    RecordError,
    UpsertCounts,
    Watermark,
    check_upsert_columns,
    discover_migrations,
    split_run_counts,
    validate_schema_name,
)
from deployteq_salesforce.provider_info import DEPLOYTEQ_CONN_TYPE, DEPLOYTEQ_HOOK_NAME

MIGRATION_LOCK = "deployteq_salesforce.migrate:"
RUN_LOCK = "deployteq_salesforce.run:"  # held by a live run (see start_run)
# column of the COPY staging table that remembers input order (the last duplicate of a key wins)
ROW_ORDER_COLUMN = "copy_upsert_row_order"
UPSERT_WORK_MEM = "64MB"
# types without an equality operator: compared as text when deciding whether a row changed
TEXT_COMPARED_TYPES = {"json", "xml", "point", "polygon", "line", "lseg", "box", "path", "circle"}
KEPT_CONNECTION_CHECK_SECONDS = 5.0  # a kept connection idle longer is checked (SELECT 1) before it is used again


class DeployteqHook(PostgresHook):
    """The Deployteq PostgreSQL database: customer table, contact moments and our sync state.

    :param deployteq_conn_id: a ``deployteq`` connection (a stock ``postgres`` one works too); extra
        ``deployteq_schema`` names the schema (default ``deployteq``).  A host that is a directory
        (``/tmp/x``) is a unix socket.
    """

    conn_name_attr = "deployteq_conn_id"
    default_conn_name = "deployteq_default"
    # Our own type, so the form shows deployteq_schema and the Test button runs test_connection() below;
    # nothing in PostgresHook depends on conn_type (its SQLAlchemy URL and dialect are always PostgreSQL).
    conn_type = DEPLOYTEQ_CONN_TYPE
    hook_name = DEPLOYTEQ_HOOK_NAME
    # our own extra must not reach psycopg.connect() as a connection parameter
    ignored_extra_options = PostgresHook.ignored_extra_options | {"deployteq_schema"}
    migrations_dir: Path = MIGRATIONS_DIR
    # inside reusing_connections(): thread -> (its idle connection, idle since); None outside
    _kept: dict[int, tuple[psycopg.Connection, float]] | None = None

    def __init__(self, deployteq_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(deployteq_conn_id=deployteq_conn_id, **kwargs)
        self.deployteq_conn_id = deployteq_conn_id

    @cached_property
    def schema_name(self) -> str:
        """The schema holding all Deployteq tables: extra ``deployteq_schema``, else ``deployteq``."""
        name = self.connection.extra_dejson.get("deployteq_schema") or DEFAULT_SCHEMA
        return validate_schema_name(
            name, source=f"Extra 'deployteq_schema' of connection {self.deployteq_conn_id!r}"
        )

    def deployteq_database(self) -> DeployteqDatabase:
        """Where our tables are, for Asset URIs and lineage (read from the connection, no query)."""
        connection = self.connection
        return DeployteqDatabase.of(connection.host, connection.port, connection.schema, self.schema_name)

    # -- connections -------------------------------------------------------------------------------

    def get_conn(self) -> psycopg.Connection:
        """A new psycopg 3 connection with ``search_path`` = our schema, public (no transaction open)."""
        if not USE_PSYCOPG3:
            raise RuntimeError(
                "DeployteqHook needs psycopg 3 (installed with SQLAlchemy 2); the postgres provider "
                "fell back to psycopg2. Install the pinned requirements.txt."
            )
        conn = super().get_conn()
        try:
            conn.autocommit = True  # SET outside a transaction: it holds for the whole session
            conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema_name)))
            conn.autocommit = False
        except BaseException:
            conn.close()
            raise
        return conn

    def connect(self) -> AbstractContextManager[psycopg.Connection]:
        """``with hook.connect() as conn:`` is one transaction: it commits when the block ends normally and
        rolls back on an exception.  The connection is then closed, or, inside ``reusing_connections()``,
        kept for the same thread's next ``connect()``."""
        if self._kept is None:
            return self.get_conn()  # a psycopg connection's own ``with``: commit or roll back, then close
        return self._kept_connection()

    @contextmanager
    def reusing_connections(self) -> Iterator[None]:
        """Within this block each thread keeps its connection between ``connect()`` blocks.

        A flow commits every batch in its own transaction: hundreds of transactions per run, and a new
        connection costs about 10 ms (Airflow's connection lookup, the server starting a backend,
        ``search_path``), a tenth of a large sync's time.  Only transactions are shared this way, never
        session state a caller leaves behind (``autocommit`` is put back); kept connections are closed
        when the block ends."""
        if self._kept is not None:  # nested: the outer block keeps and closes them
            yield
            return
        self._kept = {}
        try:
            yield
        finally:
            kept, self._kept = self._kept, None
            for conn, _ in kept.values():
                conn.close()

    @contextmanager
    def _kept_connection(self) -> Iterator[psycopg.Connection]:
        thread = threading.get_ident()
        conn, idle_since = self._kept.pop(thread, (None, 0.0))
        if conn is not None and time.monotonic() - idle_since > KEPT_CONNECTION_CHECK_SECONDS and not _alive(conn):
            conn.close()  # e.g. the server ended the session while the flow waited for API budget
            conn = None
        if conn is None:
            conn = self.get_conn()
        try:
            yield conn
        except BaseException:
            _roll_back(conn)
            raise
        else:
            conn.commit()
        finally:
            self._keep(thread, conn)

    def _keep(self, thread: int, conn: psycopg.Connection) -> None:
        kept = self._kept
        usable = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if kept is None or not usable or thread in kept:  # one per thread: a nested block's second one goes
            if not conn.closed:
                conn.close()
            return
        conn.autocommit = False
        kept[thread] = (conn, time.monotonic())

    @contextmanager
    def _unit_of_work(self, conn: psycopg.Connection | None) -> Iterator[psycopg.Connection]:
        """The caller's transaction when given a connection, else a new one that commits at the end."""
        if conn is None:
            with self.connect() as own:
                yield own
        elif conn.autocommit:
            with conn.transaction():  # several statements (and ON COMMIT DROP tables) need one transaction
                yield conn
        else:
            yield conn

    # -- migrations ----------------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Create the schema if needed and apply pending migrations; returns the versions applied now.

        Each migration file runs in its own transaction and is recorded in ``schema_migrations``.
        Safe to call any number of times and from several processes at once: an advisory lock per
        schema serialises the work, and each version is re-checked under the lock.
        """
        migrations = discover_migrations(self.migrations_dir)
        with self.connect() as conn:
            conn.autocommit = True  # each step below is an explicit transaction
            applied = self._applied_migrations(conn)
            if applied is not None and all(m.version in applied for m in migrations):
                self._warn_on_changed_migrations(migrations, applied)
                return []
            with conn.transaction():
                self._lock_migrations(conn)
                self._create_schema_and_ledger(conn)
            applied_now: list[int] = []
            for migration in migrations:
                with conn.transaction():
                    self._lock_migrations(conn)
                    applied = self._applied_migrations(conn) or {}
                    if migration.version in applied:
                        continue  # already there, or another process applied it meanwhile
                    self._apply(conn, migration)
                applied_now.append(migration.version)
                self.log.info(
                    "Applied migration %s to schema %s", migration.filename, self.schema_name
                )
            self._warn_on_changed_migrations(migrations, self._applied_migrations(conn) or {})
        return applied_now

    def api_budget(self, settings: BudgetSettings) -> ApiBudget:
        """The Salesforce API ledger of ``settings.budget_key`` in our schema (migrated first), shared by all workers."""
        self.migrate()  # idempotent and concurrency-safe; makes sure the ledger tables exist
        return ApiBudget(settings, self.get_conn)

    def migration_version(self) -> int | None:
        """The newest migration applied to our schema, None before the first one."""
        with self.connect() as conn:
            applied = self._applied_migrations(conn)
        return max(applied) if applied else None

    def _qualified(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema_name, name)

    def _lock_migrations(self, conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (MIGRATION_LOCK + self.schema_name,)
        )

    def _applied_migrations(self, conn: psycopg.Connection) -> dict[int, str | None] | None:
        """version -> checksum of what is applied, or None when the schema has no ledger yet."""
        with conn.cursor(row_factory=tuple_row) as cur:
            exists = cur.execute(
                "SELECT to_regclass(%s) IS NOT NULL",
                (sql.Identifier(self.schema_name, "schema_migrations").as_string(conn),),
            ).fetchone()[0]
            if not exists:
                return None
            rows = cur.execute(
                sql.SQL("SELECT version, checksum FROM {}").format(self._qualified("schema_migrations"))
            ).fetchall()
        return dict(rows)

    def _create_schema_and_ledger(self, conn: psycopg.Connection) -> None:
        schema_exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (self.schema_name,)
        ).fetchone()[0]
        if not schema_exists:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema_name)))
            self.log.info("Created schema %s", self.schema_name)
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " checksum text,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(self._qualified("schema_migrations"))
        )

    def _apply(self, conn: psycopg.Connection, migration: Migration) -> None:
        conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(sql.Identifier(self.schema_name)))
        try:
            conn.execute(migration.sql())  # no parameters: psycopg sends the whole file as one script
        except psycopg.Error as error:
            raise RuntimeError(
                f"Migration {migration.filename} failed in schema {self.schema_name!r} and was rolled back: {error}"
            ) from error
        conn.execute(
            sql.SQL("INSERT INTO {} (version, name, checksum) VALUES (%s, %s, %s)").format(
                self._qualified("schema_migrations")
            ),
            (migration.version, migration.name, migration.checksum()),
        )

    def _warn_on_changed_migrations(self, migrations: list[Migration], applied: dict[int, str | None]) -> None:
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded and recorded != migration.checksum():
                self.log.warning(
                    "Migration %s was changed after it was applied to schema %s; the change is NOT applied. "
                    "Put schema changes in a new numbered migration.",
                    migration.filename,
                    self.schema_name,
                )
        unknown = sorted(set(applied) - {m.version for m in migrations})
        if unknown:
            self.log.warning(
                "Schema %s has migrations %s that this code does not know; is newer code using it?",
                self.schema_name,
                unknown,
            )

    # -- tables ------------------------------------------------------------------------------------------

    def table_columns(self, table: str, *, conn: psycopg.Connection | None = None) -> dict[str, str]:
        """Column -> PostgreSQL type of ``table`` in our schema, in table order; {} when there is no such table."""
        query = (
            "SELECT column_name, CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name ELSE data_type END "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position"
        )
        with self._unit_of_work(conn) as c, c.cursor(row_factory=tuple_row) as cur:
            return dict(cur.execute(query, (self.schema_name, table)).fetchall())

    def _existing_columns(self, conn: psycopg.Connection, table: str, columns: Sequence[str]) -> dict[str, str]:
        known = self.table_columns(table, conn=conn)
        if not known:
            raise ValueError(
                f"Table {table!r} does not exist in schema {self.schema_name!r}; run migrate() or create it first."
            )
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise ValueError(f"Table {table!r} has no columns {unknown}; its columns are {list(known)}")
        return known

    def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        conn: psycopg.Connection | None = None,
    ) -> int:
        """COPY ``rows`` (tuples in ``columns`` order; may be a generator) into ``table``; returns the row count.

        Meant for staging tables; temporary tables of the caller's transaction work too.
        """
        columns = list(columns)
        if not columns:
            raise ValueError(f"copy_rows into {table!r}: no columns given")
        with self._unit_of_work(conn) as c:
            what = f"copy_rows into {table!r}"
            return self._copy(c, sql.Identifier(table), columns, rows, key_positions=(), what=what)

    def copy_upsert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        key_columns: Sequence[str],
        update_columns: Sequence[str] | None = None,
        *,
        conn: psycopg.Connection | None = None,
        phases: PhaseTimer | None = None,
    ) -> UpsertCounts:
        """Insert new rows and update changed ones, counting which was which.

        ``rows`` (tuples in ``columns`` order) are streamed with COPY into a temporary table, then ONE
        ``INSERT ... ON CONFLICT (key_columns) DO UPDATE`` writes them; a row is only updated when one
        of ``update_columns`` (default: every non-key column) differs, so unchanged rows stay untouched
        and count as ``unchanged``.  When a key occurs more than once in ``rows``, the last one wins.
        ``key_columns`` needs a non-deferrable unique constraint or index on the table.
        """
        columns = list(columns)
        key_columns = list(key_columns)
        update = check_upsert_columns(
            table, columns, key_columns, list(update_columns) if update_columns is not None else None
        )
        if ROW_ORDER_COLUMN in columns:
            raise ValueError(f"copy_upsert into {table!r}: the column name {ROW_ORDER_COLUMN!r} is reserved")
        stage = sql.Identifier(f"copy_upsert_{uuid.uuid4().hex[:12]}")
        ident = lambda names: sql.SQL(", ").join(map(sql.Identifier, names))  # noqa: E731
        with self._unit_of_work(conn) as c:
            types = self._existing_columns(c, table, columns)
            c.execute(
                sql.SQL("CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA").format(
                    stage=stage, cols=ident(columns), table=sql.Identifier(table)
                )
            )
            c.execute(
                sql.SQL("ALTER TABLE {stage} ADD COLUMN {order} bigint GENERATED ALWAYS AS IDENTITY").format(
                    stage=stage, order=sql.Identifier(ROW_ORDER_COLUMN)
                )
            )
            key_positions = [columns.index(k) for k in key_columns]
            phases = phases or PhaseTimer()
            with phases.phase(COPY):
                self._copy(c, stage, columns, rows, key_positions=key_positions, what=f"copy_upsert into {table!r}")
            with phases.phase(UPSERT), c.cursor(row_factory=tuple_row) as cur:
                # room to de-duplicate a large batch in memory instead of sorting on disk; restored below
                previous_work_mem = cur.execute(
                    "SELECT current_setting('work_mem'), set_config('work_mem', %s, true)", (UPSERT_WORK_MEM,)
                ).fetchone()[0]
                distinct, inserted, updated = cur.execute(
                    self._upsert_statement(table, stage, columns, key_columns, update, types)
                ).fetchone()
                cur.execute("SELECT set_config('work_mem', %s, true)", (previous_work_mem,))
            c.execute(sql.SQL("DROP TABLE {}").format(stage))  # early: a long transaction may run many batches
        return UpsertCounts(inserted=inserted, updated=updated, unchanged=distinct - inserted - updated)

    @staticmethod
    def _upsert_statement(
        table: str,
        stage: sql.Identifier,
        columns: list[str],
        key_columns: list[str],
        update_columns: list[str],
        types: dict[str, str],
    ) -> sql.Composed:
        def comparable(alias: str, column: str) -> sql.Composable:
            value = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(column))
            return sql.SQL("{}::text").format(value) if types.get(column) in TEXT_COMPARED_TYPES else value

        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        keys = sql.SQL(", ").join(map(sql.Identifier, key_columns))
        if update_columns:
            action = sql.SQL("DO UPDATE SET {sets} WHERE ROW({current}) IS DISTINCT FROM ROW({incoming})").format(
                sets=sql.SQL(", ").join(
                    sql.SQL("{col} = excluded.{col}").format(col=sql.Identifier(c)) for c in update_columns
                ),
                current=sql.SQL(", ").join(comparable("target", c) for c in update_columns),
                incoming=sql.SQL(", ").join(comparable("excluded", c) for c in update_columns),
            )
        else:
            action = sql.SQL("DO NOTHING")
        # xmax is 0 for a freshly inserted row version and set for one that was updated
        return sql.SQL(
            "WITH incoming AS ("
            " SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, {order} DESC"
            "), written AS ("
            " INSERT INTO {table} AS target ({cols}) SELECT {cols} FROM incoming"
            " ON CONFLICT ({keys}) {action}"
            " RETURNING (target.xmax = 0) AS inserted"
            ") SELECT (SELECT count(*) FROM incoming),"
            " count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written"
        ).format(
            keys=keys,
            cols=cols,
            stage=stage,
            order=sql.Identifier(ROW_ORDER_COLUMN),
            table=sql.Identifier(table),
            action=action,
        )

    @staticmethod
    def _copy(
        conn: psycopg.Connection,
        target: sql.Composable,
        columns: list[str],
        rows: Iterable[Sequence[Any]],
        *,
        key_positions: Sequence[int],
        what: str,
    ) -> int:
        width = len(columns)
        count = 0
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for count, row in enumerate(rows, start=1):
                if len(row) != width:
                    raise ValueError(f"{what}: row {count} has {len(row)} values, expected {width} for {columns}")
                for position in key_positions:
                    if row[position] is None:
                        raise ValueError(
                            f"{what}: row {count} has no value for key column {columns[position]!r}; "
                            "an upsert needs a key to match on"
                        )
                copy.write_row(row)
        return count

    # -- run log -------------------------------------------------------------------------------------------

    def start_run(
        self,
        flow: str,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        conn: psycopg.Connection | None = None,
    ) -> int:
        """Record that ``flow`` started; returns the run_log_id to pass to ``finish_run``.

        Runs of ``flow`` left ``running`` by a worker that died are closed as ``crashed`` first.  The
        new run holds a session-level advisory lock on its own connection until ``finish_run``: the
        lock is how a later run tells a live run from a dead one (PostgreSQL drops it with the
        connection of a killed worker).
        """
        if not isinstance(flow, str) or not flow:
            raise ValueError(f"start_run: flow must be a non-empty string, got {flow!r}")
        self.close_crashed_runs(flow)
        with self._unit_of_work(conn) as c, c.cursor(row_factory=tuple_row) as cur:
            run_log_id = cur.execute(
                "INSERT INTO run_log (flow, dag_id, run_id) VALUES (%s, %s, %s) RETURNING run_log_id",
                (flow, dag_id, run_id),
            ).fetchone()[0]
        self._hold_run_lock(run_log_id)
        return run_log_id

    def reopen_run(self, run_log_id: int) -> int:
        """A run that waited deferred for budget goes on in the same run_log row (``running`` again)."""
        with self.connect() as conn:
            reopened = conn.execute(
                "UPDATE run_log SET outcome = 'running', finished_at = NULL, message = NULL "
                "WHERE run_log_id = %s AND outcome = 'limited'",
                (run_log_id,),
            ).rowcount
        if not reopened:
            raise LookupError(f"reopen_run: no limited run_log row {run_log_id} in schema {self.schema_name!r}")
        self._hold_run_lock(run_log_id)
        return run_log_id

    def _hold_run_lock(self, run_log_id: int) -> None:
        alive = self.get_conn()
        alive.autocommit = True
        alive.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self._run_lock_name(run_log_id),))
        self._live_runs[run_log_id] = alive

    @cached_property
    def _live_runs(self) -> dict[int, psycopg.Connection]:
        return {}

    def _run_lock_name(self, run_log_id: int) -> str:
        return f"{RUN_LOCK}{self.schema_name}:{run_log_id}"

    def close_crashed_runs(self, flow: str) -> list[int]:
        """Close the ``running`` rows of ``flow`` whose run is no longer alive as ``crashed``; returns their ids."""
        closed = []
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            conn.autocommit = True
            candidates = cur.execute(
                "SELECT run_log_id, progress_at, fetched, inserted, updated FROM run_log "
                "WHERE flow = %s AND outcome = 'running' ORDER BY run_log_id",
                (flow,),
            ).fetchall()
            for run in candidates:
                lock = self._run_lock_name(run["run_log_id"])
                if not cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS free", (lock,)).fetchone()["free"]:
                    continue  # its worker still holds the lock: the run is alive
                try:
                    cur.execute(
                        "UPDATE run_log SET outcome = 'crashed', finished_at = clock_timestamp(), message = %s "
                        "WHERE run_log_id = %s AND outcome = 'running'",
                        (_crash_message(run), run["run_log_id"]),
                    )
                    if cur.rowcount:
                        closed.append(run["run_log_id"])
                finally:
                    cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock,))
        if closed:
            self.log.warning("Closed %s earlier run(s) of %s as crashed: run_log_id %s", len(closed), flow, closed)
        return closed

    def record_progress(self, run_log_id: int, counts: dict[str, Any], *, conn: psycopg.Connection) -> None:
        """Keep a running row's counters current, in the transaction that commits the batch they count."""
        columns, _ = split_run_counts(counts)
        assignments = sql.SQL("").join(sql.SQL(", {} = %s").format(sql.Identifier(name)) for name in columns)
        conn.execute(
            sql.SQL("UPDATE run_log SET progress_at = clock_timestamp(){} WHERE run_log_id = %s").format(assignments),
            [*columns.values(), run_log_id],
        )

    def finish_run(
        self,
        run_log_id: int,
        *,
        outcome: str,
        counts: dict[str, Any],
        message: str | None = None,
        api_requests: int = 0,
        conn: psycopg.Connection | None = None,
    ) -> None:
        """Close a run: its outcome, counters and message.  Counts without a column go to ``details``."""
        if outcome not in FINAL_RUN_OUTCOMES:
            raise ValueError(f"finish_run: outcome must be one of {FINAL_RUN_OUTCOMES}, got {outcome!r}")
        columns, details = split_run_counts(counts)
        assignments = [sql.SQL("{} = %s").format(sql.Identifier(name)) for name in columns]
        statement = sql.SQL(
            "UPDATE run_log SET finished_at = clock_timestamp(), outcome = %s, message = %s, api_requests = %s, "
            "details = details || %s::jsonb{more} WHERE run_log_id = %s"
        ).format(more=sql.SQL("").join(sql.SQL(", ") + a for a in assignments))
        params = [outcome, message, int(api_requests), json.dumps(details, default=str), *columns.values(), run_log_id]
        with self._unit_of_work(conn) as c, c.cursor() as cur:
            cur.execute(statement, params)
            if cur.rowcount != 1:
                raise LookupError(
                    f"finish_run: no run_log row with run_log_id {run_log_id} in schema {self.schema_name!r}"
                )
        alive = self._live_runs.pop(run_log_id, None)
        if alive is not None:
            alive.close()  # ends the run's advisory lock

    def recent_runs(self, flow: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest runs (newest first), of one flow or of all."""
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT * FROM run_log WHERE %(flow)s::text IS NULL OR flow = %(flow)s "
                "ORDER BY started_at DESC, run_log_id DESC LIMIT %(limit)s",
                {"flow": flow, "limit": int(limit)},
            ).fetchall()

    # -- record errors -------------------------------------------------------------------------------------

    def record_errors(self, flow: str, errors: Sequence[RecordError], *, conn: psycopg.Connection | None = None) -> int:
        """Store errors of ``flow``: new ones open a row, known open ones get last_seen and retry_count bumped.

        Returns how many records were written.  A record listed twice keeps its last error.
        """
        latest: dict[str, RecordError] = {}
        for error in errors:
            latest[str(error.record_id) if error.record_id is not None else ""] = error
        if not latest:
            return 0
        record_ids = list(latest)
        reasons = [str(e.reason) for e in latest.values()]
        details = [json.dumps(dict(e.detail), default=str) if e.detail is not None else None for e in latest.values()]
        with self._unit_of_work(conn) as c, c.cursor() as cur:
            cur.execute(
                "INSERT INTO sync_error (flow, record_id, reason, detail) "
                "SELECT %s, e.record_id, e.reason, e.detail::jsonb "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS e (record_id, reason, detail) "
                "ON CONFLICT (flow, record_id) WHERE resolved_at IS NULL DO UPDATE SET "
                "reason = excluded.reason, detail = excluded.detail, last_seen = clock_timestamp(), "
                "retry_count = sync_error.retry_count + 1, retry_requested = false",
                (flow, record_ids, reasons, details),
            )
            return cur.rowcount

    def resolve_errors(self, flow: str, record_ids: Iterable[str], *, conn: psycopg.Connection | None = None) -> int:
        """Mark the open errors of these records resolved (they went through); returns how many were open."""
        ids = [str(i) for i in record_ids if i is not None]
        if not ids:
            return 0
        with self._unit_of_work(conn) as c, c.cursor() as cur:
            # the EXISTS runs once: a flow without open errors (the usual case) costs no probe per id
            cur.execute(
                "UPDATE sync_error SET resolved_at = clock_timestamp() "
                "WHERE flow = %s AND record_id = ANY(%s::text[]) AND resolved_at IS NULL "
                "AND EXISTS (SELECT 1 FROM sync_error WHERE flow = %s AND resolved_at IS NULL)",
                (flow, text_array(ids), flow),
            )
            return cur.rowcount

    def retry_requested(self, flow: str) -> list[str]:
        """Record ids of open errors of ``flow`` that someone queued for retry (the Salesforce page's action)."""
        with self.connect() as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT record_id FROM sync_error WHERE flow = %s AND retry_requested AND resolved_at IS NULL "
                "AND record_id <> '' ORDER BY record_id",
                (flow,),
            ).fetchall()
        return [row[0] for row in rows]

    def clear_retry_requests(self, flow: str, record_ids: Sequence[str]) -> None:
        """The queued retries of these records were done (whatever their outcome)."""
        with self.connect() as conn:
            conn.execute(
                "UPDATE sync_error SET retry_requested = false WHERE flow = %s AND retry_requested AND record_id = ANY(%s)",
                (flow, list(record_ids)),
            )

    def open_errors(self, flow: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """Unresolved errors (most recently seen first), of one flow or of all."""
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT * FROM sync_error WHERE resolved_at IS NULL AND (%(flow)s::text IS NULL OR flow = %(flow)s) "
                "ORDER BY last_seen DESC, sync_error_id DESC LIMIT %(limit)s",
                {"flow": flow, "limit": int(limit)},
            ).fetchall()

    # -- watermarks -------------------------------------------------------------------------------------------

    def get_watermark(self, flow: str, *, conn: psycopg.Connection | None = None) -> Watermark | None:
        """Where ``flow`` stands, or None when it never stored a watermark."""
        with self._unit_of_work(conn) as c, c.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(
                "SELECT watermark_modstamp, watermark_id FROM sync_state WHERE flow = %s", (flow,)
            ).fetchone()
        if row is None:
            return None
        # in UTC whatever the session's TimeZone: callers format it as a Salesforce literal ("...Z")
        modstamp = row[0].astimezone(timezone.utc) if row[0] is not None else None
        return Watermark(modstamp=modstamp, last_id=row[1])

    def set_watermark(self, flow: str, watermark: Watermark, *, conn: psycopg.Connection | None = None) -> None:
        """Store where ``flow`` stands (commit it together with the data it covers by passing ``conn``)."""
        if watermark.modstamp is not None and watermark.modstamp.utcoffset() is None:
            raise ValueError(
                f"set_watermark({flow!r}): modstamp {watermark.modstamp!r} has no time zone; "
                "Salesforce timestamps are UTC, pass an aware datetime"
            )
        with self._unit_of_work(conn) as c:
            c.execute(
                "INSERT INTO sync_state (flow, watermark_modstamp, watermark_id, updated_at) "
                "VALUES (%s, %s, %s, clock_timestamp()) ON CONFLICT (flow) DO UPDATE SET "
                "watermark_modstamp = excluded.watermark_modstamp, watermark_id = excluded.watermark_id, "
                "updated_at = excluded.updated_at",
                (flow, watermark.modstamp, watermark.last_id),
            )

    # -- connection test ---------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Plainly: can we connect, which server, and is our schema there and at which migration version."""
        try:
            schema = self.schema_name
            with self.connect() as conn, conn.cursor(row_factory=tuple_row) as cur:
                version, database = cur.execute(
                    "SELECT current_setting('server_version'), current_database()"
                ).fetchone()
                schema_exists = cur.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (schema,)
                ).fetchone()[0]
                migrated = self._applied_migrations(conn) if schema_exists else None
        except Exception as error:  # noqa: BLE001 - the message is the answer the user asked for
            return False, f"Cannot use connection {self.deployteq_conn_id!r}: {self._without_password(str(error))}"
        server = f"Connected to PostgreSQL {version.split()[0]}, database {database}"
        if not schema_exists:
            return True, f"{server}; schema {schema} does not exist yet (the first sync or migrate() creates it)"
        if not migrated:
            return True, f"{server}, schema {schema} (not migrated yet; the first sync or migrate() does it)"
        return True, f"{server}, schema {schema} (migrations at version {max(migrated)})"

    def _without_password(self, text: str) -> str:
        try:
            password = self.connection.password
        except Exception:  # noqa: BLE001 - no connection, nothing to hide
            return text
        return text.replace(password, "***") if password else text


def _crash_message(run: dict[str, Any]) -> str:
    if run["progress_at"] is None:
        progress = "it had committed no progress"
    else:
        progress = (
            f"its last progress was committed at {run['progress_at'].astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC "
            f"({run['fetched']} fetched, {run['inserted']} inserted, {run['updated']} updated)"
        )
    return (
        f"the run stopped without finishing (its worker was killed or lost its database connection); {progress}; "
        "the next run continues from the committed progress"
    )


def _roll_back(conn: psycopg.Connection) -> None:
    """Roll back after a failed block; a connection that cannot is closed (it is not kept)."""
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg.Error:
        conn.close()


def _alive(conn: psycopg.Connection) -> bool:
    """Whether an idle connection still answers."""
    try:
        conn.execute("SELECT 1")
        conn.rollback()
        return True
    except psycopg.Error:
        return False
