"""Object links -> datamodel tables through the operator, against the emulator and a real PostgreSQL (R10)."""

from __future__ import annotations

import copy

import psycopg
import pytest

from deployteq_salesforce.flows.object_links.datamodel import DestructiveChange
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator
from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

FLAG = "SyncWithClang__c"

CAMPAIGN_WEBHOOK = {
    "name": "campaign",
    "datamodel": "dm_campaign",
    "fields": [
        {"json_field": "Id", "column": "sf_id", "dedup": True, "max_length": 18},
        {"json_field": "Name", "column": "name", "max_length": 80},
        {"json_field": "Type", "column": "campaign_type"},
        {"json_field": "StartDate", "column": "start_date", "type": "date"},
        {"json_field": "IsActive", "column": "is_active", "type": "boolean"},
    ],
}
MEMBER_WEBHOOK = {
    "name": "campaign-member",
    "datamodel": "dm_campaign_member",
    "fields": [
        {"json_field": "Id", "column": "sf_id", "dedup": True},
        {"json_field": "CampaignId", "column": "campaign_id"},
        {"json_field": "LeadId", "column": "lead_id"},
        {"json_field": "ContactId", "column": "contact_id"},
        {"json_field": "Status", "column": "status"},
    ],
    "customer_relation": [
        {"column": "contact_id", "customer_field": "sf_contact_id"},
        {"column": "lead_id", "customer_field": "sf_lead_id"},
    ],
}
CAMPAIGN_LINK = {"name": "campaigns", "sobject": "Campaign", "webhook": "campaign", "datamodel": "dm_campaign"}
MEMBER_LINK = {
    "name": "campaign_members", "sobject": "CampaignMember", "webhook": "campaign-member",
    "datamodel": "dm_campaign_member", "delete": True,
}
LEAD_CONFIG = {"objects": [{
    "sobject": "Lead", "unique_field": "id",
    "mappings": [
        {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True},
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
    ],
}]}


def links(*items, webhooks=(CAMPAIGN_WEBHOOK, MEMBER_WEBHOOK), **overrides):
    result = []
    for item in items:
        item = copy.deepcopy(item)
        item.update(overrides)
        result.append(item)
    return {"webhooks": copy.deepcopy(list(webhooks)), "links": result}


def run(name, cfg, **kwargs):
    return ObjectLinkSyncOperator(task_id=f"t_{name}", link_name=name, links_config=cfg, **kwargs).execute({})


@pytest.fixture
def env(emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema):
    class Env:
        sf = emulator

        def rows(self, statement, params=()):
            with psycopg.connect(pg_url) as conn:
                conn.execute(f'SET search_path = "{pg_schema}"')
                return conn.execute(statement, params).fetchall()

        def execute(self, statement, params=()):
            with psycopg.connect(pg_url) as conn:
                conn.execute(f'SET search_path = "{pg_schema}"')
                conn.execute(statement, params)

    return Env()


def seed(env, sobject, records):
    """Seed, then move the emulator clock on so later changes are in a later second than the first run's window."""
    ids = env.sf.seed(sobject, records)
    env.sf.advance_clock(2)
    return ids


def campaign(n, **fields):
    return {"Name": f"Campagne {n}", "Type": "Email", "StartDate": "2024-03-01", "IsActive": True, FLAG: True, **fields}


def test_new_and_changed_records_land_in_typed_columns_and_second_run_reads_only_changes(env):
    ids = seed(env, "Campaign", [campaign(i) for i in range(3)])
    first = run("campaigns", links(CAMPAIGN_LINK))
    assert (first["fetched"], first["inserted"]) == (3, 3)
    rows = env.rows("SELECT sf_id, name, start_date::text, is_active FROM dm_campaign ORDER BY name")
    assert rows == [(ids[i], f"Campagne {i}", "2024-03-01", True) for i in range(3)]
    columns = dict(env.rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'dm_campaign' "
                            "AND table_schema = current_schema()"))
    assert columns["start_date"] == "date" and columns["is_active"] == "boolean" and columns["name"] == "character varying"

    env.sf.advance_clock(5)
    env.sf.update("Campaign", [{"Id": ids[1], "Name": "Voorjaarsactie"}])
    second = run("campaigns", links(CAMPAIGN_LINK, lookback_seconds=0))
    assert (second["fetched"], second["updated"], second["inserted"]) == (1, 1, 0)
    assert env.rows("SELECT name FROM dm_campaign WHERE sf_id = %s", (ids[1],)) == [("Voorjaarsactie",)]


def test_dedup_key_is_unique_in_the_table(env):
    env.sf.seed("Campaign", [campaign(1)])
    run("campaigns", links(CAMPAIGN_LINK))
    with pytest.raises(psycopg.errors.UniqueViolation):
        env.execute("INSERT INTO dm_campaign (sf_id, name) SELECT sf_id, 'dubbel' FROM dm_campaign")


def test_allow_inserts_no_updates_known_rows_and_skips_new_ones(env):
    ids = seed(env, "Campaign", [campaign(i) for i in range(2)])
    run("campaigns", links(CAMPAIGN_LINK))
    env.sf.advance_clock(5)
    env.sf.update("Campaign", [{"Id": ids[0], "Name": "Gewijzigd"}])
    new_id = env.sf.seed("Campaign", [campaign(9)])[0]

    summary = run("campaigns", links(CAMPAIGN_LINK, allow_inserts=False, lookback_seconds=0))

    assert summary["updated"] == 1 and summary["inserted"] == 0 and summary["not_inserted"] == 1
    assert summary["skipped"] >= 1
    assert env.rows("SELECT count(*) FROM dm_campaign WHERE sf_id = %s", (new_id,)) == [(0,)]
    assert env.rows("SELECT name FROM dm_campaign WHERE sf_id = %s", (ids[0],)) == [("Gewijzigd",)]


def test_use_sync_column_reads_only_flagged_records_and_resets_them_in_one_request(env):
    ids = env.sf.seed("Campaign", [campaign(i) for i in range(4)] + [campaign(i, **{FLAG: False}) for i in range(4, 6)])
    before = env.sf.counters()

    summary = run("campaigns", links(CAMPAIGN_LINK, use_sync_column=True))

    assert summary["inserted"] == 4 and summary["flags_reset"] == 4
    assert env.rows("SELECT count(*) FROM dm_campaign") == [(4,)]
    assert not any(r[FLAG] for r in env.sf.records("Campaign"))
    by_endpoint = {k: v - before["by_endpoint"].get(k, 0) for k, v in env.sf.counters()["by_endpoint"].items()}
    assert by_endpoint.get("POST composite/sobjects", 0) + by_endpoint.get("PATCH composite/sobjects", 0) == 1, by_endpoint
    assert not any(k.startswith("PATCH sobjects/Campaign/") for k in by_endpoint)
    assert env.rows("SELECT count(*) FROM flag_reset_queue WHERE flow = 'link:campaigns'") == [(0,)]
    assert len(ids) == 6


def _rows_written_again(monkeypatch) -> list[int]:
    """Rows per batch the flow writes for records read again after their flag reset (queue_flags=False)."""
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSync

    written: list[int] = []
    original = ObjectLinkSync._write_batch

    def counting(self, batch, *, in_order=False, queue_flags=True):
        if not queue_flags:
            written.append(len(batch.rows))
        return original(self, batch, in_order=in_order, queue_flags=queue_flags)

    monkeypatch.setattr(ObjectLinkSync, "_write_batch", counting)
    return written


def test_the_bulk_read_after_a_flag_reset_writes_only_records_that_changed(env, monkeypatch):
    env.sf.seed("Campaign", [campaign(i) for i in range(300)])
    written_again = _rows_written_again(monkeypatch)

    summary = run("campaigns", links(CAMPAIGN_LINK, use_sync_column=True, bulk_threshold=250))  # Bulk read, reset, read

    assert summary["read_again_after_flag_reset"] == 300 and summary["flags_reset"] == 300
    assert sum(written_again) == 0  # all 300 came back as first read: recognised by the hash queued with them
    assert env.rows("SELECT count(*) FROM dm_campaign") == [(300,)]
    assert not any(r[FLAG] for r in env.sf.records("Campaign"))
    assert env.rows("SELECT count(*) FROM flag_reset_queue WHERE flow = 'link:campaigns'") == [(0,)]


def test_an_edit_made_while_a_bulk_flag_reset_waits_still_arrives(env, monkeypatch):
    import threading

    from tests.emulator_waits import wait_for_request

    ids = env.sf.seed("Campaign", [campaign(i) for i in range(300)])
    written_again = _rows_written_again(monkeypatch)
    env.sf.inject_fault("slow", path_contains="/batches", delay_seconds=3)  # the reset job's data upload is held
    syncing = threading.Thread(target=run, args=("campaigns", links(CAMPAIGN_LINK, use_sync_column=True, bulk_threshold=250)))
    syncing.start()
    wait_for_request(env.sf, "PUT jobs/ingest/{id}/batches", timeout=60)  # the flag reset's upload

    env.sf.update("Campaign", [{"Id": ids[7], "Name": "Later", FLAG: True}])
    syncing.join(timeout=120)

    assert sum(written_again) == 1  # only the edited record is written again
    assert env.rows("SELECT name FROM dm_campaign WHERE sf_id = %s", (ids[7],)) == [("Later",)]
    assert env.rows("SELECT count(*) FROM dm_campaign") == [(300,)]


def test_soft_deleted_records_are_deleted_from_the_datamodel_when_delete_is_on(env):
    ids = seed(env, "Campaign", [campaign(i) for i in range(3)])
    run("campaigns", links(CAMPAIGN_LINK, delete=True))
    env.sf.advance_clock(5)
    env.sf.delete([ids[0]])

    summary = run("campaigns", links(CAMPAIGN_LINK, delete=True, lookback_seconds=0))

    assert summary["deleted"] == 1
    assert sorted(r[0] for r in env.rows("SELECT sf_id FROM dm_campaign")) == sorted(ids[1:])


def test_soft_deleted_records_stay_when_delete_is_off(env):
    ids = seed(env, "Campaign", [campaign(i) for i in range(2)])
    run("campaigns", links(CAMPAIGN_LINK))
    env.sf.advance_clock(5)
    env.sf.delete([ids[0]])
    summary = run("campaigns", links(CAMPAIGN_LINK, lookback_seconds=0))
    assert summary["deleted"] == 0
    assert env.rows("SELECT count(*) FROM dm_campaign") == [(2,)]


def test_deleted_flagged_records_are_read_separately_with_the_sync_column(env):
    ids = seed(env, "Campaign", [campaign(i) for i in range(2)])
    run("campaigns", links(CAMPAIGN_LINK, delete=True, use_sync_column=True))
    env.sf.advance_clock(5)
    env.sf.delete([ids[1]])
    summary = run("campaigns", links(CAMPAIGN_LINK, delete=True, use_sync_column=True, lookback_seconds=0))
    assert summary["deleted"] == 1
    assert env.rows("SELECT sf_id FROM dm_campaign") == [(ids[0],)]


def test_hard_deleted_campaign_member_is_removed_by_reconciliation(env):
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_ids = env.sf.seed("Lead", [{"LastName": f"L{i}", "Company": "Acme"} for i in range(3)])
    member_ids = env.sf.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead} for lead in lead_ids])
    cfg = links(MEMBER_LINK)
    run("campaign_members", cfg)
    env.sf.hard_delete([member_ids[1]])

    incremental = run("campaign_members", cfg)  # a hard delete leaves nothing for queryAll to report
    assert incremental["deleted"] == 0
    before = env.sf.counters()["total"]
    summary = run("campaign_members", cfg, reconcile=True)

    assert summary["deleted"] == 1 and summary["fetched"] == 2 and summary["stored_rows"] == 3
    assert sorted(r[0] for r in env.rows("SELECT sf_id FROM dm_campaign_member")) == sorted([member_ids[0], member_ids[2]])
    assert env.sf.counters()["total"] - before <= 2  # describe + one query page, not one request per row


def test_reconciliation_reads_large_id_sets_with_one_bulk_job(env):
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_ids = env.sf.seed("Lead", [{"LastName": f"L{i}", "Company": "Acme"} for i in range(30)])
    member_ids = env.sf.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead} for lead in lead_ids])
    cfg = links(MEMBER_LINK, bulk_threshold=10)
    run("campaign_members", cfg)
    env.sf.hard_delete(member_ids[:5])
    before = env.sf.counters()

    summary = run("campaign_members", cfg, reconcile=True)

    assert summary["deleted"] == 5 and summary["fetched"] == 25
    used = {k: v - before["by_endpoint"].get(k, 0) for k, v in env.sf.counters()["by_endpoint"].items()}
    used = {k: v for k, v in used.items() if v}
    assert used.get("POST jobs/query") == 1, used
    assert sum(used.values()) <= 6, used


def test_reconciliation_keeps_rows_newer_than_its_start(env, pg_url, pg_schema):
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_id = env.sf.seed("Lead", [{"LastName": "L", "Company": "Acme"}])[0]
    env.sf.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead_id}])
    cfg = links(MEMBER_LINK)
    run("campaign_members", cfg)
    # a row pushed through the webhook "during" the reconciliation: created after it started
    env.execute("INSERT INTO dm_campaign_member (sf_id, created_at) VALUES ('00v000000000NEWAAA', now() + interval '1 hour')")
    summary = run("campaign_members", cfg, reconcile=True)
    assert summary["deleted"] == 0
    assert env.rows("SELECT count(*) FROM dm_campaign_member") == [(2,)]


def test_relation_resolved_now_and_late_with_unresolved_count_in_the_run_log(env):
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_ids = env.sf.seed("Lead", [{"LastName": f"L{i}", "Company": "Acme", "Email": f"l{i}@example.nl"} for i in range(2)])
    contact_id = env.sf.seed("Contact", [{"LastName": "C", "Email": "c@example.nl"}])[0]
    seed(env, "CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead} for lead in lead_ids]
         + [{"CampaignId": campaign_id, "ContactId": contact_id}])
    # only the first lead is a customer yet
    SalesforceToDeployteqOperator(task_id="l", sobject="Lead", object_config=LEAD_CONFIG).execute({})
    env.execute("DELETE FROM customer WHERE sf_lead_id = %s", (lead_ids[1],))

    first = run("campaign_members", links(MEMBER_LINK))
    assert first["unresolved_relations"] == 2  # lead 2 and the contact
    related = dict(env.rows("SELECT m.lead_id, c.sf_lead_id FROM dm_campaign_member m JOIN customer c USING (customer_id)"))
    assert related == {lead_ids[0]: lead_ids[0]}

    env.execute("INSERT INTO customer (sf_lead_id, email, status) VALUES (%s, 'l1@example.nl', 'Prospect')", (lead_ids[1],))
    env.execute("INSERT INTO customer (sf_contact_id, email, status) VALUES (%s, 'c@example.nl', 'Klant')", (contact_id,))
    second = run("campaign_members", links(MEMBER_LINK, lookback_seconds=0))  # reads nothing new

    assert second["fetched"] == 0 and second["relations_resolved_late"] == 2 and second["unresolved_relations"] == 0
    assert env.rows("SELECT count(*) FROM dm_campaign_member WHERE customer_id IS NULL") == [(0,)]
    logged = env.rows("SELECT details->>'unresolved_relations' FROM run_log WHERE flow = 'link:campaign_members' ORDER BY run_log_id")
    assert logged == [("2",), ("0",)]


def test_customer_relation_is_a_foreign_key(env):
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_id = env.sf.seed("Lead", [{"LastName": "L", "Company": "Acme"}])[0]
    env.sf.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead_id}])
    run("campaign_members", links(MEMBER_LINK))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        env.execute("UPDATE dm_campaign_member SET customer_id = 987654321")


def test_destructive_definition_change_is_refused_and_nothing_changes(env):
    env.sf.seed("Campaign", [campaign(1)])
    run("campaigns", links(CAMPAIGN_LINK))
    narrowed = copy.deepcopy(CAMPAIGN_WEBHOOK)
    narrowed["fields"] = [f for f in narrowed["fields"] if f["column"] != "campaign_type"]
    narrowed["fields"][1]["max_length"] = 10  # name: 80 -> 10

    with pytest.raises(DestructiveChange) as refused:
        run("campaigns", links(CAMPAIGN_LINK, webhooks=[narrowed, MEMBER_WEBHOOK]))

    message = str(refused.value)
    assert "'campaign_type' would be dropped" in message and "'name' would shrink from 80 to 10" in message
    columns = [r[0] for r in env.rows("SELECT column_name FROM information_schema.columns WHERE table_name = 'dm_campaign' "
                                      "AND table_schema = current_schema()")]
    assert "campaign_type" in columns
    assert env.rows("SELECT outcome FROM run_log ORDER BY run_log_id DESC LIMIT 1") == [("failed",)]


def test_added_column_and_widened_type_are_applied(env):
    env.sf.seed("Campaign", [campaign(1, Status="Planned")])
    run("campaigns", links(CAMPAIGN_LINK))
    wider = copy.deepcopy(CAMPAIGN_WEBHOOK)
    wider["fields"][1].pop("max_length")  # name: varchar(80) -> text
    wider["fields"].append({"json_field": "Status", "column": "status"})
    summary = run("campaigns", links(CAMPAIGN_LINK, webhooks=[wider, MEMBER_WEBHOOK]))
    assert len(summary["datamodel_changes"]) == 2
    types = dict(env.rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'dm_campaign' "
                          "AND table_schema = current_schema()"))
    assert types["name"] == "text" and types["status"] == "text"


def test_unknown_field_stops_the_link_before_anything_is_fetched(env):
    bad = copy.deepcopy(CAMPAIGN_WEBHOOK)
    bad["fields"].append({"json_field": "Budget__c", "column": "budget", "type": "decimal"})
    before = env.sf.counters()["total"]
    with pytest.raises(ConfigurationError, match="Budget__c"):
        run("campaigns", links(CAMPAIGN_LINK, webhooks=[bad, MEMBER_WEBHOOK]))
    assert env.sf.counters()["total"] - before == 1  # the describe only


def test_record_that_does_not_fit_is_an_error_and_the_others_are_stored(env):
    ids = env.sf.seed("Campaign", [campaign(1), campaign(2, Name="X" * 80)])
    narrow = copy.deepcopy(CAMPAIGN_WEBHOOK)
    narrow["fields"][1]["max_length"] = 20
    summary = run("campaigns", links(CAMPAIGN_LINK, webhooks=[narrow, MEMBER_WEBHOOK]))
    assert summary["errors"] == 1 and summary["inserted"] == 1
    (error,) = env.rows("SELECT record_id, reason FROM sync_error WHERE resolved_at IS NULL")
    assert error[0] == ids[1] and "Name" in error[1] and "at most 20" in error[1]


def test_unknown_link_name_is_a_clear_error(env):
    with pytest.raises(ConfigurationError, match="'nope' is not an object link"):
        run("nope", links(CAMPAIGN_LINK))


def test_link_dag_file_runs_with_dag_test(airflow_db, monkeypatch, env):
    import json
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    dag_file = Path(__file__).resolve().parents[3] / "dags" / "salesforce_object_links.py"
    cfg = links(MEMBER_LINK, use_sync_column=True)
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECT_LINKS", json.dumps(cfg))
    campaign_id = env.sf.seed("Campaign", [campaign(1)])[0]
    lead_ids = env.sf.seed("Lead", [{"LastName": f"L{i}", "Company": "Acme"} for i in range(4)])
    env.sf.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead, FLAG: True} for lead in lead_ids])
    bag = DagBag(dag_folder=dag_file, safe_mode=False)
    assert bag.import_errors == {}
    assert sorted(bag.dags) == ["salesforce_link_campaign_members", "salesforce_link_campaign_members_reconcile"]

    dag_run = bag.dags["salesforce_link_campaign_members"].test()

    assert "success" in str(dag_run.state).lower()
    assert env.rows("SELECT flow, outcome, fetched, inserted FROM run_log") == [("link:campaign_members", "success", 4, 4)]
    assert not any(r[FLAG] for r in env.sf.records("CampaignMember"))
