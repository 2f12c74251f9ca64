"""Salesforce Synchronize (R13-R15) against the emulator and a real PostgreSQL; the exits through dag.test()."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.flows.synchronize import store as synchronize_store
from deployteq_salesforce.flows.synchronize.operator import (
    SalesforceSynchronizeOperator,
    SynchronizeExitBranchOperator,
    SynchronizeStore,
    synchronize_exit_ids,
    synchronize_exits,
)
from include.local_services import salesforce_emulator_connection

LEAD = {
    "sobject": "Lead",
    "unique_field": "email",
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Salutation", "deployteq_type": "text", "deployteq_field": "salutation",
         "translations": {"Mr.": "Dhr.", "Ms.": "Mevr.", "Mrs.": "Mevr."}},
        {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source",
         "translations": {"Web": "Website", "Partner Referral": "Partner"}},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
    ],
}
CONTACT = {
    "sobject": "Contact",
    "unique_field": "email",
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
    ],
}
CONFIG = {"objects": [LEAD, CONTACT]}
FIELDS = ["Newsletter__c", "Email_Opt_In__c", "LeadSource"]


@pytest.fixture
def store(deployteq_conn_id):
    hook = DeployteqHook(deployteq_conn_id)
    hook.migrate()
    return hook


@pytest.fixture
def services(store, salesforce_conn_id, emulator):
    return store, emulator


def set_budget(monkeypatch, emulator_process, hourly_budget):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE_DEFAULT",
        json.dumps(salesforce_emulator_connection(emulator_process.connection_json, hourly_budget=hourly_budget)),
    )


def add_customers(store, rows):
    """Insert customers (dicts of customer columns); returns their ids in order."""
    ids = []
    with store.connect() as conn:
        for row in rows:
            columns = list(row)
            ids.append(conn.execute(
                f"INSERT INTO customer ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) RETURNING customer_id",
                [row[c] for c in columns],
            ).fetchone()[0])
    return ids


def seed_leads(emulator, count, **fields):
    return emulator.seed("Lead", [
        {"LastName": f"Visser {n}", "Company": "Acme", "Email": f"lead{n}@example.nl", "Newsletter__c": False,
         "Email_Opt_In__c": "N", **fields}
        for n in range(count)
    ])


def lead_customers(store, lead_ids, **values):
    return add_customers(store, [
        {"email": f"lead{n}@example.nl", "last_name": f"Visser {n}", "status": "Prospect", "sf_lead_id": lead_id,
         "newsletter": True, "email_optin": True, "lead_source": "Website", **values}
        for n, lead_id in enumerate(lead_ids)
    ])


def synchronize(customer_ids=None, *, sobject="Lead", fields=FIELDS, run_key="run-1", config=CONFIG, **kwargs):
    if customer_ids is not None:
        kwargs["customer_ids"] = customer_ids
    op = SalesforceSynchronizeOperator(task_id="synchronize", sobject=sobject, fields=fields, object_config=config,
                                       run_key=run_key, **kwargs)
    return op.execute({})


def outcomes(store, run_key="run-1"):
    return {row["customer_id"]: row for row in SynchronizeStore(store).outcomes(run_key)}


def by_id(emulator, sobject):
    return {r["Id"]: r for r in emulator.records(sobject)}


# ---------------------------------------------------------------------------------------------- exits


def test_all_records_updated_by_id_go_to_on_success(services):
    store, emulator = services
    leads = seed_leads(emulator, 3)
    customers = lead_customers(store, leads)

    summary = synchronize(customers)

    assert summary == {"run_key": "run-1", "sobject": "Lead", "continue": 3, "on_success": 3, "on_error": 0,
                       "on_limit": 0, "api_requests": 2}  # describe + one composite request
    records = by_id(emulator, "Lead")
    for lead_id in leads:
        assert records[lead_id]["Newsletter__c"] is True
        assert records[lead_id]["Email_Opt_In__c"] == "Y"  # opt-in into a picklist: 'Y'
        assert records[lead_id]["LeadSource"] == "Web"  # 'Website' translated back
    assert {o["exit"] for o in outcomes(store).values()} == {"on_success"}
    assert emulator.counters()["by_endpoint"]["PATCH composite/sobjects"] == 1


def test_matching_is_on_the_salesforce_id_under_email_uniqueness(services):
    store, emulator = services
    target, namesake = seed_leads(emulator, 2)
    # the customer's address is the OTHER lead's address: only the Id may decide
    (customer,) = add_customers(store, [{"email": "lead1@example.nl", "status": "Prospect", "sf_lead_id": target,
                                         "newsletter": True, "email_optin": True}])

    summary = synchronize([customer], fields=["Newsletter__c", "Email_Opt_In__c"])

    records = by_id(emulator, "Lead")
    assert summary["on_success"] == 1
    assert records[target]["Newsletter__c"] is True and records[target]["Email"] == "lead0@example.nl"
    assert records[namesake]["Newsletter__c"] is False


def test_customers_without_a_lead_id_never_reach_salesforce(services):
    store, emulator = services
    (lead,) = seed_leads(emulator, 1)
    enriched, never_synced, contact_only = add_customers(store, [
        {"email": "a@example.nl", "sf_lead_id": lead, "newsletter": True},
        {"email": "b@example.nl", "newsletter": True},
        {"email": "c@example.nl", "sf_contact_id": "003000000000001AAA", "newsletter": True},
    ])

    summary = synchronize([enriched, never_synced, contact_only])

    assert (summary["on_success"], summary["on_error"]) == (1, 2)
    stored = outcomes(store)
    assert stored[never_synced]["status_code"] == "MISSING_SALESFORCE_ID"
    assert "never enriched from Salesforce" in stored[never_synced]["reason"]
    assert "use a Contact step" in stored[contact_only]["reason"]
    assert stored[never_synced]["sent_via"] is None and stored[never_synced]["attempts"] == 0
    assert emulator.counters()["by_endpoint"]["PATCH composite/sobjects"] == 1  # only the enriched one was sent


def test_a_non_invertible_translation_is_an_error_that_names_the_values(services):
    store, emulator = services
    leads = seed_leads(emulator, 2)
    ambiguous, fine = lead_customers(store, leads)
    with store.connect() as conn:
        conn.execute("UPDATE customer SET salutation = 'Mevr.' WHERE customer_id = %s", (ambiguous,))
        conn.execute("UPDATE customer SET salutation = 'Dhr.' WHERE customer_id = %s", (fine,))

    summary = synchronize([ambiguous, fine], fields=["Salutation"])

    assert (summary["on_success"], summary["on_error"]) == (1, 1)
    reason = outcomes(store)[ambiguous]["reason"]
    assert "not invertible" in reason and "'Mrs.'" in reason and "'Ms.'" in reason
    assert by_id(emulator, "Lead")[leads[1]]["Salutation"] == "Mr."


def test_validation_error_on_some_records_of_a_batch(services):
    store, emulator = services
    leads = seed_leads(emulator, 6)
    customers = lead_customers(store, leads)
    with store.connect() as conn:
        conn.execute("UPDATE customer SET lead_source = 'Partner' WHERE customer_id = ANY(%s)", (customers[:2],))
    emulator.add_validation_rule("Lead", "LeadSource", "Partner Referral", "Partner leads are maintained by the channel team")

    summary = synchronize(customers)

    assert (summary["on_success"], summary["on_error"], summary["on_limit"]) == (4, 2, 0)
    stored = outcomes(store)
    for customer in customers[:2]:
        assert stored[customer]["status_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert stored[customer]["message"] == "Partner leads are maintained by the channel team"
        assert stored[customer]["sent_via"] == "composite"
    records = by_id(emulator, "Lead")
    assert [records[i]["Newsletter__c"] for i in leads] == [False, False, True, True, True, True]


def test_bulk_ingest_above_the_threshold_keeps_per_record_outcomes(services):
    store, emulator = services
    leads = seed_leads(emulator, 8)
    customers = lead_customers(store, leads)
    with store.connect() as conn:
        conn.execute("UPDATE customer SET lead_source = 'Partner' WHERE customer_id = %s", (customers[3],))
    emulator.add_validation_rule("Lead", "LeadSource", "Partner Referral", "not via the API")

    summary = synchronize(customers, bulk_threshold=5)

    assert (summary["on_success"], summary["on_error"]) == (7, 1)
    stored = outcomes(store)
    assert stored[customers[3]]["status_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert stored[customers[3]]["message"] == "not via the API"
    assert {o["sent_via"] for o in stored.values()} == {"bulk"}
    counters = emulator.counters()["by_endpoint"]
    assert counters.get("POST jobs/ingest") == 1 and "PATCH composite/sobjects" not in counters


def test_converted_lead_with_a_known_contact_updates_the_contact(services):
    store, emulator = services
    (lead,) = seed_leads(emulator, 1)
    contact = emulator.convert_lead(lead)["contact_id"]
    (customer,) = lead_customers(store, [lead], sf_contact_id=contact, status="Klant")

    summary = synchronize([customer])

    assert summary["on_success"] == 1
    stored = outcomes(store)[customer]
    assert (stored["sobject"], stored["sf_id"]) == ("Contact", contact)
    assert by_id(emulator, "Contact")[contact]["Newsletter__c"] is True
    assert "PATCH composite/sobjects" in emulator.counters()["by_endpoint"]


def test_lead_converted_in_salesforce_only_is_redirected_to_its_contact(services):
    store, emulator = services
    leads = seed_leads(emulator, 2)
    contact = emulator.convert_lead(leads[0])["contact_id"]
    converted, plain = lead_customers(store, leads)  # the store does not know about the conversion yet

    summary = synchronize([converted, plain])

    assert (summary["on_success"], summary["on_error"]) == (2, 0)
    stored = outcomes(store)
    assert (stored[converted]["sobject"], stored[converted]["sf_id"]) == ("Contact", contact)
    assert by_id(emulator, "Contact")[contact]["Email_Opt_In__c"] == "Y"


def test_converted_lead_without_a_contact_mapping_goes_to_on_error(services):
    store, emulator = services
    (lead,) = seed_leads(emulator, 1)
    emulator.convert_lead(lead)
    (customer,) = lead_customers(store, [lead])

    summary = synchronize([customer], config={"objects": [LEAD]})

    assert summary["on_error"] == 1
    stored = outcomes(store)[customer]
    assert stored["status_code"] == "CONVERTED_LEAD_WITHOUT_CONTACT"
    assert "Contact is not a configured object" in stored["reason"]


# ---------------------------------------------------------------------------------------------- limits


def test_budget_running_out_half_way_splits_exactly_and_a_rerun_sends_only_the_rest(services, monkeypatch, emulator_process):
    store, emulator = services
    leads = seed_leads(emulator, 500)  # 3 composite chunks: 200 + 200 + 100
    customers = lead_customers(store, leads)
    set_budget(monkeypatch, emulator_process, 3)  # describe + 2 chunks

    first = synchronize(customers)

    assert (first["on_success"], first["on_error"], first["on_limit"]) == (400, 0, 100)
    stored = outcomes(store)
    limited = sorted(c for c, o in stored.items() if o["exit"] == "on_limit")
    assert limited == customers[400:]  # the unsent tail, never a half-sent chunk
    assert "hourly Salesforce API budget" in stored[limited[0]]["reason"]
    assert all(o["attempts"] == 0 for c, o in stored.items() if c in limited)
    records = by_id(emulator, "Lead")
    assert sum(records[i]["Newsletter__c"] for i in leads) == 400

    set_budget(monkeypatch, emulator_process, 100)
    second = synchronize(customers)  # the same run key: a retry of the same run

    assert (second["on_success"], second["on_limit"]) == (500, 0)
    assert emulator.counters()["by_endpoint"]["PATCH composite/sobjects"] == 3  # 2 + 1: nothing sent twice
    assert all(o["attempts"] == 1 for o in outcomes(store).values())


def test_a_run_larger_than_one_pass_is_read_and_sent_in_passes(services, monkeypatch):
    store, emulator = services
    monkeypatch.setattr(synchronize_store, "WORK_CHUNK", 3)
    leads = seed_leads(emulator, 7)
    customers = lead_customers(store, leads)
    # the same 18-character id in another case: a later pass must not update lead 0 a second time
    namesake = lead_customers(store, [leads[0].lower()], email="namesake@example.nl")

    summary = synchronize(customers + namesake, bulk_threshold=2)

    assert (summary["on_success"], summary["on_error"]) == (7, 1)
    assert outcomes(store)[namesake[0]]["status_code"] == "DUPLICATE_TARGET"
    assert sum(r["Newsletter__c"] for r in emulator.records("Lead")) == 7
    counters = emulator.counters()["by_endpoint"]
    assert counters["POST jobs/ingest"] == 2  # passes of 3, 3, 1 + 1 namesake: two Bulk jobs, then composite
    assert counters["PATCH composite/sobjects"] == 1
    assert counters["GET sobjects/Lead/describe"] == 1


def test_budget_running_out_in_one_pass_sends_every_later_pass_to_on_limit(services, monkeypatch, emulator_process):
    store, emulator = services
    monkeypatch.setattr(synchronize_store, "WORK_CHUNK", 2)
    customers = lead_customers(store, seed_leads(emulator, 6))
    set_budget(monkeypatch, emulator_process, 2)  # describe + the first pass's composite request

    summary = synchronize(customers)

    assert (summary["on_success"], summary["on_limit"]) == (2, 4)
    assert sorted(c for c, o in outcomes(store).items() if o["exit"] == "on_limit") == customers[2:]
    assert emulator.counters()["total"] == 2


def test_a_bulk_job_is_only_started_when_the_budget_holds_all_its_requests(services, monkeypatch, emulator_process):
    store, emulator = services
    customers = lead_customers(store, seed_leads(emulator, 8))
    set_budget(monkeypatch, emulator_process, 3)  # describe + 2 left: too few for a Bulk job (6), enough for composite

    summary = synchronize(customers, bulk_threshold=5)

    assert summary["on_success"] == 8
    counters = emulator.counters()["by_endpoint"]
    assert "POST jobs/ingest" not in counters and counters["PATCH composite/sobjects"] == 1


def test_blocked_token_sends_the_rest_to_on_limit(services):
    store, emulator = services
    leads = seed_leads(emulator, 3)
    customers = lead_customers(store, leads)
    emulator.inject_fault("limit", path_contains="composite")

    summary = synchronize(customers)

    assert (summary["on_success"], summary["on_limit"]) == (0, 3)
    stored = outcomes(store)
    assert {o["status_code"] for o in stored.values()} == {"REQUEST_LIMIT_EXCEEDED"}
    assert "REQUEST_LIMIT_EXCEEDED" in stored[customers[0]]["reason"]
    assert not any(r["Newsletter__c"] for r in emulator.records("Lead"))
    requests_before = emulator.counters()["total"]

    again = synchronize(customers)  # the block is remembered: nothing is even tried

    assert again["on_limit"] == 3
    assert emulator.counters()["total"] == requests_before


# ------------------------------------------------------------------------------------------- selection


def test_selection_sql_and_source_table(services):
    store, emulator = services
    leads = seed_leads(emulator, 3)
    customers = lead_customers(store, leads)
    with store.connect() as conn:
        conn.execute("UPDATE customer SET preferences = 'changed' WHERE customer_id = %s", (customers[1],))
        conn.execute("CREATE TABLE campaign_selection (customer_id bigint)")
        conn.execute("INSERT INTO campaign_selection VALUES (%s), (%s)", (customers[0], customers[2]))

    by_sql = synchronize(selection_sql="SELECT customer_id FROM customer WHERE preferences = 'changed'", run_key="sql")
    by_table = synchronize(source_table="campaign_selection", run_key="table")

    assert SynchronizeStore(store).customer_ids("sql", "on_success") == [customers[1]]
    assert SynchronizeStore(store).customer_ids("table", "continue") == [customers[0], customers[2]]
    assert by_sql["continue"] == 1 and by_table["on_success"] == 2


def test_a_selection_without_customer_id_is_a_clear_error(services):
    with pytest.raises(Exception, match="customer_id"):
        synchronize(selection_sql="SELECT email FROM customer")


def test_a_retry_selects_the_customers_when_the_first_attempt_stopped_before_selecting_them(services):
    """The run and its customers are one transaction: an attempt that died (or failed on its selection)
    before the customers were stored leaves no run that a retry would continue with no one in it."""
    store, emulator = services
    customers = lead_customers(store, seed_leads(emulator, 2))
    with pytest.raises(Exception, match="customer_id"):
        synchronize(selection_sql="SELECT email FROM customer", run_key="retried")

    summary = synchronize(selection_sql="SELECT customer_id FROM customer", run_key="retried")

    assert summary["on_success"] == 2
    assert SynchronizeStore(store).customer_ids("retried", "on_success") == customers


def test_arguments_are_checked_early():
    with pytest.raises(ValueError, match="exactly one way"):
        SalesforceSynchronizeOperator(task_id="s", sobject="Lead", customer_ids=[1], selection_sql="SELECT 1")
    with pytest.raises(ValueError, match="sobject"):
        SalesforceSynchronizeOperator(task_id="s", sobject="Account", customer_ids=[1])
    with pytest.raises(ValueError, match="unknown exit"):
        SynchronizeExitBranchOperator(task_id="b", synchronize_task_id="s", exits={"on_succes": "x"})


# ------------------------------------------------------------------------------------- the exits in a DAG


def exits_dag(customer_ids, marker_table):
    """synchronize -> branch -> four exit tasks that store the ids they read into ``marker_table``."""
    from airflow.sdk import DAG, task

    with DAG(dag_id=f"synchronize_exits_{marker_table}", schedule=None, start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
             catchup=False) as dag:
        sync = SalesforceSynchronizeOperator(task_id="synchronize", sobject="Lead", fields=FIELDS, object_config=CONFIG,
                                             customer_ids=customer_ids)

        def exit_task(name):
            @task(task_id=name)
            def read_ids():
                ids = synchronize_exit_ids()
                with DeployteqHook().connect() as conn:
                    conn.execute(f"INSERT INTO {marker_table} SELECT %s, unnest(%s::bigint[])", (name, ids))
                return len(ids)

            return read_ids()

        synchronize_exits(sync, on_success=exit_task("mark_synced"), on_error=exit_task("follow_up"),
                          on_limit=exit_task("requeue"), continue_=exit_task("next_step"))
    return dag


def serialize_for_dag_test(dag):
    """dag.test() runs DAGs of the dags-folder bundle only; write this in-test DAG into the metadata DB as one of them."""
    from types import SimpleNamespace

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()  # the bundle row the DAG refers to (a fresh metadata DB has none)
    bag = SimpleNamespace(dags={dag.dag_id: dag}, import_errors={}, bundle_path=None, dag_warnings=set())
    sync_bag_to_db(bag, "dags-folder", None)


def run_exits_dag(store, customer_ids, name):
    with store.connect() as conn:
        conn.execute(f"CREATE TABLE {name} (task text, customer_id bigint)")
    dag = exits_dag(customer_ids, name)
    serialize_for_dag_test(dag)
    dag_run = dag.test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    with store.connect() as conn:
        rows = conn.execute(f"SELECT task, customer_id FROM {name} ORDER BY task, customer_id").fetchall()
    seen: dict[str, list[int]] = {}
    for task_id, customer_id in rows:
        seen.setdefault(task_id, []).append(customer_id)
    return states, seen


def test_dag_only_on_success_and_continue_run_when_all_succeed(services, airflow_db):
    store, emulator = services
    customers = lead_customers(store, seed_leads(emulator, 2))

    states, seen = run_exits_dag(store, customers, "marks_success")

    assert states == {"synchronize": "success", "synchronize_exits": "success", "mark_synced": "success",
                      "next_step": "success", "follow_up": "skipped", "requeue": "skipped"}
    assert seen == {"mark_synced": customers, "next_step": customers}


def test_dag_only_on_error_when_no_customer_is_enriched(services, airflow_db):
    store, emulator = services
    customers = add_customers(store, [{"email": "x@example.nl"}, {"email": "y@example.nl"}])

    states, seen = run_exits_dag(store, customers, "marks_error")

    assert (states["follow_up"], states["mark_synced"], states["requeue"]) == ("success", "skipped", "skipped")
    assert seen == {"follow_up": customers, "next_step": customers}


def test_dag_only_on_limit_when_the_token_is_blocked(services, airflow_db):
    store, emulator = services
    customers = lead_customers(store, seed_leads(emulator, 2))
    emulator.inject_fault("limit", path_contains="composite")

    states, seen = run_exits_dag(store, customers, "marks_limit")

    assert (states["requeue"], states["mark_synced"], states["follow_up"]) == ("success", "skipped", "skipped")
    assert seen == {"requeue": customers, "next_step": customers}


def test_dag_several_exits_in_one_run(services, airflow_db, monkeypatch, emulator_process):
    store, emulator = services
    leads = seed_leads(emulator, 250)
    enriched = lead_customers(store, leads)
    (bare,) = add_customers(store, [{"email": "bare@example.nl"}])
    set_budget(monkeypatch, emulator_process, 2)  # describe + one chunk of 200: 50 left for on_limit

    states, seen = run_exits_dag(store, [*enriched, bare], "marks_mixed")

    assert {states[t] for t in ("mark_synced", "follow_up", "requeue", "next_step")} == {"success"}
    assert seen["mark_synced"] == enriched[:200]
    assert seen["requeue"] == enriched[200:]
    assert seen["follow_up"] == [bare]
    assert seen["next_step"] == sorted([*enriched, bare])


# ------------------------------------------------------------------------------------- the example DAG


def test_example_campaign_dag_runs_the_exits_and_marks_the_queue(services, airflow_db, monkeypatch):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    store, emulator = services
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECTS", json.dumps(CONFIG))
    leads = seed_leads(emulator, 4)
    enriched = lead_customers(store, leads, newsletter=False, email_optin=False)  # the demo flips them to true
    dag_file = Path(__file__).resolve().parents[3] / "dags" / "deployteq_campaign_synchronize.py"
    bag = DagBag(dag_folder=dag_file, safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.dags["deployteq_campaign_synchronize"]
    from include.demo import _demo_preference_changes  # the demo's preference centre queues them

    assert _demo_preference_changes(dag) == {"simulated": 5, "from_salesforce": 4}

    dag_run = dag.test()

    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    assert states == {"preference_queue": "success", "synchronize": "success", "synchronize_exits": "success",
                      "mark_synced": "success", "record_for_follow_up": "success", "next_campaign_step": "success",
                      "requeue_for_next_run": "skipped"}
    assert all(r["Newsletter__c"] and r["Email_Opt_In__c"] == "Y" for r in emulator.records("Lead"))
    with store.connect() as conn:
        queue = dict(conn.execute("SELECT customer_id, last_exit FROM campaign_preference_change").fetchall())
        (only_deployteq,) = conn.execute("SELECT customer_id FROM customer WHERE sf_lead_id IS NULL").fetchone()
    assert queue == {**{c: "on_success" for c in enriched}, only_deployteq: "on_error"}
    (follow_up,) = store.open_errors("campaign:preferences")
    assert follow_up["record_id"] == str(only_deployteq) and "never enriched from Salesforce" in follow_up["reason"]
