"""Object links: the list, the form per link (validated with the DAGs' model and against Salesforce),
deleting with a confirmation, and the JSON editor."""

from __future__ import annotations

import json

import pytest

from tests.ui.helpers import csrf_token, links_value, submitted_form


def link_form(client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200, response.text[:2000]
    return submitted_form(response.text, "link-form")


def test_links_page_shows_links_with_readable_settings(client_for, seeded, object_links):
    html = client_for("viewer").get("/links").text
    table = html[html.index('<table class="grid" id="links">'):html.index("</table>")]
    assert "<th scope=\"col\">Allow inserts</th>" in table and "sobject" not in table and "allow_inserts" not in table
    assert "True" not in table and "False" not in table and "<td>yes</td>" in table
    assert "never ran" in table and 'href="/runs?flow=link%3Acampaign_members"' in table


def test_a_disabled_link_looks_disabled(client_for, seeded, object_links):
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

    links = json.loads(json.dumps(object_links))
    links["links"][1]["enabled"] = False
    Variable.set(VARIABLE_NAME, json.dumps(links))
    html = client_for("viewer").get("/links").text
    assert '<tr class="disabled">\n<td><strong>campaigns</strong> <span class="badge disabled">disabled</span>' in html


def test_links_page_offers_the_link_form_to_editors_only(client_for, seeded, object_links):
    editor_page = client_for("op").get("/links").text
    for link in object_links["links"]:
        assert f'href="/links/edit?name={link["name"]}"' in editor_page
    assert 'href="/links/new"' in editor_page
    viewer_page = client_for("viewer").get("/links").text
    assert "/links/edit?name=" not in viewer_page and "/links/new" not in viewer_page


def test_link_form_shows_the_current_settings(client_for, seeded, object_links):
    client = client_for("op")
    form = link_form(client, "/links/edit?name=campaign_members")
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
    form = link_form(client, "/links/edit?name=campaign_members")
    form.update(allow_inserts="no", delete="no", use_sync_column="no")
    response = client.post("/links/edit", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]
    assert response.headers["location"] == "/links?saved=campaign_members"
    saved = links_value()
    before = object_links["links"][2]
    assert saved["links"][2] == {**before, "allow_inserts": False, "delete": False, "use_sync_column": False, "enabled": True}
    assert saved["links"][2]["reconcile_schedule"] == "@daily"  # not on the form: kept
    assert saved["links"][:2] == object_links["links"][:2] and saved["webhooks"] == object_links["webhooks"]
    assert "Saved object link <strong>campaign_members</strong>" in client.get(response.headers["location"]).text


def test_link_form_adds_a_new_link(client_for, seeded, object_links):
    client = client_for("op")
    form = link_form(client, "/links/new")
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
        ("/links/new", {"name": "ghosts", "sobject": "Nonexistent__c", "webhook": "account", "datamodel": "dm_account"},
         "Salesforce object: Salesforce has no object &#39;Nonexistent__c&#39; (checked with describe)"),
        ("/links/edit?name=accounts", {"sobject": "Campaign"},
         "Salesforce object: field &#39;Industry&#39; (column &#39;industry&#39;) is not a field of Campaign "
         "(webhook &#39;account&#39; needs it)"),
    ],
    ids=["unknown-webhook", "bad-name", "renamed-onto-another", "new-with-a-taken-name", "other-datamodel", "not-yes-or-no",
         "object-not-in-salesforce", "object-without-the-webhooks-fields"],
)
def test_link_form_refuses_an_invalid_link_and_saves_nothing(client_for, seeded, object_links, url, change, message):
    client = client_for("op")
    form = {**link_form(client, url), **change}
    response = client.post("/links/edit", data=form)
    assert response.status_code == 422
    assert message in response.text
    assert links_value() == object_links


def test_the_refused_field_is_marked(client_for, seeded, object_links):
    client = client_for("op")
    form = {**link_form(client, "/links/new"), "name": "ghosts", "sobject": "Nonexistent__c", "webhook": "account", "datamodel": "dm_account"}
    html = client.post("/links/edit", data=form).text
    assert 'name="sobject" value="Nonexistent__c" placeholder="API name, e.g. Account" aria-invalid="true"' in html


def test_deleting_a_link_asks_first_then_removes_only_that_link(client_for, seeded, object_links):
    client = client_for("op")
    edit = client.get("/links/edit?name=campaigns").text
    assert 'href="/links/delete?name=campaigns"' in edit  # a link to the question, not a delete button
    question = client.get("/links/delete?name=campaigns")
    assert question.status_code == 200 and "Delete object link campaigns?" in question.text
    assert links_value() == object_links  # asking deletes nothing
    form = submitted_form(question.text, "delete-link-form")
    response = client.post("/links/delete", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/links?deleted=campaigns"
    assert links_value() == dict(object_links, links=[object_links["links"][0], object_links["links"][2]])
    page = client.get(response.headers["location"]).text
    assert "Deleted object link <strong>campaigns</strong>" in page and "Saved" not in page


def test_json_editor_refuses_an_invalid_document(client_for, seeded, object_links):
    first = object_links["links"][0]
    client = client_for("op")
    token = csrf_token(client.get("/links").text)
    bad = dict(object_links, links=[dict(first, webhook="nope"), *object_links["links"][1:]])
    response = client.post("/links", data={"csrf_token": token, "links": json.dumps(bad)})
    assert response.status_code == 422 and "webhook &#39;nope&#39; is not defined" in response.text
    assert links_value() == object_links


def test_json_editor_checks_every_link_against_salesforce(client_for, seeded, object_links):
    client = client_for("op")
    token = csrf_token(client.get("/links").text)
    bad = dict(object_links, links=[dict(object_links["links"][0], sobject="Nonexistent__c"), *object_links["links"][1:]])
    response = client.post("/links", data={"csrf_token": token, "links": json.dumps(bad)})
    assert response.status_code == 422
    assert "link &#39;accounts&#39;: Salesforce object: Salesforce has no object &#39;Nonexistent__c&#39;" in response.text
    assert links_value() == object_links


def test_links_page_shows_a_variable_that_is_not_a_links_document(client_for, seeded, object_links):
    from airflow.models import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

    Variable.set(VARIABLE_NAME, "5")
    response = client_for("op").get("/links")
    assert response.status_code == 200 and "No object links configured" in response.text
    assert client_for("op").get("/links/new").status_code == 409


def test_read_only_user_cannot_use_the_link_form(client_for, seeded, object_links):
    client = client_for("viewer")
    assert client.get("/links/edit?name=campaigns").status_code == 403
    assert client.get("/links/new").status_code == 403
    assert client.get("/links/delete?name=campaigns").status_code == 403
    form = {**link_form(client_for("op"), "/links/edit?name=campaigns"), "delete": "no"}
    form["csrf_token"] = csrf_token(client.get("/errors").text)  # the viewer's own, valid token
    assert client.post("/links/edit", data=form).status_code == 403
    assert client.post("/links/delete", data={"csrf_token": form["csrf_token"], "name": "campaigns"}).status_code == 403
    assert links_value() == object_links


def test_anonymous_and_tokenless_link_posts_change_nothing(client_for, seeded, object_links):
    anonymous = client_for(None)
    assert anonymous.post("/links/edit", data={"original_name": "campaigns", "name": "campaigns", "delete": "no"}).status_code == 401
    assert anonymous.post("/links/delete", data={"name": "campaigns"}).status_code == 401
    client = client_for("op")
    form = {**link_form(client, "/links/edit?name=campaigns"), "delete": "no"}
    form.pop("csrf_token")
    assert client.post("/links/edit", data=form).status_code == 403
    assert client.post("/links/delete", data={"name": "campaigns"}).status_code == 403
    assert links_value() == object_links
