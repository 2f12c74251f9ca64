"""Fixtures of the UI tests: Airflow's SimpleAuthManager with one user per role, a seeded store, a client."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

USERS = {"viewer": "viewer", "user": "user", "op": "op", "admin": "admin"}  # username -> SimpleAuthManager role

OBJECTS_CONFIG = {
    "objects": [
        {
            "sobject": "Lead",
            "unique_field": "id",
            "mappings": [
                {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True},
                {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
                {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
                {
                    "salesforce_field": "LeadSource",
                    "deployteq_type": "text",
                    "deployteq_field": "lead_source",
                    "translations": {"Web": "Website", "Other": "Overig"},
                },
            ],
        },
        {
            "sobject": "Contact",
            "unique_field": "id",
            "mappings": [
                {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_contact_id", "unique_key": True},
                {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
            ],
        },
    ]
}
OBJECTS_TEXT = json.dumps(OBJECTS_CONFIG, indent=2)
SYNC_DAG = "salesforce_lead_to_deployteq"
CAMPAIGN_DAG = "deployteq_campaign_synchronize"


@pytest.fixture(scope="session")
def auth_manager(tmp_path_factory):
    """Airflow's SimpleAuthManager, initialised like the API server does, with a user per role."""
    import os

    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{u}:{r}" for u, r in USERS.items())
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(tmp_path_factory.mktemp("auth") / "passwords.json")
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    from airflow.api_fastapi.app import init_auth_manager

    return init_auth_manager()


@pytest.fixture(scope="session")
def tokens(auth_manager) -> dict[str, str]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return {name: auth_manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role)) for name, role in USERS.items()}


@pytest.fixture
def objects_variable(airflow_db):
    """The configured-objects Variable in the metadata DB for one test (removed afterwards)."""
    from airflow.models import Variable

    from deployteq_salesforce.flows.customers.config import VARIABLE_NAME

    Variable.set(VARIABLE_NAME, OBJECTS_TEXT, description="configured objects (ui test)")
    yield VARIABLE_NAME
    Variable.delete(VARIABLE_NAME)


def seed_store(hook) -> dict:
    """Rows in every table the pages read; returns ids the tests look for."""
    hook.migrate()
    now = datetime.now(timezone.utc)
    with hook.connect() as conn:
        for hours_ago, outcome, fetched in ((5, "success", 120), (3, "partial", 40), (1, "success", 7)):
            started = now - timedelta(hours=hours_ago)
            conn.execute(
                "INSERT INTO run_log (flow, dag_id, run_id, started_at, finished_at, outcome, fetched, inserted, updated, "
                "errors, api_requests, message) VALUES ('sync:Lead', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (SYNC_DAG, f"scheduled__{hours_ago}", started, started + timedelta(seconds=42), outcome, fetched,
                 fetched - 2, 1, 1 if outcome == "partial" else 0, 3, f"run {hours_ago}h ago"),
            )
        error_ids = [
            conn.execute(
                "INSERT INTO sync_error (flow, record_id, reason, retry_count) VALUES ('sync:Lead', %s, %s, %s) "
                "RETURNING sync_error_id",
                (record_id, reason, retries),
            ).fetchone()[0]
            for record_id, reason, retries in (
                ("00Q000000000001AAA", "DUPLICATE_VALUE: e-mail already used by 00Q000000000009AAA", 2),
                ("00Q000000000002AAA", "email 'not-an-address' is not an e-mail address", 0),
            )
        ]
        for minutes_ago, flow, count in ((10, "sync:Lead", 30), (70, "sync:Lead", 12), (130, "contact_moments", 5)):
            conn.execute(
                "INSERT INTO api_ledger (budget_key, requested_at, flow, method, endpoint, status_code) "
                "SELECT 'https://org.example', %s, %s, 'GET', 'query', 200 FROM generate_series(1, %s)",
                (now - timedelta(minutes=minutes_ago), flow, count),
            )
        conn.execute(
            "INSERT INTO api_budget_state (budget_key, blocked_since, blocked_until, block_message, daily_used, daily_max, observed_at) "
            "VALUES ('https://org.example', %s, %s, 'TotalRequests Limit exceeded.', 14000, 15000, %s)",
            (now - timedelta(minutes=20), now + timedelta(hours=3), now),
        )
        customer_id = conn.execute(
            "INSERT INTO customer (email, sf_lead_id, status) VALUES ('a@example.com', '00Q000000000001AAA', 'Prospect') "
            "RETURNING customer_id"
        ).fetchone()[0]
        moments = [
            conn.execute(
                "INSERT INTO contact_moment (customer_id, mailing_name, sent_at) VALUES (%s, %s, %s) RETURNING contact_moment_id",
                (customer_id, f"Mailing {n}", now - timedelta(days=n)),
            ).fetchone()[0]
            for n in (1, 2, 3)
        ]
        tables = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        if "contact_moment_sync" in tables:  # one moment sent and unchanged since: two unsent
            conn.execute(
                "INSERT INTO contact_moment_sync (contact_moment_id, synced_changed_at, sent_at) "
                "SELECT contact_moment_id, changed_at, now() FROM contact_moment WHERE contact_moment_id = %s",
                (moments[0],),
            )
        if "synchronize_outcome" in tables:
            conn.execute(
                "INSERT INTO synchronize_run (run_key, dag_id, task_id, run_id, sobject) VALUES ('k1', %s, 'synchronize', 'manual__1', 'Lead')",
                (CAMPAIGN_DAG,),
            )
            for cid, exit_, reason in ((customer_id, "on_success", None), (customer_id + 1000, "on_error", "no Salesforce lead or contact id (R15)")):
                conn.execute(
                    "INSERT INTO synchronize_outcome (run_key, customer_id, exit, reason, status_code) VALUES ('k1', %s, %s, %s, %s)",
                    (cid, exit_, reason, "MISSING_SALESFORCE_ID" if reason else None),
                )
    return {"error_ids": error_ids, "tables": tables}


@pytest.fixture
def seeded(deployteq_conn_id):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    return seed_store(DeployteqHook(deployteq_conn_id))


def shipped_variable(name: str) -> str:
    """A Variable's value as airflow_settings.yaml ships it."""
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    return next(v for v in settings["airflow"]["variables"] if v["variable_name"] == name)["variable_value"]


@pytest.fixture
def object_links(airflow_db):
    """The demo's object-links Variable (airflow_settings.yaml) for one test; its document is returned."""
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME, load_object_links

    links = json.loads(shipped_variable(VARIABLE_NAME))
    load_object_links(links)  # the demo's links are valid
    Variable.set(VARIABLE_NAME, json.dumps(links))
    yield links
    Variable.delete(VARIABLE_NAME)


@pytest.fixture
def airflow_dag(airflow_db):
    """``airflow_dag(dag_id, paused=..., next_run=...)``: the DAG as Airflow's metadata has it, for one test."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, insert, update

    created, changed = [], []

    def make(dag_id: str, *, paused: bool = False, next_run: datetime | None = None) -> None:
        with create_session() as session:
            if session.get(DagBundleModel, "ui-test") is None:
                session.add(DagBundleModel(name="ui-test"))
                session.flush()
            existing = session.get(DagModel, dag_id)
            if existing is None:
                session.execute(insert(DagModel.__table__).values(
                    dag_id=dag_id, bundle_name="ui-test", max_active_tasks=16, max_consecutive_failed_dag_runs=0,
                    has_task_concurrency_limits=False, is_paused=paused, is_stale=False, next_dagrun_create_after=next_run,
                ))
                created.append(dag_id)
            else:  # another test's dag.test() made it: change it for this test only
                changed.append((dag_id, existing.is_paused, existing.next_dagrun_create_after))
                existing.is_paused, existing.next_dagrun_create_after = paused, next_run

    yield make
    with create_session() as session:
        for dag_id, paused, next_run in changed:
            session.execute(update(DagModel.__table__).where(DagModel.dag_id == dag_id).values(
                is_paused=paused, next_dagrun_create_after=next_run))
        session.execute(delete(DagModel.__table__).where(DagModel.dag_id.in_(created)))


@pytest.fixture
def airflow_task_instance(airflow_dag):
    """``airflow_task_instance(dag_id, run_id, task_id, operator)``: a task Airflow ran, for one test."""
    import uuid6
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import delete, insert

    made = []

    def make(dag_id: str, run_id: str, task_id: str, operator: str) -> None:
        with create_session() as session:
            if session.get(DagModel, dag_id) is None:
                airflow_dag(dag_id)
            session.execute(insert(DagRun.__table__).values(
                dag_id=dag_id, run_id=run_id, run_type="scheduled", data_interval_end=None, logical_date=None,
                run_after=datetime.now(timezone.utc),
            ))
            session.execute(insert(TaskInstance.__table__).values(
                id=uuid6.uuid7(), dag_id=dag_id, run_id=run_id, task_id=task_id, pool="default_pool", operator=operator, map_index=-1,
            ))
        made.append((dag_id, run_id))

    yield make
    with create_session() as session:
        for dag_id, run_id in made:
            session.execute(delete(TaskInstance.__table__).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id))
            session.execute(delete(DagRun.__table__).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


@pytest.fixture
def ui_app(auth_manager, salesforce_conn_id, deployteq_conn_id, objects_variable):
    from deployteq_salesforce.ui.app import create_app

    return create_app()


@pytest.fixture
def client_for(ui_app, tokens):
    """``client_for("viewer")``: a TestClient that is logged in like the browser (the ``_token`` cookie)."""
    from fastapi.testclient import TestClient

    clients = []

    def make(user: str | None) -> TestClient:
        client = TestClient(ui_app, base_url="http://testserver")
        if user is not None:
            client.cookies.set("_token", tokens[user])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
