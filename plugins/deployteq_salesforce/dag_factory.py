"""Generate the per-object DAGs from the configuration Variable.

DAG files call these factories with the Variable's JSON, read once at parse time; nothing here
talks to Salesforce or PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from airflow.sdk import DAG

from deployteq_salesforce.flows.customers.config import ObjectsConfig, load_objects_config
from deployteq_salesforce.flows.customers.operator import OBJECTS_VARIABLE, SalesforceToDeployteqOperator


SALESFORCE_POOL = "salesforce_api"
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
# The first retry waits Airflow's [core] default_task_retry_delay (300 s unless configured; make soak shortens it).
DEFAULT_ARGS = {"owner": "deployteq", "retries": 2, "retry_exponential_backoff": True}


def _flow_dag(dag_id: str, *, description: str, schedule, tags: list[str], doc_md: str) -> DAG:
    """A generated flow DAG: no catch-up, one run at a time (a run continues from the last watermark)."""
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=tags,
        doc_md=doc_md,
    )


def object_sync_dags(raw_config: str | dict | None) -> list[DAG]:
    """One incremental DAG and one initial-load DAG per enabled configured object."""
    if not raw_config:
        return []
    config: ObjectsConfig = load_objects_config(raw_config if isinstance(raw_config, (str, dict)) else json.dumps(raw_config))
    dags: list[DAG] = []
    for obj in config.objects:
        if not obj.enabled:
            continue
        name = obj.sobject.lower()
        tags = ["deployteq", "salesforce", f"sobject:{obj.sobject}"]
        with _flow_dag(
            f"salesforce_{name}_to_deployteq",
            description=f"Salesforce {obj.sobject} -> Deployteq customers, incremental",
            schedule=obj.schedule,
            # the demo runs inbound syncs (stage 10) before flows that need their customers
            tags=[*tags, "deployteq-demo", "demo-stage:10"],
            doc_md=f"Incremental sync of **{obj.sobject}** into the customer table. Mapping: Variable `{OBJECTS_VARIABLE}`.",
        ) as dag:
            SalesforceToDeployteqOperator(task_id=f"sync_{name}", sobject=obj.sobject, pool=SALESFORCE_POOL)
        dags.append(dag)
        with _flow_dag(
            f"salesforce_{name}_initial_load",
            description=f"Salesforce {obj.sobject} -> Deployteq customers, full initial load",
            schedule=None,
            tags=[*tags, "initial-load"],
            doc_md=(
                f"Loads **every** {obj.sobject} once without touching records in Salesforce (R9). "
                "Resumable: a run stopped by the API budget continues where it stopped."
            ),
        ) as dag:
            SalesforceToDeployteqOperator(task_id=f"load_{name}", sobject=obj.sobject, full_load=True, pool=SALESFORCE_POOL)
        dags.append(dag)
    return dags


def object_link_dags(raw_config: str | dict | None) -> list[DAG]:
    """Per enabled object link (R10): one incremental DAG, plus an Id-reconciliation DAG where deletes need one."""
    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME as LINKS_VARIABLE, load_object_links
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator

    if not raw_config:
        return []
    config = load_object_links(raw_config)
    dags: list[DAG] = []
    for link in config.links:
        if not link.enabled:
            continue
        webhook = config.webhook_of(link)
        tags = ["deployteq", "salesforce", "object-link", f"sobject:{link.sobject}", "deployteq-demo"]
        settings = (f"allow inserts {'yes' if link.allow_inserts else 'no'}, delete {'yes' if link.delete else 'no'}, "
                    f"use sync column {'yes' if link.use_sync_column else 'no'}")
        with _flow_dag(
            f"salesforce_link_{link.name}",
            description=f"Salesforce {link.sobject} -> Deployteq datamodel {link.datamodel}",
            schedule=link.schedule,
            # after the customer syncs (stage 10), so customer relations resolve in the demo
            tags=[*tags, "demo-stage:20"],
            doc_md=(f"Object link **{link.name}**: {link.sobject} through webhook `{webhook.name}` into `{link.datamodel}` "
                    f"({settings}). Configuration: Variable `{LINKS_VARIABLE}`."),
        ) as dag:
            ObjectLinkSyncOperator(task_id=f"sync_{link.name}", link_name=link.name, pool=SALESFORCE_POOL)
        dags.append(dag)
        if not link.needs_reconciliation:
            continue
        with _flow_dag(
            f"salesforce_link_{link.name}_reconcile",
            description=f"Remove {link.datamodel} rows of {link.sobject} records deleted in Salesforce (hard deletes)",
            schedule=link.reconcile_schedule,
            tags=[*tags, "reconcile", "demo-stage:21"],
            doc_md=(f"Salesforce hard-deletes {link.sobject} records (no trace in queryAll), so this compares every stored "
                    f"Id with one `SELECT Id FROM {link.sobject}` (REST pages or one Bulk API 2.0 job) and removes the rest."),
        ) as dag:
            ObjectLinkSyncOperator(task_id=f"reconcile_{link.name}", link_name=link.name, reconcile=True, pool=SALESFORCE_POOL)
        dags.append(dag)
    return dags
