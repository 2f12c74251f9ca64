"""Contact moments -> Salesforce through the operator, against the emulator and a real PostgreSQL (R11, R12)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from deployteq_salesforce.flows.contact_moments.logic import CONTACT_OBJECT, FLOW, LEAD_OBJECT
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator
from include.local_services import salesforce_emulator_connection

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


class Store:
    """Direct access to the test schema: customers and contact moments as Deployteq writes them."""

    def __init__(self, url: str, schema: str):
        self.url = url
        self.schema = schema
        DeployteqHook("deployteq_default").migrate()

    def sql(self, statement: str, params=()):
        with psycopg.connect(self.url) as conn:
            conn.execute(f'SET search_path = "{self.schema}"')
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def customer(self, *, lead: str | None = None, contact: str | None = None, email: str | None = None) -> int:
        status = "Klant" if contact else "Prospect"
        return self.sql(
            "INSERT INTO customer (email, sf_lead_id, sf_contact_id, status) VALUES (%s, %s, %s, %s) RETURNING customer_id",
            (email, lead, contact, status),
        )[0][0]

    def moments(self, customer_id: int, count: int = 1, *, start: datetime = T0, **fields) -> list[int]:
        ids = []
        for n in range(count):
            values = {
                "customer_id": customer_id, "mailing_id": 7, "mailing_name": "Voorjaarsactie", "subject": "Lente!",
                "sent_at": start + timedelta(minutes=n), "online_version_url": f"https://deployteq.example/m/7/{n}",
                **fields,
            }
            columns = ", ".join(values)
            marks = ", ".join(["%s"] * len(values))
            ids.append(self.sql(
                f"INSERT INTO contact_moment ({columns}) VALUES ({marks}) RETURNING contact_moment_id", list(values.values())
            )[0][0])
        return ids

    def bulk_moments(self, customer_ids: list[int], count: int) -> None:
        """``count`` moments spread over the customers, created oldest first (one statement)."""
        self.sql(
            "INSERT INTO contact_moment (customer_id, mailing_id, mailing_name, subject, sent_at, changed_at) "
            "SELECT (%s::bigint[])[1 + n %% cardinality(%s::bigint[])], 9, 'Nieuwsbrief', 'Nieuws', "
            "%s + n * interval '1 second', clock_timestamp() - interval '1 day' + n * interval '1 millisecond' "
            "FROM generate_series(0, %s - 1) AS n",
            (customer_ids, customer_ids, T0, count),
        )

    def sync_rows(self) -> dict[int, dict]:
        rows = self.sql(
            "SELECT contact_moment_id, sf_object, sf_parent_id, sf_record_id, attempts, failed_hash IS NOT NULL, "
            "last_error FROM contact_moment_sync ORDER BY contact_moment_id"
        )
        keys = ("sf_object", "sf_parent_id", "sf_record_id", "attempts", "failed", "last_error")
        return {row[0]: dict(zip(keys, row[1:])) for row in rows}

    def open_errors(self) -> dict[str, dict]:
        rows = self.sql("SELECT record_id, reason, detail, retry_count FROM sync_error WHERE flow = %s AND resolved_at IS NULL", (FLOW,))
        return {r[0]: {"reason": r[1], "detail": r[2], "retry_count": r[3]} for r in rows}

    def last_run(self) -> dict:
        return DeployteqHook("deployteq_default").recent_runs(FLOW, limit=1)[0]


@pytest.fixture
def env(emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema):
    class Env:
        sf = emulator
        store = Store(pg_url, pg_schema)

        def records(self, sobject):
            return {r["Deployteq_Id__c"]: r for r in emulator.records(sobject)}

    return Env()


def run(**kwargs):
    kwargs.setdefault("hourly_share", 1.0)
    return ContactMomentsToSalesforceOperator(task_id="send_contact_moments", **kwargs).execute({})


def budget(monkeypatch, emulator_process, hourly: int) -> None:
    """Lower OUR hourly API budget (connection extra), as an operator of the integration would."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE_DEFAULT",
        json.dumps(salesforce_emulator_connection(emulator_process.connection_json, hourly_budget=hourly)),
    )


def composite_upserts(counters: dict) -> int:
    return sum(n for name, n in counters["by_endpoint"].items() if name.startswith("PATCH composite/sobjects/"))


# -- routing ------------------------------------------------------------------------------------------


def test_moments_go_to_the_contact_object_when_there_is_a_contact_else_to_the_lead_object(env):
    lead_id, both_lead = env.sf.seed("Lead", [{"LastName": "Lead", "Company": "L"}, {"LastName": "Both", "Company": "B"}])
    contact_id, both_contact = env.sf.seed("Contact", [{"LastName": "Contact"}, {"LastName": "Both"}])
    (to_lead,) = env.store.moments(env.store.customer(lead=lead_id))
    (to_contact,) = env.store.moments(env.store.customer(contact=contact_id))
    (both,) = env.store.moments(env.store.customer(lead=both_lead, contact=both_contact))
    (nowhere,) = env.store.moments(env.store.customer(email="onbekend@example.nl"))

    summary = run()

    leads, contacts = env.records(LEAD_OBJECT), env.records(CONTACT_OBJECT)
    assert set(leads) == {str(to_lead)} and leads[str(to_lead)]["Lead__c"] == lead_id
    assert set(contacts) == {str(to_contact), str(both)}
    assert contacts[str(both)]["Contact__c"] == both_contact
    assert summary["inserted"] == 3 and summary["no_salesforce_id"] == 1 and summary["skipped"] == 1
    assert nowhere not in env.store.sync_rows()


def test_payload_carries_mailing_behaviour_and_online_version(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Jansen", "Company": "J"}])
    (moment,) = env.store.moments(
        env.store.customer(lead=lead_id), opened_first_at=T0 + timedelta(hours=1), open_count=3,
        clicked_first_at=T0 + timedelta(hours=2), click_count=1, bounced_at=None,
    )
    run()
    record = env.records(LEAD_OBJECT)[str(moment)]
    assert record["Mailing_Name__c"] == "Voorjaarsactie" and record["Subject__c"] == "Lente!"
    assert record["Sent_Date__c"] == "2024-03-01T09:00:00.000+0000"
    assert record["Opened__c"] is True and record["Open_Count__c"] == 3
    assert record["First_Opened_Date__c"] == "2024-03-01T10:00:00.000+0000"
    assert record["Clicked__c"] is True and record["Click_Count__c"] == 1
    assert record["Bounced__c"] is False and record["Bounce_Type__c"] is None
    assert record["Online_Version_URL__c"] == "https://deployteq.example/m/7/0"
    assert record["Name"] == "Voorjaarsactie (2024-03-01)"


# -- reruns and updates -------------------------------------------------------------------------------


def test_rerun_sends_nothing_and_creates_no_duplicates(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Bakker", "Company": "B"}])
    env.store.moments(env.store.customer(lead=lead_id), 3)
    run()
    before = env.sf.counters()["total"]

    summary = run()

    assert summary["fetched"] == 0 and summary["inserted"] == 0 and summary["updated"] == 0
    assert env.sf.counters()["total"] == before, "nothing to send: no Salesforce request at all"
    assert len(env.sf.records(LEAD_OBJECT)) == 3


def test_lost_sync_state_is_repaired_by_upsert_without_duplicates(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Visser", "Company": "V"}])
    env.store.moments(env.store.customer(lead=lead_id), 4)
    run()
    ids_before = {r["Id"] for r in env.sf.records(LEAD_OBJECT)}
    env.store.sql("DELETE FROM contact_moment_sync")  # e.g. a restored backup of the Deployteq database

    summary = run()

    assert summary["inserted"] == 0 and summary["updated"] == 4
    assert {r["Id"] for r in env.sf.records(LEAD_OBJECT)} == ids_before


def test_new_opens_clicks_and_bounces_update_the_same_salesforce_record(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Smit", "Company": "S"}])
    first, second = env.store.moments(env.store.customer(lead=lead_id), 2)
    run()
    record_id = env.records(LEAD_OBJECT)[str(first)]["Id"]
    env.store.sql(
        "UPDATE contact_moment SET open_count = 2, opened_first_at = %s, bounced_at = %s, bounce_type = 'soft' "
        "WHERE contact_moment_id = %s",
        (T0 + timedelta(hours=3), T0 + timedelta(hours=4), first),
    )
    before = env.sf.counters()

    summary = run()

    assert summary["updated"] == 1 and summary["inserted"] == 0 and summary["fetched"] == 1
    assert composite_upserts(env.sf.counters()) - composite_upserts(before) == 1
    record = env.records(LEAD_OBJECT)[str(first)]
    assert record["Id"] == record_id
    assert record["Open_Count__c"] == 2 and record["Opened__c"] is True
    assert record["Bounced__c"] is True and record["Bounce_Type__c"] == "soft"
    assert len(env.sf.records(LEAD_OBJECT)) == 2


def test_a_row_touched_without_a_payload_change_is_not_sent_again(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Mulder", "Company": "M"}])
    (moment,) = env.store.moments(env.store.customer(lead=lead_id))
    run()
    env.store.sql("UPDATE contact_moment SET mailing_id = 8 WHERE contact_moment_id = %s", (moment,))  # not sent
    before = env.sf.counters()["total"]

    summary = run()

    assert summary["unchanged"] == 1 and summary["updated"] == 0
    assert env.sf.counters()["total"] == before
    assert run()["fetched"] == 0, "the unchanged version is remembered"


def test_after_a_lead_conversion_new_moments_go_to_the_contact_and_sent_ones_stay_on_the_lead(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "de Boer", "Company": "Boer BV", "Email": "boer@example.nl"}])
    customer = env.store.customer(lead=lead_id, email="boer@example.nl")
    (before_conversion,) = env.store.moments(customer)
    run()
    contact_id = env.sf.convert_lead(lead_id)["contact_id"]
    # what the Lead/Contact sync does with a converted lead (R6): the same customer gets the contact id
    env.store.sql("UPDATE customer SET sf_contact_id = %s, status = 'Klant' WHERE customer_id = %s", (contact_id, customer))
    (after_conversion,) = env.store.moments(customer, start=T0 + timedelta(days=1))
    env.store.sql("UPDATE contact_moment SET click_count = 1 WHERE contact_moment_id = %s", (before_conversion,))

    summary = run()

    assert summary["errors"] == 0
    contacts, leads = env.records(CONTACT_OBJECT), env.records(LEAD_OBJECT)
    assert set(contacts) == {str(after_conversion)} and contacts[str(after_conversion)]["Contact__c"] == contact_id
    assert set(leads) == {str(before_conversion)} and leads[str(before_conversion)]["Click_Count__c"] == 1


# -- failures -----------------------------------------------------------------------------------------


def test_rejected_records_go_to_the_error_table_and_the_rest_of_the_batch_is_sent(env):
    lead_id, deleted_lead = env.sf.seed("Lead", [{"LastName": "Dekker", "Company": "D"}, {"LastName": "Weg", "Company": "W"}])
    env.sf.delete([deleted_lead])
    env.sf.add_validation_rule(LEAD_OBJECT, "Subject__c", "VERBODEN", "Onderwerp niet toegestaan")
    customer = env.store.customer(lead=lead_id)
    good = env.store.moments(customer, 3)
    (bad,) = env.store.moments(customer, subject="VERBODEN")
    (orphan,) = env.store.moments(env.store.customer(lead=deleted_lead))

    summary = run()

    assert summary["inserted"] == 3 and summary["errors"] == 2
    assert set(env.records(LEAD_OBJECT)) == {str(i) for i in good}
    errors = env.store.open_errors()
    assert set(errors) == {str(bad), str(orphan)}
    assert errors[str(bad)]["reason"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION: Onderwerp niet toegestaan"
    assert errors[str(bad)]["detail"]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert errors[str(orphan)]["detail"]["statusCode"] == "ENTITY_IS_DELETED"
    assert env.store.last_run()["outcome"] == "partial"


def test_failed_moments_are_retried_up_to_the_limit_then_again_when_their_data_changes(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Bos", "Company": "B"}])
    env.sf.add_validation_rule(LEAD_OBJECT, "Subject__c", "VERBODEN", "Onderwerp niet toegestaan")
    (bad,) = env.store.moments(env.store.customer(lead=lead_id), subject="VERBODEN")

    assert run(max_attempts=2)["errors"] == 1
    assert run(max_attempts=2)["errors"] == 1, "second attempt"
    before = env.sf.counters()["total"]
    third = run(max_attempts=2)
    assert third["given_up"] == 1 and third["errors"] == 0
    assert env.sf.counters()["total"] == before, "retries used up: not sent again"
    assert env.store.sync_rows()[bad]["attempts"] == 2
    assert env.store.open_errors()[str(bad)]["retry_count"] == 1

    env.store.sql("UPDATE sync_error SET retry_requested = true WHERE record_id = %s", (str(bad),))
    assert run(max_attempts=2)["errors"] == 1, "a retry requested by ops is sent once more"

    env.store.sql("UPDATE contact_moment SET subject = 'Toegestaan' WHERE contact_moment_id = %s", (bad,))
    summary = run(max_attempts=2)
    assert summary["inserted"] == 1 and summary["errors"] == 0
    assert env.store.open_errors() == {}
    assert env.store.sync_rows()[bad]["failed"] is False


# -- volume and budget --------------------------------------------------------------------------------


def test_large_backlog_goes_through_bulk_ingest_with_per_record_errors(env):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Groot", "Company": "G"}])
    (contact_id,) = env.sf.seed("Contact", [{"LastName": "Klein"}])
    env.sf.add_validation_rule(CONTACT_OBJECT, "Subject__c", "VERBODEN", "Nee")
    # 1,700 per object: 9 composite requests each, one Bulk job (<= 8 requests) is cheaper
    env.store.bulk_moments([env.store.customer(lead=lead_id)], 1700)
    contact_customer = env.store.customer(contact=contact_id)
    env.store.bulk_moments([contact_customer], 1700)
    (bad,) = env.store.moments(contact_customer, subject="VERBODEN")

    summary = run(bulk_threshold=1000)

    by_endpoint = env.sf.counters()["by_endpoint"]
    assert by_endpoint.get("POST jobs/ingest") == 2 and not composite_upserts(env.sf.counters())
    assert summary["inserted"] == 3400 and summary["errors"] == 1
    assert len(env.sf.records(LEAD_OBJECT)) == 1700 and len(env.sf.records(CONTACT_OBJECT)) == 1700
    assert env.store.open_errors()[str(bad)]["detail"]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert all(row["sf_record_id"] for i, row in env.store.sync_rows().items() if i != bad)
    assert env.sf.counters()["total"] <= 2 * 6


def test_backlog_over_the_hourly_budget_is_sent_oldest_first_over_several_runs(env, emulator_process, monkeypatch, capsys):
    env.sf.set_limits(hourly_limit=4)  # Salesforce's own limit: one request more would be a 403 and a block
    budget(monkeypatch, emulator_process, hourly=3)  # our budget stays below it
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Hendriks", "Company": "H"}])
    env.store.bulk_moments([env.store.customer(lead=lead_id)], 1000)  # 5 composite requests
    oldest_first = [r[0] for r in env.store.sql("SELECT contact_moment_id FROM contact_moment ORDER BY changed_at, contact_moment_id")]

    first = run(bulk_threshold=10_000)
    task_log = capsys.readouterr().out  # the operator's task log
    assert first["inserted"] == 600 and first["left_for_next_run"] == 400
    assert first["backlog"] == 1000 and first["oldest_unsent_age_seconds"] >= 86_000
    assert set(env.store.sync_rows()) == set(oldest_first[:600])
    assert "backlog 1000" in task_log and "oldest unsent moment waiting 1 d" in task_log
    assert "400 left for the next run (oldest waiting " in task_log
    run_log = env.store.last_run()
    assert run_log["details"]["backlog"] == 1000 and run_log["details"]["left_for_next_run"] == 400

    second = run(bulk_threshold=10_000)  # same hour: the budget is used up, nothing is tried
    assert second["inserted"] == 0 and second["requests_allowed"] == 0 and second["left_for_next_run"] == 400

    # an hour passes, for Salesforce and for our ledger
    env.sf.advance_clock(3601)
    env.store.sql("UPDATE api_ledger SET requested_at = requested_at - interval '61 minutes'")
    third = run(bulk_threshold=10_000)
    assert third["inserted"] == 400 and third["left_for_next_run"] == 0

    assert len(env.sf.records(LEAD_OBJECT)) == 1000
    assert env.sf.limits_state()["blocked_until"] is None
    statuses = {row[0] for row in env.store.sql("SELECT DISTINCT status_code FROM api_ledger")}
    assert statuses == {200}, "never a 403 from Salesforce"


def test_a_backlog_read_in_small_chunks_is_planned_and_sent_oldest_first(env, emulator_process, monkeypatch):
    from deployteq_salesforce.flows.contact_moments import store as moments_store

    monkeypatch.setattr(moments_store, "READ_CHUNK", 7)  # many keyset chunks, boundaries inside batches
    budget(monkeypatch, emulator_process, hourly=2)
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Jansen", "Company": "J"}])
    (contact_id,) = env.sf.seed("Contact", [{"LastName": "Smit"}])
    env.store.bulk_moments([env.store.customer(lead=lead_id), env.store.customer(contact=contact_id)], 500)
    oldest_first = [r[0] for r in env.store.sql("SELECT contact_moment_id FROM contact_moment ORDER BY changed_at, contact_moment_id")]

    summary = run(bulk_threshold=10_000)

    # alternating lead/contact: 200 + 200 fit two composite requests, the 401st would need a third
    assert env.sf.counters()["total"] == 2 and summary["requests_planned"] == 2
    assert summary["backlog"] == 500 and summary["planned"] == 400 and summary["inserted"] == 400
    assert set(env.store.sync_rows()) == set(oldest_first[:400])
    assert summary["left_for_next_run"] == 100


def test_the_flow_keeps_to_its_share_of_the_hourly_budget(env, emulator_process, monkeypatch):
    budget(monkeypatch, emulator_process, hourly=10)
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Peters", "Company": "P"}])
    env.store.bulk_moments([env.store.customer(lead=lead_id)], 2000)

    summary = run(hourly_share=0.3, bulk_threshold=100_000)

    assert summary["requests_allowed"] == 3 and summary["inserted"] == 600
    assert "share" in summary["budget_limited_by"]


def test_a_blocked_token_stops_the_run_at_once_and_the_rest_is_sent_after_the_block(env, caplog):
    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Vos", "Company": "V"}])
    env.store.bulk_moments([env.store.customer(lead=lead_id)], 600)
    env.sf.inject_fault("limit", at_request=env.sf.counters()["total"] + 2)  # the second composite request

    with caplog.at_level(logging.INFO):
        summary = run(bulk_threshold=10_000)  # the task ends (no deferral): the rest goes with a later run

    assert summary["outcome"] == "limited" and summary["inserted"] == 200
    assert "SALESFORCE API LIMIT REACHED" in caplog.text
    assert len(env.sf.records(LEAD_OBJECT)) == 200 and len(env.store.sync_rows()) == 200
    run_log = env.store.last_run()
    assert run_log["outcome"] == "limited" and "REQUEST_LIMIT_EXCEEDED" in run_log["message"]
    assert run_log["inserted"] == 200
    requests_before = env.sf.counters()["total"]

    assert run(bulk_threshold=10_000)["outcome"] == "limited"  # still blocked: nothing is even tried
    assert env.sf.counters()["total"] == requests_before

    env.store.sql("UPDATE api_budget_state SET blocked_until = clock_timestamp() - interval '1 second'")  # block over
    summary = run(bulk_threshold=10_000)
    assert summary["inserted"] == 400
    assert len(env.sf.records(LEAD_OBJECT)) == 600


# -- the demo -----------------------------------------------------------------------------------------


def test_demo_moments_are_seeded_once_per_customer_then_get_new_events(env):
    from include.demo_contact_moments import seed_demo_contact_moments

    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Demo", "Company": "D"}])
    (contact_id,) = env.sf.seed("Contact", [{"LastName": "Demo"}])
    env.store.customer(lead=lead_id)
    env.store.customer(contact=contact_id)
    env.store.customer(email="zonder-id@example.nl")
    store = DeployteqHook("deployteq_default")

    first = seed_demo_contact_moments(store)
    assert first["customers"] == 2 and first["new_moments"] >= 4 and first["moments_with_new_events"] == 0
    sent = run()
    assert sent["inserted"] == first["new_moments"]

    second = seed_demo_contact_moments(store)
    assert second["new_moments"] == 0
    assert run()["updated"] == second["moments_with_new_events"]


# -- a worker killed while its Bulk job runs ---------------------------------------------------------------

CHILD = """
import sys
from tests import airflow_env
airflow_env.configure()
sys.path.insert(0, "plugins")
from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator
ContactMomentsToSalesforceOperator(task_id="send", hourly_share=1.0).execute({})
"""


def test_a_bulk_job_closed_before_the_worker_died_is_recorded_not_sent_again(env):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    (lead_id,) = env.sf.seed("Lead", [{"LastName": "Vos", "Company": "V"}])
    env.store.bulk_moments([env.store.customer(lead=lead_id)], 2500)  # above the Bulk threshold: one job
    first = env.sf.counters()["total"] + 1  # create the job, upload, close (held by a slow fault), ...
    env.sf.inject_fault("slow", at_request=first + 2, delay_seconds=3)
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=Path(__file__).resolve().parents[3],
                             env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while env.sf.counters()["total"] < first + 2:
            assert time.monotonic() < deadline and child.poll() is None, "the run never closed its Bulk job"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    time.sleep(3.5)  # Salesforce goes on: the job is closed and processed although the worker is gone
    assert len(env.sf.records(LEAD_OBJECT)) == 2500 and env.store.sync_rows() == {}

    summary = run()

    uploads = {k: n for k, n in env.sf.counters()["by_endpoint"].items() if k.startswith("PUT jobs/ingest")}
    assert list(uploads.values()) == [1], f"the moments were uploaded once: {uploads}"
    assert summary["inserted"] + summary["updated"] == 2500 and len(env.store.sync_rows()) == 2500
    assert len(env.sf.records(LEAD_OBJECT)) == 2500
    assert run()["fetched"] == 0, "nothing is left to send"
