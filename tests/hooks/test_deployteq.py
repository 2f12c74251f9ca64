"""DeployteqHook against a real PostgreSQL, one fresh schema per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.core.store import RecordError, UpsertCounts, Watermark, discover_migrations
from include.local_services import postgres_connection

ROOT = Path(__file__).resolve().parents[2]
ALL_VERSIONS = [m.version for m in discover_migrations()]
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def hook(deployteq_conn_id) -> DeployteqHook:
    return DeployteqHook(deployteq_conn_id=deployteq_conn_id)


@pytest.fixture
def store(hook) -> DeployteqHook:
    """A hook whose schema is migrated."""
    hook.migrate()
    return hook


def catalog_snapshot(pg_url: str, schema: str) -> dict:
    """Everything migrations create in ``schema``, plus the migration ledger itself."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable, generation_expression "
        "FROM information_schema.columns WHERE table_schema = %(s)s ORDER BY 1, 2",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s ORDER BY 1",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = %(s)s::regnamespace ORDER BY 1, 2",
        "triggers": "SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relnamespace = %(s)s::regnamespace AND NOT t.tgisinternal ORDER BY 1",
        "functions": "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = %(s)s::regnamespace ORDER BY 1",
        "sequences": "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %(s)s ORDER BY 1",
    }
    with psycopg.connect(pg_url) as conn:
        snapshot = {name: conn.execute(q, {"s": schema}).fetchall() for name, q in queries.items()}
        snapshot["schema_migrations"] = conn.execute(
            sql.SQL("SELECT version, name, checksum, applied_at FROM {} ORDER BY version").format(
                sql.Identifier(schema, "schema_migrations")
            )
        ).fetchall()
    return snapshot


def select(store: DeployteqHook, query: str, params=()) -> list[tuple]:
    with store.connect() as conn:
        return conn.execute(query, params).fetchall()


# -- migrations ------------------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_records_every_version(hook, pg_schema):
    assert hook.migrate() == ALL_VERSIONS
    tables = {
        row[0]
        for row in select(hook, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg_schema,))
    }
    assert {"customer", "contact_moment", "sync_state", "run_log", "sync_error", "api_ledger", "api_budget_state",
            "schema_migrations"} <= tables
    assert [r[0] for r in select(hook, "SELECT version FROM schema_migrations ORDER BY version")] == ALL_VERSIONS


def test_migrate_twice_changes_nothing(hook, pg_url, pg_schema):
    hook.migrate()
    before = catalog_snapshot(pg_url, pg_schema)
    assert hook.migrate() == []
    assert DeployteqHook(hook.deployteq_conn_id).migrate() == []
    assert catalog_snapshot(pg_url, pg_schema) == before


def test_failing_migration_is_rolled_back_whole_and_not_recorded(hook, tmp_path):
    for migration in discover_migrations():
        (tmp_path / migration.filename).write_text(migration.sql())
    broken = tmp_path / f"{len(ALL_VERSIONS) + 1:04d}_broken.sql"
    broken.write_text("CREATE TABLE half_done (id integer);\nSELECT 1 / 0;\n")
    hook.migrations_dir = tmp_path

    with pytest.raises(RuntimeError, match=broken.name):
        hook.migrate()

    assert select(hook, "SELECT to_regclass('half_done')") == [(None,)]
    assert [r[0] for r in select(hook, "SELECT version FROM schema_migrations ORDER BY version")] == ALL_VERSIONS
    broken.write_text("CREATE TABLE half_done (id integer);\n")
    assert hook.migrate() == [len(ALL_VERSIONS) + 1]


CONCURRENT_MIGRATE = """
import json, sys
from tests import airflow_env
airflow_env.configure()
from deployteq_salesforce.hooks.deployteq import DeployteqHook
hook = DeployteqHook()
hook.connection, hook.schema_name  # resolve everything slow before the start signal
print("READY", flush=True)
sys.stdin.readline()
print("APPLIED " + json.dumps(hook.migrate()), flush=True)
"""


def test_two_processes_migrating_at_once_both_succeed_and_apply_each_version_once(deployteq_conn_id, pg_url, pg_schema):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_MIGRATE], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            while (line := process.stdout.readline()) and not line.startswith("READY"):
                pass
            assert line.startswith("READY"), process.stderr.read()
        for process in processes:  # both start migrating at (nearly) the same moment
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            process.kill() if process.poll() is None else None

    applied = []
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        applied.append(json.loads(next(l for l in out.splitlines() if l.startswith("APPLIED "))[len("APPLIED "):]))
    assert sorted(applied[0] + applied[1]) == ALL_VERSIONS
    with psycopg.connect(pg_url) as conn:
        versions = conn.execute(
            sql.SQL("SELECT version FROM {} ORDER BY version").format(sql.Identifier(pg_schema, "schema_migrations"))
        ).fetchall()
    assert [v[0] for v in versions] == ALL_VERSIONS


# -- connections -------------------------------------------------------------------------------------------


def test_connect_sets_search_path_to_the_schema(store, pg_schema):
    with store.connect() as conn:
        assert conn.execute("SELECT current_schemas(false)").fetchone()[0] == [pg_schema, "public"]
        conn.execute("INSERT INTO sync_state (flow) VALUES ('unqualified')")
    qualified = sql.SQL("SELECT flow FROM {}").format(sql.Identifier(pg_schema, "sync_state"))
    assert select(store, qualified) == [("unqualified",)]


def backend_pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_connect_opens_a_new_connection_per_block_outside_reusing_connections(store):
    with store.connect() as first:
        pid = backend_pid(first)
    assert first.closed
    with store.connect() as second:
        assert backend_pid(second) != pid


def test_reusing_connections_keeps_one_connection_per_thread_and_commits_each_block(store, pg_url, pg_schema):
    with store.reusing_connections():
        with store.connect() as conn:
            pid = backend_pid(conn)
            conn.execute("INSERT INTO sync_state (flow) VALUES ('kept')")
        # committed when the block ended: another session sees it
        with psycopg.connect(pg_url) as other:
            assert other.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE flow = 'kept'").format(sql.Identifier(pg_schema, "sync_state"))
            ).fetchone()[0] == 1
        with store.connect() as again:
            assert again is conn and backend_pid(again) == pid
            assert again.execute("SELECT current_schemas(false)").fetchone()[0] == [pg_schema, "public"]
        with store.connect() as outer, store.connect() as inner:  # nested blocks: two transactions, two connections
            assert inner is not outer
    assert conn.closed and inner.closed  # closed when reusing_connections ends


def test_a_failed_block_rolls_back_and_its_connection_is_used_again(store):
    with store.reusing_connections():
        with pytest.raises(ZeroDivisionError):
            with store.connect() as conn:
                conn.execute("INSERT INTO sync_state (flow) VALUES ('rolled back')")
                1 / 0
        with store.connect() as again:
            assert again is conn
            assert again.execute("SELECT count(*) FROM sync_state WHERE flow = 'rolled back'").fetchone()[0] == 0
        with store.connect() as again:
            again.autocommit = True  # session state a block changes (as migrate() does) does not reach the next block
        with store.connect() as third:
            assert third is conn and not third.autocommit


def test_each_thread_keeps_its_own_connection(store):
    import threading

    pids = {}

    def work(name):
        for _ in range(2):
            with store.connect() as conn:
                pids.setdefault(name, set()).add(backend_pid(conn))

    with store.reusing_connections():
        threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(pids["a"]) == len(pids["b"]) == 1 and pids["a"] != pids["b"]


def test_a_kept_connection_the_server_ended_is_replaced(store, pg_url, monkeypatch):
    import deployteq_salesforce.hooks.deployteq as deployteq_module

    monkeypatch.setattr(deployteq_module, "KEPT_CONNECTION_CHECK_SECONDS", 0.0)
    with store.reusing_connections():
        with store.connect() as conn:
            pid = backend_pid(conn)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)
        with store.connect() as fresh:
            assert backend_pid(fresh) != pid
    assert conn.closed


def test_schema_with_odd_characters_is_quoted(pg_url, monkeypatch):
    odd = 'Odd "Schema" name'
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_ODD", json.dumps(postgres_connection(pg_url, deployteq_schema=odd)))
    try:
        store = DeployteqHook("deployteq_odd")
        assert store.migrate() == ALL_VERSIONS
        store.set_watermark("flow", Watermark(T0, "a"))
        assert store.get_watermark("flow") == Watermark(T0, "a")
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(odd)))


def _unix_socket_connection(pg_url: str, schema: str) -> dict | None:
    """The test server reached through its unix socket (a directory as host), when it has one here."""
    conn_info = postgres_connection(pg_url, deployteq_schema=schema)
    if conn_info["host"].startswith("/"):
        return conn_info  # the embedded server's URL already is a socket URL
    with psycopg.connect(pg_url) as conn:
        directories = conn.execute("SHOW unix_socket_directories").fetchone()[0]
        port = conn.execute("SHOW port").fetchone()[0]
    for directory in (d.strip() for d in directories.split(",")):
        if directory and Path(directory, f".s.PGSQL.{port}").exists():
            return {**conn_info, "host": directory, "port": int(port)}
    return None


def test_unix_socket_host_works(pg_url, pg_schema, monkeypatch):
    conn_info = _unix_socket_connection(pg_url, pg_schema)
    if conn_info is None:
        pytest.skip("the test server has no unix socket on this machine")
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_SOCKET", json.dumps(conn_info))
    store = DeployteqHook("deployteq_socket")
    assert store.migrate() == ALL_VERSIONS
    with store.connect() as conn:
        assert conn.info.host.startswith("/")
        assert conn.execute("SELECT count(*) FROM customer").fetchone() == (0,)


def test_test_connection_reports_server_schema_and_version(hook, pg_schema):
    ok, message = hook.test_connection()
    assert ok and "does not exist yet" in message
    hook.migrate()
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith("Connected to PostgreSQL ")
    assert f"schema {pg_schema} (migrations at version {ALL_VERSIONS[-1]})" in message


@pytest.mark.parametrize("conn_type", ["deployteq", "postgres"])
def test_connections_of_our_type_and_the_stock_type_both_work(pg_url, pg_schema, monkeypatch, conn_type):
    connection = {**postgres_connection(pg_url, deployteq_schema=pg_schema), "conn_type": conn_type}
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_TYPED", json.dumps(connection))
    hook = DeployteqHook("deployteq_typed")

    assert hook.migrate() == ALL_VERSIONS
    ok, message = hook.test_connection()
    assert ok and message.endswith(f"schema {pg_schema} (migrations at version {ALL_VERSIONS[-1]})")


def test_the_test_button_runs_our_test_for_our_connection_type(pg_url, pg_schema, monkeypatch):
    """What POST /api/v2/connections/test (the Test button) does: the form's connection as an AIRFLOW_CONN_*
    URI, then Connection.test_connection(), which picks the hook by conn_type."""
    from airflow.models.connection import Connection

    info = postgres_connection(pg_url, deployteq_schema=pg_schema)
    connection = Connection(conn_id="deployteq_form", **{**info, "conn_type": "deployteq", "extra": json.dumps(info["extra"])})
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_FORM", connection.get_uri())

    ok, message = connection.test_connection()

    assert ok, message
    assert message.startswith("Connected to PostgreSQL ") and f"schema {pg_schema} does not exist yet" in message


def test_test_connection_fails_plainly_without_the_password(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEPLOYTEQ_BROKEN",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "someone",
                    "password": "s3cret-Passw0rd", "schema": "test", "extra": {"connect_timeout": 3}}),
    )
    ok, message = DeployteqHook("deployteq_broken").test_connection()
    assert not ok
    assert "deployteq_broken" in message and "s3cret-Passw0rd" not in message


# -- copy_upsert ---------------------------------------------------------------------------------------------


CUSTOMER_COLUMNS = ["customer_id", "email", "city", "number_of_employees"]


def test_copy_upsert_counts_inserted_updated_and_unchanged(store):
    first = store.copy_upsert(
        "customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "Utrecht", 5), (2, "b@x.nl", "Gouda", 7)], ["customer_id"]
    )
    assert first == UpsertCounts(inserted=2, updated=0, unchanged=0)

    second = store.copy_upsert(
        "customer", CUSTOMER_COLUMNS,
        [(1, "a@x.nl", "Utrecht", 5), (2, "b@x.nl", "Delft", 7), (3, "c@x.nl", None, None)],
        ["customer_id"],
    )

    assert second == UpsertCounts(inserted=1, updated=1, unchanged=1)
    assert select(store, "SELECT customer_id, city FROM customer ORDER BY 1") == [(1, "Utrecht"), (2, "Delft"), (3, None)]


def test_copy_upsert_leaves_unchanged_rows_untouched(store):
    store.copy_upsert("customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "Utrecht", 5)], ["customer_id"])
    before = select(store, "SELECT xmin::text, updated_at FROM customer")
    assert store.copy_upsert("customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "Utrecht", 5)], ["customer_id"]).unchanged == 1
    assert select(store, "SELECT xmin::text, updated_at FROM customer") == before


def test_copy_upsert_updates_only_the_given_update_columns(store):
    store.copy_upsert("customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "Utrecht", 5)], ["customer_id"])
    counts = store.copy_upsert(
        "customer", CUSTOMER_COLUMNS, [(1, "new@x.nl", "Utrecht", 9)], ["customer_id"], update_columns=["email"]
    )
    assert counts == UpsertCounts(inserted=0, updated=1, unchanged=0)
    assert select(store, "SELECT email, number_of_employees FROM customer") == [("new@x.nl", 5)]


def test_copy_upsert_last_duplicate_key_wins(store):
    counts = store.copy_upsert(
        "customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "first", 1), (1, "a@x.nl", "last", 1)], ["customer_id"]
    )
    assert counts == UpsertCounts(inserted=1, updated=0, unchanged=0)
    assert select(store, "SELECT city FROM customer") == [("last",)]


def test_copy_upsert_rejects_a_row_without_key_and_writes_nothing(store):
    with pytest.raises(ValueError, match=r"row 2 has no value for key column 'customer_id'"):
        store.copy_upsert("customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "x", 1), (None, "b@x.nl", "y", 2)], ["customer_id"])
    assert select(store, "SELECT count(*) FROM customer") == [(0,)]


def test_copy_upsert_names_an_unknown_column(store):
    with pytest.raises(ValueError, match=r"has no columns \['shoe_size'\]"):
        store.copy_upsert("customer", ["customer_id", "shoe_size"], [(1, 44)], ["customer_id"])


def test_copy_upsert_streams_rows_to_the_server_while_they_are_produced(store, pg_url):
    """The server has received rows long before the generator is exhausted: nothing is collected first."""
    total, probe_at = 60_000, 40_000
    seen_by_server: list[int | None] = []
    with store.connect() as conn, psycopg.connect(pg_url, autocommit=True) as observer:
        pid = conn.info.backend_pid

        def rows():
            for i in range(1, total + 1):
                if i == probe_at:
                    for _ in range(50):  # psycopg hands data to the server in chunks, from a writer thread
                        row = observer.execute(
                            "SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = %s", (pid,)
                        ).fetchone()
                        if row and row[0]:
                            break
                        time.sleep(0.05)
                    seen_by_server.append(row[0] if row else None)
                yield (i, f"p{i}@x.nl", "Zwolle", i)

        counts = store.copy_upsert("customer", CUSTOMER_COLUMNS, rows(), ["customer_id"], conn=conn)
    assert counts.inserted == total
    assert seen_by_server and seen_by_server[0] and 0 < seen_by_server[0] < probe_at


def test_copy_upsert_and_copy_rows_quote_odd_identifiers(store):
    table = 'Klant "Data"'
    columns = ["Id", "first name", 'quote"d', "select", "payload"]
    with store.connect() as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} ({} text PRIMARY KEY, {} text, {} integer, {} boolean, {} json)").format(
                sql.Identifier(table), *map(sql.Identifier, columns)
            )
        )
    rows = [("a1", "Ann", 1, True, json.dumps({"x": 1})), ("a2", "Bob; DROP TABLE customer", 2, False, None)]
    assert store.copy_upsert(table, columns, rows, ["Id"]) == UpsertCounts(inserted=2, updated=0, unchanged=0)
    # json has no equality operator: unchanged json values must still count as unchanged
    changed = [rows[0], ("a2", "Bob", 2, False, None)]
    assert store.copy_upsert(table, columns, changed, ["Id"]) == UpsertCounts(inserted=0, updated=1, unchanged=1)

    stage = 'stage "x"'
    with store.connect() as conn:
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(sql.Identifier(stage), sql.Identifier(table))
        )
        assert store.copy_rows(stage, columns, iter(changed), conn=conn) == 2
        staged = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(sql.Identifier("first name"), sql.Identifier(stage))
        assert conn.execute(staged).fetchall() == [("Ann",), ("Bob",)]
    assert select(store, "SELECT count(*) FROM customer") == [(0,)]


def test_two_upserts_in_one_transaction_commit_or_roll_back_together(store):
    with pytest.raises(RuntimeError, match="boom"):
        with store.connect() as conn:
            store.copy_upsert("customer", CUSTOMER_COLUMNS, [(1, "a@x.nl", "x", 1)], ["customer_id"], conn=conn)
            store.copy_upsert("customer", CUSTOMER_COLUMNS, [(2, "b@x.nl", "y", 2)], ["customer_id"], conn=conn)
            assert conn.execute("SELECT count(*) FROM customer").fetchone() == (2,)
            raise RuntimeError("boom")
    assert select(store, "SELECT count(*) FROM customer") == [(0,)]


# -- timestamps maintained by triggers ------------------------------------------------------------------------


def test_customer_updated_at_moves_on_a_real_change_only(store):
    with store.connect() as conn:
        conn.execute("INSERT INTO customer (customer_id, email, updated_at) VALUES (1, 'a@x.nl', %s)", (T0,))
    with store.connect() as conn:
        conn.execute("UPDATE customer SET email = email")
    assert select(store, "SELECT updated_at FROM customer") == [(T0,)]
    with store.connect() as conn:
        conn.execute("UPDATE customer SET city = 'Breda'")
    (updated_at, now), = select(store, "SELECT updated_at, now() FROM customer")
    assert updated_at > T0 and now - updated_at < timedelta(minutes=1)


def test_contact_moment_changed_at_moves_on_update(store):
    with store.connect() as conn:
        conn.execute("INSERT INTO customer (customer_id) VALUES (1)")
        conn.execute(
            "INSERT INTO contact_moment (customer_id, sent_at, changed_at) VALUES (1, %s, %s)", (T0, T0)
        )
    with store.connect() as conn:
        conn.execute("UPDATE contact_moment SET open_count = open_count")
    assert select(store, "SELECT changed_at FROM contact_moment") == [(T0,)]
    with store.connect() as conn:
        conn.execute("UPDATE contact_moment SET open_count = open_count + 1, opened_first_at = %s", (T0,))
    assert select(store, "SELECT changed_at > %s FROM contact_moment", (T0,)) == [(True,)]


def test_salesforce_ids_may_move_between_customers_within_one_transaction(store):
    with store.connect() as conn:
        conn.execute("INSERT INTO customer (customer_id, sf_lead_id) VALUES (1, 'L1'), (2, NULL)")
    with store.connect() as conn:
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        conn.execute("UPDATE customer SET sf_lead_id = 'L1' WHERE customer_id = 2")
        conn.execute("UPDATE customer SET sf_lead_id = NULL WHERE customer_id = 1")
    assert select(store, "SELECT customer_id FROM customer WHERE sf_lead_id = 'L1'") == [(2,)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        with store.connect() as conn:
            conn.execute("UPDATE customer SET sf_lead_id = 'L1' WHERE customer_id = 1")


# -- run log -----------------------------------------------------------------------------------------------


def test_run_log_start_and_finish(store):
    run_log_id = store.start_run("sync:Lead", dag_id="sf_lead", run_id="manual__1")
    (running,) = store.recent_runs()
    assert (running["run_log_id"], running["outcome"], running["finished_at"]) == (run_log_id, "running", None)

    store.finish_run(
        run_log_id, outcome="partial", counts={"fetched": 10, "inserted": 7, "errors": 3, "flags_reset": 4},
        message="3 records failed", api_requests=5,
    )

    (run,) = store.recent_runs("sync:Lead")
    assert run["outcome"] == "partial" and run["finished_at"] >= run["started_at"]
    assert (run["fetched"], run["inserted"], run["updated"], run["errors"], run["api_requests"]) == (10, 7, 0, 3, 5)
    assert run["details"] == {"flags_reset": 4}
    assert (run["dag_id"], run["run_id"], run["message"]) == ("sf_lead", "manual__1", "3 records failed")


def test_finish_run_rejects_unknown_outcomes_and_runs(store):
    run_log_id = store.start_run("sync:Lead")
    with pytest.raises(ValueError, match="outcome"):
        store.finish_run(run_log_id, outcome="done", counts={})
    with pytest.raises(LookupError, match=str(run_log_id + 1000)):
        store.finish_run(run_log_id + 1000, outcome="success", counts={})


def test_a_run_whose_worker_died_is_closed_as_crashed_with_its_progress(store, deployteq_conn_id):
    child = (
        "import os, sys\n"
        "from tests import airflow_env\n"
        "airflow_env.configure()\n"
        "sys.path.insert(0, 'plugins')\n"
        "from deployteq_salesforce.hooks.deployteq import DeployteqHook\n"
        f"hook = DeployteqHook({deployteq_conn_id!r})\n"
        "run_log_id = hook.start_run('sync:Lead', dag_id='sf_lead', run_id='scheduled__1')\n"
        "with hook.connect() as conn:\n"
        "    hook.record_progress(run_log_id, {'fetched': 5000, 'inserted': 4000, 'updated': 1000}, conn=conn)\n"
        "os._exit(0)  # the worker dies: no finish_run\n"
    )
    subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=os.environ.copy(), check=True)
    (orphan,) = store.recent_runs("sync:Lead")
    assert orphan["outcome"] == "running"

    next_run = store.start_run("sync:Lead")

    crashed = next(r for r in store.recent_runs("sync:Lead") if r["run_log_id"] == orphan["run_log_id"])
    assert crashed["outcome"] == "crashed" and crashed["finished_at"] is not None
    assert "5000 fetched, 4000 inserted, 1000 updated" in crashed["message"] and "UTC" in crashed["message"]
    assert (crashed["fetched"], crashed["inserted"]) == (5000, 4000)
    store.finish_run(next_run, outcome="success", counts={})


def test_a_live_run_is_never_closed_as_crashed(store, deployteq_conn_id):
    running = store.start_run("sync:Lead")
    other_worker = DeployteqHook(deployteq_conn_id)

    assert other_worker.close_crashed_runs("sync:Lead") == []
    assert store.recent_runs("sync:Lead")[0]["outcome"] == "running"
    store.finish_run(running, outcome="success", counts={})
    assert other_worker.close_crashed_runs("sync:Lead") == []


def test_a_limited_run_is_reopened_by_its_resumed_task(store):
    run_log_id = store.start_run("sync:Lead")
    store.finish_run(run_log_id, outcome="limited", counts={"fetched": 10}, message="budget")

    assert store.reopen_run(run_log_id) == run_log_id
    (run,) = store.recent_runs("sync:Lead")
    assert (run["outcome"], run["finished_at"], run["message"], run["fetched"]) == ("running", None, None, 10)
    store.finish_run(run_log_id, outcome="success", counts={"fetched": 25})
    with pytest.raises(LookupError):
        store.reopen_run(run_log_id)  # only a limited run can be continued


def test_recent_runs_newest_first_per_flow_and_limited(store):
    ids = [store.start_run(flow) for flow in ("a", "b", "a", "a")]
    assert [r["run_log_id"] for r in store.recent_runs()] == ids[::-1]
    assert [r["run_log_id"] for r in store.recent_runs("a", limit=2)] == [ids[3], ids[2]]


# -- record errors -----------------------------------------------------------------------------------------


def test_recording_an_open_error_again_bumps_retry_count_and_last_seen(store):
    store.record_errors("sync:Lead", [RecordError("00Q1", "INVALID_EMAIL", {"field": "Email"}), RecordError("00Q2", "x")])
    (first,) = [e for e in store.open_errors("sync:Lead") if e["record_id"] == "00Q1"]
    assert first["retry_count"] == 0 and first["detail"] == {"field": "Email"}

    store.record_errors("sync:Lead", [RecordError("00Q1", "STILL_INVALID")])

    (again,) = [e for e in store.open_errors("sync:Lead") if e["record_id"] == "00Q1"]
    assert again["sync_error_id"] == first["sync_error_id"]
    assert (again["retry_count"], again["reason"]) == (1, "STILL_INVALID")
    assert again["last_seen"] > first["last_seen"] and again["first_seen"] == first["first_seen"]


def test_resolved_errors_leave_the_open_list_and_a_new_failure_opens_a_new_row(store):
    store.record_errors("sync:Lead", [RecordError("00Q1", "bad"), RecordError("00Q2", "bad")])
    assert store.resolve_errors("sync:Lead", ["00Q1", "unknown"]) == 1
    assert [e["record_id"] for e in store.open_errors()] == ["00Q2"]

    store.record_errors("sync:Lead", [RecordError("00Q1", "bad again")])

    rows = select(
        store, "SELECT retry_count, resolved_at IS NULL FROM sync_error WHERE record_id = '00Q1' ORDER BY sync_error_id"
    )
    assert rows == [(0, False), (0, True)]


def test_errors_are_kept_per_flow_and_duplicates_in_one_call_keep_the_last(store):
    store.record_errors("sync:Lead", [RecordError("X", "first"), RecordError("X", "second")])
    store.record_errors("sync:Contact", [RecordError("X", "other flow")])
    open_now = [(e["flow"], e["reason"]) for e in store.open_errors(limit=10)]
    assert open_now == [("sync:Contact", "other flow"), ("sync:Lead", "second")]
    assert [e["reason"] for e in store.open_errors("sync:Lead")] == ["second"]


# -- watermarks ----------------------------------------------------------------------------------------------


def test_watermark_round_trip(store):
    assert store.get_watermark("sync:Lead") is None
    store.set_watermark("sync:Lead", Watermark(T0, "00Q000000000001"))
    assert store.get_watermark("sync:Lead") == Watermark(T0, "00Q000000000001")
    store.set_watermark("sync:Lead", Watermark(T0 + timedelta(seconds=1), None))
    assert store.get_watermark("sync:Lead") == Watermark(T0 + timedelta(seconds=1), None)
    assert store.get_watermark("sync:Contact") is None


def test_watermark_comes_back_in_utc_whatever_the_session_time_zone(store):
    store.set_watermark("sync:Lead", Watermark(T0, None))
    with store.connect() as conn:
        conn.execute("SET TIME ZONE 'Europe/Amsterdam'")
        watermark = store.get_watermark("sync:Lead", conn=conn)
    assert watermark.modstamp == T0 and watermark.modstamp.utcoffset() == timedelta(0)


def test_watermark_commits_with_the_callers_transaction(store):
    with pytest.raises(RuntimeError):
        with store.connect() as conn:
            store.set_watermark("sync:Lead", Watermark(T0, "a"), conn=conn)
            raise RuntimeError("the batch failed")
    assert store.get_watermark("sync:Lead") is None


def test_watermark_without_time_zone_is_refused(store):
    with pytest.raises(ValueError, match="time zone"):
        store.set_watermark("sync:Lead", Watermark(datetime(2024, 1, 1), None))


def test_table_columns_lists_types_in_table_order(store):
    columns = store.table_columns("customer")
    assert list(columns)[:3] == ["customer_id", "email", "email_key"]
    assert (columns["birth_date"], columns["annual_revenue"], columns["sf_system_modstamp"]) == (
        "date", "numeric", "timestamp with time zone",
    )
    assert store.table_columns("no_such_table") == {}



def test_insert_new_rows_inserts_new_rows_and_upserts_when_a_key_is_there_inside_the_callers_transaction(store):
    from deployteq_salesforce.core.writes import insert_new_rows

    insert = "INSERT INTO source_record (sf_id, values_hash) SELECT * FROM unnest(%b::text[], %b::bytea[])"
    upsert = insert + " ON CONFLICT (sf_id) DO UPDATE SET values_hash = excluded.values_hash"
    with store.connect() as conn:
        insert_new_rows(conn, insert, upsert, (["00Q1", "00Q2"], [b"a", b"b"]))  # new: the plain INSERT
        insert_new_rows(conn, insert, upsert, (["00Q2", "00Q3"], [b"B", b"c"]))  # 00Q2 is there: the upsert
        insert_new_rows(conn, insert, upsert, (["00Q3"], [b"C"]), probably_new=False)
    with pytest.raises(RuntimeError), store.connect() as conn:
        insert_new_rows(conn, insert, upsert, (["00Q1", "00Q4"], [b"x", b"d"]))
        raise RuntimeError("the caller's transaction fails: what was written with it goes too")
    rows = select(store, "SELECT sf_id, values_hash FROM source_record ORDER BY sf_id")
    assert [(sf_id, bytes(value)) for sf_id, value in rows] == [("00Q1", b"a"), ("00Q2", b"B"), ("00Q3", b"C")]
