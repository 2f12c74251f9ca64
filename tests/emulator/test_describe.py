"""Global and object describe: the fields, types and flags the sync relies on."""

from __future__ import annotations


def _fields(sf, sobject: str) -> dict[str, dict]:
    return {f["name"]: f for f in getattr(sf, sobject).describe()["fields"]}


def test_global_describe_lists_objects_with_key_prefixes(sf):
    objects = {o["name"]: o["keyPrefix"] for o in sf.describe()["sobjects"]}
    assert objects["Lead"] == "00Q" and objects["Contact"] == "003" and objects["Account"] == "001"
    assert objects["Campaign"] == "701" and objects["CampaignMember"] == "00v" and objects["User"] == "005"
    assert objects["ClangLeadContactMoment__c"] == "a0X" and objects["ClangContactContactMoment__c"] == "a0Y"


def test_lead_fields_have_salesforce_types(sf):
    fields = _fields(sf, "Lead")
    expected = {"Id": "id", "Email": "email", "Status": "picklist", "AnnualRevenue": "currency",
                "NumberOfEmployees": "int", "Sync_to_Deployteq__c": "boolean", "Email_Opt_In__c": "picklist",
                "ConvertedDate": "date", "SystemModstamp": "datetime", "ConvertedContactId": "reference"}
    assert {name: fields[name]["type"] for name in expected} == expected
    assert fields["Sync_to_Deployteq__c"]["custom"] is True
    assert fields["LastName"]["nillable"] is False and fields["Title"]["nillable"] is True
    assert fields["SystemModstamp"]["updateable"] is False and fields["Email"]["updateable"] is True


def test_contact_account_relationship(sf):
    field = _fields(sf, "Contact")["AccountId"]
    assert (field["referenceTo"], field["relationshipName"]) == (["Account"], "Account")


def test_contact_moment_external_id_and_restricted_picklist(sf):
    fields = _fields(sf, "ClangLeadContactMoment__c")
    assert fields["Deployteq_Id__c"]["externalId"] is True and fields["Deployteq_Id__c"]["unique"] is True
    assert fields["Lead__c"]["referenceTo"] == ["Lead"] and fields["Lead__c"]["relationshipName"] == "Lead__r"
    assert [v["value"] for v in fields["Bounce_Type__c"]["picklistValues"]] == ["hard", "soft"]
    assert fields["Online_Version_URL__c"]["type"] == "url"


def test_describe_of_unknown_object_is_404(api):
    assert api("GET", "sobjects/Nope__c/describe/").status_code == 404
