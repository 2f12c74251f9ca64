"""DAGs generated per configured object, and one full run through dag.test()."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from deployteq_salesforce.dag_factory import object_sync_dags
from deployteq_salesforce.core.exceptions import ConfigurationError

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "salesforce_objects.py"
FLAG = "Sync_to_Deployteq__c"


def objects(*sobjects, **extra):
    result = []
    for sobject in sobjects:
        result.append(
            {
                "sobject": sobject,
                "unique_field": "email",
                "sync_flag_field": FLAG,
                "mappings": [
                    {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
                    {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
                ],
                **extra,
            }
        )
    return {"objects": result}


def test_one_incremental_and_one_initial_load_dag_per_object():
    dags = {d.dag_id: d for d in object_sync_dags(json.dumps(objects("Lead", "Contact", schedule="0 * * * *")))}
    assert sorted(dags) == [
        "salesforce_contact_initial_load",
        "salesforce_contact_to_deployteq",
        "salesforce_lead_initial_load",
        "salesforce_lead_to_deployteq",
    ]
    incremental = dags["salesforce_lead_to_deployteq"]
    assert incremental.max_active_runs == 1 and not incremental.catchup
    (task,) = incremental.tasks
    assert task.pool == "salesforce_api" and task.sobject == "Lead" and not task.full_load
    (load,) = dags["salesforce_lead_initial_load"].tasks
    assert load.full_load and dags["salesforce_lead_initial_load"].schedule is None


def test_disabled_objects_get_no_dags_and_no_config_gives_none():
    assert object_sync_dags(json.dumps(objects("Lead", enabled=False))) == []
    assert object_sync_dags(None) == []


def test_invalid_configuration_breaks_the_dag_file_with_the_reason():
    bad = objects("Lead")
    bad["objects"][0]["mappings"][0]["unique_key"] = False
    with pytest.raises(ConfigurationError, match="Lead"):
        object_sync_dags(json.dumps(bad))


def test_dag_file_reads_the_variable_and_runs_with_dag_test(
    airflow_db, monkeypatch, emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema
):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECTS", json.dumps(objects("Lead")))
    emulator.seed("Lead", [{"LastName": f"Visser {i}", "Company": "Acme", "Email": f"v{i}@example.nl", FLAG: True} for i in range(25)])
    bag = DagBag(dag_folder=DAG_FILE, safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.dags["salesforce_lead_to_deployteq"]

    dag_run = dag.test()

    assert "success" in str(dag_run.state).lower()
    with psycopg.connect(pg_url) as conn:
        count = conn.execute(f'SELECT count(*) FROM "{pg_schema}".customer').fetchone()[0]
        runs = conn.execute(f'SELECT flow, outcome, fetched, inserted FROM "{pg_schema}".run_log').fetchall()
    assert count == 25
    assert runs == [("sync:Lead", "success", 25, 25)]
    assert not any(r[FLAG] for r in emulator.records("Lead"))
