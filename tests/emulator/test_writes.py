"""REST writes: single records, composite collections, and Salesforce's per-field rules."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from include.salesforce_emulator import schema
from include.salesforce_emulator.values import RecordError, check_semantics, has_value_rules, length_limit


def _composite(api, method: str, records: list[dict], all_or_none: bool = False, path: str = "composite/sobjects"):
    response = api(method, path, json={"allOrNone": all_or_none, "records": records})
    assert response.status_code == 200, response.text
    return response.json()


def _lead(**fields) -> dict:
    return {"attributes": {"type": "Lead"}, **fields}


def test_create_get_update_delete_roundtrip(sf, emulator):
    created = sf.Lead.create({"FirstName": "Anouk", "LastName": "Smit", "Company": "Polder BV"})
    assert created["success"] and created["id"].startswith("00Q") and len(created["id"]) == 18
    assert sf.Lead.update(created["id"], {"Title": "CEO"}) == 204
    record = sf.Lead.get(created["id"])
    assert (record["Name"], record["Title"], record["Status"]) == ("Anouk Smit", "CEO", "Open - Not Contacted")
    assert sf.Lead.delete(created["id"]) == 204
    assert emulator.records("Lead", include_deleted=True)[0]["IsDeleted"] is True


def test_update_moves_last_modified_and_system_modstamp(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Kok", "Company": "X", "CreatedDate": "2024-01-01T00:00:00Z"}])
    sf.Lead.update(lead_id, {"Title": "CTO"})
    record = emulator.records("Lead")[0]
    assert record["CreatedDate"] == "2024-01-01T00:00:00.000+0000"
    assert record["LastModifiedDate"] == record["SystemModstamp"] == emulator.now()


def test_fifteen_character_ids_are_accepted(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Kok", "Company": "X"}])
    assert sf.Lead.get(lead_id[:15])["Id"] == lead_id


def test_required_fields_missing(sf):
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.create({"FirstName": "Only"})
    assert error.value.content == [{"message": "Required fields are missing: [LastName, Company]",
                                    "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName", "Company"]}]


def test_unknown_field_fails_the_request_with_invalid_field(api):
    response = api("POST", "sobjects/Lead/", json={"LastName": "X", "Company": "Y", "Foo__c": 1})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"


def test_system_field_cannot_be_written(sf):
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.create({"LastName": "X", "Company": "Y", "CreatedDate": "2024-01-01T00:00:00Z"})
    assert error.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error.value.content[0]["fields"] == ["CreatedDate"]


def test_wrong_value_type_is_a_json_parser_error(api):
    response = api("POST", "sobjects/Lead/", json={"LastName": "X", "Company": "Y", "Newsletter__c": "maybe"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_values_are_stored_in_wire_format(sf, emulator):
    sf.Contact.create({"LastName": "Dekker", "Birthdate": "1990-05-17", "HasOptedOutOfEmail": "true"})
    sf.ClangContactContactMoment__c.create({"Deployteq_Id__c": "m1", "Sent_Date__c": "2024-03-01T10:00:00+01:00",
                                             "Open_Count__c": 3})
    contact = emulator.records("Contact")[0]
    moment = emulator.records("ClangContactContactMoment__c")[0]
    assert (contact["Birthdate"], contact["HasOptedOutOfEmail"]) == ("1990-05-17", True)
    assert (moment["Sent_Date__c"], moment["Open_Count__c"]) == ("2024-03-01T09:00:00.000+0000", 3.0)


def test_converted_lead_cannot_be_updated(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Mulder", "Company": "X"}])
    emulator.convert_lead(lead_id)
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.update(lead_id, {"Title": "New"})
    assert error.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_updating_a_deleted_record_is_entity_is_deleted(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Vos", "Company": "X"}])
    emulator.delete([lead_id])
    with pytest.raises(SalesforceResourceNotFound) as error:
        sf.Lead.update(lead_id, {"Title": "New"})
    assert error.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_unknown_id_is_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get("00Q8d0000000zzzAAA")


def test_duplicate_external_id_is_rejected(sf):
    sf.ClangLeadContactMoment__c.create({"Deployteq_Id__c": "DT-1"})
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.ClangLeadContactMoment__c.create({"Deployteq_Id__c": "dt-1"})
    assert error.value.content[0]["errorCode"] == "DUPLICATE_VALUE"


def test_upsert_by_external_id_creates_then_updates(sf, emulator):
    assert sf.ClangLeadContactMoment__c.upsert("Deployteq_Id__c/DT-7", {"Subject__c": "Hallo"}) == 201
    assert sf.ClangLeadContactMoment__c.upsert("Deployteq_Id__c/DT-7", {"Subject__c": "Dag"}) == 200
    [moment] = emulator.records("ClangLeadContactMoment__c")
    assert (moment["Deployteq_Id__c"], moment["Subject__c"]) == ("DT-7", "Dag")


def test_validation_rule_fails_the_record(sf, emulator):
    emulator.add_validation_rule("Lead", "Company", "Blocked BV", "Company is on the block list")
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.create({"LastName": "X", "Company": "Blocked BV"})
    assert error.value.content[0] == {"message": "Company is on the block list",
                                      "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Company"]}


def test_composite_create_reports_errors_per_record_in_order(api, emulator):
    results = _composite(api, "POST", [_lead(LastName="A", Company="X"), _lead(FirstName="no last name"),
                                       _lead(LastName="C", Company="X", Email="not-an-email")])
    assert results[0]["success"] is True and results[0]["errors"] == []
    assert results[1] == {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                                                        "message": "Required fields are missing: [LastName, Company]",
                                                        "fields": ["LastName", "Company"]}]}
    assert results[2]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert [r["LastName"] for r in emulator.records("Lead")] == ["A"]


def test_composite_all_or_none_rolls_everything_back(api, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Before", "Company": "X"}])
    results = _composite(api, "PATCH", [_lead(Id=lead_id, LastName="After"), _lead(Id=lead_id, Company=None)],
                         all_or_none=True)
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert emulator.records("Lead")[0]["LastName"] == "Before"


def test_composite_update_of_converted_lead_fails_only_that_record(api, emulator):
    converted, other = emulator.seed("Lead", [{"LastName": "C", "Company": "X"}, {"LastName": "O", "Company": "X"}])
    emulator.convert_lead(converted)
    results = _composite(api, "PATCH", [_lead(Id=converted, Title="T"), _lead(Id=other, Title="T")])
    assert results[0] == {"id": converted, "success": False, "errors": [{
        "statusCode": "CANNOT_UPDATE_CONVERTED_LEAD", "message": "cannot reference converted lead", "fields": []}]}
    assert results[1] == {"id": other, "success": True, "errors": []}


def test_composite_upsert_reports_created(api, emulator):
    moment = {"attributes": {"type": "ClangLeadContactMoment__c"}, "Deployteq_Id__c": "DT-1", "Opened__c": True}
    path = "composite/sobjects/ClangLeadContactMoment__c/Deployteq_Id__c"
    first = _composite(api, "PATCH", [moment], path=path)
    second = _composite(api, "PATCH", [moment], path=path)
    assert first[0]["created"] is True and second[0]["created"] is False
    assert first[0]["id"] == second[0]["id"]


def test_composite_delete_by_ids(api, emulator):
    ids = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}, {"LastName": "B", "Company": "X"}])
    emulator.delete([ids[1]])
    response = api("DELETE", "composite/sobjects", params={"ids": ",".join(ids), "allOrNone": "false"})
    assert response.json() == [
        {"id": ids[0], "success": True, "errors": []},
        {"id": ids[1], "success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted",
                                                      "fields": []}]},
    ]


def test_composite_rejects_more_than_200_records(api):
    response = api("POST", "composite/sobjects", json={"records": [_lead(LastName="X", Company="Y")] * 201})
    assert response.status_code == 400


def test_malformed_id_in_composite_update(api):
    results = _composite(api, "PATCH", [_lead(Id="not-an-id", Title="x")])
    assert results[0]["errors"][0]["statusCode"] == "MALFORMED_ID"


def test_reference_to_wrong_object_is_rejected(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}])
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Contact.create({"LastName": "B", "AccountId": lead_id})
    assert error.value.content[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_relationship_urls_reach_children_and_parents(sf, api, emulator):
    account = sf.Account.create({"Name": "Acme"})["id"]
    contacts = [sf.Contact.create({"LastName": name, "AccountId": account})["id"] for name in ("Jansen", "de Vries")]
    loner = sf.Contact.create({"LastName": "Alleen"})["id"]

    children = api("GET", f"sobjects/Account/{account}/Contacts", params={"fields": "Id,LastName"}).json()
    parent = api("GET", f"sobjects/Contact/{contacts[0]}/Account").json()

    assert children["totalSize"] == 2 and sorted(c["Id"] for c in children["records"]) == sorted(contacts)
    assert set(children["records"][0]) == {"attributes", "Id", "LastName"}
    assert parent["Id"] == account and parent["Name"] == "Acme"
    assert api("GET", f"sobjects/Contact/{loner}/Account").status_code == 404
    assert api("GET", f"sobjects/Account/{account}/Nope").status_code == 404
    assert api("GET", f"sobjects/Account/{account}/Contacts", params={"fields": "Id FROM Lead"}).status_code == 400


def test_fields_without_value_rules_take_any_value():
    """The write checks skip the fields has_value_rules clears: check_semantics must have nothing to say on them."""
    for sdef in schema.OBJECTS.values():
        for field in sdef.fields.values():
            if has_value_rules(field):
                continue
            for value in ("x" * 100_000, "not an e-mail", "Not A Picklist Value", "", "#N/A"):
                try:
                    check_semantics(field, value)
                except RecordError as error:
                    pytest.fail(f"{sdef.name}.{field.name} rejects {value[:20]!r}: {error.message}")


def test_text_within_its_length_limit_passes_the_value_rules():
    """The write checks pass a text no longer than length_limit without check_semantics: it must agree."""
    for sdef in schema.OBJECTS.values():
        for field in sdef.fields.values():
            limit = length_limit(field)
            if limit is None:
                continue
            for text in ("not an e-mail", "Not A Picklist Value", "#N/A", ""):
                check_semantics(field, (text * limit)[:limit])
            with pytest.raises(RecordError, match="STRING_TOO_LONG|data value too large"):
                check_semantics(field, "x" * (limit + 1))
