"""The error list: filters, search, paging, retries (selected and all of a reason), a record's history."""

from __future__ import annotations

import re
import time

from tests.ui.helpers import csrf_token, retry_flags

BROWSER = {"Accept": "text/html"}


def error_rows(html: str) -> list[str]:
    """The record ids the error table shows, in order."""
    body = html[html.index('<table class="grid" id="errors">'):]
    return re.findall(r"&amp;record=([^\"]+)\"", body[:body.index("</table>")])


def test_errors_page_lists_reasons_and_links_each_record_to_its_history(client_for, seeded):
    html = client_for("viewer").get("/errors").text
    assert "DUPLICATE_VALUE: e-mail already used" in html
    assert 'href="/errors/history?flow=sync%3ALead&amp;record=00Q000000000001AAA"' in html
    assert '<option value="DUPLICATE_VALUE">DUPLICATE_VALUE (1)</option>' in html  # the reason filter
    assert "<option value=\"email … is not an e-mail address\">" in html  # the record's own value left out


def test_errors_filter_by_reason_and_search_by_record_or_email(client_for, seeded):
    client = client_for("viewer")
    first, second = "00Q000000000001AAA", "00Q000000000002AAA"
    assert error_rows(client.get("/errors?reason=DUPLICATE_VALUE").text) == [first]
    assert error_rows(client.get("/errors?q=00Q000000000002AAA").text) == [second]
    assert error_rows(client.get("/errors?q=00Q00000000000").text) == [second, first]  # an id's start
    assert error_rows(client.get("/errors?q=A@Example.com").text) == [first]  # the customer's lead id
    assert "No open errors match." in client.get("/errors?q=nobody@example.com").text


def test_errors_link_to_the_airflow_run_that_last_saw_them(client_for, seeded):
    html = client_for("viewer").get("/errors").text
    assert 'href="/dags/salesforce_lead_to_deployteq/runs/scheduled__1" data-airflow-link>Run</a>' in html


def test_ten_thousand_errors_are_paged(client_for, seeded, deployteq_conn_id):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        conn.execute(
            "INSERT INTO sync_error (flow, record_id, reason, last_seen) SELECT 'contact_moments', n::text, "
            "'FIELD_CUSTOM_VALIDATION_EXCEPTION: moment ' || n || ' refused', now() - n * interval '1 second' "
            "FROM generate_series(1, 10000) n"
        )
    client = client_for("viewer")
    started = time.monotonic()
    html = client.get("/errors?flow=contact_moments&page=3").text
    seconds = time.monotonic() - started
    assert "101–150 of 10,000" in html and len(error_rows(html)) == 50
    assert 'href="/errors?flow=contact_moments&amp;page=4" rel="next"' in html
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION (10,000)" in html
    assert seconds < 10, f"the third page of 10,000 errors took {seconds:.1f} s"  # generous: a loaded 2-core machine


def test_retry_marks_only_the_selected_records(client_for, seeded):
    client = client_for("user")  # may trigger DAG runs
    token = csrf_token(client.get("/errors").text)
    first, second = seeded["error_ids"]
    response = client.post("/errors/retry", data={"csrf_token": token, "error_id": [str(first)]}, follow_redirects=False)
    assert response.status_code == 303
    assert retry_flags() == {first: True, second: False}
    assert "1 record(s) queued" in client.get(response.headers["location"]).text


def test_retry_all_of_a_reason(client_for, seeded):
    client = client_for("user")
    page = client.get("/errors?reason=DUPLICATE_VALUE").text
    assert 'id="retry-all">Retry all 1 record with this reason</button>' in page
    response = client.post(
        "/errors/retry", data={"csrf_token": csrf_token(page), "reason": "DUPLICATE_VALUE", "all_matching": "yes"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and "reason=DUPLICATE_VALUE" in response.headers["location"]
    first, second = seeded["error_ids"]
    assert retry_flags() == {first: True, second: False}


def test_an_empty_retry_is_a_page_that_says_what_to_do(client_for, seeded):
    client = client_for("user")
    token = csrf_token(client.get("/errors").text)
    response = client.post("/errors/retry", data={"csrf_token": token}, headers={**BROWSER, "Referer": "http://testserver/errors"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Select at least one record to retry (tick its box), then press Retry" in response.text
    assert 'href="http://testserver/errors">← Back</a>' in response.text
    assert not any(retry_flags().values())


def test_read_only_user_cannot_queue_retries(client_for, seeded):
    client = client_for("viewer")
    token = csrf_token(client.get("/errors").text)
    response = client.post("/errors/retry", data={"csrf_token": token, "error_id": [str(seeded["error_ids"][0])]})
    assert response.status_code == 403
    assert not any(retry_flags().values())


def test_record_history_shows_open_and_resolved_errors(client_for, seeded):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        conn.execute(
            "INSERT INTO sync_error (flow, record_id, reason, first_seen, last_seen, resolved_at) VALUES "
            "('sync:Lead', '00Q000000000001AAA', 'INVALID_EMAIL_ADDRESS: bad', now() - interval '3 days', "
            "now() - interval '2 days', now() - interval '2 days')"
        )
    html = client_for("viewer").get("/errors/history?flow=sync:Lead&record=00Q000000000001AAA").text
    rows = html[html.index('id="history"'):]
    assert rows.index("DUPLICATE_VALUE") < rows.index("INVALID_EMAIL_ADDRESS")  # newest first
    assert '<span class="badge success">resolved</span>' in rows and '<span class="badge failed">open</span>' in rows
