"""Deployteq contact moments -> Salesforce (R11, R12), every 15 minutes, within the API budget.

New and changed e-mail contact moments go to ClangContactContactMoment__c (customer with a contact
id) or ClangLeadContactMoment__c (lead id), oldest first, as much as the API budget allows now; the
rest waits for the next run.  Backlog and the age of the oldest unsent moment are in the task log and
in the run log (Integrations -> Salesforce).  In ``make demo`` only (Variable
``deployteq_demo_contact_moments`` set), a first task adds demo moments for the synced customers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, task

from deployteq_salesforce.core.variables import read_variable
from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator

DEMO_VARIABLE = "deployteq_demo_contact_moments"

with DAG(
    dag_id="deployteq_contact_moments",
    description="Deployteq e-mail contact moments -> Salesforce custom objects (R11, R12)",
    schedule=timedelta(minutes=15),
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "deployteq", "retries": 2, "retry_delay": timedelta(minutes=5)},
    # demo-stage 30: after the Lead/Contact syncs (10) that bring the customers the moments belong to
    tags=["deployteq", "deployteq-demo", "demo-stage:30"],
    doc_md=__doc__,
):
    send = ContactMomentsToSalesforceOperator(task_id="send_contact_moments", pool="salesforce_api")

    if (read_variable(DEMO_VARIABLE) or "").strip().lower() in ("1", "true", "yes"):

        @task(task_id="seed_demo_contact_moments")
        def seed_demo_contact_moments() -> dict:
            from deployteq_salesforce.hooks.deployteq import DeployteqHook
            from include.demo_contact_moments import seed_demo_contact_moments as seed

            return seed(DeployteqHook("deployteq_default"))

        seed_demo_contact_moments() >> send
