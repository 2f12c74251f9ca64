"""Shared fixtures: a real PostgreSQL (one schema per test) and the Salesforce emulator.

PostgreSQL comes from ``DEPLOYTEQ_TEST_DATABASE_URL`` (CI: 127.0.0.1:5432/test) or an
embedded ``pgserver`` under ``.state/test-postgres``.  Connections reach Airflow through
``AIRFLOW_CONN_*`` environment variables, as JSON.
"""

from __future__ import annotations

# The Airflow test environment (AIRFLOW_HOME under .state/airflow-test, no examples,
# dags/ and plugins/ of this repo) must be in place before anything imports Airflow.
from tests import airflow_env  # noqa: E402  (the repo root is on sys.path via pytest.ini)

airflow_env.configure()

import json
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
for extra_path in (ROOT, ROOT / "plugins"):
    if str(extra_path) not in sys.path:
        sys.path.insert(0, str(extra_path))

from include.local_services import (  # noqa: E402
    postgres_connection,
    postgres_url,
    salesforce_emulator_connection,
)


@pytest.fixture(scope="session")
def pg_url() -> str:
    return postgres_url("DEPLOYTEQ_TEST_DATABASE_URL", ROOT / ".state" / "test-postgres")


@pytest.fixture
def pg_schema(pg_url):
    """A fresh, empty PostgreSQL schema name for one test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def deployteq_conn_id(pg_url, pg_schema, monkeypatch) -> str:
    """``deployteq_default`` pointing at the test database, using this test's own schema."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEPLOYTEQ_DEFAULT",
        json.dumps(postgres_connection(pg_url, deployteq_schema=pg_schema)),
    )
    return "deployteq_default"


@pytest.fixture(scope="session")
def emulator_process(tmp_path_factory):
    """One emulator process for the whole session; each test resets it (see ``emulator``)."""
    from include.salesforce_emulator.process import start_emulator

    with start_emulator(tmp_path_factory.mktemp("sf-emulator")) as proc:
        yield proc


@pytest.fixture
def emulator(emulator_process):
    """Admin client of a freshly reset emulator (no records, default limits, counters at 0)."""
    client = emulator_process.client
    client.reset()
    return client


@pytest.fixture
def salesforce_conn_id(emulator, emulator_process, monkeypatch) -> str:
    """``salesforce_default`` pointing at the emulator."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE_DEFAULT",
        json.dumps(salesforce_emulator_connection(emulator_process.connection_json)),
    )
    return "salesforce_default"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata DB (SQLite under .state/airflow-test), migrated once per session.

    For tests that need it: ``dag.test()``, Variables/Connections/Pools in the DB, the settings loader.
    """
    airflow_env.migrate_metadata_db()
    return airflow_env.AIRFLOW_TEST_HOME / "airflow.db"
