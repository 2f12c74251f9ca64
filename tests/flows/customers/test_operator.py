"""Lead/Contact -> customer table through the operator, against the emulator and a real PostgreSQL."""

from __future__ import annotations

import copy
import json

import psycopg
import pytest

from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

FLAG = "Sync_to_Deployteq__c"

LEAD = {
    "sobject": "Lead",
    "unique_field": "email",
    "sync_flag_field": FLAG,
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Company", "deployteq_type": "text", "deployteq_field": "company"},
        {
            "salesforce_field": "Industry",
            "deployteq_type": "text",
            "deployteq_field": "industry",
            "translations": {"Technology": "ICT", "Banking": "Financiële dienstverlening"},
        },
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ],
}
CONTACT = {
    "sobject": "Contact",
    "unique_field": "email",
    "sync_flag_field": FLAG,
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ],
}


def config(*objects, **overrides):
    result = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        obj.update(overrides)
        result.append(obj)
    return {"objects": result}


def run(sobject, cfg, **kwargs):
    op = SalesforceToDeployteqOperator(task_id=f"sync_{sobject.lower()}", sobject=sobject, object_config=cfg, **kwargs)
    return op.execute({})


def customers(pg_url, schema):
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        cur = conn.execute(
            "SELECT email, first_name, last_name, company, industry, email_optin, status, sf_lead_id, sf_contact_id, sf_deleted "
            "FROM customer ORDER BY customer_id"
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def errors(pg_url, schema):
    with psycopg.connect(pg_url) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        return conn.execute("SELECT record_id, reason FROM sync_error WHERE resolved_at IS NULL ORDER BY record_id").fetchall()


def lead(n, **fields):
    record = {
        "FirstName": f"Voornaam{n}",
        "LastName": f"Achternaam{n}",
        "Company": f"Bedrijf {n} BV",
        "Email": f"lead{n}@example.nl",
        FLAG: True,
    }
    record.update(fields)
    return record


@pytest.fixture
def env(emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema):
    class Env:
        sf = emulator
        url = pg_url
        schema = pg_schema

        def customers(self):
            return customers(pg_url, pg_schema)

        def errors(self):
            return errors(pg_url, pg_schema)

    return Env()


def test_only_flagged_leads_are_synced_and_flags_reset_in_batches(env):
    ids = env.sf.seed("Lead", [lead(i) for i in range(5)] + [lead(i, **{FLAG: False}) for i in range(5, 8)])
    before = env.sf.counters()["total"]
    summary = run("Lead", config(LEAD))
    assert summary["inserted"] == 5 and summary["flags_reset"] == 5
    assert sorted(c["email"] for c in env.customers()) == [f"lead{i}@example.nl" for i in range(5)]
    flags = {r["Id"]: r[FLAG] for r in env.sf.records("Lead")}
    assert not any(flags[i] for i in ids)
    by_endpoint = env.sf.counters()["by_endpoint"]
    # describe, query, the first run's read of deleted records, one composite reset, the read after it
    assert env.sf.counters()["total"] - before <= 5, by_endpoint
    assert not any(k.startswith("PATCH sobjects") for k in by_endpoint), "no per-record update"


def test_second_run_fetches_only_new_changes(env):
    env.sf.seed("Lead", [lead(i) for i in range(3)])
    run("Lead", config(LEAD))
    env.sf.advance_clock(600)
    first = env.sf.records("Lead")[0]
    env.sf.update("Lead", [{"Id": first["Id"], "FirstName": "Gewijzigd", FLAG: True}])
    summary = run("Lead", config(LEAD))
    assert summary["fetched"] == 1 and summary["updated"] == 1 and summary["inserted"] == 0
    assert {c["first_name"] for c in env.customers()} >= {"Gewijzigd"}


def test_incremental_without_flag_uses_systemmodstamp_window(env):
    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(4)])
    assert run("Lead", config(LEAD, sync_flag_field=None))["inserted"] == 4
    env.sf.advance_clock(3600)
    rerun = run("Lead", config(LEAD, sync_flag_field=None))
    # the lookback re-reads the end of the previous window; nothing changes
    assert (rerun["inserted"], rerun["updated"]) == (0, 0)
    env.sf.advance_clock(60)
    assert run("Lead", config(LEAD, sync_flag_field=None))["fetched"] == 0
    target = env.sf.records("Lead")[2]
    env.sf.update("Lead", [{"Id": target["Id"], "Company": "Nieuw BV"}])
    summary = run("Lead", config(LEAD, sync_flag_field=None))
    assert summary["fetched"] == 1 and summary["updated"] == 1


def test_translations_opt_in_and_status(env):
    env.sf.seed(
        "Lead",
        [
            lead(1, Industry="Technology", Email_Opt_In__c="Y"),
            lead(2, Industry="Banking", Email_Opt_In__c=" y "),
            lead(3, Industry="Retail", Email_Opt_In__c="N"),
            lead(4, Industry=None, Email_Opt_In__c=None),
        ],
    )
    run("Lead", config(LEAD))
    rows = {c["email"]: c for c in env.customers()}
    assert rows["lead1@example.nl"]["industry"] == "ICT"
    assert rows["lead2@example.nl"]["industry"] == "Financiële dienstverlening"
    assert rows["lead3@example.nl"]["industry"] == "Retail", "untranslated values are kept"
    assert [rows[f"lead{i}@example.nl"]["email_optin"] for i in (1, 2, 3, 4)] == [True, True, False, False]
    assert {c["status"] for c in rows.values()} == {"Prospect"}


def test_contact_status_is_klant(env):
    env.sf.seed("Contact", [{"LastName": "Jansen", "Email": "jansen@example.nl", FLAG: True, "Email_Opt_In__c": "Y"}])
    run("Contact", config(CONTACT))
    [row] = env.customers()
    assert (row["status"], row["email_optin"]) == ("Klant", True)


def test_conversion_lead_first_then_contact_keeps_one_customer(env):
    [lead_id] = env.sf.seed("Lead", [lead(1, FirstName="Piet")])
    run("Lead", config(LEAD))
    env.sf.advance_clock(120)
    converted = env.sf.convert_lead(lead_id)
    env.sf.update("Contact", [{"Id": converted["contact_id"], FLAG: True, "FirstName": "Pieter"}])
    run("Contact", config(CONTACT))
    [row] = env.customers()
    assert (row["sf_lead_id"], row["sf_contact_id"], row["status"], row["first_name"]) == (
        lead_id, converted["contact_id"], "Klant", "Pieter"
    )


def test_converted_lead_arriving_after_its_contact_does_not_overwrite(env):
    [lead_id] = env.sf.seed("Lead", [lead(1, FirstName="Oud", **{FLAG: False})])
    converted = env.sf.convert_lead(lead_id)
    env.sf.update("Contact", [{"Id": converted["contact_id"], FLAG: True, "FirstName": "Nieuw"}])
    run("Contact", config(CONTACT))
    env.sf.advance_clock(60)
    run("Lead", config(LEAD, sync_flag_field=None))
    [row] = env.customers()
    assert row["first_name"] == "Nieuw" and row["status"] == "Klant"
    assert (row["sf_lead_id"], row["sf_contact_id"]) == (lead_id, converted["contact_id"])


def test_duplicate_emails_in_one_batch_latest_wins_and_loser_is_recorded(env):
    old, new = env.sf.seed(
        "Lead",
        [
            lead(1, Email="Dubbel@Example.nl ", FirstName="Eerste", SystemModstamp="2026-01-01T10:00:00.000+0000"),
            lead(2, Email="dubbel@example.nl", FirstName="Tweede", SystemModstamp="2026-01-01T11:00:00.000+0000"),
        ],
    )
    run("Lead", config(LEAD, sync_flag_field=None))
    [row] = env.customers()
    assert (row["first_name"], row["sf_lead_id"]) == ("Tweede", new)
    recorded = dict(env.errors())
    assert old in recorded and new in recorded[old]


def test_missing_email_under_email_uniqueness_is_an_error_and_batch_goes_on(env):
    missing, *_ = env.sf.seed("Lead", [lead(1, Email=None), lead(2), lead(3)])
    summary = run("Lead", config(LEAD))
    assert summary["errors"] == 1 and summary["inserted"] == 2
    [(record_id, reason)] = env.errors()
    assert record_id == missing and "e-mail" in reason
    flags = {r["Id"]: r[FLAG] for r in env.sf.records("Lead")}
    assert flags.pop(missing) is True, "a record that was not stored keeps its sync flag (R3)"
    assert not any(flags.values())


def test_failed_record_is_stored_on_the_run_after_it_is_fixed(env):
    missing, _ = env.sf.seed("Lead", [lead(1, Email=None), lead(2)])
    run("Lead", config(LEAD))
    env.sf.advance_clock(60)
    env.sf.update("Lead", [{"Id": missing, "Email": "now@example.nl"}])
    summary = run("Lead", config(LEAD))
    assert summary["inserted"] == 1 and env.errors() == []
    assert not any(r[FLAG] for r in env.sf.records("Lead"))


def test_id_uniqueness_keeps_lead_and_contact_apart(env):
    [lead_id] = env.sf.seed("Lead", [lead(1)])
    id_lead = copy.deepcopy(LEAD)
    id_lead["unique_field"] = "id"
    for m in id_lead["mappings"]:
        m["unique_key"] = False
    id_lead["mappings"].append({"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True})
    run("Lead", {"objects": [id_lead]})
    converted = env.sf.convert_lead(lead_id)
    id_contact = copy.deepcopy(CONTACT)
    id_contact["unique_field"] = "id"
    for m in id_contact["mappings"]:
        m["unique_key"] = False
    id_contact["mappings"].append({"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_contact_id", "unique_key": True})
    env.sf.update("Contact", [{"Id": converted["contact_id"], FLAG: True}])
    run("Contact", {"objects": [id_contact]})
    rows = env.customers()
    assert len(rows) == 2
    assert {(r["sf_lead_id"], r["sf_contact_id"]) for r in rows} == {(lead_id, None), (None, converted["contact_id"])}


def test_equal_timestamps_across_page_boundaries_neither_loop_nor_skip(env):
    stamp = "2026-01-01T12:00:00.000+0000"
    env.sf.seed("Lead", [lead(i, SystemModstamp=stamp, **{FLAG: False}) for i in range(2500)])
    summary = run("Lead", config(LEAD, sync_flag_field=None, page_size=200), batch_size=300)
    assert summary["fetched"] == 2500 and summary["inserted"] == 2500
    again = run("Lead", config(LEAD, sync_flag_field=None, page_size=200), batch_size=300)
    assert again["inserted"] == 0 and again["updated"] == 0
    assert len(env.customers()) == 2500


def test_crash_between_commit_and_flag_reset_loses_nothing(env):
    env.sf.seed("Lead", [lead(i) for i in range(3)])
    env.sf.inject_fault("500", count=20, path_contains="composite/sobjects")
    with pytest.raises(Exception):
        run("Lead", config(LEAD))
    assert len(env.customers()) == 3, "the rows were committed before the reset failed"
    assert all(r[FLAG] for r in env.sf.records("Lead"))
    env.sf.clear_faults()
    summary = run("Lead", config(LEAD))
    assert summary["inserted"] == 0
    assert len(env.customers()) == 3
    assert not any(r[FLAG] for r in env.sf.records("Lead"))


def test_bad_configuration_fails_before_anything_is_fetched(env):
    env.sf.seed("Lead", [lead(1)])
    bad = copy.deepcopy(LEAD)
    bad["mappings"].append({"salesforce_field": "Shoe_Size__c", "deployteq_type": "text", "deployteq_field": "city"})
    with pytest.raises(ConfigurationError) as info:
        run("Lead", config(bad))
    assert "Shoe_Size__c" in str(info.value) and "Lead" in str(info.value)
    assert not any("query" in k.lower() for k in env.sf.counters()["by_endpoint"])
    assert env.customers() == []


def test_deleted_lead_is_marked_not_kept_live(env):
    ids = env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(2)])
    run("Lead", config(LEAD, sync_flag_field=None))
    env.sf.advance_clock(60)
    env.sf.delete([ids[0]])
    summary = run("Lead", config(LEAD, sync_flag_field=None))
    assert summary["deleted"] == 1
    rows = {r["sf_lead_id"]: r for r in env.customers()}
    assert rows[ids[0]]["sf_deleted"] is True and rows[ids[1]]["sf_deleted"] is False


def test_deleted_lead_is_detected_in_flag_mode_too(env):
    ids = env.sf.seed("Lead", [lead(i) for i in range(2)])
    run("Lead", config(LEAD))
    env.sf.advance_clock(60)
    env.sf.delete([ids[1]])
    run("Lead", config(LEAD))
    rows = {r["sf_lead_id"]: r for r in env.customers()}
    assert rows[ids[1]]["sf_deleted"] is True


def test_in_flag_mode_a_lead_deleted_after_an_interrupted_first_run_is_marked_by_the_first_complete_run(env):
    """Found by make soak: the first attempt stored customers and died before its watermark; a lead deleted long
    before the next (first complete) run was never read as deleted, since each later window starts after it."""
    from tests.crash_points.harness import KillPoint, run_killed

    ids = env.sf.seed("Lead", [lead(i) for i in range(300)])
    cfg = config(LEAD, page_size=200)
    # describe, page 1 (200 leads stored in their own batch), then killed before asking for page 2
    assert run_killed(lambda: run("Lead", cfg, batch_size=200), KillPoint("request", 3, "before")) == -9
    stored = {r["sf_lead_id"] for r in env.customers()}
    deleted = next(i for i in ids if i in stored)
    env.sf.delete([deleted])
    env.sf.advance_clock(3600)  # the deletion is far behind the window of every later run

    run("Lead", cfg, batch_size=200)
    run("Lead", cfg, batch_size=200)

    rows = {r["sf_lead_id"]: r for r in env.customers()}
    assert rows[deleted]["sf_deleted"] is True
    assert sum(r["sf_deleted"] for r in rows.values()) == 1


def test_large_change_sets_switch_to_bulk_api(env):
    env.sf.seed("Lead", [lead(i) for i in range(600)])
    summary = run("Lead", config(LEAD, bulk_threshold=250))
    assert summary["inserted"] == 600 and summary["flags_reset"] == 600
    endpoints = env.sf.counters()["by_endpoint"]
    assert any("jobs/query" in k for k in endpoints) and any("jobs/ingest" in k for k in endpoints), endpoints
    assert env.sf.counters()["total"] <= 20
    assert not any(r[FLAG] for r in env.sf.records("Lead"))


def test_run_stopped_by_budget_keeps_progress_and_next_run_continues(env, monkeypatch, salesforce_conn_id):
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    # one change a minute over the last ~17 hours
    stamps = [f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00.000+0000" for i in range(1000)]
    env.sf.seed("Lead", [lead(i, SystemModstamp=stamps[i], **{FLAG: False}) for i in range(1000)])
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["extra"]["hourly_budget"] = 4  # describe + 3 pages of 200
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    cfg = config(LEAD, sync_flag_field=None, page_size=200)
    with pytest.raises((AirflowSkipException, TaskDeferred)):
        run("Lead", cfg, batch_size=200)
    partial = len(env.customers())
    assert 0 < partial < 1000
    with psycopg.connect(env.url) as db:
        watermark = db.execute(
            f'SELECT watermark_modstamp FROM "{env.schema}".sync_state WHERE flow = %s', ("sync:Lead",)
        ).fetchone()
    assert watermark is None or watermark[0] is None, "a stopped run leaves no partial watermark"
    conn["extra"]["hourly_budget"] = 3600
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    summary = run("Lead", cfg, batch_size=200)
    assert len(env.customers()) == 1000
    assert summary["fetched"] < 1000, "the next run continued from the committed progress"


def test_initial_load_reads_everything_without_touching_salesforce(env):
    env.sf.seed("Lead", [lead(i, **{FLAG: i % 2 == 0}) for i in range(10)])
    before = {r["Id"]: (r["SystemModstamp"], r[FLAG]) for r in env.sf.records("Lead")}
    summary = run("Lead", config(LEAD), full_load=True)
    assert summary["inserted"] == 10 and summary["flags_reset"] == 0
    assert {r["Id"]: (r["SystemModstamp"], r[FLAG]) for r in env.sf.records("Lead")} == before
    assert not any(k.startswith(("PATCH", "POST composite")) for k in env.sf.counters()["by_endpoint"])
    # the incremental DAG starts where the initial load ended: only new flagged changes come next
    env.sf.advance_clock(600)
    assert run("Lead", config(LEAD))["inserted"] == 0


def test_initial_load_stopped_by_budget_resumes_where_it_stopped(env, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(900)])
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["extra"]["hourly_budget"] = 3
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    cfg = config(LEAD, page_size=200)
    with pytest.raises((AirflowSkipException, TaskDeferred)):
        run("Lead", cfg, batch_size=200, full_load=True)
    assert 0 < len(env.customers()) < 900
    conn["extra"]["hourly_budget"] = 3600
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    before = env.sf.counters()["total"]
    summary = run("Lead", cfg, batch_size=200, full_load=True)
    assert len(env.customers()) == 900
    assert summary["fetched"] < 900, "the second run read only what the first did not commit"
    assert env.sf.counters()["total"] - before < 7


def id_unique(obj):
    """The same object configured with the Salesforce Id as its unique field."""
    obj = copy.deepcopy(obj)
    obj["unique_field"] = "id"
    for mapping in obj["mappings"]:
        mapping["unique_key"] = False
    column = "sf_lead_id" if obj["sobject"] == "Lead" else "sf_contact_id"
    obj["mappings"].append({"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": column, "unique_key": True})
    return obj


def test_records_queued_for_retry_are_read_again_whatever_their_timestamp(env):
    broken, _ = env.sf.seed("Lead", [lead(1, Email=None, **{FLAG: False}), lead(2, **{FLAG: False})])
    run("Lead", config(LEAD, sync_flag_field=None))
    assert [r for r, _ in env.errors()] == [broken]
    env.sf.advance_clock(3600)
    run("Lead", config(LEAD, sync_flag_field=None))  # the watermark moves far past the broken lead
    # ops switch the object to Id uniqueness, under which a lead without e-mail is fine, and queue a retry
    with psycopg.connect(env.url) as conn:
        conn.execute(f'UPDATE "{env.schema}".sync_error SET retry_requested = true')
    summary = run("Lead", {"objects": [id_unique(LEAD) | {"sync_flag_field": None}]})
    assert summary["fetched"] == 1, "only the queued record was read (the window itself is empty)"
    assert summary["inserted"] == 1
    assert env.errors() == []
    assert broken in {c["sf_lead_id"] for c in env.customers()}

# -- run log, budget stops and the budget trigger ------------------------------------------------------


def run_log(env) -> list[dict]:
    with psycopg.connect(env.url) as conn:
        cur = conn.execute(f'SELECT * FROM "{env.schema}".run_log ORDER BY run_log_id')
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def set_hourly_budget(monkeypatch, hourly: int) -> None:
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["extra"]["hourly_budget"] = hourly
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))


def test_a_configuration_error_found_while_building_the_run_leaves_a_failed_row(env):
    broken = copy.deepcopy(LEAD)
    broken["mappings"][1]["deployteq_type"] = "no_such_type"

    with pytest.raises(ConfigurationError):
        run("Lead", config(broken))

    (row,) = run_log(env)
    assert row["flow"] == "sync:Lead" and row["outcome"] == "failed"
    assert "object 1 (Lead)" in row["message"] and "deployteq_type" in row["message"]
    assert env.sf.counters()["total"] == 0


def test_what_was_read_before_a_budget_stop_is_stored(env, monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred

    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(1000)])
    set_hourly_budget(monkeypatch, 4)  # describe + 3 pages of 200, then the budget is used up

    with pytest.raises((AirflowSkipException, TaskDeferred)):
        run("Lead", config(LEAD, sync_flag_field=None, page_size=200), batch_size=5000)

    assert len(env.customers()) == 600, "the 600 records read were stored although no batch was full"
    (row,) = run_log(env)
    assert (row["outcome"], row["fetched"], row["inserted"]) == ("limited", 600, 600)


def test_a_budget_stop_defers_on_budget_trigger_and_the_resumed_task_continues_the_same_run(env, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    from deployteq_salesforce.triggers.budget import BudgetTrigger

    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(1000)])
    set_hourly_budget(monkeypatch, 4)
    op = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead",
                                       object_config=config(LEAD, sync_flag_field=None, page_size=200), batch_size=200)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})

    trigger = deferred.value.trigger
    assert isinstance(trigger, BudgetTrigger) and trigger.salesforce_conn_id == "salesforce_default"
    assert deferred.value.method_name == "execute_complete"
    resume = deferred.value.kwargs["resume"]
    set_hourly_budget(monkeypatch, 3600)
    requests_before = env.sf.counters()["by_endpoint"]

    summary = op.execute_complete({}, event={"status": "budget_available", "message": "room again"}, resume=resume)

    assert len(env.customers()) == 1000
    (row,) = run_log(env)  # one run, continued: not a second row
    assert row["outcome"] == "success" and row["fetched"] == summary["fetched"] >= 1000
    assert row["api_requests"] == summary["api_requests"] == env.sf.counters()["total"]
    describes = env.sf.counters()["by_endpoint"]["GET sobjects/Lead/describe"]
    assert describes == requests_before["GET sobjects/Lead/describe"] == 1, "no second describe after the wait"


def test_a_wait_for_budget_that_ran_out_ends_the_run_as_skipped(env):
    from airflow.sdk.exceptions import AirflowSkipException

    op = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config=config(LEAD))
    with pytest.raises(AirflowSkipException, match="gave up waiting"):
        op.execute_complete({}, event={"status": "gave_up", "message": "still refused (hourly)"}, resume={})


def test_a_run_deferred_before_its_describe_describes_when_it_resumes(env, monkeypatch):
    from airflow.sdk.exceptions import TaskDeferred

    from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(3)])
    set_hourly_budget(monkeypatch, 1)
    BudgetedSalesforceHook(flow="other").limits()  # another flow spent the hour's only request
    op = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config=config(LEAD, sync_flag_field=None))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    set_hourly_budget(monkeypatch, 3600)

    summary = op.execute_complete({}, event={"status": "budget_available"}, resume=deferred.value.kwargs["resume"])

    assert summary["inserted"] == 3 and summary["errors"] == 0
    assert {c["last_name"] for c in env.customers()} == {"Achternaam0", "Achternaam1", "Achternaam2"}


def test_budget_that_frees_up_within_a_minute_is_waited_for_in_the_worker(env, monkeypatch):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook
    from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

    env.sf.seed("Lead", [lead(i, **{FLAG: False}) for i in range(3)])
    set_hourly_budget(monkeypatch, 3)
    key = BudgetedSalesforceHook().budget_settings.budget_key
    store = DeployteqHook()
    store.migrate()
    with store.connect() as conn:  # the hour's budget was used by requests that leave it in 3 seconds
        conn.execute("INSERT INTO api_ledger (budget_key, requested_at, flow, method, endpoint) "
                     "SELECT %s, clock_timestamp() - interval '3597 seconds', 'other', 'GET', 'query/' "
                     "FROM generate_series(1, 3)", (key,))

    summary = run("Lead", config(LEAD, sync_flag_field=None))  # no TaskDeferred: it waited in the worker

    assert summary["outcome"] == "success" and summary["inserted"] == 3
    (row,) = run_log(env)
    assert (row["outcome"], row["fetched"], row["api_requests"]) == ("success", 3, 2)


# -- a record Salesforce sends again unchanged leaves its customer alone --------------------------------------


def set_optin(env, sf_id: str, value: bool) -> None:
    """A Deployteq-side change (e.g. the preference centre), not yet sent to Salesforce."""
    with psycopg.connect(env.url) as conn:
        conn.execute(f'UPDATE "{env.schema}".customer SET email_optin = %s WHERE sf_lead_id = %s', (value, sf_id))


def optin_of(env, sf_id: str) -> bool:
    with psycopg.connect(env.url) as conn:
        return conn.execute(f'SELECT email_optin FROM "{env.schema}".customer WHERE sf_lead_id = %s', (sf_id,)).fetchone()[0]


def test_a_deployteq_change_survives_salesforce_sending_the_same_record_again(env):
    (lead_id,) = env.sf.seed("Lead", [lead(1, Email_Opt_In__c=False, **{FLAG: False})])
    cfg = config(LEAD, sync_flag_field=None)
    run("Lead", cfg)
    set_optin(env, lead_id, True)

    again = run("Lead", cfg)  # the lookback reads the lead again: Salesforce did not change it

    assert again["fetched"] == 1 and again["updated"] == 0 and again["skipped"] == 1
    assert optin_of(env, lead_id) is True
    env.sf.advance_clock(60)
    env.sf.update("Lead", [{"Id": lead_id, "FirstName": "Nieuw"}])
    run("Lead", cfg)  # a real change in Salesforce is written, with Salesforce's values
    assert {c["first_name"] for c in env.customers()} == {"Nieuw"} and optin_of(env, lead_id) is False


def test_the_read_after_a_flag_reset_does_not_undo_a_deployteq_change(env):
    import threading
    import time

    (lead_id,) = env.sf.seed("Lead", [lead(1, Email_Opt_In__c=False)])
    run("Lead", config(LEAD))
    env.sf.update("Lead", [{"Id": lead_id, FLAG: True}])  # flagged again, nothing else changed
    env.sf.inject_fault("slow", path_contains="composite/sobjects", delay_seconds=2)
    worker = threading.Thread(target=lambda: run("Lead", config(LEAD)))
    worker.start()
    deadline = time.monotonic() + 30
    while env.sf.counters()["by_endpoint"].get("PATCH composite/sobjects", 0) < 2:  # the second run's reset
        assert time.monotonic() < deadline
        time.sleep(0.05)
    set_optin(env, lead_id, True)  # the preference centre, while the reset is in flight
    worker.join(timeout=60)

    assert optin_of(env, lead_id) is True


def test_a_full_load_writes_every_record_even_unchanged_ones(env):
    (lead_id,) = env.sf.seed("Lead", [lead(1, Email_Opt_In__c=False, **{FLAG: False})])
    run("Lead", config(LEAD, sync_flag_field=None))
    set_optin(env, lead_id, True)

    run("Lead", config(LEAD, sync_flag_field=None), full_load=True)

    assert optin_of(env, lead_id) is False


def test_the_bulk_read_after_a_flag_reset_maps_only_records_that_changed(env, monkeypatch):
    from deployteq_salesforce.flows.customers.operator import CustomerSync

    ids = env.sf.seed("Lead", [lead(n) for n in range(300)])
    mapped = []
    original = CustomerSync._map
    monkeypatch.setattr(CustomerSync, "_map", lambda self, records: mapped.append(len(records)) or original(self, records))

    summary = run("Lead", config(LEAD, bulk_threshold=250))  # Bulk read, Bulk reset, Bulk read again

    assert summary["read_again_after_flag_reset"] == 300 and summary["flags_reset"] == 300
    assert sum(mapped) == 300  # the 300 read back unchanged were recognised by their record hash, not mapped again
    with psycopg.connect(env.url) as conn:
        stored = conn.execute(f'SELECT count(*) FROM "{env.schema}".customer WHERE sf_lead_id = ANY(%s)', (ids,)).fetchone()[0]
        queued = conn.execute(f'SELECT count(*) FROM "{env.schema}".flag_reset_queue').fetchone()[0]
    assert (stored, queued) == (300, 0)
    assert not [r for r in env.sf.records("Lead") if r.get(FLAG)]


def test_an_edit_made_while_a_bulk_flag_reset_waits_is_mapped_and_stored(env, monkeypatch):
    import threading

    from deployteq_salesforce.flows.customers.operator import CustomerSync
    from tests.emulator_waits import wait_for_request

    ids = env.sf.seed("Lead", [lead(n) for n in range(300)])
    mapped = []
    original = CustomerSync._map
    monkeypatch.setattr(CustomerSync, "_map", lambda self, records: mapped.append(len(records)) or original(self, records))
    env.sf.inject_fault("slow", path_contains="/batches", delay_seconds=3)  # the reset job's data upload is held
    worker = threading.Thread(target=lambda: run("Lead", config(LEAD, bulk_threshold=250)))
    worker.start()
    wait_for_request(env.sf, "PUT jobs/ingest/{id}/batches", timeout=60)  # the flag reset's upload

    env.sf.update("Lead", [{"Id": ids[7], "FirstName": "Later", FLAG: True}])
    worker.join(timeout=120)

    assert sum(mapped) == 301  # the first read, then only the edited record of the 300 read again
    assert {c["first_name"] for c in env.customers() if c["sf_lead_id"] == ids[7]} == {"Later"}
