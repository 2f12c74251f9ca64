"""Bulk API 2.0 query results streamed and parsed as they arrive (core/bulk.py), against the emulator."""

from __future__ import annotations

import pytest

from deployteq_salesforce.core import bulk
from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.core.timing import PARSE, SALESFORCE_HTTP
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

# values a CSV reader gets wrong when lines or characters are cut at the wrong place
LAST_NAMES = ['de Vries, "Jr."', "Regel\nbreuk", "Żółć", "Émile", "O'Brien", "Smith", "Müller"]
FIELDS = ["Id", "LastName", "Company", "AnnualRevenue", "NumberOfEmployees", "Newsletter__c", "Email"]


@pytest.fixture
def hook(salesforce_conn_id, deployteq_conn_id):
    hook = BudgetedSalesforceHook(salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, flow="test")
    yield hook
    hook.close()


@pytest.fixture
def seeded(emulator):
    leads = [
        {"LastName": name, "Company": "Polder, B.V.", "AnnualRevenue": 1000.5 * n, "NumberOfEmployees": n,
         "Newsletter__c": n % 2 == 0, "Email": None if n == 3 else f"lead{n}@example.nl"}
        for n, name in enumerate(LAST_NAMES)
    ]
    emulator.seed("Lead", leads)
    return {r["Id"]: r for r in emulator.records("Lead")}


def query(hook, **options):
    sf = hook.get_conn()
    types = {f["name"]: f["type"] for f in sf.Lead.describe()["fields"]}
    return list(Bulk2Client(sf).query_batches("Lead", f"SELECT {', '.join(FIELDS)} FROM Lead", field_types=types,
                                               **options))


def test_records_come_back_typed_like_rest_answers_across_pages_and_cut_chunks(hook, seeded, emulator, monkeypatch):
    monkeypatch.setattr(bulk, "STREAM_CHUNK_BYTES", 7)  # lines and multi-byte characters cut between chunks
    batches = query(hook, batch_size=2, page_records=3)
    records = [r for b in batches for r in b]
    assert len(records) == len(LAST_NAMES)
    for record in records:
        stored = seeded[record["Id"]]
        assert record == {field: stored.get(field) for field in FIELDS}
    assert {r["LastName"] for r in records} == set(LAST_NAMES)
    assert all(isinstance(r["Newsletter__c"], bool) and isinstance(r["NumberOfEmployees"], int) for r in records)
    # pages of 3: 3 result requests, each page ending in a batch of its own
    assert [len(b) for b in batches] == [2, 1, 2, 1, 1]
    assert emulator.counters()["by_endpoint"]["GET jobs/query/{id}/results"] == 3


def test_reading_and_parsing_are_timed_as_phases_of_the_hook(hook, seeded):
    query(hook)
    phases = hook.phases.as_dict()
    assert phases[SALESFORCE_HTTP] > 0
    assert PARSE in phases  # a few records parse in well under a millisecond


def test_an_empty_result_gives_no_batch(hook, emulator):
    assert query(hook) == []


def test_csv_records_types_booleans_in_any_case_numbers_and_leaves_text_alone():
    header = ["Id", "IsDeleted", "Newsletter__c", "NumberOfEmployees", "AnnualRevenue", "LastName"]
    types = {"Id": "id", "IsDeleted": "boolean", "Newsletter__c": "boolean", "NumberOfEmployees": "int",
             "AnnualRevenue": "currency", "LastName": "string"}
    rows = [["00Q1", "true", "FALSE", "12", "1000.5", "true"], ["00Q2", "", "True", "", "7", ""]]
    assert list(bulk.csv_records(header, rows, types)) == [
        {"Id": "00Q1", "IsDeleted": True, "Newsletter__c": False, "NumberOfEmployees": 12, "AnnualRevenue": 1000.5,
         "LastName": "true"},
        {"Id": "00Q2", "IsDeleted": None, "Newsletter__c": True, "NumberOfEmployees": None, "AnnualRevenue": 7.0,
         "LastName": None},
    ]


def test_successful_results_give_only_the_asked_columns_and_none_for_a_missing_one(hook, emulator):
    sf = hook.get_conn()
    client = Bulk2Client(sf)
    # a quoted comma and a line break in a sent column: the columns after them must still line up
    parts = bulk.csv_parts([{"LastName": 'de Vries, "Jr."', "Company": "Regel\nbreuk"}, {"LastName": "Smith", "Company": "Polder"}],
                           ["LastName", "Company"])
    result = client.ingest_csv("Lead", "insert", parts, want_successful=False)

    every = list(client.successful_results("Lead", result.job_id))
    asked = list(client.successful_results("Lead", result.job_id, ["sf__Id", "LastName", "No_Such__c", "sf__Created"]))

    assert [r["LastName"] for r in every] == ['de Vries, "Jr."', "Smith"]
    assert asked == [{"sf__Id": r["sf__Id"], "LastName": r["LastName"], "No_Such__c": None, "sf__Created": "true"}
                     for r in every]
    assert {r["sf__Id"] for r in asked} == {r["Id"] for r in emulator.records("Lead")}
