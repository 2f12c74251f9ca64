"""The DAG tab and the task-instance view: content only, and one line where the DAG or task is not ours."""

from __future__ import annotations

from tests.ui.conftest import CAMPAIGN_DAG, SYNC_DAG


def test_dag_tab_shows_the_flows_runs_and_chart(client_for, seeded):
    html = client_for("viewer").get(f"/dag/{SYNC_DAG}").text
    assert "<svg" in html and "run 3h ago" in html
    assert 'href="/runs' not in html  # no way out of the DAG's context


def test_a_dag_that_is_not_a_flow_says_so_in_one_line(client_for, seeded):
    html = client_for("viewer").get("/dag/some_other_dag").text
    assert '<p class="muted" id="not-a-flow">Not a Salesforce sync flow: this DAG has recorded no sync runs.</p>' in html


def test_task_view_shows_exits_and_their_reasons(client_for, seeded):
    if "synchronize_outcome" not in seeded["tables"]:
        return
    html = client_for("viewer").get(f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize").text
    assert 'class="exit-on_error">1<' in html and "no Salesforce lead or contact id" in html
    assert "(R15)" not in html


def test_a_task_without_outcomes_says_so_in_one_line(client_for, seeded):
    html = client_for("viewer").get(f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/summary").text
    assert '<p class="muted" id="no-outcomes">No Salesforce Synchronize outcomes for this task.</p>' in html


def test_a_flow_whose_runs_have_no_records_gets_no_empty_chart(client_for, seeded):
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    with DeployteqHook().connect() as conn:
        conn.execute("INSERT INTO run_log (flow, dag_id, finished_at, outcome) VALUES ('health_check', 'deployteq_health_check', now(), 'success')")
    html = client_for("viewer").get("/dag/deployteq_health_check").text
    assert "<svg" not in html and "health_check" in html
