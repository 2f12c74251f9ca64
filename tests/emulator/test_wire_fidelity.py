"""Wire details of the REST API checked against Salesforce's REST API Developer Guide and real answers
quoted by client code: status codes, error bodies, HEAD and If-Modified-Since."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from .conftest import emulator_session

LEAD = {"LastName": "Jansen", "Company": "Tulp BV"}


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def _emulator_now(emulator) -> datetime:
    return datetime.strptime(emulator.now(), "%Y-%m-%dT%H:%M:%S.000%z")


@pytest.fixture
def api_at_version(emulator, emulator_process):
    """``call(version, method, path, **kw)``: raw HTTP under ``/services/data/v{version}/``."""
    info = emulator_process.info
    session = emulator_session(info)

    def call(version: str, method: str, path: str, **kwargs):
        url = f"{info['instance_url']}/services/data/v{version}/{path}"
        return session.request(method, url, headers={"Authorization": f"Bearer {info['session_id']}"}, **kwargs)

    return call


# --- key fields in the body (documented example of "Create a Record"; upsert note "Do not specify Id or an
# external ID field in the request body") ------------------------------------------------------------------

def test_create_with_an_id_in_the_body_is_invalid_field(api):
    response = api("POST", "sobjects/Lead/", json={"Id": "00Q8d0000000001AAA", **LEAD})
    assert response.status_code == 400
    assert response.json() == [{"message": "The Id field should not be specified in the sobject data.",
                                "errorCode": "INVALID_FIELD"}]


def test_update_with_an_id_in_the_body_is_invalid_field(api, emulator):
    [lead_id] = emulator.seed("Lead", [LEAD])
    response = api("PATCH", f"sobjects/Lead/{lead_id}", json={"Id": lead_id, "City": "Ede"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_FIELD"
    assert emulator.records("Lead")[0]["City"] is None


def test_upsert_with_the_external_id_in_the_body_is_invalid_field(api, emulator):
    response = api("PATCH", "sobjects/ClangLeadContactMoment__c/Deployteq_Id__c/DT-1",
                   json={"Deployteq_Id__c": "DT-1", "Subject__c": "Hallo"})
    assert response.status_code == 400
    assert response.json() == [{"message": "The Deployteq_Id__c field should not be specified in the sobject data.",
                                "errorCode": "INVALID_FIELD"}]
    assert emulator.records("ClangLeadContactMoment__c") == []


# --- upsert answers per API version ("The created parameter is present in API version 46.0 and later") ------

def test_upsert_before_api_46_answers_without_created_and_204_on_update(api_at_version):
    path = "sobjects/ClangLeadContactMoment__c/Deployteq_Id__c/DT-2"
    created = api_at_version("45.0", "PATCH", path, json={"Subject__c": "Hallo"})
    assert created.status_code == 201
    assert set(created.json()) == {"id", "success", "errors"}
    updated = api_at_version("45.0", "PATCH", path, json={"Subject__c": "Dag"})
    assert (updated.status_code, updated.content) == (204, b"")


def test_upsert_from_api_46_reports_created(api_at_version):
    path = "sobjects/ClangLeadContactMoment__c/Deployteq_Id__c/DT-3"
    assert api_at_version("46.0", "PATCH", path, json={"Subject__c": "Hallo"}).json()["created"] is True
    updated = api_at_version("46.0", "PATCH", path, json={"Subject__c": "Dag"})
    assert updated.status_code == 200 and updated.json()["created"] is False


# --- bodies that are not JSON (Jackson's messages, as Salesforce answers them) -------------------------------

def test_an_empty_body_is_a_json_parser_error(api):
    response = api("POST", "sobjects/Lead/", data=b"", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == [{"message": "The HTTP entity body is required, but this request has no entity body.",
                                "errorCode": "JSON_PARSER_ERROR"}]


def test_malformed_json_names_the_character_and_its_position(api):
    response = api("POST", "sobjects/Lead/", data=b'{name "Naam", "Company": "X"}',
                   headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == [{"message": "Unexpected character ('n' (code 110)): was expecting double-quote to "
                                           "start field name at [line:1, column:3]",
                                "errorCode": "JSON_PARSER_ERROR"}]


def test_truncated_json_is_an_end_of_input_error(api):
    response = api("POST", "sobjects/Lead/", data=b'{"LastName": "X"', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert response.json()[0]["message"].startswith("Unexpected end-of-input at [line:1, column:")


# --- methods ("HTTP Method 'PATCH' not allowed. Allowed are HEAD,GET,POST") ----------------------------------

@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "sobjects/Lead/00Q8d0000000001AAA", "HEAD,GET,PATCH,DELETE"),
    ("PATCH", "sobjects/Lead/", "HEAD,GET,POST"),
    ("DELETE", "sobjects/", "HEAD,GET"),
    ("POST", "sobjects/Lead/describe/", "HEAD,GET"),
    ("DELETE", "sobjects/Lead/updated/", "HEAD,GET"),
])
def test_a_wrong_method_is_405_listing_the_allowed_ones(api, method, path, allowed):
    response = api(method, path)
    assert response.status_code == 405
    assert response.json() == [{"message": f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
                                "errorCode": "METHOD_NOT_ALLOWED"}]


def test_head_answers_like_get_without_a_body(api, emulator):
    [lead_id] = emulator.seed("Lead", [LEAD])
    for path in ("sobjects/Lead/describe/", f"sobjects/Lead/{lead_id}"):
        response = api("HEAD", path)
        # the headers announce the GET's body, which HEAD leaves out
        assert response.status_code == 200, path
        assert response.headers["Content-Length"] == str(len(api("GET", path).content)), path
        assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


# --- If-Modified-Since ("304 Not Modified status code is returned with no response body") -------------------

@pytest.mark.parametrize("path", ["sobjects/", "sobjects/Lead/describe/"])
def test_describe_is_not_modified_since_a_recent_date(api, path):
    recent = api("GET", path, headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert (recent.status_code, recent.content) == (304, b"")
    old = api("GET", path, headers={"If-Modified-Since": "Tue, 23 Mar 2015 00:00:00 GMT"})
    assert old.status_code == 200 and old.json()


def test_record_get_honours_if_modified_since(api, emulator):
    [lead_id] = emulator.seed("Lead", [LEAD])
    now = _emulator_now(emulator)
    unchanged = api("GET", f"sobjects/Lead/{lead_id}", headers={"If-Modified-Since": _http_date(now)})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    emulator.advance_clock(5)
    emulator.update("Lead", [{"Id": lead_id, "City": "Ede"}])
    changed = api("GET", f"sobjects/Lead/{lead_id}", headers={"If-Modified-Since": _http_date(now)})
    assert changed.status_code == 200 and changed.json()["City"] == "Ede"


# --- replication windows ("INVALID_REPLICATION_DATE: startDate must be at least one minute greater than
# endDate", as restforce users got it) -----------------------------------------------------------------------

@pytest.mark.parametrize("resource", ["updated", "deleted"])
def test_a_window_shorter_than_a_minute_is_refused(api, emulator, resource):
    start = _emulator_now(emulator).replace(second=0) - timedelta(hours=1)
    response = api("GET", f"sobjects/Lead/{resource}/",
                   params={"start": start.isoformat(), "end": (start + timedelta(seconds=30)).isoformat()})
    assert response.status_code == 400
    assert response.json() == [{"message": "startDate must be at least one minute greater than endDate",
                                "errorCode": "INVALID_REPLICATION_DATE"}]


# --- describe fields carry the keys clients read -----------------------------------------------------------

def test_name_parts_name_their_compound_field(sf):
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    assert fields["FirstName"]["compoundFieldName"] == "Name"
    assert fields["Email"]["compoundFieldName"] is None
    assert all({"deprecatedAndHidden", "dependentPicklist", "htmlFormatted", "polymorphicForeignKey"} <= set(f)
               for f in fields.values())
