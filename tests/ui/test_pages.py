"""Every Salesforce page through Airflow's auth (FastAPI TestClient): rendering, login, errors, secrets."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ui.conftest import CAMPAIGN_DAG, OBJECTS_TEXT, SYNC_DAG
from tests.ui.helpers import csrf_token, retry_flags, variable_value

PAGES = [
    "/",
    "/objects",
    "/links",
    "/runs",
    "/runs?flow=sync:Lead",
    "/errors",
    "/errors?flow=sync:Lead&reason=DUPLICATE_VALUE",
    "/errors/history?flow=sync:Lead&record=00Q000000000001AAA",
    "/contact-moments",
    "/account",
    f"/dag/{SYNC_DAG}",
    f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize",
    "/objects/Lead/edit",
    "/links/new",
]
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_for_an_admin(client_for, seeded, page):
    response = client_for("admin").get(page)
    assert response.status_code == 200, response.text[:2000]
    assert "Salesforce" in response.text


def test_tabs_mark_the_current_page_and_embedded_views_show_only_their_content(client_for, seeded):
    client = client_for("viewer")
    errors = client.get("/errors").text
    assert re.search(r'<a href="/errors" class="active" aria-current="page">Errors</a>', errors)
    assert errors.count('aria-current="page"') == 1
    for embedded in (f"/dag/{SYNC_DAG}", f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize"):
        html = client.get(embedded).text
        assert '<nav class="tabs"' not in html and "Signed in as" not in html, embedded


def test_pages_never_render_the_session_id(client_for, seeded, emulator_process):
    session_id = json.loads(open(emulator_process.connection_json).read())["session_id"]
    client = client_for("admin")
    for page in PAGES:
        assert session_id not in client.get(page).text, page


def test_requirement_numbers_do_not_reach_the_pages(client_for, seeded):
    client = client_for("admin")
    for page in PAGES:
        assert not re.search(r"\bR1?[0-9]\b", client.get(page).text), page


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


# -- login and error pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_api_clients_get_401_json(client_for, page):
    response = client_for(None).get(page, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize("page", ["/", "/errors?flow=sync:Lead", f"/dag/{SYNC_DAG}"])
def test_an_anonymous_browser_is_sent_to_airflows_login_and_back(client_for, page):
    response = client_for(None).get(page, headers=BROWSER, follow_redirects=False)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/api/v2/auth/login"
    assert parse_qs(location.query)["next"] == [page]


def test_a_forged_token_sends_a_browser_to_login(client_for):
    client = client_for(None)
    client.cookies.set("_token", "not.a.jwt")
    assert client.get("/", headers={"Accept": "application/json"}).status_code in (401, 403)
    response = client.get("/", headers=BROWSER, follow_redirects=False)
    assert response.status_code == 303 and "/auth/login" in response.headers["location"]


def test_a_browser_error_is_a_page_with_the_message_and_a_way_back(client_for, seeded):
    client = client_for("viewer")
    response = client.get("/objects/Lead/edit", headers={**BROWSER, "Referer": "http://testserver/objects"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "editing needs edit rights on Variable &#39;deployteq_salesforce_objects&#39;" in response.text
    assert '<a class="button" href="http://testserver/objects">← Back</a>' in response.text
    api = client.get("/objects/Lead/edit", headers={"Accept": "application/json"})
    assert api.status_code == 403 and api.json()["detail"].startswith("Forbidden: editing needs edit rights")


def test_a_way_back_never_leads_to_another_site(client_for, seeded):
    for referer in ("https://evil.example/", "http://testserver.evil.example/objects"):
        response = client_for("viewer").get("/objects/Nope/edit", headers={**BROWSER, "Referer": referer})
        assert "evil" not in response.text and 'href="/">← Back' in response.text


def test_anonymous_post_changes_nothing(client_for, seeded):
    response = client_for(None).post("/objects/Lead", data={"row_count": "0"})
    assert response.status_code == 401
    assert variable_value() == OBJECTS_TEXT


def test_post_without_form_token_is_refused(client_for, seeded):
    client = client_for("user")
    ids = [str(seeded["error_ids"][0])]
    assert client.post("/errors/retry", data={"error_id": ids}).status_code == 403
    token = csrf_token(client.get("/errors").text)
    cross = client.post("/errors/retry", data={"csrf_token": token, "error_id": ids},
                        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert not any(retry_flags().values())


def test_get_changes_nothing(client_for, seeded):
    client = client_for("admin")
    for page in PAGES:
        client.get(page)
    assert variable_value() == OBJECTS_TEXT
    assert not any(retry_flags().values())
