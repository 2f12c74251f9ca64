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


def test_unknown_locator_is_rejected(api):
    response = api("GET", "query/01g8d0000000001AAA-2000")
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
