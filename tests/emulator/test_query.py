"""REST query/queryAll: paging from a cursor, totalSize on every page, batch size, wire formats."""

from __future__ import annotations

import re

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000\+0000$")


def _leads(n: int, **extra) -> list[dict]:
    return [{"LastName": f"Lead {i:05d}", "Company": "Acme", "Email": f"lead{i}@example.com", **extra} for i in range(n)]


def test_pages_carry_total_size_and_next_url_until_the_last(sf, emulator):
    emulator.seed("Lead", _leads(4500))
    first = sf.query("SELECT Id FROM Lead")
    assert (first["totalSize"], first["done"], len(first["records"])) == (4500, False, 2000)
    assert re.match(r"^/services/data/v59\.0/query/01g\w{15}-2000$", first["nextRecordsUrl"])
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert (second["totalSize"], second["done"], len(second["records"])) == (4500, False, 2000)
    last = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert (last["totalSize"], last["done"], len(last["records"])) == (4500, True, 500)
    assert "nextRecordsUrl" not in last


def test_batch_size_header_sets_the_page_size(sf, emulator):
    emulator.seed("Lead", _leads(700))
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=300"})
    assert len(page["records"]) == 300 and page["nextRecordsUrl"].endswith("-300")


def test_batch_size_below_200_is_raised_to_200(sf, emulator):
    emulator.seed("Lead", _leads(300))
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=10"})
    assert len(page["records"]) == 200


def test_query_all_iter_returns_every_record_once(sf, emulator):
    ids = emulator.seed("Lead", _leads(4100))
    seen = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead ORDER BY Id")]
    assert seen == sorted(ids)


def test_records_have_attributes_and_wire_datetimes(sf, emulator):
    emulator.seed("Lead", _leads(1))
    record = sf.query("SELECT Id, Name, CreatedDate, SystemModstamp, IsDeleted FROM Lead")["records"][0]
    assert record["attributes"] == {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{record['Id']}"}
    assert DATETIME.match(record["CreatedDate"]) and DATETIME.match(record["SystemModstamp"])
    assert record["Name"] == "Lead 00000" and record["IsDeleted"] is False


def test_relationship_fields_are_nested_objects(sf, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Tulp BV"}])
    emulator.seed("Contact", [{"LastName": "Visser", "AccountId": account_id}, {"LastName": "Bos"}])
    records = sf.query("SELECT LastName, Account.Name FROM Contact ORDER BY LastName")["records"]
    assert records[0]["Account"] is None
    assert records[1]["Account"]["Name"] == "Tulp BV"


def test_query_hides_deleted_rows_and_query_all_shows_them(sf, emulator):
    ids = emulator.seed("Lead", _leads(3))
    emulator.delete([ids[0]])
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 2
    rows = sf.query_all("SELECT Id, IsDeleted FROM Lead", include_deleted=True)["records"]
    assert {(r["Id"], r["IsDeleted"]) for r in rows} == {(ids[0], True), (ids[1], False), (ids[2], False)}


def test_count_query(sf, emulator):
    emulator.seed("Lead", _leads(5))
    result = sf.query("SELECT COUNT() FROM Lead")
    assert result["totalSize"] == 5 and result["records"] == []


def test_aggregate_query_answers_aggregate_result_rows(sf, emulator):
    emulator.seed("Lead", _leads(3, Status="Working") + _leads(2, Status="Open - Not Contacted"))
    result = sf.query("SELECT Status, COUNT(Id) total FROM Lead GROUP BY Status ORDER BY Status")
    assert (result["totalSize"], result["done"]) == (2, True) and "nextRecordsUrl" not in result
    assert result["records"] == [
        {"attributes": {"type": "AggregateResult"}, "Status": "Open - Not Contacted", "total": 2},
        {"attributes": {"type": "AggregateResult"}, "Status": "Working", "total": 3},
    ]
    assert sf.query("SELECT COUNT(Email) FROM Lead")["records"][0]["expr0"] == 5


def test_having_answers_only_the_groups_that_pass(sf, emulator):
    emulator.seed("Lead", _leads(3, Status="Working") + _leads(1, Status="Open - Not Contacted")
                  + _leads(2, Status="Closed - Not Converted"))
    result = sf.query("SELECT Status, COUNT(Id) total FROM Lead GROUP BY Status HAVING COUNT(Id) > 1 ORDER BY Status")
    assert result["totalSize"] == 2
    assert [(r["Status"], r["total"]) for r in result["records"]] == [("Closed - Not Converted", 2), ("Working", 3)]


def test_groups_ordered_by_their_count(sf, emulator):
    emulator.seed("Lead", _leads(1, Status="Working") + _leads(3, Status="Open - Not Contacted"))
    result = sf.query("SELECT Status, COUNT(Id) total FROM Lead GROUP BY Status ORDER BY COUNT(Id) DESC")
    assert [(r["Status"], r["total"]) for r in result["records"]] == [("Open - Not Contacted", 3), ("Working", 1)]


def test_the_version_root_lists_its_resources(sf):
    resources = sf.restful("")
    assert resources["query"] == "/services/data/v59.0/query" and resources["sobjects"] == "/services/data/v59.0/sobjects"


def test_date_literals_use_the_emulator_clock(sf, emulator):
    emulator.seed("Lead", _leads(2))
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = TODAY")["totalSize"] == 2
    emulator.advance_clock(3 * 86400)
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = TODAY")["totalSize"] == 0
    assert sf.query("SELECT COUNT() FROM Lead WHERE CreatedDate = LAST_N_DAYS:7")["totalSize"] == 2


def test_cursor_keeps_the_snapshot_it_was_computed_from(sf, emulator):
    ids = emulator.seed("Lead", _leads(2100))
    first = sf.query("SELECT Id, LastName FROM Lead ORDER BY Id")
    emulator.update("Lead", [{"Id": ids[-1], "LastName": "Changed"}])
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert rest["records"][-1]["LastName"] == "Lead 02099"


def test_malformed_query_is_400_with_salesforce_error_code(api):
    response = api("GET", "query/", params={"q": "SELECT Id FORM Lead"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_unknown_field_in_query_is_invalid_field(sf):
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id, Foo FROM Lead")
    assert error.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_a_cursor_pages_for_two_days_then_expires(sf, emulator, api):
    emulator.seed("Lead", _leads(2500))
    first = sf.query("SELECT Id FROM Lead")
    emulator.advance_clock(47 * 3600)
    assert len(sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)["records"]) == 500
    emulator.advance_clock(2 * 3600)
    expired = api("GET", first["nextRecordsUrl"].removeprefix("/services/data/v59.0/"))
    assert expired.status_code == 400 and expired.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_unknown_locator_is_rejected(api):
    response = api("GET", "query/01g8d0000000001AAA-2000")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


# --- semi-joins, parent-to-child subqueries, FIELDS() -----------------------------------------------


def _campaign_with_members(emulator, statuses: list[str]) -> tuple[str, list[str]]:
    """A campaign whose members are new leads with the given member statuses; also a lead in no campaign."""
    [campaign_id] = emulator.seed("Campaign", [{"Name": "Voorjaar"}])
    lead_ids = emulator.seed("Lead", _leads(len(statuses) + 1))
    emulator.seed("CampaignMember", [{"CampaignId": campaign_id, "LeadId": lead_id, "Status": status}
                                     for lead_id, status in zip(lead_ids, statuses)])
    return campaign_id, lead_ids


def test_semi_join_selects_the_leads_of_a_campaign(sf, emulator):
    campaign_id, lead_ids = _campaign_with_members(emulator, ["Sent", "Responded"])
    [other_campaign] = emulator.seed("Campaign", [{"Name": "Najaar"}])
    emulator.seed("CampaignMember", [{"CampaignId": other_campaign, "LeadId": lead_ids[2]}])
    soql = f"SELECT Id FROM Lead WHERE Id IN (SELECT LeadId FROM CampaignMember WHERE CampaignId = '{campaign_id}')"
    assert {r["Id"] for r in sf.query(soql)["records"]} == set(lead_ids[:2])


def test_anti_join_ignores_deleted_inner_rows_even_for_query_all(sf, emulator):
    account_ids = emulator.seed("Account", [{"Name": "Met"}, {"Name": "Zonder"}, {"Name": "Verwijderd"}])
    contact_ids = emulator.seed("Contact", [{"LastName": "A", "AccountId": account_ids[0]},
                                            {"LastName": "B", "AccountId": account_ids[2]}, {"LastName": "C"}])
    emulator.delete([contact_ids[1]])
    soql = "SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact) ORDER BY Name"
    assert [r["Name"] for r in sf.query(soql)["records"]] == ["Verwijderd", "Zonder"]
    assert [r["Name"] for r in sf.query_all(soql, include_deleted=True)["records"]] == ["Verwijderd", "Zonder"]


def test_child_subquery_nests_child_lists_as_salesforce_does(sf, emulator):
    account_ids = emulator.seed("Account", [{"Name": "Tulp BV"}, {"Name": "Roos BV"}])
    emulator.seed("Contact", [{"LastName": "Visser", "AccountId": account_ids[0]},
                              {"LastName": "Bakker", "AccountId": account_ids[0]}])
    records = sf.query("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName) FROM Account "
                       "ORDER BY Name DESC")["records"]
    assert records[1]["Contacts"] is None
    contacts = records[0]["Contacts"]
    assert (contacts["totalSize"], contacts["done"]) == (2, True)
    assert [c["LastName"] for c in contacts["records"]] == ["Bakker", "Visser"]
    assert contacts["records"][0]["attributes"]["type"] == "Contact"


def test_campaign_members_subquery_filters_on_status(sf, emulator):
    campaign_id, lead_ids = _campaign_with_members(emulator, ["Sent", "Responded", "Sent"])
    [record] = sf.query("SELECT Id, (SELECT LeadId, Status FROM CampaignMembers WHERE Status = 'Sent') "
                        "FROM Campaign")["records"]
    assert record["Id"] == campaign_id
    members = record["CampaignMembers"]["records"]
    assert {(m["LeadId"], m["Status"]) for m in members} == {(lead_ids[0], "Sent"), (lead_ids[2], "Sent")}


def test_query_more_pages_parents_with_their_child_lists(sf, emulator):
    account_ids = emulator.seed("Account", [{"Name": f"Account {i:03d}"} for i in range(250)])
    emulator.seed("Contact", [{"LastName": f"Contact {i:03d}", "AccountId": account_id}
                              for i, account_id in enumerate(account_ids)])
    first = sf.query("SELECT Name, (SELECT LastName FROM Contacts) FROM Account ORDER BY Name",
                     headers={"Sforce-Query-Options": "batchSize=200"})
    rest = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    records = first["records"] + rest["records"]
    assert (len(first["records"]), len(rest["records"]), rest["done"]) == (200, 50, True)
    assert [r["Contacts"]["records"][0]["LastName"] for r in records] == [f"Contact {i:03d}" for i in range(250)]


def test_unknown_child_relationship_is_invalid_type(api):
    response = api("GET", "query/", params={"q": "SELECT Id, (SELECT Id FROM Leads) FROM Account"})
    assert response.status_code == 400
    [error] = response.json()
    assert error["errorCode"] == "INVALID_TYPE"
    assert "Didn't understand relationship 'Leads' in FROM part of query call." in error["message"]


@pytest.mark.parametrize("parent", ["Account", "Campaign", "Lead", "Contact"])
def test_every_child_relationship_describe_names_can_be_queried(sf, parent):
    names = [r["relationshipName"] for r in getattr(sf, parent).describe()["childRelationships"]
             if r["relationshipName"]]
    assert names  # Account.Contacts, Campaign/Lead/Contact.CampaignMembers
    for name in names:
        assert sf.query(f"SELECT Id, (SELECT Id FROM {name}) FROM {parent}")["done"] is True


def test_bulk2_query_jobs_refuse_child_subqueries_and_run_semi_joins(api, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Tulp BV"}])
    refused = api("POST", "jobs/query", json={"operation": "query",
                                              "query": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"})
    assert refused.status_code == 400
    assert refused.json()[0]["message"] == (
        "Aggregate Relationships not supported in Bulk V2 Query with CSV content type")
    anti_join = "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)"
    job = api("POST", "jobs/query", json={"operation": "query", "query": anti_join})
    results = api("GET", f"jobs/query/{job.json()['id']}/results")
    assert results.text.splitlines() == ['"Id"', f'"{account_id}"']


def test_fields_all_selects_every_field_in_describe_order(sf, emulator):
    emulator.seed("Lead", _leads(1))
    [record] = sf.query("SELECT FIELDS(ALL) FROM Lead LIMIT 200")["records"]
    assert [name for name in record if name != "attributes"] == [f["name"] for f in sf.Lead.describe()["fields"]]
    [record] = sf.query("SELECT FIELDS(CUSTOM) FROM Lead LIMIT 1")["records"]
    assert [name for name in record if name != "attributes"] == [
        f["name"] for f in sf.Lead.describe()["fields"] if f["custom"]]


def test_fields_all_without_limit_is_refused(api):
    response = api("GET", "query/", params={"q": "SELECT FIELDS(ALL) FROM Lead"})
    assert response.status_code == 400
    assert response.json() == [{"message": "The SOQL FIELDS function must have a LIMIT of at most 200",
                                "errorCode": "MALFORMED_QUERY"}]
