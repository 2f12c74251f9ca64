"""Deployteq health check: both connections work, the Deployteq schema is current, API usage.

Run it by hand after changing a connection (schedule: none).  Its report (connection
messages, migration version, the org's daily API usage and our hourly budget use) is in the
task log and in the task's return value (XCom).
"""

from __future__ import annotations

from airflow.sdk import DAG

from deployteq_salesforce.operators.health import DeployteqHealthCheckOperator

with DAG(
    dag_id="deployteq_health_check",
    schedule=None,
    catchup=False,
    tags=["deployteq", "deployteq-demo"],
    doc_md=__doc__,
    default_args={"retries": 0},
):
    DeployteqHealthCheckOperator(task_id="check_connections", pool="salesforce_api")
