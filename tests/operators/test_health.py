"""DeployteqHealthCheckOperator against the emulator and a real PostgreSQL, through dag.test()."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from deployteq_salesforce.operators.health import DeployteqHealthCheckOperator, org_daily_usage
from include.local_services import postgres_connection, salesforce_emulator_connection

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "deployteq_health_check.py"


@pytest.fixture
def health_dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=DAG_FILE, safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["deployteq_health_check"]


def run_log_rows(pg_url: str, schema: str) -> list[tuple]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(
            f'SELECT flow, outcome, api_requests, message FROM "{schema}".run_log ORDER BY run_log_id'
        ).fetchall()


def test_health_check_reports_both_connections(health_dag, salesforce_conn_id, deployteq_conn_id, emulator, pg_url, pg_schema):
    dag_run = health_dag.test()

    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")
    (ti,) = dag_run.get_task_instances()
    report = ti.xcom_pull(task_ids="check_connections")
    sent = emulator.counters()["total"]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        version = conn.execute(f'SELECT max(version) FROM "{pg_schema}".schema_migrations').fetchone()[0]

    assert report["deployteq"]["schema"] == pg_schema
    assert report["deployteq"]["migration_version"] == version >= 1
    assert report["deployteq"]["migrations_applied_now"]  # a fresh schema: everything was applied now
    assert report["salesforce"]["org_daily_api"]["max"] > 0
    assert report["api_requests"] == sent == 1  # one limits/ request, counted by us and by Salesforce
    assert [n for endpoint, n in emulator.counters()["by_endpoint"].items() if "limits" in endpoint] == [1]
    assert json.loads(json.dumps(report)) == report  # JSON-able for XCom
    assert run_log_rows(pg_url, pg_schema) == [("health_check", "success", sent, "connections OK")]


def test_failing_salesforce_connection_fails_the_task_with_the_plain_message(
    health_dag, emulator_process, emulator, deployteq_conn_id, monkeypatch, capfd, pg_url, pg_schema
):
    wrong = salesforce_emulator_connection(emulator_process.connection_json)
    wrong["password"] = "not-a-valid-session-id"
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(wrong))

    dag_run = health_dag.test()

    output = capfd.readouterr()
    assert "failed" in str(dag_run.state).lower()
    assert "Salesforce connection 'salesforce_default' does not work:" in output.out + output.err
    assert "not-a-valid-session-id" not in output.out + output.err
    assert [row[:2] for row in run_log_rows(pg_url, pg_schema)] == [("health_check", "failed")]


def test_failing_deployteq_connection_is_reported_plainly(monkeypatch, pg_url):
    broken = postgres_connection(pg_url)
    broken.update(host="127.0.0.1", port=1, login="postgres")  # nothing listens on port 1
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_DEFAULT", json.dumps(broken))
    operator = DeployteqHealthCheckOperator(task_id="check")

    with pytest.raises(Exception, match=r"^Deployteq connection 'deployteq_default' does not work: "):
        operator.execute({})


def test_conn_ids_are_validated_early():
    with pytest.raises(ValueError, match="salesforce_conn_id must be a non-empty string"):
        DeployteqHealthCheckOperator(task_id="check", salesforce_conn_id=" ")


def test_org_daily_usage_from_the_budget_status():
    from types import SimpleNamespace

    assert org_daily_usage(SimpleNamespace(org_daily_used=750, org_daily_max=15000)) == {
        "used": 750, "max": 15000, "remaining": 14250,
    }
    assert org_daily_usage(SimpleNamespace(org_daily_used=None, org_daily_max=None)) is None
