"""The Salesforce pages rendered from a seeded store through Airflow's auth (FastAPI TestClient)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.ui.conftest import CAMPAIGN_DAG, OBJECTS_TEXT, SYNC_DAG

PAGES = [
    "/",
    "/objects",
    "/links",
    "/runs",
    "/runs?flow=sync:Lead",
    "/errors",
    "/contact-moments",
    f"/dag/{SYNC_DAG}",
    f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize",
    "/objects/Lead/edit",
]
READ_PAGES = [page for page in PAGES if not page.endswith("/edit")]


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def variable_value() -> str | None:
    from airflow.models import Variable

    return Variable.get("deployteq_salesforce_objects", default_var=None)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_for_an_admin(client_for, seeded, page):
    response = client_for("admin").get(page)
    assert response.status_code == 200, response.text[:2000]
    assert "Salesforce" in response.text


def test_overview_shows_account_budget_chart_block_and_backlog(client_for, seeded):
    html = client_for("viewer").get("/").text
    assert "connected" in html and "session id" in html  # the emulator connection: direct session
    assert html.count("<svg") == 2  # budget per hour + records per run
    assert "sync:Lead" in html and "contact_moments" in html  # one series per flow
    assert "hourly budget 3,600" in html
    assert "1000 of 15000 remaining" in html
    assert "Salesforce blocked the token since" in html and "TotalRequests Limit exceeded." in html
    if "contact_moment_sync" in seeded["tables"]:
        assert "2 unsent" in html


def test_pages_never_render_the_session_id(client_for, seeded, emulator_process):
    session_id = json.loads(open(emulator_process.connection_json).read())["session_id"]
    client = client_for("admin")
    for page in PAGES:
        assert session_id not in client.get(page).text, page


def test_objects_page_shows_mapping_rows_translations_and_validity(client_for, seeded):
    html = client_for("viewer").get("/objects").text
    assert "LeadSource" in html and "Web → Website" in html
    assert html.count('badge valid">valid') == 2  # Lead and Contact checked against the emulator's describe
    assert "Edit Lead" not in html  # a viewer gets no pencil


def test_errors_sync_log_dag_tab_and_exits(client_for, seeded):
    client = client_for("viewer")
    assert "DUPLICATE_VALUE: e-mail already used" in client.get("/errors").text
    runs = client.get("/runs?flow=sync:Lead").text
    assert runs.count("<tr>") == 1 + 3 and "partial" in runs
    tab = client.get(f"/dag/{SYNC_DAG}").text
    assert "<svg" in tab and "run 3h ago" in tab
    if "synchronize_outcome" in seeded["tables"]:
        exits = client.get(f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize").text
        assert 'class="exit-on_error">1<' in exits and "no Salesforce lead or contact id (R15)" in exits


def test_empty_store_says_not_configured_yet(client_for, deployteq_conn_id):
    client = client_for("viewer")
    # before the overview: its connection test creates the request ledger (the budgeted client migrates)
    pages = ("/runs", "/errors", "/contact-moments", f"/dag/{SYNC_DAG}", f"/dag/{CAMPAIGN_DAG}/run/r/task/t", "/links")
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert "not configured yet" in response.text.lower() or "no object links configured" in response.text.lower(), page
    assert client.get("/").status_code == 200


def test_unreachable_store_is_reported_not_a_500(client_for, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_DEFAULT", json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 1}))
    response = client_for("viewer").get("/runs")
    assert response.status_code == 200
    assert "Deployteq store (connection &#39;deployteq_default&#39;) not reachable" in response.text


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_requests_are_refused(client_for, page):
    assert client_for(None).get(page).status_code == 401


def test_a_forged_token_is_refused(client_for):
    client = client_for(None)
    client.cookies.set("_token", "not.a.jwt")
    assert client.get("/").status_code in (401, 403)


def test_anonymous_post_changes_nothing(client_for, seeded):
    response = client_for(None).post("/objects/Lead", data={"row_count": "0"})
    assert response.status_code == 401
    assert variable_value() == OBJECTS_TEXT


def test_read_only_user_cannot_edit(client_for, seeded):
    client = client_for("viewer")
    assert client.get("/objects/Lead/edit").status_code == 403
    token = csrf_token(client.get("/errors").text)
    response = client.post("/objects/Lead", data={"csrf_token": token, "row_count": "1", "row-0-salesforce_field": "Id"})
    assert response.status_code == 403
    assert variable_value() == OBJECTS_TEXT


def test_read_only_user_cannot_queue_retries(client_for, seeded):
    client = client_for("viewer")
    token = csrf_token(client.get("/errors").text)
    response = client.post("/errors/retry", data={"csrf_token": token, "error_id": [str(seeded["error_ids"][0])]})
    assert response.status_code == 403
    assert not _retry_flags(seeded)[seeded["error_ids"][0]]


def _retry_flags(seeded) -> dict[int, bool]:
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        return dict(conn.execute("SELECT sync_error_id, retry_requested FROM sync_error").fetchall())


def test_retry_marks_only_the_selected_records(client_for, seeded):
    client = client_for("user")  # may trigger DAG runs
    token = csrf_token(client.get("/errors").text)
    first, second = seeded["error_ids"]
    response = client.post("/errors/retry", data={"csrf_token": token, "error_id": [str(first)]}, follow_redirects=False)
    assert response.status_code == 303
    assert _retry_flags(seeded) == {first: True, second: False}
    assert "1 record(s) queued" in client.get(response.headers["location"]).text


def _edit_form(client, sobject: str = "Lead") -> dict[str, str]:
    """The editor's form as the browser would submit it unchanged."""
    html = client.get(f"/objects/{sobject}/edit").text
    form: dict[str, str] = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        if name not in ("unique_key",) and not name.endswith("-delete") and name != "enabled":
            form[name] = value
    for name, value in re.findall(r'<input type="(?:radio|checkbox)" name="([^"]+)" value="([^"]*)" checked', html):
        form[name] = value
    for name, body in re.findall(r'<textarea name="([^"]+)"[^>]*>([^<]*)</textarea>', html):
        form[name] = body.replace("&gt;", ">")
    for name, options in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r"<option(?: value=\"([^\"]*)\")? selected>([^<]*)<", options)
        if chosen:
            form[name] = chosen.group(1) or chosen.group(2)
    return form


def test_editor_saves_a_valid_change(client_for, seeded):
    client = client_for("op")
    form = _edit_form(client)
    assert form["row-2-salesforce_field"] == "FirstName"
    form["row-4-salesforce_field"] = "Company"  # the first empty row: add a mapping
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


def test_editor_refuses_a_field_salesforce_does_not_have(client_for, seeded):
    client = client_for("op")
    form = _edit_form(client)
    form["row-2-salesforce_field"] = "FirstNam"
    response = client.post("/objects/Lead", data=form)
    assert response.status_code == 422
    assert "Row 3 (FirstNam): no such field on Lead according to describe" in response.text
    assert variable_value() == OBJECTS_TEXT


def test_editor_refuses_a_structural_error_with_row_and_reason(client_for, seeded):
    client = client_for("op")
    form = _edit_form(client)
    form["row-2-deployteq_field"] = "email"  # row 2 already fills it
    response = client.post("/objects/Lead", data=form)
    assert response.status_code == 422
    assert "Deployteq field &#39;email&#39; is already filled by row 2" in response.text
    assert variable_value() == OBJECTS_TEXT


def test_post_without_form_token_is_refused(client_for, seeded):
    client = client_for("op")
    form = _edit_form(client)
    form.pop("csrf_token")
    assert client.post("/objects/Lead", data=form).status_code == 403
    assert variable_value() == OBJECTS_TEXT


def test_post_from_another_origin_is_refused(client_for, seeded):
    client = client_for("op")
    form = _edit_form(client)
    response = client.post("/objects/Lead", data=form, headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    assert variable_value() == OBJECTS_TEXT


def test_bearer_token_clients_need_no_form_token(client_for, tokens, seeded):
    client = client_for(None)
    form = _edit_form(client_for("op"))
    form.pop("csrf_token")
    response = client.post("/objects/Lead", data=form, headers={"Authorization": f"Bearer {tokens['op']}"}, follow_redirects=False)
    assert response.status_code == 303


def test_get_changes_nothing(client_for, seeded):
    client = client_for("admin")
    for page in PAGES:
        client.get(page)
    assert variable_value() == OBJECTS_TEXT
    assert not any(_retry_flags(seeded).values())


def test_links_page_shows_links_and_refuses_an_invalid_edit(client_for, seeded):
    from airflow.models import Variable

    from deployteq_salesforce.links import VARIABLE_NAME, load_object_links

    import yaml

    settings = yaml.safe_load((Path(__file__).resolve().parents[2] / "airflow_settings.yaml").read_text())
    shipped = next(v for v in settings["airflow"]["variables"] if v["variable_name"] == VARIABLE_NAME)
    links = json.loads(shipped["variable_value"])
    load_object_links(links)  # the demo's links are valid
    first = links["links"][0]
    Variable.set(VARIABLE_NAME, json.dumps(links))
    try:
        client = client_for("op")
        html = client.get("/links").text
        assert first["datamodel"] in html and first["sobject"] in html
        token = csrf_token(html)
        bad = dict(links, links=[dict(first, webhook="nope"), *links["links"][1:]])
        response = client.post("/links", data={"csrf_token": token, "links": json.dumps(bad)})
        assert response.status_code == 422 and "webhook &#39;nope&#39; is not defined" in response.text
        assert json.loads(Variable.get(VARIABLE_NAME)) == links
    finally:
        Variable.delete(VARIABLE_NAME)
