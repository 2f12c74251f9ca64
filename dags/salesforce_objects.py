"""Airflow DAGs: one incremental DAG and one initial-load DAG per configured Salesforce object (Lead, Contact).

The configuration lives in the Variable ``deployteq_salesforce_objects``; adding an object there
adds its DAGs.  Parsing reads that Variable once and calls nothing else.
"""

from deployteq_salesforce.dag_factory import object_sync_dags
from deployteq_salesforce.core.variables import read_variable
from deployteq_salesforce.flows.customers.operator import OBJECTS_VARIABLE

for _dag in object_sync_dags(read_variable(OBJECTS_VARIABLE)):
    globals()[_dag.dag_id] = _dag
