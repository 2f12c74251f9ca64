"""Deployteq contact moments -> Salesforce (R11, R12), every 15 minutes, within the API budget.

New and changed e-mail contact moments go to ClangContactContactMoment__c (customer with a contact
id) or ClangLeadContactMoment__c (lead id), oldest first, as much as the API budget allows now; the
rest waits for the next run.  Backlog and the age of the oldest unsent moment are in the task log and
in the run log (Integrations -> Salesforce).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from deployteq_salesforce.core.variables import schedule_for
from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator

with DAG(
    dag_id="deployteq_contact_moments",
    description="Deployteq e-mail contact moments -> Salesforce custom objects, within the API budget",
    schedule=schedule_for("deployteq_contact_moments", timedelta(minutes=15)),
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    # retry delay: Airflow's [core] default_task_retry_delay (300 s unless configured)
    default_args={"owner": "deployteq", "retries": 2},
    # demo-stage 30: after the Lead/Contact syncs (10) that bring the customers the moments belong to
    tags=["deployteq", "deployteq-demo", "demo-stage:30"],
    doc_md=__doc__,
):
    ContactMomentsToSalesforceOperator(task_id="send_contact_moments", pool="salesforce_api")
