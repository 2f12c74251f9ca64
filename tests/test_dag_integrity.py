"""Every file in dags/ parses into DAGs, fast, without errors and without touching the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"
MAX_PARSE_SECONDS_PER_FILE = 10.0


def shipped_variables() -> dict[str, str]:
    """The Variables of airflow_settings.yaml, as AIRFLOW_VAR_* environment variables."""
    settings = yaml.safe_load((DAGS_FOLDER.parent / "airflow_settings.yaml").read_text())
    return {
        f"AIRFLOW_VAR_{v['variable_name'].upper()}": str(v["variable_value"])
        for v in settings["airflow"].get("variables") or []
    }


@pytest.fixture(scope="module")
def parsed():
    """Parse dags/ once, with the shipped Variables, every socket connect refused (and recorded)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch = pytest.MonkeyPatch()
    for name, value in shipped_variables().items():
        monkeypatch.setenv(name, value)

    attempts: list[object] = []
    original_connect = socket.socket.connect

    def refuse(sock, address):
        attempts.append(address)
        raise OSError(f"network call at DAG parse time: connect({address!r})")

    socket.socket.connect = refuse
    try:
        bag = DagBag(dag_folder=DAGS_FOLDER, safe_mode=False)
    finally:
        socket.socket.connect = original_connect
        monkeypatch.undo()
    return bag, attempts


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))


def test_dag_files_import_without_errors(parsed):
    bag, _ = parsed
    assert bag.import_errors == {}


def test_parsing_makes_no_network_call(parsed):
    _, attempts = parsed
    assert attempts == []


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_every_dag_file_defines_a_dag(parsed, path):
    bag, _ = parsed
    assert [dag_id for dag_id, dag in bag.dags.items() if Path(dag.fileloc) == path], f"{path.name} defines no DAG"


def test_dag_files_parse_quickly(parsed):
    bag, _ = parsed
    slow = {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats
            if stat.duration.total_seconds() > MAX_PARSE_SECONDS_PER_FILE}
    assert slow == {}


def test_every_dag_is_tagged_deployteq(parsed):
    bag, _ = parsed
    assert {dag_id for dag_id, dag in bag.dags.items() if "deployteq" not in dag.tags} == set()


def test_health_check_dag_shape(parsed):
    bag, _ = parsed
    dag = bag.dags["deployteq_health_check"]

    assert dag.schedule is None
    assert set(dag.tags) == {"deployteq", "deployteq-demo"}
    assert [(t.task_id, type(t).__name__, t.pool) for t in dag.tasks] == [
        ("check_connections", "DeployteqHealthCheckOperator", "salesforce_api")
    ]


def test_unreadable_variable_is_an_import_error_naming_it(monkeypatch):
    """A Variable store that cannot be reached must not make the generated DAGs vanish silently."""
    import sqlalchemy.exc
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.variable import Variable

    def unreachable(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("SELECT variable", {}, Exception("could not connect to server"))

    monkeypatch.delenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECTS", raising=False)
    monkeypatch.setattr(Variable, "get", unreachable)
    bag = DagBag(dag_folder=DAGS_FOLDER / "salesforce_objects.py", safe_mode=False)

    assert bag.dags == {}
    (message,) = bag.import_errors.values()
    assert "'deployteq_salesforce_objects' could not be read" in message and "could not connect to server" in message


def test_fixed_schedules_are_overridden_by_the_schedules_variable(monkeypatch):
    """make soak (and ops) shorten the fixed schedules through configuration, not code edits."""
    from airflow.dag_processing.dagbag import DagBag

    for name, value in shipped_variables().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_SCHEDULES", '{"deployteq_contact_moments": "*/2 * * * *"}')
    bag = DagBag(dag_folder=DAGS_FOLDER, safe_mode=False)
    assert bag.import_errors == {}
    assert bag.dags["deployteq_contact_moments"].schedule == "*/2 * * * *"
    # a DAG the Variable does not name keeps its default (the campaign: its clock, besides the customers asset)
    assert bag.dags["deployteq_campaign_synchronize"].schedule.timetable.summary == "*/15 * * * *"


def test_the_campaign_runs_on_changed_customers_or_its_clock_and_the_variable_sets_the_clock(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.timetables.assets import AssetOrTimeSchedule

    from deployteq_salesforce.assets import DEPLOYTEQ_CUSTOMERS

    for name, value in shipped_variables().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_SCHEDULES", '{"deployteq_campaign_synchronize": "*/5 * * * *"}')
    bag = DagBag(dag_folder=DAGS_FOLDER / "deployteq_campaign_synchronize.py", safe_mode=False)
    schedule = bag.dags["deployteq_campaign_synchronize"].schedule
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable.summary == "*/5 * * * *"
    assert DEPLOYTEQ_CUSTOMERS.name in str(schedule.asset_condition)


def test_an_invalid_schedules_variable_is_an_import_error_naming_it(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_SCHEDULES", '{"deployteq_contact_moments": 5}')
    bag = DagBag(dag_folder=DAGS_FOLDER / "deployteq_contact_moments.py", safe_mode=False)
    (message,) = bag.import_errors.values()
    assert "deployteq_salesforce_schedules" in message and "dag_id -> cron expression" in message
