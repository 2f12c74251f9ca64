"""The sync log: runs per flow with duration, paging and links to Airflow's run (and task log)."""

from __future__ import annotations

import re


def test_sync_log_per_flow_with_durations_and_airflow_links(client_for, seeded):
    html = client_for("viewer").get("/runs?flow=sync:Lead").text
    body = html[html.index("<tbody>"):html.index("</tbody>")]
    assert body.count("<tr>") == 3 and "partial" in body
    assert body.count("<td class=\"nowrap\">42.0 s</td>") == 0 and body.count(">42 s<") == 3
    assert 'href="/dags/salesforce_lead_to_deployteq/runs/scheduled__5" data-airflow-link>Run</a>' in body
    assert re.search(r'<a href="/runs\?flow=sync%3ALead" aria-current="page" class="active">sync:Lead</a>', html)


def test_sync_log_links_the_task_log_when_airflow_knows_the_task(client_for, seeded, airflow_task_instance):
    airflow_task_instance("salesforce_lead_to_deployteq", "scheduled__5", "sync_lead", "SalesforceToDeployteqOperator")
    html = client_for("viewer").get("/runs?flow=sync:Lead").text
    assert ('href="/dags/salesforce_lead_to_deployteq/runs/scheduled__5/tasks/sync_lead" data-airflow-link>Task log</a>') in html


def test_short_runs_show_tenths_of_seconds(client_for, seeded):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        conn.execute(
            "INSERT INTO run_log (flow, started_at, finished_at, outcome) VALUES "
            "('contact_moments', now(), now() + interval '0.4 seconds', 'success')"
        )
    assert ">0.4 s<" in client_for("viewer").get("/runs?flow=contact_moments").text


def test_a_crashed_run_shows_how_far_it_got_not_when_it_was_closed(client_for, seeded):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        conn.execute(
            "INSERT INTO run_log (flow, started_at, progress_at, finished_at, outcome, fetched, message) VALUES "
            "('sync:Contact', now() - interval '2 hours', now() - interval '110 minutes', now(), 'crashed', 5000, "
            "'the worker died; closed by the next run')"
        )
    html = client_for("viewer").get("/runs?flow=sync:Contact").text
    assert '<span class="badge crashed">crashed</span>' in html and "≥ 10 min</span>" in html
    assert "the worker died; closed by the next run" in html
