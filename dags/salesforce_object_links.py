"""Airflow DAGs: one DAG per object link (R10), plus an Id reconciliation DAG for hard-deleted objects.

The links and their webhooks live in the Variable ``deployteq_salesforce_object_links``; adding a
link there adds its DAG.  Parsing reads that Variable once and calls nothing else.
"""

from deployteq_salesforce.dag_factory import object_link_dags
from deployteq_salesforce.core.variables import read_variable
from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

for _dag in object_link_dags(read_variable(VARIABLE_NAME)):
    globals()[_dag.dag_id] = _dag
