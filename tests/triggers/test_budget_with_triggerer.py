"""A sync stopped by the API budget waits in the real ``airflow triggerer`` and resumes through our trigger.

A real Airflow (``airflow standalone``: API server, scheduler with LocalExecutor, DAG processor,
triggerer) runs one DAG whose Lead sync finds the shared budget used up.  The task defers on
``BudgetTrigger``: while it waits it holds no worker and no pool slot, and when the test frees the
budget in the ledger (as requests leaving the hour would) the triggerer fires, and the same task
continues the same run: one run-log row, no second describe, every lead stored.
"""

from __future__ import annotations

import os
import uuid
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

from tests import airflow_env
from tests.ui.test_e2e_chromium import _free_port, _stop

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "budget_wait_it"
HOURLY_BUDGET = 3
DAG_FILE = f'''
from datetime import datetime, timedelta
from airflow.sdk import DAG
from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

with DAG("{DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    SalesforceToDeployteqOperator(
        task_id="sync_lead", sobject="Lead", pool="salesforce_api", retries=0,
        budget_poll_seconds=1, max_budget_wait=timedelta(minutes=10),
        object_config={{"objects": [{{"sobject": "Lead", "unique_field": "id", "mappings": [
            {{"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True}},
            {{"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"}}]}}]}},
    )
'''

pytestmark = pytest.mark.slow


@pytest.fixture
def metadata_db(pg_url):
    """Airflow's metadata DB in a database of its own on the test PostgreSQL server.

    Not SQLite: with the API server, scheduler and triggerer writing at once on a busy machine,
    SQLite's locking delays commits long enough for Airflow's scheduler to misread a finished task.
    """
    name = f"airflow_it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(pg_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    yield url
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def airflow(tmp_path, salesforce_conn_id, deployteq_conn_id, metadata_db):
    """``airflow standalone`` on its own home and metadata DB, with a 1-slot pool ``salesforce_api``."""
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)
    port = _free_port()
    env = {
        **os.environ,
        **airflow_env.airflow_test_environment(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db.replace("postgresql://", "postgresql+psycopg://", 1),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "it-" + os.urandom(64).hex(),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_HOURLY_BUDGET": str(HOURLY_BUDGET),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    metadata = metadata_db
    with psycopg.connect(metadata, autocommit=True) as db:
        db.execute("INSERT INTO slot_pool (pool, slots, description, include_deferred) "
                   "VALUES ('salesforce_api', 1, 'Salesforce API tasks', false)")
    log = open(tmp_path / "standalone.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield env, metadata, tmp_path / "standalone.log"
    finally:
        _stop(process)
        log.close()


def task_state(metadata: str) -> str | None:
    with psycopg.connect(metadata) as db:
        row = db.execute("SELECT state FROM task_instance WHERE dag_id = %s", (DAG_ID,)).fetchone()
    return row[0] if row else None


def dag_parsed(metadata: str) -> bool:
    with psycopg.connect(metadata) as db:
        return db.execute("SELECT count(*) FROM serialized_dag WHERE dag_id = %s", (DAG_ID,)).fetchone()[0] > 0


def api_server_up(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/api/v2/monitor/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def busy_pool_slots(metadata: str) -> int:
    with psycopg.connect(metadata) as db:
        return db.execute("SELECT count(*) FROM task_instance WHERE pool = 'salesforce_api' "
                          "AND state IN ('running', 'queued')").fetchone()[0]


def wait_for(condition, what: str, log: Path, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s; standalone log tail:\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))


def test_a_sync_waits_for_budget_in_the_triggerer_and_continues_the_same_run(airflow, emulator, pg_url, pg_schema):
    env, metadata, log = airflow
    emulator.seed("Lead", [{"LastName": f"Wacht{i}", "Company": "Acme"} for i in range(5)])
    from deployteq_salesforce.hooks.deployteq import DeployteqHook
    from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

    store = DeployteqHook("deployteq_default")
    store.migrate()
    budget_key = BudgetedSalesforceHook("salesforce_default").budget_settings.budget_key
    with store.connect() as conn:  # the hour's budget is used up by requests of other flows
        conn.execute(
            "INSERT INTO api_ledger (budget_key, requested_at, flow, method, endpoint) "
            "SELECT %s, clock_timestamp() - interval '50 minutes', 'other', 'GET', 'query/' FROM generate_series(1, %s)",
            (budget_key, HOURLY_BUDGET),
        )
    wait_for(lambda: dag_parsed(metadata), "the DAG processor parsing the DAG", log)
    # tasks reach the API server's execution API: on a busy machine it can come up after the scheduler
    wait_for(lambda: api_server_up(env["AIRFLOW__API__BASE_URL"]), "the API server answering", log)
    triggered = subprocess.run([sys.executable, "-m", "airflow", "dags", "trigger", DAG_ID], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
    assert triggered.returncode == 0, triggered.stderr[-2000:]

    wait_for(lambda: task_state(metadata) == "deferred", "the task deferring on the budget", log)
    wait_for(lambda: "state=deferred" in log.read_text(errors="replace"), "the scheduler seeing the deferring worker exit", log)
    assert busy_pool_slots(metadata) == 0, "a deferred task holds no pool slot"
    time.sleep(3)  # several polls of the trigger while the budget is still used up
    assert task_state(metadata) == "deferred"
    assert emulator.counters()["total"] == 0, "nothing was sent while the budget was used up"

    with store.connect() as conn:  # the other flows' requests leave the hour
        conn.execute("UPDATE api_ledger SET requested_at = requested_at - %s WHERE flow = 'other'", (timedelta(hours=1),))
    wait_for(lambda: task_state(metadata) in ("success", "failed", "skipped"), "the resumed task finishing", log)

    assert task_state(metadata) == "success"
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{pg_schema}"')
        runs = conn.execute("SELECT flow, outcome, fetched, inserted FROM run_log").fetchall()
        stored = conn.execute("SELECT count(*) FROM customer").fetchone()[0]
        errors = conn.execute("SELECT record_id, reason FROM sync_error").fetchall()
    assert runs == [("sync:Lead", "success", 5, 5)], f"one run, continued after the wait; errors: {errors}"
    assert stored == 5
    assert emulator.counters()["by_endpoint"].get("GET sobjects/Lead/describe") == 1
    trigger_logs = "".join(f.read_text(errors="replace") for f in Path(env["AIRFLOW_HOME"]).rglob("*.trigger.*.log"))
    assert "budget_available" in trigger_logs and "has room again" in trigger_logs  # our trigger's event
