"""Example campaign: customers whose preferences changed -> Salesforce Synchronize -> four exits (R13-R15).

A Deployteq preference centre queues every customer whose newsletter / e-mail opt-in changed in
the table ``campaign_preference_change``.  Each run:

1. ``preference_centre`` makes sure the queue exists.  In the demo (Variable
   ``deployteq_campaign_demo`` = ``true``) it also plays the customers: it flips the preferences of a
   few customers that came from Salesforce and queues them, plus one Deployteq-only customer without a
   lead/contact id (R15: that one must end in ``on_error``).  Without the Variable it changes nothing.
2. ``synchronize`` sends Newsletter__c and Email_Opt_In__c of the queued customers to their lead or
   contact (``sobject="auto"``: contact id if known, else lead id; matched on the Salesforce Id).
3. The exits: ``on_success`` marks them synced, ``on_error`` records them for follow-up (open errors
   of flow ``campaign:preferences``, visible in the demo report and the Integrations page) and takes them
   off the queue until their preferences change again, ``on_limit`` leaves them queued for the next
   run, and ``continue`` goes on to the next campaign step (here: a summary).

The demo customers come from the Lead/Contact sync DAGs; ``make demo`` runs those first (tag
``demo-stage:40``) and sets ``AIRFLOW_VAR_DEPLOYTEQ_CAMPAIGN_DEMO=true``.  When they
did not run (a fresh database), only the Deployteq-only customer is queued and the run shows the
``on_error`` exit alone.  Re-running the demo picks other customers (the pick rotates per run).
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import DAG, Variable, task

from deployteq_salesforce.flows.synchronize.operator import (
    SalesforceSynchronizeOperator,
    synchronize_exit_ids,
    synchronize_exit_outcomes,
    synchronize_exits,
)

DEMO_VARIABLE = "deployteq_campaign_demo"
FLOW = "campaign:preferences"
DEMO_CUSTOMERS = 6
DEPLOYTEQ_ONLY_EMAIL = "alleen-in-deployteq@voorbeeld.nl"
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
    schedule="*/15 * * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    # demo-stage 40: after the Lead/Contact syncs (10) that bring the customers, and the contact moments (30)
    tags=["deployteq", "deployteq-demo", "demo-stage:40", "campaign"],
    doc_md=__doc__,
    default_args={"owner": "deployteq", "retries": 1},
):

    @task
    def preference_centre() -> dict:
        """The queue; in the demo also a few customers changing their preferences."""
        store = _store()
        with store.connect() as conn:
            conn.execute(QUEUE_DDL)
            if str(Variable.get(DEMO_VARIABLE, default="false")).lower() != "true":
                return {"simulated": 0}
            runs = conn.execute("SELECT count(*) FROM synchronize_run WHERE task_id = 'synchronize'").fetchone()[0]
            changed = conn.execute(
                "UPDATE customer SET newsletter = NOT coalesce(newsletter, false), email_optin = NOT email_optin "
                "WHERE customer_id IN (SELECT customer_id FROM customer "
                "  WHERE (sf_lead_id IS NOT NULL OR sf_contact_id IS NOT NULL) AND NOT sf_deleted "
                "  ORDER BY md5(customer_id::text || %s::text) LIMIT %s) RETURNING customer_id",
                (runs, DEMO_CUSTOMERS),
            ).fetchall()
            row = conn.execute("SELECT customer_id FROM customer WHERE email = %s", (DEPLOYTEQ_ONLY_EMAIL,)).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO customer (email, first_name, last_name, newsletter, email_optin) "
                    "VALUES (%s, 'Nog', 'Niet in Salesforce', true, true) RETURNING customer_id",
                    (DEPLOYTEQ_ONLY_EMAIL,),
                ).fetchone()
            queued = [r[0] for r in changed] + [row[0]]
            conn.execute(
                "INSERT INTO campaign_preference_change (customer_id) SELECT unnest(%s::bigint[]) "
                "ON CONFLICT (customer_id) DO UPDATE SET changed_at = now(), synced_at = NULL, needs_follow_up = false",
                (queued,),
            )
        return {"simulated": len(queued), "from_salesforce": len(changed)}

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

    preference_centre() >> synchronize
    synchronize_exits(
        synchronize,
        on_success=mark_synced(),
        on_error=record_for_follow_up(),
        on_limit=requeue_for_next_run(),
        continue_=next_campaign_step(),
    )
