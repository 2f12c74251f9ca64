"""Pure view-model logic of the Salesforce pages: charts, budget bucketing, mapping rows, editor forms."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from deployteq_salesforce.flows.customers.config import load_objects_config
from deployteq_salesforce.ui import charts, csrf, editor, view_models
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


def test_chart_stacks_series_draws_the_limit_and_escapes_text():
    svg = charts.stacked_bar_chart(
        ["a", "b"], [charts.Series("x<y", [1, 2]), charts.Series("z", [3, 0])], title="T & U", limit=10
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('class="bar"') == 3  # the zero value draws nothing
    assert 'class="limit"' in svg and "limit 10" in svg
    assert "x&lt;y" in svg and "T &amp; U" in svg and "x<y" not in svg


def test_chart_without_data_says_so():
    assert "no data yet" in charts.stacked_bar_chart(["a"], [], title="t")


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


def test_format_seconds():
    assert [view_models.format_seconds(s) for s in (42, 185, 7800, 3 * 86400 + 3600)] == ["42 s", "3 min 5 s", "2 h 10 min", "3 d 1 h"]


def test_translations_round_trip_and_bad_lines():
    text = editor.format_translations({"Web": "Website", "Other": None})
    assert text == "Web => Website\nOther =>"
    parsed, problems = editor.parse_translations(text + "\nno arrow here", label="Lead", row=4, field="LeadSource")
    assert parsed == {"Web": "Website", "Other": None}
    assert len(problems) == 1 and problems[0].row == 4 and "no '=>'" in problems[0].message


def test_form_edit_keeps_hidden_settings_and_other_objects():
    config = {"objects": [dict(OBJECTS_CONFIG["objects"][0], bulk_threshold=500), OBJECTS_CONFIG["objects"][1]]}
    form = {
        "enabled": "yes", "unique_field": "id", "schedule": "@daily", "row_count": "3", "unique_key": "0",
        "row-0-salesforce_field": "Id", "row-0-deployteq_type": "text", "row-0-deployteq_field": "sf_lead_id",
        "row-1-salesforce_field": "Email", "row-1-deployteq_type": "email", "row-1-deployteq_field": "email",
        "row-2-salesforce_field": "FirstName", "row-2-deployteq_field": "first_name", "row-2-delete": "yes",
    }
    result = editor.edit_object(config, "Lead", form, describe=None, customer_columns=None)
    assert result.accepted, result.problems
    lead = result.config["objects"][0]
    assert lead["bulk_threshold"] == 500 and lead["schedule"] == "@daily"
    assert [m["salesforce_field"] for m in lead["mappings"]] == ["Id", "Email"]
    assert result.config["objects"][1] == OBJECTS_CONFIG["objects"][1]


def test_form_edit_without_a_key_is_refused_with_the_reason():
    form = {"enabled": "yes", "unique_field": "id", "row_count": "1",
            "row-0-salesforce_field": "Email", "row-0-deployteq_type": "email", "row-0-deployteq_field": "email"}
    result = editor.edit_object(OBJECTS_CONFIG, "Lead", form, describe=None, customer_columns=None)
    assert not result.accepted and result.variable_text is None
    assert any("no mapping row is the unique key" in p.message for p in result.problems)


def test_csrf_token_and_origin_checks():
    token = csrf.form_token("secret", "op:op")
    assert csrf.token_matches("secret", "op:op", token)
    assert not csrf.token_matches("secret", "viewer:viewer", token)
    assert not csrf.token_matches("other", "op:op", token)
    assert csrf.cross_origin_reason({"origin": "http://a:8080", "sec-fetch-site": "same-origin"}, host="a:8080") is None
    assert "another site" in csrf.cross_origin_reason({"sec-fetch-site": "cross-site"}, host="a:8080")
    assert "another origin" in csrf.cross_origin_reason({"origin": "http://evil"}, host="a:8080")
