"""Pure view-model logic of the Salesforce pages: budget bucketing, run series, formatting, mapping rows, links."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from deployteq_salesforce.flows.customers.config import load_objects_config
from deployteq_salesforce.ui import charts, view_models
from tests.ui.conftest import OBJECTS_CONFIG

NOW = datetime(2024, 5, 1, 14, 25, tzinfo=timezone.utc)


def test_budget_buckets_per_clock_hour_and_flow_over_24_hours():
    rows = [
        (NOW - timedelta(minutes=5), "sync:Lead", 10),
        (NOW - timedelta(minutes=20), "sync:Lead", 5),  # same hour (14:00)
        (NOW - timedelta(hours=23), "contact_moments", 7),  # 15:00 yesterday: the first bucket
        (NOW - timedelta(hours=25), "sync:Lead", 99),  # outside the window
    ]
    labels, series = view_models.hourly_budget_series(rows, now=NOW)
    assert len(labels) == 24 and labels[0] == "15:00" and labels[-1] == "14:00"
    by_name = {s.name: list(s.values) for s in series}
    assert by_name["sync:Lead"][-1] == 15 and sum(by_name["sync:Lead"]) == 15
    assert by_name["contact_moments"][0] == 7
    assert [s.name for s in series] == ["sync:Lead", "contact_moments"]  # largest first


def test_mapping_rows_carry_their_own_problems():
    obj = load_objects_config(OBJECTS_CONFIG).get("Lead")
    describe = {"name": "Lead", "fields": [{"name": n, "type": "string"} for n in ("Id", "Email", "LeadSource", "SystemModstamp", "MasterRecordId", "IsConverted", "ConvertedContactId")]}
    from deployteq_salesforce.flows.customers.config import validate_against_salesforce

    problems = validate_against_salesforce(obj, describe, {"sf_lead_id": "text", "email": "text", "first_name": "text", "lead_source": "text"})
    rows = view_models.mapping_rows(obj, problems)
    assert [r.salesforce_field for r in rows] == ["Id", "Email", "FirstName", "LeadSource"]
    assert rows[2].problems == ["no such field on Lead according to describe"]
    assert rows[3].translations == [("Web", "Website"), ("Other", "Overig")] and not rows[3].problems
    assert view_models.validity(problems).state == "invalid"
    assert view_models.validity(None, "no connection").state == "unchecked"


def test_salesforce_environment():
    assert view_models.salesforce_environment(domain="test", instance_url=None) == "sandbox"
    assert view_models.salesforce_environment(domain=None, instance_url="https://acme--uat.sandbox.my.salesforce.com") == "sandbox"
    assert view_models.salesforce_environment(domain=None, instance_url="https://acme.my.salesforce.com") == "production"
    assert view_models.salesforce_environment(domain=None, instance_url="https://localhost:8443") == "custom instance (localhost)"


def test_format_seconds_keeps_tenths_of_short_runs():
    assert [view_models.format_seconds(s) for s in (0.04, 0.45, 9.96, 42, 185, 7800, 3 * 86400 + 3600)] == [
        "0.0 s", "0.4 s", "9.9 s", "42 s", "3 min 5 s", "2 h 10 min", "3 d 1 h"]


def test_format_ago():
    assert view_models.format_ago(NOW - timedelta(seconds=20), NOW) == "just now"
    assert view_models.format_ago(NOW - timedelta(minutes=3, seconds=5), NOW) == "3 min ago"
    assert view_models.format_ago(NOW + timedelta(hours=2, minutes=10), NOW) == "in 2 h"


def test_requirement_numbers_are_not_the_users_words():
    assert view_models.plain_words("R15: customer 7 has no lead id") == "customer 7 has no lead id"
    assert view_models.plain_words("no Salesforce lead or contact id (R15)") == "no Salesforce lead or contact id"
    assert view_models.plain_words("DUPLICATE_VALUE: R2D2 exists") == "DUPLICATE_VALUE: R2D2 exists"


def test_records_per_run_by_flow_colours_bars_by_flow_and_keeps_empty_runs():
    runs = [  # newest first, as the run log reads
        {"flow": "contact_moments", "started_at": NOW, "finished_at": NOW + timedelta(seconds=0.4), "outcome": "success", "inserted": 0},
        {"flow": "sync:Lead", "started_at": NOW - timedelta(hours=1), "finished_at": NOW, "outcome": "partial", "fetched": 7, "errors": 1},
    ]
    labels, series, tooltips = view_models.records_per_run_by_flow(runs)
    assert [s.name for s in series] == ["sync:Lead", "contact_moments"]
    assert [list(s.values) for s in series] == [[7.0, 0.0], [0.0, 0.0]]
    assert tooltips[1] == "contact_moments 2024-05-01 14:25:00 UTC: success, no records, took 0.4 s"


def test_pages_of_a_long_list():
    page = view_models.Page.of(3, 10_000, 50)
    assert (page.offset, page.first_row, page.last_row, page.last) == (100, 101, 150, 200)
    assert view_models.Page.of(999, 120, 50).number == 3 and view_models.Page.of(None, 0, 50).first_row == 0


def test_airflow_links_quote_ids():
    assert view_models.airflow_task_log_url("", "dag", "manual__2024-05-01T14:25:00+00:00", "t") == (
        "/dags/dag/runs/manual__2024-05-01T14%3A25%3A00%2B00%3A00/tasks/t")
    assert view_models.airflow_run_url("/base", None, "r") is None


def test_ui_dag_ids_and_flows_are_the_ones_the_factory_and_operators_use():
    from deployteq_salesforce.dag_factory import object_link_dags, object_sync_dags
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator
    from tests.ui.conftest import OBJECTS_CONFIG, shipped_variable

    objects = {dag.dag_id for dag in object_sync_dags(OBJECTS_CONFIG)}
    assert {view_models.object_dag_id("Lead"), view_models.object_dag_id("Contact")} <= objects
    links = {dag.dag_id for dag in object_link_dags(shipped_variable("deployteq_salesforce_object_links"))}
    assert view_models.link_dag_id("accounts") in links
    assert SalesforceToDeployteqOperator(task_id="t", sobject="Lead").flow == view_models.object_flow("Lead")
    assert ObjectLinkSyncOperator(task_id="t", link_name="accounts").flow == view_models.link_flow("accounts")


def test_more_flows_than_colours_share_one_colour():
    rows = [(NOW, f"flow{n:02}", n + 1) for n in range(15)]
    labels, series = view_models.hourly_budget_series(rows, now=NOW)
    assert len(series) == charts.MAX_SERIES and series[-1].name == "other flows"
    assert sum(series[-1].values) == sum(range(1, 5))  # the four smallest: 1 + 2 + 3 + 4
    runs = [{"flow": f"flow{n:02}", "started_at": NOW, "fetched": 1} for n in range(15)]
    _, by_flow, _ = view_models.records_per_run_by_flow(runs)
    assert len(by_flow) == charts.MAX_SERIES and by_flow[-1].name == "other flows" and sum(by_flow[-1].values) == 4
