"""The Salesforce pages rendered from a seeded store through Airflow's auth (FastAPI TestClient)."""

from __future__ import annotations

import html as html_text
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
    "/links/new",
]


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


@pytest.fixture
def object_links(airflow_db):
    """The demo's object-links Variable (airflow_settings.yaml) for one test; its document is returned."""
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME, load_object_links

    import yaml

    settings = yaml.safe_load((Path(__file__).resolve().parents[2] / "airflow_settings.yaml").read_text())
    shipped = next(v for v in settings["airflow"]["variables"] if v["variable_name"] == VARIABLE_NAME)
    links = json.loads(shipped["variable_value"])
    load_object_links(links)  # the demo's links are valid
    Variable.set(VARIABLE_NAME, json.dumps(links))
    yield links
    Variable.delete(VARIABLE_NAME)


def links_value() -> dict | None:
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

    value = Variable.get(VARIABLE_NAME, default_var=None)
    return json.loads(value) if value is not None else None


def test_links_page_shows_links_and_refuses_an_invalid_edit(client_for, seeded, object_links):
    first = object_links["links"][0]
    client = client_for("op")
    html = client.get("/links").text
    assert first["datamodel"] in html and first["sobject"] in html
    token = csrf_token(html)
    bad = dict(object_links, links=[dict(first, webhook="nope"), *object_links["links"][1:]])
    response = client.post("/links", data={"csrf_token": token, "links": json.dumps(bad)})
    assert response.status_code == 422 and "webhook &#39;nope&#39; is not defined" in response.text
    assert links_value() == object_links


def test_links_page_shows_a_variable_that_is_not_a_links_document(client_for, seeded, object_links):
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

    Variable.set(VARIABLE_NAME, "5")
    response = client_for("op").get("/links")
    assert response.status_code == 200 and "No object links configured" in response.text


def _link_form(client, url: str) -> dict[str, str]:
    """The link form at ``url`` as the browser would submit it unchanged."""
    response = client.get(url)
    assert response.status_code == 200, response.text[:2000]
    form = {name: html_text.unescape(value) for name, value in re.findall(r'<input [^>]*name="([^"]+)" value="([^"]*)"', response.text)}
    for name, options in re.findall(r'<select [^>]*name="([^"]+)">(.*?)</select>', response.text, re.S):
        chosen = re.findall(r'<option value="([^"]*)" selected>', options)
        assert len(chosen) == 1, (name, options)
        form[name] = html_text.unescape(chosen[0])
    return form


def test_links_page_offers_the_link_form_to_editors_only(client_for, seeded, object_links):
    editor_page = client_for("op").get("/links").text
    for link in object_links["links"]:
        assert f'href="/links/edit?name={link["name"]}"' in editor_page
    assert 'href="/links/new"' in editor_page
    viewer_page = client_for("viewer").get("/links").text
    assert "/links/edit?name=" not in viewer_page and "/links/new" not in viewer_page


def test_link_form_shows_the_current_settings(client_for, seeded, object_links):
    client = client_for("op")
    form = _link_form(client, "/links/edit?name=campaign_members")
    assert form == {
        "csrf_token": form["csrf_token"], "original_name": "campaign_members", "name": "campaign_members",
        "allow_inserts": "yes", "delete": "yes", "sobject": "CampaignMember", "webhook": "campaign-member",
        "datamodel": "dm_campaign_member", "use_sync_column": "yes", "enabled": "yes", "schedule": "@hourly",
    }
    html = client.get("/links/edit?name=campaign_members").text
    for webhook in object_links["webhooks"]:  # every defined webhook is a choice
        assert f'<option value="{webhook["name"]}"' in html
    assert "SyncWithClang__c" in html
    assert client.get("/links/edit?name=no_such_link").status_code == 404


def test_link_form_saves_changed_settings_and_keeps_the_others(client_for, seeded, object_links):
    client = client_for("op")
    form = _link_form(client, "/links/edit?name=campaign_members")
    form.update(allow_inserts="no", delete="no", use_sync_column="no")
    response = client.post("/links/edit", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]
    assert response.headers["location"] == "/links?saved=1"
    saved = links_value()
    before = object_links["links"][2]
    assert saved["links"][2] == {**before, "allow_inserts": False, "delete": False, "use_sync_column": False, "enabled": True}
    assert saved["links"][2]["reconcile_schedule"] == "@daily"  # not on the form: kept
    assert saved["links"][:2] == object_links["links"][:2] and saved["webhooks"] == object_links["webhooks"]
    assert 'id="saved"' in client.get(response.headers["location"]).text


def test_link_form_adds_a_new_link(client_for, seeded, object_links):
    client = client_for("op")
    form = _link_form(client, "/links/new")
    assert form["original_name"] == "" and form["allow_inserts"] == "yes" and form["delete"] == "no"
    form.update(name="account_updates", allow_inserts="no", sobject="Account", webhook="account", datamodel="dm_account")
    response = client.post("/links/edit", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]
    saved = links_value()
    assert saved["links"][:3] == object_links["links"]
    assert saved["links"][3] == {
        "name": "account_updates", "allow_inserts": False, "delete": False, "sobject": "Account", "webhook": "account",
        "datamodel": "dm_account", "use_sync_column": False, "enabled": True, "schedule": "@hourly",
    }


@pytest.mark.parametrize(
    ("url", "change", "message"),
    [
        ("/links/edit?name=campaigns", {"webhook": "nope"}, "Webhook: webhook &#39;nope&#39; is not defined"),
        ("/links/edit?name=campaigns", {"name": "Campaigns 2"}, "Name: link name &#39;Campaigns 2&#39; is not valid"),
        ("/links/edit?name=campaigns", {"name": "accounts"}, "Name: another link is already called &#39;accounts&#39;"),
        ("/links/new", {"name": "accounts", "sobject": "Account", "webhook": "account", "datamodel": "dm_account"},
         "Name: another link is already called &#39;accounts&#39;"),
        ("/links/edit?name=campaigns", {"datamodel": "dm_account"}, "Datamodel table: datamodel &#39;dm_account&#39; is not the table"),
        ("/links/edit?name=campaigns", {"delete": "maybe"}, "Delete: choose yes or no"),
    ],
    ids=["unknown-webhook", "bad-name", "renamed-onto-another", "new-with-a-taken-name", "other-datamodel", "not-yes-or-no"],
)
def test_link_form_refuses_an_invalid_link_and_saves_nothing(client_for, seeded, object_links, url, change, message):
    client = client_for("op")
    form = {**_link_form(client, url), **change}
    response = client.post("/links/edit", data=form)
    assert response.status_code == 422
    assert message in response.text
    assert links_value() == object_links


def test_link_delete_removes_only_that_link(client_for, seeded, object_links):
    client = client_for("op")
    token = _link_form(client, "/links/edit?name=campaigns")["csrf_token"]
    response = client.post("/links/delete", data={"csrf_token": token, "name": "campaigns"}, follow_redirects=False)
    assert response.status_code == 303
    assert links_value() == dict(object_links, links=[object_links["links"][0], object_links["links"][2]])


def test_read_only_user_cannot_use_the_link_form(client_for, seeded, object_links):
    client = client_for("viewer")
    assert client.get("/links/edit?name=campaigns").status_code == 403
    assert client.get("/links/new").status_code == 403
    form = {**_link_form(client_for("op"), "/links/edit?name=campaigns"), "delete": "no"}
    form["csrf_token"] = csrf_token(client.get("/errors").text)  # the viewer's own, valid token
    assert client.post("/links/edit", data=form).status_code == 403
    assert client.post("/links/delete", data={"csrf_token": form["csrf_token"], "name": "campaigns"}).status_code == 403
    assert links_value() == object_links


def test_anonymous_link_form_posts_change_nothing(client_for, seeded, object_links):
    client = client_for(None)
    assert client.get("/links/edit?name=campaigns").status_code == 401
    assert client.post("/links/edit", data={"original_name": "campaigns", "name": "campaigns", "delete": "no"}).status_code == 401
    assert client.post("/links/delete", data={"name": "campaigns"}).status_code == 401
    assert links_value() == object_links


def test_link_form_post_without_form_token_is_refused(client_for, seeded, object_links):
    client = client_for("op")
    form = {**_link_form(client, "/links/edit?name=campaigns"), "delete": "no"}
    form.pop("csrf_token")
    assert client.post("/links/edit", data=form).status_code == 403
    assert client.post("/links/delete", data={"name": "campaigns"}).status_code == 403
    assert links_value() == object_links
