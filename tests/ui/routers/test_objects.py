"""Configured objects: the mapping, last sync / next run, and the editor round trip."""

from __future__ import annotations

import json

from tests.ui.conftest import OBJECTS_TEXT
from tests.ui.helpers import csrf_token, submitted_form, variable_value


def test_objects_page_shows_mapping_rows_translations_and_validity(client_for, seeded):
    html = client_for("viewer").get("/objects").text
    assert "LeadSource" in html and "Web → Website" in html and "other values → kept as they are" in html
    assert html.count('badge valid">valid') == 2  # Lead and Contact checked against the emulator's describe
    assert "Edit Lead" not in html  # a viewer gets no pencil


def test_objects_page_shows_last_sync_next_run_and_history(client_for, seeded, airflow_dag):
    airflow_dag("salesforce_lead_to_deployteq", paused=True)
    html = client_for("viewer").get("/objects").text
    lead = html[html.index('id="object-Lead"'):html.index('id="object-Contact"')]
    assert '<span class="badge success">success</span>' in lead  # the latest run of sync:Lead
    assert '<dt>Next run</dt><dd><span class="badge paused">paused</span></dd>' in lead
    assert 'href="/runs?flow=sync%3ALead"' in lead


def edit_form(client, sobject: str = "Lead") -> dict[str, str]:
    return submitted_form(client.get(f"/objects/{sobject}/edit").text, "mapping-form")


def test_editor_offers_salesforce_fields_from_the_describe(client_for, seeded):
    html = client_for("op").get("/objects/Lead/edit").text
    row = html[html.index('name="row-2-salesforce_field"'):]
    row = row[:row.index("</select>")]
    assert '<option value="FirstName" selected>' in row and '<option value="Company">' in row  # a pick list
    assert '<select name="sync_flag_field">' in html and '<option value="Sync_to_Deployteq__c">' in html  # Boolean fields only
    assert 'aria-label="Translations of row 4, one per line"' in html and 'rows="3"' in html  # two lines: all shown


def test_editor_saves_a_valid_change(client_for, seeded):
    client = client_for("op")
    form = edit_form(client)
    assert form["row-2-salesforce_field"] == "FirstName"
    assert form["row-4-salesforce_field"] == ""  # the first empty row
    form["row-4-salesforce_field"] = "Company"
    form["row-4-deployteq_type"] = "text"
    form["row-4-deployteq_field"] = "company"
    form["row-3-translations"] = "Web => Website\nPartner Referral => Partner"
    response = client.post("/objects/Lead", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]
    saved = json.loads(variable_value())
    lead = next(o for o in saved["objects"] if o["sobject"] == "Lead")
    assert lead["mappings"][-1] == {"salesforce_field": "Company", "deployteq_type": "text", "deployteq_field": "company", "unique_key": False}
    assert lead["mappings"][3]["translations"] == {"Web": "Website", "Partner Referral": "Partner"}
    assert saved["objects"][1] == json.loads(OBJECTS_TEXT)["objects"][1]  # Contact untouched
    assert "Saved the mapping of Lead" in client.get(response.headers["location"]).text


def test_editor_refuses_a_field_salesforce_does_not_have_and_marks_the_row(client_for, seeded):
    client = client_for("op")
    form = edit_form(client)
    form["row-2-salesforce_field"] = "FirstNam"
    response = client.post("/objects/Lead", data=form)
    assert response.status_code == 422
    assert '<a href="#row-3">Row 3</a> (FirstNam): no such field on Lead according to describe' in response.text
    assert '<tr id="row-3" class="invalid" aria-invalid="true">' in response.text
    assert '<option value="FirstNam" selected>FirstNam (not on Lead)</option>' in response.text  # what was sent, kept
    assert variable_value() == OBJECTS_TEXT


def test_editor_refuses_a_structural_error_with_row_and_reason(client_for, seeded):
    client = client_for("op")
    form = edit_form(client)
    form["row-2-deployteq_field"] = "email"  # row 2 already fills it
    response = client.post("/objects/Lead", data=form)
    assert response.status_code == 422
    assert "Deployteq field &#39;email&#39; is already filled by row 2" in response.text
    assert variable_value() == OBJECTS_TEXT


def test_read_only_user_cannot_edit(client_for, seeded):
    client = client_for("viewer")
    assert client.get("/objects/Lead/edit").status_code == 403
    token = csrf_token(client.get("/errors").text)
    response = client.post("/objects/Lead", data={"csrf_token": token, "row_count": "1", "row-0-salesforce_field": "Id"})
    assert response.status_code == 403
    assert variable_value() == OBJECTS_TEXT


def test_post_from_another_origin_is_refused(client_for, seeded):
    client = client_for("op")
    form = edit_form(client)
    response = client.post("/objects/Lead", data=form, headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert variable_value() == OBJECTS_TEXT


def test_bearer_token_clients_need_no_form_token(client_for, tokens, seeded):
    form = edit_form(client_for("op"))
    form.pop("csrf_token")
    response = client_for(None).post(
        "/objects/Lead", data=form, headers={"Authorization": f"Bearer {tokens['op']}"}, follow_redirects=False
    )
    assert response.status_code == 303
