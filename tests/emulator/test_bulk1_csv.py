"""Bulk API 1.0 with CSV content: the salesforce-bulk client unmodified (XML jobInfo/batchInfo, CSV batches
and results), and the raw wire formats of the Bulk API Developer Guide."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
import unicodecsv
from salesforce_bulk import CsvDictsAdapter, SalesforceBulk
from salesforce_bulk.salesforce_bulk import BulkApiError, BulkBatchFailed

from tests.emulator.conftest import emulator_session

NS = "{http://www.force.com/2009/06/asyncapi/dataload}"


@pytest.fixture
def bulk(emulator, emulator_process, monkeypatch) -> SalesforceBulk:
    """salesforce-bulk against a freshly reset emulator; it calls requests.get/post itself, so the emulator's
    CA reaches it through REQUESTS_CA_BUNDLE."""
    info = emulator_process.info
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_file"])
    return SalesforceBulk(sessionId=info["session_id"], host=info["instance_url"], API_version="59.0")


@pytest.fixture
def async_raw(emulator, emulator_process):
    """Raw HTTP to Bulk API 1.0 with salesforce-bulk's headers: ``async_raw(method, path, body, content_type)``."""
    info = emulator_process.info
    session = emulator_session(info)

    def call(method: str, path: str, body: bytes | str = b"", content_type: str = "application/xml; charset=UTF-8"):
        headers = {"X-SFDC-Session": info["session_id"], "Content-Type": content_type}
        return session.request(method, f"{info['instance_url']}/services/async/59.0/{path}", data=body,
                               headers=headers)

    return call


def _job_xml(**fields) -> str:
    children = "".join(f"<{name}>{value}</{name}>" for name, value in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS[1:-1]}">{children}</jobInfo>'


def _load(bulk: SalesforceBulk, job_id: str, records: list[dict]) -> list:
    batch_id = bulk.post_batch(job_id, CsvDictsAdapter(iter(records)))
    bulk.wait_for_batch(job_id, batch_id, sleep_interval=0.1)
    return bulk.get_batch_results(batch_id, job_id)


def _query(bulk: SalesforceBulk, job_id: str, soql: str) -> list[dict]:
    batch_id = bulk.query(job_id, soql)
    bulk.wait_for_batch(job_id, batch_id, sleep_interval=0.1)
    return [row for result in bulk.get_all_results_for_query_batch(batch_id, job_id)
            for row in unicodecsv.DictReader(result, encoding="utf-8")]


# --- salesforce-bulk, unmodified --------------------------------------------------------------------------------

def test_insert_reports_per_record_results_as_csv(bulk, emulator):
    job_id = bulk.create_insert_job("Lead", contentType="CSV")
    results = _load(bulk, job_id, [{"LastName": "Smit", "Company": "Tulp BV", "Email": "smit@example.nl"},
                                   {"LastName": "", "Company": "Tulp BV", "Email": "vos@example.nl"}])
    bulk.close_job(job_id)

    stored = emulator.records("Lead")
    assert [(r.id, r.success, r.created, r.error) for r in results] == [
        (stored[0]["Id"], "true", "true", ""),
        ("", "false", "false", "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --")]
    assert [(r["LastName"], r["Email"]) for r in stored] == [("Smit", "smit@example.nl")]


def test_job_and_batch_information_come_as_xml(bulk):
    job_id = bulk.create_insert_job("Lead", contentType="CSV", concurrency="Serial")
    batch_id = bulk.post_batch(job_id, CsvDictsAdapter(iter([{"LastName": "Smit", "Company": "X"}])))
    bulk.close_job(job_id)

    status = bulk.job_status(job_id)
    assert (status["id"], status["state"], status["contentType"], status["concurrencyMode"]) == (
        job_id, "Closed", "CSV", "Serial")
    assert (status["numberBatchesTotal"], status["numberBatchesCompleted"], status["numberRecordsProcessed"]) == (
        "1", "1", "1")
    assert status["createdDate"].endswith(".000Z") and status["apiVersion"] == "59.0"
    [batch] = bulk.get_batch_list(job_id)
    assert (batch["id"], batch["jobId"], batch["state"], batch["numberRecordsProcessed"]) == (
        batch_id, job_id, "Completed", "1")
    assert bulk.batch_state(batch_id, job_id) == "Completed"


def test_update_leaves_empty_cells_alone_and_nulls_na(bulk, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X", "City": "Ede", "Phone": "0318"}])
    job_id = bulk.create_update_job("Lead", contentType="CSV")
    results = _load(bulk, job_id, [{"Id": lead_id, "City": "", "Phone": "#N/A", "LastName": "Smid"},
                                   {"Id": "00Q8d0000000zzzAAA", "City": "Ede", "Phone": "", "LastName": "Vos"}])

    assert [(r.success, r.created) for r in results] == [("true", "false"), ("false", "false")]
    assert results[1].error.startswith("INVALID_CROSS_REFERENCE_KEY:")
    [lead] = emulator.records("Lead")
    assert (lead["LastName"], lead["City"], lead["Phone"]) == ("Smid", "Ede", None)


def test_upsert_by_external_id_creates_then_updates(bulk, emulator):
    job_id = bulk.create_upsert_job("ClangLeadContactMoment__c", "Deployteq_Id__c", contentType="CSV")
    first = _load(bulk, job_id, [{"Deployteq_Id__c": "DT-1", "Subject__c": "Hallo"}])
    again = _load(bulk, job_id, [{"Deployteq_Id__c": "DT-1", "Subject__c": "Dag"}])

    assert (first[0].created, again[0].created) == ("true", "false") and first[0].id == again[0].id
    assert [m["Subject__c"] for m in emulator.records("ClangLeadContactMoment__c")] == ["Dag"]


def test_delete_job_soft_deletes_by_id(bulk, emulator):
    ids = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}, {"LastName": "Vos", "Company": "X"}])
    job_id = bulk.create_delete_job("Lead", contentType="CSV")
    results = _load(bulk, job_id, [{"Id": ids[0]}])

    assert [(r.id, r.success) for r in results] == [(ids[0], "true")]
    assert [r["Id"] for r in emulator.records("Lead")] == [ids[1]]
    assert [r["IsDeleted"] for r in emulator.records("Lead", include_deleted=True)] == [True, False]


def test_query_results_are_csv_in_bulk_formats(bulk, emulator):
    [account_id] = emulator.seed("Account", [{"Name": 'Tulp "Bloemen", BV'}])
    emulator.seed("Contact", [{"LastName": "Jansen", "AccountId": account_id, "Newsletter__c": True,
                               "CreatedDate": "2024-02-03T04:05:06Z"},
                              {"LastName": "Bos"}])
    job_id = bulk.create_query_job("Contact", contentType="CSV")

    rows = _query(bulk, job_id, "SELECT LastName, Email, Newsletter__c, CreatedDate, Account.Name FROM Contact "
                                "ORDER BY LastName")

    assert rows == [
        {"LastName": "Bos", "Email": "", "Newsletter__c": "false", "CreatedDate": rows[0]["CreatedDate"],
         "Account.Name": ""},
        {"LastName": "Jansen", "Email": "", "Newsletter__c": "true", "CreatedDate": "2024-02-03T04:05:06.000Z",
         "Account.Name": 'Tulp "Bloemen", BV'},
    ]


def test_queryall_includes_deleted_records(bulk, emulator):
    ids = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}, {"LastName": "Vos", "Company": "X"}])
    emulator.delete([ids[0]])

    live = _query(bulk, bulk.create_query_job("Lead", contentType="CSV"), "SELECT Id FROM Lead")
    everything = _query(bulk, bulk.create_queryall_job("Lead", contentType="CSV"), "SELECT Id, IsDeleted FROM Lead")

    assert [row["Id"] for row in live] == [ids[1]]
    assert sorted((row["Id"], row["IsDeleted"]) for row in everything) == sorted([(ids[0], "true"),
                                                                                  (ids[1], "false")])


def test_unknown_column_fails_the_batch(bulk, emulator):
    job_id = bulk.create_insert_job("Lead", contentType="CSV")
    batch_id = bulk.post_batch(job_id, CsvDictsAdapter(iter([{"LastName": "Smit", "Company": "X", "Nope__c": "x"}])))

    with pytest.raises(BulkBatchFailed) as failed:
        bulk.wait_for_batch(job_id, batch_id, sleep_interval=0.1)

    assert failed.value.state_message == "InvalidBatch : Field name not found : Nope__c"
    assert emulator.records("Lead") == []


def test_invalid_session_is_an_error_in_bulk_xml(emulator_process, emulator, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator_process.info["ca_file"])
    stranger = SalesforceBulk(sessionId="00D000000000000!nope", host=emulator_process.info["instance_url"],
                              API_version="59.0")

    with pytest.raises(BulkApiError) as refused:
        stranger.create_insert_job("Lead", contentType="CSV")

    assert refused.value.status_code == 400 and "<exceptionCode>InvalidSessionId</exceptionCode>" in str(refused.value)


def test_json_jobs_of_salesforce_bulk_are_created_in_xml_and_loaded_in_json(bulk, emulator):
    job_id = bulk.create_insert_job("Lead", contentType="JSON")
    batch_id = bulk.post_batch(job_id, json.dumps([{"LastName": "Smit", "Company": "X"}]))
    bulk.wait_for_batch(job_id, batch_id, sleep_interval=0.1)

    [result] = bulk.get_batch_results(batch_id, job_id)

    assert (result.id, result.success, result.created) == (emulator.records("Lead")[0]["Id"], True, True)
    assert bulk.job_status(job_id)["contentType"] == "JSON"


# --- the wire, as the Bulk API Developer Guide shows it ------------------------------------------------------------

def test_job_info_is_xml_in_the_schema_order(async_raw):
    response = async_raw("POST", "job", _job_xml(operation="upsert", object="Lead",
                                                  externalIdFieldName="Id", contentType="CSV"))

    assert response.status_code == 201 and response.headers["Content-Type"] == "application/xml"
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/')
    root = ElementTree.fromstring(response.content)
    assert [child.tag[len(NS):] for child in root] == [
        "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state", "externalIdFieldName",
        "concurrencyMode", "contentType", "numberBatchesQueued", "numberBatchesInProgress", "numberBatchesCompleted",
        "numberBatchesFailed", "numberBatchesTotal", "numberRecordsProcessed", "numberRetries", "apiVersion",
        "numberRecordsFailed", "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"]


def test_batch_results_are_csv_with_salesforce_columns(async_raw):
    job_id = ElementTree.fromstring(async_raw("POST", "job", _job_xml(operation="insert", object="Lead",
                                                                      contentType="CSV")).content).findtext(NS + "id")
    added = async_raw("POST", f"job/{job_id}/batch", "LastName,Company\nSmit,X\n,Y\n", "text/csv; charset=UTF-8")
    assert added.status_code == 201 and added.headers["Content-Type"] == "application/xml"
    batch = ElementTree.fromstring(added.content)
    assert [child.tag[len(NS):] for child in batch][:3] == ["id", "jobId", "state"]

    results = async_raw("GET", f"job/{job_id}/batch/{batch.findtext(NS + 'id')}/result")

    assert results.headers["Content-Type"] == "text/csv"
    lines = results.text.splitlines()
    assert lines[0] == '"Id","Success","Created","Error"'
    assert lines[1].endswith('","true","true",""') and lines[1].startswith('"00Q')
    assert lines[2] == '"","false","false","REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"'


def test_query_batch_lists_its_result_ids_then_serves_the_csv(async_raw, emulator):
    emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}])
    job_id = ElementTree.fromstring(async_raw("POST", "job", _job_xml(operation="query", object="Lead",
                                                                      contentType="CSV")).content).findtext(NS + "id")
    batch_id = ElementTree.fromstring(async_raw("POST", f"job/{job_id}/batch", "SELECT LastName FROM Lead",
                                                "text/csv; charset=UTF-8").content).findtext(NS + "id")

    listed = async_raw("GET", f"job/{job_id}/batch/{batch_id}/result")
    root = ElementTree.fromstring(listed.content)
    assert root.tag == NS + "result-list" and listed.headers["Content-Type"] == "application/xml"
    [result_id] = [element.text for element in root.findall(NS + "result")]
    assert len(result_id) == 15 and result_id.startswith("752")

    result = async_raw("GET", f"job/{job_id}/batch/{batch_id}/result/{result_id}")
    assert (result.headers["Content-Type"], result.text) == ("text/csv", '"LastName"\n"Smit"\n')


def test_a_query_without_rows_answers_records_not_found(async_raw):
    job_id = ElementTree.fromstring(async_raw("POST", "job", _job_xml(operation="query", object="Lead",
                                                                      contentType="CSV")).content).findtext(NS + "id")
    batch_id = ElementTree.fromstring(async_raw("POST", f"job/{job_id}/batch", "SELECT Id FROM Lead",
                                                "text/csv").content).findtext(NS + "id")
    result_id = ElementTree.fromstring(async_raw("GET", f"job/{job_id}/batch/{batch_id}/result").content)[0].text

    assert async_raw("GET", f"job/{job_id}/batch/{batch_id}/result/{result_id}").text == \
        "Records not found for this query"


def test_errors_come_in_bulk_xml(async_raw):
    response = async_raw("GET", "job/7508d1000000zzzAAA")

    assert response.status_code == 400 and response.headers["Content-Type"] == "application/xml"
    root = ElementTree.fromstring(response.content)
    assert root.tag == NS + "error"
    assert [(child.tag[len(NS):], child.text) for child in root] == [
        ("exceptionCode", "InvalidJob"), ("exceptionMessage", "Invalid job id: 7508d1000000zzzAAA")]


def test_a_job_closed_with_an_xml_body_sent_as_text_csv_is_closed(async_raw):
    # the Developer Guide's own walkthrough closes a job with -H "Content-Type: text/csv" and an XML body
    job_id = ElementTree.fromstring(async_raw("POST", "job", _job_xml(operation="insert", object="Lead",
                                                                      contentType="CSV")).content).findtext(NS + "id")

    closed = async_raw("POST", f"job/{job_id}", _job_xml(state="Closed"), "text/csv; charset=UTF-8")

    assert closed.status_code == 200 and ElementTree.fromstring(closed.content).findtext(NS + "state") == "Closed"


def test_xml_that_is_not_a_job_info_is_invalid_xml(async_raw):
    for body in ("<jobInfo><operation>insert", '<jobInfo xmlns="urn:other"><operation>insert</operation></jobInfo>'):
        response = async_raw("POST", "job", body)
        assert response.status_code == 400
        assert ElementTree.fromstring(response.content).findtext(NS + "exceptionCode") == "InvalidXML"


def test_unsupported_content_types_are_refused(async_raw):
    for content_type in ("XML", "ZIP_CSV"):
        response = async_raw("POST", "job", _job_xml(operation="insert", object="Lead", contentType=content_type))
        assert response.status_code == 400
        assert ElementTree.fromstring(response.content).findtext(NS + "exceptionCode") == "InvalidJob"
