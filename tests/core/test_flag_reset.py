"""The sync-flag reset never loses an edit a Salesforce user makes after we read the record.

Against the emulator and a real PostgreSQL: an edit made while the reset request is in flight
(the emulator's ``slow`` fault holds the request), a worker killed during the reset (a real
SIGKILL of a separate process), and the Bulk path's check for records changed since the read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from deployteq_salesforce.core.flag_reset import FlagResetQueue
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from tests.emulator_waits import wait_for_request

ROOT = Path(__file__).resolve().parents[2]
FLAG = "Sync_to_Deployteq__c"
CONFIG = {"objects": [{
    "sobject": "Lead",
    "unique_field": "id",
    "sync_flag_field": FLAG,
    "mappings": [
        {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
    ],
}]}
# runs one Lead sync in a child process (so it can be killed for real)
CHILD = """
import json, sys
from tests import airflow_env
airflow_env.configure()
sys.path.insert(0, "plugins")
from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator
SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config=json.loads(sys.argv[1])).execute({})
"""


def leads(n: int) -> list[dict]:
    return [{"FirstName": f"Voor{i}", "LastName": f"Achter{i}", "Company": "Acme", "Email": f"l{i}@example.nl", FLAG: True}
            for i in range(n)]


def sync() -> dict:
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    return SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config=CONFIG).execute({})


def first_names(pg_url: str, schema: str) -> dict[str, str]:
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        return dict(conn.execute("SELECT sf_lead_id, first_name FROM customer").fetchall())


@pytest.fixture
def env(emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema):
    return emulator, pg_url, pg_schema


def test_an_edit_made_while_the_reset_request_is_in_flight_still_arrives(env):
    emulator, pg_url, schema = env
    ids = emulator.seed("Lead", leads(3))
    emulator.inject_fault("slow", path_contains="composite/sobjects", delay_seconds=3)
    worker = threading.Thread(target=sync)
    worker.start()
    wait_for_request(emulator, "PATCH composite/sobjects")  # the reset is held in flight

    emulator.update("Lead", [{"Id": ids[0], "FirstName": "Bewerkt", FLAG: True}])
    worker.join(timeout=60)

    # the reset cleared the new flag, but the records were read again after it
    assert first_names(pg_url, schema)[ids[0]] == "Bewerkt"
    sync()
    assert first_names(pg_url, schema)[ids[0]] == "Bewerkt"


def test_after_a_kill_during_the_reset_the_rerun_reads_before_anything_is_lost(env):
    emulator, pg_url, schema = env
    ids = emulator.seed("Lead", leads(30))
    emulator.inject_fault("slow", path_contains="composite/sobjects", delay_seconds=3)
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(CONFIG)], cwd=ROOT, env=os.environ.copy(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_request(emulator, "PATCH composite/sobjects")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert len(first_names(pg_url, schema)) == 30, "the 30 customers were committed before the reset"

    # a user edits and flags one of them; the held reset then lands and clears that flag
    emulator.update("Lead", [{"Id": ids[7], "FirstName": "Na de crash", FLAG: True}])
    time.sleep(3.5)
    sync()

    assert first_names(pg_url, schema)[ids[7]] == "Na de crash"
    assert not any(r[FLAG] for r in emulator.records("Lead"))


def test_an_edit_made_while_a_bulk_reset_waits_to_be_processed_still_arrives(env, deployteq_conn_id, salesforce_conn_id):
    emulator, pg_url, schema = env
    ids = emulator.seed("Lead", leads(6))
    store = DeployteqHook(deployteq_conn_id)
    store.migrate()
    salesforce = BudgetedSalesforceHook(salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, flow="sync:Lead")
    stored_again: list[dict] = []
    queue = FlagResetQueue(store, "sync:Lead", sobject="Lead", flag_field=FLAG, fields=["FirstName", FLAG],
                           field_types={"Id": "id", "FirstName": "string", FLAG: "boolean"},
                           store_again=stored_again.extend, bulk_threshold=2)
    read = {r["Id"]: r["SystemModstamp"] for r in emulator.records("Lead")}

    class Read:  # what a flow queues per record it stored
        def __init__(self, sf_id):
            self.sf_id, self.modstamp = sf_id, parse_salesforce_datetime(read[sf_id])

    with store.connect() as conn:
        queue.enqueue(conn, [Read(i) for i in ids])
    emulator.inject_fault("slow", path_contains="/batches", delay_seconds=3)  # the job's data upload is held
    flushing = threading.Thread(target=lambda: queue.flush(salesforce))
    flushing.start()
    wait_for_request(emulator, "PUT jobs/ingest/{id}/batches")

    emulator.update("Lead", [{"Id": ids[2], "FirstName": "Later", FLAG: True}])
    flushing.join(timeout=60)

    assert not any(r[FLAG] for r in emulator.records("Lead"))  # the reset cleared the new flag too ...
    assert {r["Id"]: r["FirstName"] for r in stored_again}[ids[2]] == "Later"  # ... but the edit was read
    assert sorted(r["Id"] for r in stored_again) == sorted(ids)
    assert any(k.startswith("POST jobs/query") for k in emulator.counters()["by_endpoint"])
    with store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM flag_reset_queue").fetchone()[0] == 0


def test_enqueue_takes_ids_already_queued_inside_the_callers_transaction(env, deployteq_conn_id):
    emulator, pg_url, schema = env
    store = DeployteqHook(deployteq_conn_id)
    store.migrate()
    queue = FlagResetQueue(store, "sync:Lead", sobject="Lead", flag_field=FLAG, fields=["FirstName", FLAG],
                           field_types={"Id": "id", "FirstName": "string", FLAG: "boolean"},
                           store_again=lambda batch: None, bulk_threshold=2)
    t1, t2 = parse_salesforce_datetime("2026-12-06T10:00:00.000+0000"), parse_salesforce_datetime("2026-12-06T11:00:00.000+0000")

    class Read:
        def __init__(self, sf_id, modstamp):
            self.sf_id, self.modstamp = sf_id, modstamp

    with store.connect() as conn:
        queue.enqueue(conn, [Read("00Q000000000001AAA", t1), Read("00Q000000000002AAA", t1)], {"00Q000000000001AAA": b"a"})
    with store.connect() as conn:
        conn.execute("UPDATE flag_reset_queue SET failed_reason = 'UNABLE_TO_LOCK_ROW:busy' WHERE sf_id = '00Q000000000002AAA'")
    with pytest.raises(RuntimeError), store.connect() as conn:  # the caller's transaction fails after the enqueue
        queue.enqueue(conn, [Read("00Q000000000003AAA", t2)])
        raise RuntimeError("the batch failed after queueing")
    with store.connect() as conn:  # one id already queued, one new: the upsert takes both
        queue.enqueue(conn, [Read("00Q000000000002AAA", t2), Read("00Q000000000004AAA", t2)], {"00Q000000000002AAA": b"b"})
        rows = conn.execute("SELECT sf_id, system_modstamp, record_hash, failed_reason FROM flag_reset_queue "
                            "ORDER BY sf_id").fetchall()
    assert [(r[0][-4:], r[1], r[2] and bytes(r[2]), r[3]) for r in rows] == [
        ("1AAA", t1, b"a", None), ("2AAA", t2, b"b", None), ("4AAA", t2, None, None),  # 3AAA rolled back with its batch
    ]
