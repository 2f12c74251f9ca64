"""Example campaign: customers whose preferences changed -> Salesforce Synchronize -> four exits (R13-R15).

A Deployteq preference centre queues every customer whose newsletter / e-mail opt-in changed in
the table ``campaign_preference_change``.  Each run:

1. ``preference_queue`` makes sure the queue exists.
2. ``synchronize`` sends Newsletter__c and Email_Opt_In__c of the queued customers to their lead or
   contact (``sobject="auto"``: contact id if known, else lead id; matched on the Salesforce Id).
3. The exits: ``on_success`` marks them synced, ``on_error`` records them for follow-up (open errors
   of flow ``campaign:preferences``, visible in the Integrations page) and takes them off the queue
   until their preferences change again, ``on_limit`` leaves them queued for the next run, and
   ``continue`` goes on to the next campaign step (here: a summary).

It runs every 15 minutes and, in between, as soon as a Lead/Contact sync changed customers (the
asset alias ``DEPLOYTEQ_CUSTOMERS``): a preference changed in Salesforce and synced in is checked at once.

In ``make demo`` the demo plays the preference centre before this DAG runs (include/demo_campaign.py).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from deployteq_salesforce.assets import DEPLOYTEQ_CUSTOMERS
from deployteq_salesforce.core.variables import schedule_for
from deployteq_salesforce.flows.synchronize.operator import (
    SalesforceSynchronizeOperator,
    synchronize_exit_ids,
    synchronize_exit_outcomes,
    synchronize_exits,
)

FLOW = "campaign:preferences"
QUEUE_DDL = """
CREATE TABLE IF NOT EXISTS campaign_preference_change (
    customer_id     bigint PRIMARY KEY REFERENCES customer (customer_id) ON DELETE CASCADE,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    synced_at       timestamptz,
    needs_follow_up boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    last_exit       text
)
"""
SELECTION = (
    "SELECT customer_id FROM campaign_preference_change WHERE synced_at IS NULL AND NOT needs_follow_up "
    "ORDER BY changed_at, customer_id"
)


def _store():
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    hook = DeployteqHook()
    hook.migrate()
    return hook


with DAG(
    dag_id="deployteq_campaign_synchronize",
    description="Campaign step: changed preferences -> Salesforce Synchronize -> on_success/on_error/on_limit/continue",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(schedule_for("deployteq_campaign_synchronize", "*/15 * * * *"), timezone="UTC"),
        assets=DEPLOYTEQ_CUSTOMERS,
    ),
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    # demo-stage 40: after the Lead/Contact syncs (10) that bring the customers, and the contact moments (30)
    tags=["deployteq", "deployteq-demo", "demo-stage:40", "campaign"],
    doc_md=__doc__,
    default_args={"owner": "deployteq", "retries": 1},
):

    @task
    def preference_queue() -> None:
        """The queue the preference centre fills (created on first use)."""
        with _store().connect() as conn:
            conn.execute(QUEUE_DDL)

    synchronize = SalesforceSynchronizeOperator(
        task_id="synchronize",
        sobject="auto",
        fields=["Newsletter__c", "Email_Opt_In__c"],
        selection_sql=SELECTION,
        pool="salesforce_api",
    )

    @task
    def mark_synced() -> int:
        ids = synchronize_exit_ids()
        store = _store()
        with store.connect() as conn:
            conn.execute(
                "UPDATE campaign_preference_change SET synced_at = now(), attempts = attempts + 1, last_exit = 'on_success' "
                "WHERE customer_id = ANY(%s)",
                (ids,),
            )
            store.resolve_errors(FLOW, [str(i) for i in ids], conn=conn)  # an earlier follow-up is settled now
        return len(ids)

    @task
    def record_for_follow_up() -> int:
        from deployteq_salesforce.core.store import RecordError

        failed = synchronize_exit_outcomes()
        store = _store()
        with store.connect() as conn:
            store.record_errors(FLOW, [
                RecordError(str(o["customer_id"]), o["reason"] or "failed",
                            {"sobject": o["sobject"], "sf_id": o["sf_id"], "status_code": o["status_code"]})
                for o in failed
            ], conn=conn)
            conn.execute(
                "UPDATE campaign_preference_change SET needs_follow_up = true, attempts = attempts + 1, "
                "last_exit = 'on_error' WHERE customer_id = ANY(%s)",
                ([o["customer_id"] for o in failed],),
            )
        return len(failed)

    @task
    def requeue_for_next_run() -> int:
        ids = synchronize_exit_ids()
        with _store().connect() as conn:  # still unsynced, so the next run selects them again
            conn.execute(
                "UPDATE campaign_preference_change SET last_exit = 'on_limit' WHERE customer_id = ANY(%s)", (ids,)
            )
        return len(ids)

    @task
    def next_campaign_step(**context) -> dict:
        summary = context["ti"].xcom_pull(task_ids="synchronize")
        return {name: summary[name] for name in ("continue", "on_success", "on_error", "on_limit")}

    preference_queue() >> synchronize
    synchronize_exits(
        synchronize,
        on_success=mark_synced(),
        on_error=record_for_follow_up(),
        on_limit=requeue_for_next_run(),
        continue_=next_campaign_step(),
    )
