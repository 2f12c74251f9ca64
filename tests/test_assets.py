"""Asset events through Airflow's own path: a sync that changed customers queues and creates a run of the
campaign DAG scheduled on ``DEPLOYTEQ_CUSTOMERS`` (the scheduler's own decision); a sync that changed
nothing emits no event and queues nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.flows.customers.test_operator import LEAD, config, lead

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN_DAG = "deployteq_campaign_synchronize"
LEAD_DAG = "salesforce_lead_to_deployteq"

pytestmark = pytest.mark.slow


def _events(session, uri: str):
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent, AssetModel

    return session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri).order_by(AssetEvent.id)).all()


def _scheduler_creates_runs(session) -> list[str]:
    """What the scheduler's loop does to create DAG runs (``_create_dagruns_for_dags``); the run ids of
    the campaign DAG's asset-triggered runs afterwards."""
    from sqlalchemy import select

    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.sqlalchemy import prohibit_commit
    from airflow.utils.types import DagRunType

    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)
    return session.scalars(
        select(DagRun.run_id).where(DagRun.dag_id == CAMPAIGN_DAG, DagRun.run_type == DagRunType.ASSET_TRIGGERED)
    ).all()


def test_a_sync_that_changed_customers_triggers_the_campaign_dag_and_a_no_op_sync_does_not(
    airflow_db, monkeypatch, emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema
):
    from sqlalchemy import update

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECTS", json.dumps(config(LEAD)))
    emulator.seed("Lead", [lead(n) for n in range(3)])
    emulator.advance_clock(2)
    # the DAG processor's part: the dags folder in the metadata DB, the campaign DAG switched on
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name, safe_mode=False)
    assert bag.import_errors == {}
    sync_bag_to_db(bag, bundle.name, None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == CAMPAIGN_DAG).values(is_paused=False))
    host_db = pg_url.split("@", 1)[1]  # 127.0.0.1:5432/test
    customer_uri = f"postgres://{host_db}/{pg_schema}/customer"

    assert "success" in str(bag.dags[LEAD_DAG].test().state).lower()

    with create_session() as session:
        (event,) = _events(session, customer_uri)
        assert event.extra["inserted"] == 3 and event.extra["flow"] == "sync:Lead" and event.extra["outcome"] == "success"
        assert event.extra["watermark"]  # how far in Salesforce this run read
        assert [alias.name for alias in event.source_aliases] == ["deployteq_customers"]
        assert event.source_dag_id == LEAD_DAG
        triggered = _scheduler_creates_runs(session)
    assert len(triggered) == 1

    assert "success" in str(bag.dags[LEAD_DAG].test().state).lower()  # nothing changed in Salesforce

    with create_session() as session:
        assert len(_events(session, customer_uri)) == 1  # no event for a run that changed nothing
        assert _scheduler_creates_runs(session) == triggered  # and no new campaign run
