"""The mapping editor's Preview button: an edited mapping on a sample of records, nothing saved."""

from __future__ import annotations

import psycopg
import pytest

from tests.ui.conftest import OBJECTS_TEXT
from tests.ui.helpers import variable_value
from tests.ui.routers.test_objects import edit_form

LEADS = [
    {"FirstName": "Anna", "LastName": "Jansen", "Company": "A BV", "Email": "anna@example.nl", "LeadSource": "Web", "City": "Utrecht"},
    {"FirstName": "Bert", "LastName": "de Vries", "Company": "B BV", "Email": "bert@example.nl", "LeadSource": "Other"},
    {"FirstName": "Carla", "LastName": "Smit", "Company": "C BV", "Email": "not an address", "LeadSource": "Web"},
]


@pytest.fixture
def synced(client_for, seeded, emulator):
    """Three leads in Salesforce, the first two synced with the Variable's mapping (the third is bad)."""
    from tests.ui.conftest import OBJECTS_CONFIG

    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    ids = emulator.seed("Lead", LEADS)
    lead = next(o for o in OBJECTS_CONFIG["objects"] if o["sobject"] == "Lead")
    SalesforceToDeployteqOperator(task_id="sync", sobject="Lead", object_config={"objects": [lead]}).execute({})
    return ids


def changed_form(client):
    """The editor's form with Web translated differently and City mapped to a column the table lacks."""
    form = edit_form(client)
    form["row-3-translations"] = "Web => Internet\nOther => Overig"
    form["row-4-salesforce_field"] = "City"
    form["row-4-deployteq_type"] = "text"
    form["row-4-deployteq_field"] = "lead_city"
    form["preview_sample"] = "50"
    return form


def customer_rows(pg_url, schema):
    with psycopg.connect(pg_url) as conn:
        return conn.execute(f'SELECT t::text FROM "{schema}".customer t ORDER BY customer_id').fetchall()


def test_preview_shows_changed_columns_rejected_records_new_columns_and_cost_without_saving(
    client_for, synced, pg_url, pg_schema
):
    client = client_for("op")
    html = client.get("/objects/Lead/edit").text
    assert 'id="preview-button" formaction="/objects/Lead/preview"' in html
    rows = customer_rows(pg_url, pg_schema)
    response = client.post("/objects/Lead/preview", data=changed_form(client))
    assert response.status_code == 200, response.text[:3000]
    page = response.text
    assert "Preview of the edited Lead mapping" in page and "Not saved." in page
    assert '<td class="changed"><del>Website</del> → <ins>Internet</ins></td>' in page
    assert "<code>lead_city</code>" in page and 'ALTER TABLE customer ADD COLUMN &#34;lead_city&#34; text;' in page
    rejected = page[page.index('id="preview-rejected"'):]
    assert f"<code>{synced[2]}</code>" in rejected and "not an e-mail address" in rejected
    assert "3 Salesforce requests (describe, sample query, count query)" in page
    assert "Next full run</dt><dd>3 records, about 2 requests (REST)" in page
    # the editor comes back with what was submitted, so it can be saved or changed again
    assert "Web =&gt; Internet" in page and 'value="50"' in page
    assert variable_value() == OBJECTS_TEXT
    assert customer_rows(pg_url, pg_schema) == rows


def test_preview_answers_json_when_asked(client_for, synced):
    client = client_for("op")
    response = client.post("/objects/Lead/preview", data=changed_form(client), headers={"Accept": "application/json"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["saved"] is False and answer["written"] is False and answer["salesforce_requests"] == 3
    assert answer["changed_columns"] == ["lead_source", "lead_city"] and answer["new_columns"][0]["name"] == "lead_city"
    assert answer["counts"]["rejected"] == 1 and answer["sampled"] == 3
    assert variable_value() == OBJECTS_TEXT


def test_preview_of_an_invalid_mapping_names_the_row_and_previews_nothing(client_for, synced, emulator):
    client = client_for("op")
    form = changed_form(client)
    form["row-2-salesforce_field"] = "FirstNam"
    before = emulator.counters()["total"]
    response = client.post("/objects/Lead/preview", data=form)
    assert response.status_code == 422
    assert "No preview — fix these first" in response.text
    assert '<a href="#row-3">Row 3</a> (FirstNam): no such field on Lead according to describe' in response.text
    assert emulator.counters()["total"] - before == 1  # the describe that found it
    as_json = client.post("/objects/Lead/preview", data={**form, "preview_sample": "5000"}, headers={"Accept": "application/json"})
    assert as_json.status_code == 422 and any("from 1 to 2000" in p for p in as_json.json()["problems"])
    assert variable_value() == OBJECTS_TEXT


def test_preview_needs_the_form_token_and_edit_rights(client_for, synced):
    op = client_for("op")
    form = changed_form(op)
    assert client_for("viewer").post("/objects/Lead/preview", data=form).status_code == 403
    assert op.post("/objects/Lead/preview", data={**form, "csrf_token": "0" * 64}).status_code == 403


def test_save_still_saves_after_a_preview(client_for, synced):
    client = client_for("op")
    form = changed_form(client)
    form["row-4-deployteq_field"] = "city"  # an existing column: saving is allowed
    assert client.post("/objects/Lead/preview", data=form).status_code == 200
    response = client.post("/objects/Lead", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:2000]
    assert '"Web": "Internet"' in variable_value()
