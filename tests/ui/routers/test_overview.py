"""The overview: connection test with its time, the API budget (one source per number), charts, flows."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from tests.ui.helpers import csrf_token


def test_overview_shows_account_budget_charts_block_and_backlog(client_for, seeded):
    html = client_for("viewer").get("/").text
    assert "connected" in html and "(session id)" in html  # the emulator connection: direct session
    assert html.count("<svg") == 2  # budget per hour + records per run
    assert "sync:Lead" in html and "contact_moments" in html  # one series per flow
    assert "hourly budget 3,600 is above the scale" in html  # 42 requests would be invisible on a 0-3,600 axis
    assert "1,000 of 15,000 left" in html
    assert "Salesforce blocked the token since" in html and "TotalRequests Limit exceeded." in html
    assert re.search(r'<a href="/errors" id="open-errors">2 open errors</a>', html)
    if "contact_moment_sync" in seeded["tables"]:
        assert "2 unsent" in html


def test_the_connection_test_says_when_it_ran_and_leaves_the_usage_figures_to_the_budget_card(client_for, seeded):
    html = client_for("viewer").get("/").text
    account = re.search(r'<div class="card" id="account">(.*?)</div>', html, re.S).group(1)
    assert "Connection OK: https://localhost" in account
    assert re.search(r"<dt>Tested</dt><dd><time [^>]*>[^<]+</time> UTC \(just now\)</dd>", account)
    assert "requests this hour" not in account and "daily API usage" not in account  # the budget card's numbers


def test_test_again_runs_the_connection_test_now(client_for, seeded):
    client = client_for("viewer")
    page = client.get("/").text
    first = re.search(r'<dt>Tested</dt><dd><time datetime="([^"]+)"', page).group(1)
    response = client.post("/account/test?next=/", data={"csrf_token": csrf_token(page)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    again = re.search(r'<dt>Tested</dt><dd><time datetime="([^"]+)"', client.get("/").text).group(1)
    assert again > first


def test_flows_table_shows_next_run_from_airflow(client_for, seeded, airflow_dag):
    airflow_dag("salesforce_lead_to_deployteq", next_run=datetime.now(timezone.utc) + timedelta(minutes=42, seconds=30))
    html = client_for("viewer").get("/").text
    flows = re.search(r'<table class="grid" id="flows">(.*?)</table>', html, re.S).group(1)
    assert "salesforce_lead_to_deployteq" in flows and "(in 42 min)" in flows
    airflow_dag("salesforce_lead_to_deployteq", paused=True)
    assert '<span class="badge paused">paused</span>' in client_for("viewer").get("/").text
