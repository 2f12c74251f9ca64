"""The editors' pure logic: translations, the mapping form, and the link checks against a describe."""

from __future__ import annotations

import json

from deployteq_salesforce.flows.object_links.config import load_object_links
from deployteq_salesforce.ui import editor
from tests.ui.conftest import OBJECTS_CONFIG, shipped_variable


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


LINKS = json.loads(shipped_variable("deployteq_salesforce_object_links"))


def test_describe_problems_land_on_the_form_field_they_are_about():
    config = load_object_links(LINKS)
    link = config.link("accounts")
    problems = editor.describe_problems(config.webhook_of(link), [
        "field 'Industry' (column 'industry') is not a field of Campaign",
        "use sync column is on, but Campaign has no field 'SyncWithClang__c'; create it",
    ])
    assert [(p.field, p.message) for p in problems] == [
        ("sobject", "field 'Industry' (column 'industry') is not a field of Campaign (webhook 'account' needs it)"),
        ("use_sync_column", "use sync column is on, but Campaign has no field 'SyncWithClang__c'; create it"),
    ]


def test_link_edit_checks_the_edited_link_against_salesforce_only_after_the_model():
    seen = []

    def check(link, webhook):
        seen.append(link.name)
        return ([editor.missing_object_problem(link)] if link.sobject == "Nonexistent__c" else []), ["not checked: offline"]

    form = {**editor.link_form_values(editor.find_link(LINKS, "accounts")), "sobject": "Nonexistent__c"}
    refused = editor.edit_link(LINKS, "accounts", form, check)
    assert not refused.accepted and str(refused.problems[0]).startswith("Salesforce object: Salesforce has no object 'Nonexistent__c'")
    form = {**form, "sobject": "Account", "webhook": "nope"}
    assert not editor.edit_link(LINKS, "accounts", form, check).accepted and seen == ["accounts"]  # the model refused first
    accepted = editor.edit_link(LINKS, "accounts", {**form, "webhook": "account"}, check)
    assert accepted.accepted and accepted.warnings == ["not checked: offline"]


def test_json_editor_checks_every_link():
    def check(link, webhook):
        return ([editor.LinkProblem("sobject", "nope")] if link.name == "campaigns" else []), []

    parsed, problems, warnings = editor.check_links_text(json.dumps(LINKS), check)
    assert parsed is None and problems == ["link 'campaigns': Salesforce object: nope"] and warnings == []
