"""Datamodel DDL planning and JSON -> row conversion (pure, R10)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from deployteq_salesforce.flows.object_links.datamodel import (
    DestructiveChange, FieldProblem, convert_record, convert_records, convert_value, plan_table, table_definition,
)
from deployteq_salesforce.flows.object_links.config import Webhook

BASE = {
    "name": "campaign", "datamodel": "dm_campaign",
    "fields": [
        {"json_field": "Id", "column": "sf_id", "dedup": True},
        {"json_field": "Name", "column": "name", "max_length": 80},
        {"json_field": "Budget", "column": "budget", "type": "integer"},
        {"json_field": "StartDate", "column": "start_date", "type": "date"},
    ],
}


def definition(change=None):
    raw = copy.deepcopy(BASE)
    if change:
        change(raw)
    return table_definition(Webhook.model_validate(raw))


def test_new_table_is_created_with_key_relation_and_trigger():
    steps = plan_table("dm_campaign", None, definition(lambda w: w.update(customer_relation=[{"column": "name", "customer_field": "email"}])))
    assert [s.description for s in steps] == [
        "create table dm_campaign", "touch updated_at of dm_campaign on change", "index dm_campaign.customer_id"]


def test_same_definition_plans_nothing():
    assert plan_table("dm_campaign", definition(), definition()) == []


def test_added_column_and_widenings_are_planned():
    def widen(w):
        w["fields"][1].pop("max_length")
        w["fields"][2]["type"] = "decimal"
        w["fields"].append({"json_field": "Status", "column": "status"})

    steps = plan_table("dm_campaign", definition(), definition(widen))
    assert [s.description for s in steps] == [
        "widen column dm_campaign.name from text(80) to text",
        "widen column dm_campaign.budget from integer to decimal",
        "add column dm_campaign.status",
    ]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda w: w["fields"].pop(3), "column 'start_date' would be dropped"),
        (lambda w: w["fields"][1].update(max_length=40), "column 'name' would shrink from 80 to 40 characters"),
        (lambda w: w["fields"][3].update(type="integer"), "column 'start_date' would change from date to integer"),
        (lambda w: w["fields"][2].update(type="boolean"), "would change from integer to boolean"),
        (lambda w: (w["fields"][0].update(dedup=False), w["fields"][1].update(dedup=True)), "de-duplication key would change"),
    ],
)
def test_changes_that_lose_data_are_refused(change, expected):
    with pytest.raises(DestructiveChange, match="NOT applied") as refused:
        plan_table("dm_campaign", definition(), definition(change))
    assert any(expected in p for p in refused.value.problems), refused.value.problems


def test_removing_the_customer_relation_is_refused():
    related = definition(lambda w: w.update(customer_relation=[{"column": "name", "customer_field": "email"}]))
    with pytest.raises(DestructiveChange, match="customer relation would be removed"):
        plan_table("dm_campaign", related, definition())


def test_record_becomes_a_typed_row_in_column_order():
    webhook = Webhook.model_validate(BASE)
    assert convert_record(webhook, {"Id": "701A", "Name": "Lente", "Budget": "1500", "StartDate": "2024-03-01", "Extra": 1}) == (
        "701A", "Lente", 1500, date(2024, 3, 1))
    assert convert_record(webhook, {"Id": "701B"}) == ("701B", None, None, None)


def test_every_field_that_does_not_fit_is_named():
    webhook = Webhook.model_validate(BASE)
    problems = convert_record(webhook, {"Name": "x" * 81, "Budget": 1.5, "StartDate": "1-3-2024"})
    assert [p.field for p in problems] == ["Id", "Name", "Budget", "StartDate"]
    assert all(isinstance(p, FieldProblem) for p in problems) and "at most 80" in problems[1].message


@pytest.mark.parametrize(
    "value, kind, expected",
    [
        ("2024-01-01T10:00:00.000+0000", "datetime", datetime(2024, 1, 1, 10, tzinfo=timezone.utc)),
        ("12.50", "decimal", Decimal("12.50")),
        (3, "decimal", Decimal(3)),
        ("TRUE", "boolean", True),
        (False, "boolean", False),
        (7.0, "integer", 7),
        (True, "text", "true"),
        (None, "integer", None),
    ],
)
def test_values_convert(value, kind, expected):
    assert convert_value(value, kind) == expected


@pytest.mark.parametrize(
    "value, kind",
    [(True, "integer"), ("NaN", "decimal"), ("yes", "boolean"), ("2024-01-01", "datetime"), ({"a": 1}, "text"), (2**70, "integer")],
)
def test_values_that_do_not_fit_raise(value, kind):
    with pytest.raises(ValueError):
        convert_value(value, kind)


def test_a_batch_converts_each_record_exactly_as_one_record_converts():
    """Distinct values are converted once per batch: that must never mix up records (True == 1 as dict keys)."""
    webhook = Webhook.model_validate({
        "name": "w", "datamodel": "dm_w",
        "fields": [{"json_field": "Id", "column": "sf_id", "dedup": True},
                   {"json_field": "Flag", "column": "flag", "type": "boolean"},
                   {"json_field": "Count", "column": "count", "type": "integer"},
                   {"json_field": "Note", "column": "note", "max_length": 5}],
    })
    records = [
        {"Id": "a", "Flag": True, "Count": 1, "Note": "1"},
        {"Id": "b", "Flag": "true", "Count": True, "Note": 1},
        {"Id": "c", "Flag": 1, "Count": "1", "Note": True},
        {"Id": None, "Flag": "false", "Count": 1.0, "Note": "too long"},
        {"Id": "e", "Note": {"nested": "object"}},
        {"Id": "f", "Flag": False, "Count": "2", "Note": None},
    ]
    assert convert_records(webhook, records) == [convert_record(webhook, r) for r in records]
