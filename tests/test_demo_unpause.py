"""The demo environment switches its DAGs on, except those a person paused."""

from __future__ import annotations

import pytest

from include.demo_unpause import unpause_project_dags
from tests.ui.conftest import airflow_dag  # noqa: F401 - the fixture

DAGS = ("demo_test_created_paused", "demo_test_paused_by_hand", "demo_test_running")


def is_paused(dag_id: str) -> bool:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagModel, dag_id).is_paused


@pytest.fixture
def audit_log(airflow_db):
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    def record(event: str, dag_id: str | None) -> None:
        with create_session() as session:
            session.add(Log(event=event, dag_id=dag_id, owner="admin"))

    yield record
    with create_session() as session:
        session.execute(delete(Log).where(Log.dag_id.in_(DAGS) | (Log.event == "patch_dags")))


def test_paused_dags_are_switched_on_unless_a_person_paused_them(airflow_dag, audit_log):
    airflow_dag(DAGS[0], paused=True)
    airflow_dag(DAGS[1], paused=True)
    airflow_dag(DAGS[2], paused=False)
    audit_log("patch_dag", DAGS[1])  # the pause switch in Airflow's UI

    assert unpause_project_dags(DAGS) == [DAGS[0]]

    assert [is_paused(dag) for dag in DAGS] == [False, True, False]
    assert unpause_project_dags(DAGS) == []  # nothing left to do: running it again changes nothing


def test_a_bulk_pause_leaves_every_switch_alone(airflow_dag, audit_log):
    airflow_dag(DAGS[0], paused=True)
    audit_log("patch_dags", None)

    assert unpause_project_dags(DAGS) == []
    assert is_paused(DAGS[0])
