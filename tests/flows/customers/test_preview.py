"""The mapping preview (issue 13): a changed Lead mapping on a sample, against the emulator and a real
PostgreSQL after a real sync; nothing written, three counted Salesforce requests; and its CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from deployteq_salesforce.flows.customers.preview import (
    PREVIEW_REQUESTS,
    InvalidCandidate,
    estimate_full_run,
    format_text,
    parse_candidate,
    run_preview,
    sample_query,
)
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from tests.flows.customers.test_operator import LEAD, config, lead, run

ROOT = Path(__file__).resolve().parents[3]
# the API budget's own bookkeeping: the only tables a preview may change (it spends budget)
LEDGER_TABLES = {"api_ledger", "api_budget_state"}


def candidate() -> dict:
    """The synced LEAD mapping changed: Retail gets a translation, and Status goes to a new column."""
    obj = copy.deepcopy(LEAD)
    obj["sync_flag_field"] = None
    industry = next(m for m in obj["mappings"] if m["salesforce_field"] == "Industry")
    industry["translations"]["Retail"] = "Detailhandel"
    obj["mappings"].append({"salesforce_field": "Status", "deployteq_type": "text", "deployteq_field": "lead_status"})
    return obj


@pytest.fixture
def synced(emulator, salesforce_conn_id, deployteq_conn_id):
    """Five leads synced with LEAD (one of them without e-mail, refused); the request log's position after it."""
    emulator.seed(
        "Lead",
        [
            lead(1, Industry="Retail"),
            lead(2, Industry="Technology"),
            lead(3, Industry="Retail", Company="Winkel BV"),
            lead(4, Industry=None),
            lead(5, Email=None),
        ],
    )
    run("Lead", config(LEAD, sync_flag_field=None))
    log = emulator.request_log()
    return log[-1]["number"] if log else 0


def preview(sample_size=200, obj=None):
    salesforce = BudgetedSalesforceHook("salesforce_default", deployteq_conn_id="deployteq_default", flow="preview:Lead")
    try:
        return run_preview(parse_candidate(obj or candidate(), "Lead"), salesforce=salesforce,
                           store=DeployteqHook("deployteq_default"), sample_size=sample_size)
    finally:
        salesforce.close()


def snapshot(pg_url, schema):
    """Every table of the schema (but the budget's ledger) with its columns and rows, as text."""
    with psycopg.connect(pg_url) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        ) if t not in LEDGER_TABLES]
        result = {}
        for table in tables:
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s ORDER BY ordinal_position", (schema, table),
            ).fetchall()
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t ORDER BY 1').fetchall()
            result[table] = (columns, rows)
        return result


def by_email(result, email):
    return next(r for r in result.records if r.after and r.after.get("email") == email)


def test_preview_shows_changed_columns_per_record_rejected_records_and_new_columns(synced):
    result = preview()
    retail = by_email(result, "lead1@example.nl")
    assert retail.outcome == "update" and "industry" in retail.changed
    assert (retail.before["industry"], retail.after["industry"]) == ("Retail", "Detailhandel")
    assert retail.after["lead_status"] == "Open - Not Contacted" and "lead_status" in retail.changed
    technology = by_email(result, "lead2@example.nl")
    assert "industry" not in technology.changed and technology.before["industry"] == "ICT"
    assert [c.name for c in result.new_columns] == ["lead_status"]
    assert result.new_columns[0].ddl == 'ALTER TABLE customer ADD COLUMN "lead_status" text;'
    [rejected] = result.rejected
    assert "no e-mail address" in rejected.reason
    assert result.counts["update"] == 4 and result.counts["rejected"] == 1
    assert result.changed_columns == ["industry", "lead_status"]
    assert result.estimate.records == 5 and result.estimate.api == "REST" and result.estimate.requests == 2
    text = format_text(result)
    assert "industry: Retail -> Detailhandel" in text and "lead_status text" in text and "nothing was written" in text


def test_an_unchanged_mapping_previews_every_record_as_unchanged(synced):
    same = config(LEAD, sync_flag_field=None)["objects"][0]
    result = preview(obj=same)
    assert result.counts["unchanged"] == 4 and result.counts["rejected"] == 1 and not result.new_columns
    assert all(not r.changed for r in result.records)


def test_preview_writes_nothing_and_sends_only_describe_sample_and_count(synced, emulator, pg_url, pg_schema):
    before = snapshot(pg_url, pg_schema)
    with psycopg.connect(pg_url) as conn:
        ledger_before = conn.execute(f'SELECT count(*) FROM "{pg_schema}".api_ledger').fetchone()[0]
    records_before = emulator.records("Lead")

    result = preview(sample_size=3)

    assert snapshot(pg_url, pg_schema) == before
    assert emulator.records("Lead") == records_before
    log = emulator.request_log(after=synced)
    assert [r["endpoint"] for r in log] == ["GET sobjects/Lead/describe", "GET query", "GET query"], log
    assert result.salesforce_requests == PREVIEW_REQUESTS == 3
    with psycopg.connect(pg_url) as conn:
        ledger = conn.execute(
            f'SELECT flow FROM "{pg_schema}".api_ledger ORDER BY api_request_id OFFSET %s', (ledger_before,)
        ).fetchall()
    assert ledger == [("preview:Lead",)] * 3, "the three requests count in the shared API budget"
    assert len(result.records) == 3, "the sample size is the LIMIT"


def test_the_sample_is_the_most_recently_modified_records(synced, emulator):
    emulator.advance_clock(60)
    target = next(r for r in emulator.records("Lead") if r["Email"] == "lead4@example.nl")
    emulator.update("Lead", [{"Id": target["Id"], "Industry": "Retail"}])
    [only] = preview(sample_size=1).records
    assert only.sf_id == target["Id"] and only.changed == ["industry", "lead_status", "sf_system_modstamp"]


def test_a_candidate_that_fails_the_describe_check_is_refused_naming_the_row(synced):
    wrong = candidate()
    wrong["mappings"].append({"salesforce_field": "NoSuchField__c", "deployteq_type": "text", "deployteq_field": "city"})
    with pytest.raises(InvalidCandidate, match=r"mapping row 8 \(Salesforce field 'NoSuchField__c'\): no such field"):
        preview(obj=wrong)


def test_structure_is_checked_without_salesforce():
    broken = candidate()
    broken["mappings"][0]["unique_key"] = False
    with pytest.raises(InvalidCandidate, match="unique_key: no mapping row is the unique key"):
        parse_candidate(broken, "Lead")
    with pytest.raises(InvalidCandidate, match="no Contact object"):
        parse_candidate(candidate(), "Contact")


def test_sample_query_and_estimate():
    obj = parse_candidate(candidate(), "Lead")
    soql = sample_query(obj, [], 200)
    assert soql.endswith("FROM Lead ORDER BY SystemModstamp DESC, Id DESC LIMIT 200")
    with pytest.raises(ValueError, match="from 1 to 2000"):
        sample_query(obj, [], 2001)
    assert (estimate_full_run(obj, 10_000).requests, estimate_full_run(obj, 10_000).api) == (6, "REST")
    big = estimate_full_run(obj, 1_000_000)
    assert (big.api, big.requests, big.seconds) == ("Bulk API 2.0", 8, round(1_000_000 / 15_000, 1))


# -- the CLI ----------------------------------------------------------------------------------------------


def cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "deployteq_salesforce.preview", *args], capture_output=True, text=True, env=env,
        cwd=ROOT, timeout=120,
    )


def test_cli_prints_the_preview_and_exits_0(synced, tmp_path):
    path = tmp_path / "lead.json"
    path.write_text(json.dumps(candidate()))
    text = cli("--object", "Lead", "--config", str(path), "--sample", "10")
    assert text.returncode == 0, text.stderr
    assert "industry: Retail -> Detailhandel" in text.stdout and "Salesforce requests: 3" in text.stdout
    as_json = cli("--object", "Lead", "--config", str(path), "--json")
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["written"] is False and answer["salesforce_requests"] == 3
    assert answer["new_columns"][0]["name"] == "lead_status" and answer["counts"]["rejected"] == 1


def test_cli_exits_2_naming_the_field_when_the_config_is_invalid(tmp_path):
    broken = candidate()
    broken["mappings"][1]["deployteq_type"] = "number"
    path = tmp_path / "lead.json"
    path.write_text(json.dumps(broken))
    result = cli("--object", "Lead", "--config", str(path))
    assert result.returncode == 2
    assert "mapping row 2 (Salesforce field 'FirstName')" in result.stderr and "deployteq_type" in result.stderr
    path.write_text("{not json")
    assert cli("--object", "Lead", "--config", str(path)).returncode == 2


def test_a_schema_without_the_customer_table_is_refused_before_any_request(emulator, salesforce_conn_id, deployteq_conn_id):
    with pytest.raises(RuntimeError, match="no customer table yet"):
        preview()
    assert emulator.request_log() == []


def test_the_preview_predicts_what_the_real_full_load_then_writes(synced, pg_url, pg_schema):
    changed = candidate()
    changed["mappings"].pop()  # no new column: the real run can write this one
    result = preview(obj=changed)
    assert result.counts["update"] == 2 and result.counts["unchanged"] == 2 and result.counts["rejected"] == 1
    summary = run("Lead", {"objects": [changed]}, full_load=True)
    assert (summary["updated"], summary["inserted"], summary["errors"]) == (2, 0, 1)
    with psycopg.connect(pg_url) as conn:
        stored = dict(conn.execute(f'SELECT sf_lead_id, industry FROM "{pg_schema}".customer').fetchall())
    assert {r.sf_id: r.after["industry"] for r in result.records if r.after} == stored
