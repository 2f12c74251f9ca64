"""Bulk API 1.0 (JSON) through simple-salesforce's ``sf.bulk`` and Airflow's stock SalesforceBulkOperator."""

from __future__ import annotations

import functools

import pytest
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest, SalesforceRefusedRequest

from include.salesforce_emulator.process import start_emulator
from tests.emulator.conftest import emulator_session, salesforce_client

LEAD_ID_UNKNOWN = "00Q8d0000000zzzAAA"
EPOCH_2024_02_03_040506 = 1706933106000  # 2024-02-03T04:05:06Z in milliseconds


@pytest.fixture
def async_api(emulator, emulator_process):
    """Raw HTTP access to Bulk API 1.0: ``async_api(method, path, **kw) -> requests.Response``."""
    info = emulator_process.info
    session = emulator_session(info)
    base = info["instance_url"] + "/services/async/59.0/"

    def call(method: str, path: str, **kwargs):
        headers = {"X-SFDC-Session": info["session_id"], "Content-Type": "application/json",
                   **kwargs.pop("headers", {})}
        return session.request(method, base + path, headers=headers, **kwargs)

    return call


def _lead(last_name: str, **fields) -> dict:
    return {"LastName": last_name, "Company": "Tulp BV", **fields}


def test_insert_reports_results_per_record_and_stores_the_valid_ones(sf, emulator):
    results = sf.bulk.Lead.insert([_lead("Smit", Email="smit@example.nl"), {"Company": "Tulp BV"},
                                   _lead("Vos", NumberOfEmployees="veel"), _lead("Bos")])

    assert [result["success"] for result in results] == [True, False, False, True]
    assert results[1] == {"success": False, "created": False, "id": None, "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]",
         "fields": ["LastName"]}]}
    assert results[2]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    assert results[0]["created"] and results[0]["id"].startswith("00Q") and results[0]["errors"] == []
    stored = {record["Id"]: record for record in emulator.records("Lead")}
    assert set(stored) == {results[0]["id"], results[3]["id"]}
    assert stored[results[0]["id"]]["Email"] == "smit@example.nl"
    assert stored[results[0]["id"]]["CreatedById"] == "0058d0000000001AAA"  # the integration user


def test_insert_with_detailed_results_merges_the_batch_request(sf):
    results = sf.bulk.Lead.insert([_lead("Smit"), _lead("Vos")], include_detailed_results=True)

    assert [(result["LastName"], result["success"]) for result in results] == [("Smit", True), ("Vos", True)]


def test_update_changes_records_and_reports_unknown_ids(sf, emulator):
    [lead_id] = emulator.seed("Lead", [_lead("Smit", Email="oud@example.nl")])

    results = sf.bulk.Lead.update([{"Id": lead_id, "Email": "nieuw@example.nl"}, {"Id": LEAD_ID_UNKNOWN, "City": "Ede"},
                                   {"City": "Ede"}])

    assert results[0] == {"success": True, "created": False, "id": lead_id, "errors": []}
    assert [result["errors"][0]["statusCode"] for result in results[1:]] == ["INVALID_CROSS_REFERENCE_KEY",
                                                                             "MISSING_ARGUMENT"]
    [stored] = emulator.records("Lead")
    assert (stored["Email"], stored["LastModifiedById"]) == ("nieuw@example.nl", "0058d0000000001AAA")


def test_validation_rules_fail_single_records(sf, emulator):
    emulator.add_validation_rule("Lead", "City", "Nergens", "City must exist")

    results = sf.bulk.Lead.insert([_lead("Smit", City="Nergens"), _lead("Vos", City="Ede")])

    assert results[0]["errors"] == [{"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "City must exist",
                                     "fields": ["City"]}]
    assert [record["LastName"] for record in emulator.records("Lead")] == ["Vos"]


def test_upsert_by_external_id_updates_or_creates(sf, emulator):
    [lead_id] = emulator.seed("Lead", [_lead("Smit")])
    [moment_id] = emulator.seed("ClangLeadContactMoment__c", [
        {"Name": "Mail 1", "Lead__c": lead_id, "Deployteq_Id__c": "dq-1", "Subject__c": "Oud"}])

    results = sf.bulk.ClangLeadContactMoment__c.upsert(
        [{"Deployteq_Id__c": "DQ-1", "Subject__c": "Nieuw"},  # external ids match case-insensitively
         {"Deployteq_Id__c": "dq-2", "Name": "Mail 2", "Lead__c": lead_id, "Bounce_Type__c": "hard"},
         {"Deployteq_Id__c": "dq-3", "Name": "Mail 3", "Bounce_Type__c": "zacht"}],
        "Deployteq_Id__c")

    assert [(result["success"], result["created"]) for result in results] == [(True, False), (True, True),
                                                                              (False, False)]
    assert results[0]["id"] == moment_id
    assert results[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    stored = {record["Deployteq_Id__c"]: record for record in emulator.records("ClangLeadContactMoment__c")}
    assert set(stored) == {"dq-1", "dq-2"}
    assert stored["dq-1"]["Subject__c"] == "Nieuw" and stored["dq-2"]["Id"] == results[1]["id"]


def test_delete_is_soft_and_hard_delete_removes_records(sf, emulator):
    kept, soft, hard = emulator.seed("Lead", [_lead("Blijft"), _lead("Zacht"), _lead("Hard")])

    deleted = sf.bulk.Lead.delete([{"Id": soft}, {"Id": LEAD_ID_UNKNOWN}])
    hard_deleted = sf.bulk.Lead.hard_delete([{"Id": hard}, {"Id": soft}])

    assert deleted[0] == {"success": True, "created": False, "id": soft, "errors": []}
    assert deleted[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert hard_deleted[0]["success"] and hard_deleted[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    everything = {record["Id"]: record["IsDeleted"] for record in emulator.records("Lead", include_deleted=True)}
    assert everything == {kept: False, soft: True}


def test_bulk_writes_survive_a_restart(tmp_path):
    with start_emulator(tmp_path) as first:
        sf = salesforce_client(first.info)
        kept, removed = (result["id"] for result in sf.bulk.Lead.insert([_lead("Blijft"), _lead("Weg")]))
        sf.bulk.Lead.hard_delete([{"Id": removed}])
    with start_emulator(tmp_path) as second:
        assert [record["Id"] for record in second.client.records("Lead", include_deleted=True)] == [kept]


def test_query_returns_records_with_attributes_and_epoch_millisecond_datetimes(sf, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Tulp BV"}])
    emulator.seed("Contact", [{"LastName": "Jansen", "AccountId": account_id, "CreatedDate": "2024-02-03T04:05:06Z",
                               "Birthdate": "2024-02-03"},
                              {"LastName": "Bos", "CreatedDate": "2024-02-03T04:05:06Z"}])

    records = sf.bulk.Contact.query("SELECT Id, LastName, CreatedDate, Birthdate, Account.Name FROM Contact "
                                    "ORDER BY LastName")

    assert [record["LastName"] for record in records] == ["Bos", "Jansen"]
    bos, jansen = records
    assert bos["attributes"] == {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{bos['Id']}"}
    assert (bos["CreatedDate"], bos["Birthdate"], bos["Account"]) == (EPOCH_2024_02_03_040506, None, None)
    assert jansen["Birthdate"] == EPOCH_2024_02_03_040506 - (4 * 3600 + 5 * 60 + 6) * 1000
    assert jansen["Account"] == {"attributes": {"type": "Account", "url": f"/services/data/v59.0/sobjects/Account/"
                                                                          f"{account_id}"}, "Name": "Tulp BV"}


def test_query_all_includes_deleted_records_and_lazy_results_come_per_result_set(sf, emulator):
    ids = emulator.seed("Lead", [_lead("Smit"), _lead("Vos")])
    emulator.delete([ids[0]])

    live = sf.bulk.Lead.query("SELECT Id FROM Lead")
    everything = sf.bulk.Lead.query_all("SELECT Id, IsDeleted FROM Lead ORDER BY LastName")
    lazy = list(sf.bulk.Lead.query_all("SELECT Id FROM Lead", lazy_operation=True))

    assert [record["Id"] for record in live] == [ids[1]]
    assert [(record["Id"], record["IsDeleted"]) for record in everything] == [(ids[0], True), (ids[1], False)]
    assert len(lazy) == 1 and sorted(record["Id"] for record in lazy[0]) == sorted(ids)


@pytest.mark.parametrize(("soql", "expected"), [
    ("SELECT Nope__c FROM Lead", "Nope__c"),
    ("SELECT COUNT() FROM Lead", "Aggregate queries are not supported"),
    ("SELECT Status, COUNT(Id) FROM Lead GROUP BY Status", "Aggregate queries are not supported"),
    ("SELECT Id FROM Contact", "the job is for Lead"),
])
def test_invalid_query_fails_the_batch_with_a_clear_message(sf, soql, expected):
    with pytest.raises(SalesforceGeneralError) as failed:
        sf.bulk.Lead.query(soql)

    assert failed.value.content.startswith("InvalidBatch : Failed to process query: ") and expected in str(failed.value)


def test_query_with_a_child_subquery_fails_the_batch(sf, emulator):
    (lead_id,) = emulator.seed("Lead", [{"LastName": "Visser", "Company": "Acme"}])
    (campaign_id,) = emulator.seed("Campaign", [{"Name": "Voorjaar"}])
    emulator.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead_id}])

    with pytest.raises(SalesforceGeneralError) as failed:
        sf.bulk.Lead.query("SELECT Id, (SELECT Id FROM CampaignMembers) FROM Lead")

    assert failed.value.content.startswith("FeatureNotEnabled : Aggregate Relationships not supported")


def test_unknown_field_fails_the_whole_batch(sf, emulator, async_api):
    job = async_api("POST", "job", json={"operation": "insert", "object": "Lead", "contentType": "JSON"}).json()

    response = async_api("POST", f"job/{job['id']}/batch", json=[_lead("Smit"), _lead("Vos", Nope__c="x")])

    assert response.status_code == 201
    assert (response.json()["state"], response.json()["stateMessage"]) == (
        "Failed", "InvalidBatch : Field name not found : Nope__c")
    assert emulator.records("Lead") == []
    info = async_api("GET", f"job/{job['id']}").json()
    assert (info["numberBatchesTotal"], info["numberBatchesFailed"], info["numberRecordsProcessed"]) == (1, 1, 0)
    assert async_api("GET", f"job/{job['id']}/batch/{response.json()['id']}/result").json()["exceptionCode"] == \
        "InvalidBatch"


def test_job_lifecycle_and_bulk_errors(async_api):
    created = async_api("POST", "job", json={"operation": "insert", "object": "Lead", "contentType": "JSON",
                                             "concurrencyMode": "Serial"})
    job = created.json()
    assert created.status_code == 201 and job["id"].startswith("750")
    assert (job["state"], job["contentType"], job["concurrencyMode"], job["apiVersion"]) == ("Open", "JSON", "Serial",
                                                                                             59.0)
    batch = async_api("POST", f"job/{job['id']}/batch", json=[_lead("Smit")]).json()
    assert batch["id"].startswith("751") and (batch["jobId"], batch["state"]) == (job["id"], "Completed")
    assert async_api("GET", f"job/{job['id']}/batch").json()["batchInfo"] == [batch]
    assert async_api("GET", f"job/{job['id']}/batch/{batch['id']}/request").json() == [_lead("Smit")]

    closed = async_api("POST", f"job/{job['id']}", json={"state": "Closed"}).json()
    assert (closed["state"], closed["numberBatchesCompleted"], closed["numberRecordsProcessed"]) == ("Closed", 1, 1)
    late = async_api("POST", f"job/{job['id']}/batch", json=[_lead("Vos")])
    assert (late.status_code, late.json()["exceptionCode"]) == (400, "InvalidJobState")
    assert async_api("POST", f"job/{job['id']}", json={"state": "Aborted"}).json()["state"] == "Aborted"

    unknown_job = async_api("GET", "job/750000000000000AAA")
    assert (unknown_job.status_code, unknown_job.json()["exceptionCode"]) == (400, "InvalidJob")
    unknown_batch = async_api("GET", f"job/{job['id']}/batch/751000000000000AAA")
    assert unknown_batch.json()["exceptionCode"] == "InvalidBatch"
    for body in ({"operation": "merge", "object": "Lead", "contentType": "JSON"},
                 {"operation": "insert", "object": "Nope__c", "contentType": "JSON"},
                 {"operation": "insert", "object": "Lead", "contentType": "XML"},
                 {"operation": "upsert", "object": "Lead", "contentType": "JSON", "externalIdFieldName": "Email"}):
        refused = async_api("POST", "job", json=body)
        assert (refused.status_code, refused.json()["exceptionCode"]) == (400, "InvalidJob"), body


def test_version_with_v_prefix_and_bearer_token_are_accepted(async_api, emulator_process):
    info = emulator_process.info
    session = emulator_session(info)
    response = session.post(info["instance_url"] + "/services/async/v59.0/job",
                            json={"operation": "query", "object": "Lead", "contentType": "JSON"},
                            headers={"Authorization": f"Bearer {info['session_id']}"})
    assert response.status_code == 201 and response.json()["operation"] == "query"


def test_every_request_counts_once(sf, emulator):
    sf.bulk.Lead.insert([_lead("Smit"), _lead("Vos")])
    sf.bulk.Lead.query("SELECT Id FROM Lead")

    counters = emulator.counters()
    assert counters["by_endpoint"] == {
        "POST async/job": 2,
        "POST async/job/{id}/batch": 2,
        "GET async/job/{id}/batch/{id}": 2,
        "GET async/job/{id}/batch/{id}/result": 2,
        "GET async/job/{id}/batch/{id}/result/{id}": 1,
        "POST async/job/{id}": 2,
    }
    assert counters["total"] == 11
    assert emulator.limits_state()["daily_used"] == 11


def test_invalid_session_is_invalid_session_id(emulator, emulator_process):
    sf = salesforce_client(emulator_process.info, session_id="00D000000000000!nope")

    with pytest.raises(SalesforceMalformedRequest) as refused:  # Bulk API 1.0 answers a bad session with 400
        sf.bulk.Lead.insert([_lead("Smit")])

    assert refused.value.content == {"exceptionCode": "InvalidSessionId", "exceptionMessage": "Invalid session id"}
    assert emulator.counters()["by_endpoint"] == {"POST async/job": 1}
    assert emulator.records("Lead") == []


def test_refused_requests_answer_in_bulk_form(sf, emulator):
    emulator.inject_fault("limit")

    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.bulk.Lead.query("SELECT Id FROM Lead")

    assert refused.value.content["exceptionCode"] == "ExceededQuota"
    assert emulator.counters()["total"] == 1


def test_stock_airflow_bulk_operator_inserts_records(salesforce_conn_id, emulator, emulator_process, monkeypatch):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
    from airflow.providers.salesforce.operators import bulk as bulk_operator

    info = emulator_process.info
    # The stock hook builds its client from the connection alone; as in test_session.py it gets the direct
    # session (session id + a requests session trusting the emulator's CA) the emulator needs.
    monkeypatch.setattr(bulk_operator, "SalesforceHook", functools.partial(
        SalesforceHook, session_id=info["session_id"], session=emulator_session(info)))
    operator = bulk_operator.SalesforceBulkOperator(
        task_id="load_leads", operation="insert", object_name="Lead", salesforce_conn_id=salesforce_conn_id,
        payload=[_lead("Smit", Email="smit@example.nl"), _lead("Vos", Email="geen-adres")])

    result = operator.execute({})

    assert [entry["success"] for entry in result] == [True, False]
    assert result[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert [(record["Id"], record["Email"]) for record in emulator.records("Lead")] == [(result[0]["id"],
                                                                                        "smit@example.nl")]
