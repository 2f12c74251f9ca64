"""Configured objects: loading, structural rules, checks against describe, round-trip."""

from __future__ import annotations

import copy
import json

import pytest

from deployteq_salesforce.flows.customers.config import (
    ConfigProblem,
    ConfiguredObject,
    InvalidConfiguration,
    ObjectsConfig,
    dump_objects_config,
    dump_objects_config_json,
    load_objects_config,
    raise_for_errors,
    validate_against_salesforce,
)
from deployteq_salesforce.core.exceptions import ConfigurationError


def lead(**overrides):
    obj = {
        "sobject": "Lead",
        "unique_field": "email",
        "sync_flag_field": "Sync_to_Deployteq__c",
        "mappings": [
            {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
            {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
            {"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer", "deployteq_field": "number_of_employees"},
            {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
            {
                "salesforce_field": "LeadSource",
                "deployteq_type": "text",
                "deployteq_field": "lead_source",
                "translations": {"Web": "website", "Other": None},
            },
        ],
    }
    obj.update(overrides)
    return obj


def contact(**overrides):
    obj = {
        "sobject": "Contact",
        "mappings": [
            {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_contact_id", "unique_key": True},
            {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
            {"salesforce_field": "Birthdate", "deployteq_type": "date", "deployteq_field": "birth_date"},
        ],
    }
    obj.update(overrides)
    return obj


def problems_of(raw) -> list[str]:
    with pytest.raises(InvalidConfiguration) as info:
        load_objects_config(raw)
    return [str(p) for p in info.value.problems]


def with_rows(obj, *rows):
    obj = copy.deepcopy(obj)
    obj["mappings"] = list(rows)
    return obj


ID_KEY = {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True}
EMAIL_KEY = {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True}


# ------------------------------------------------------------------------------------------ loading


def test_valid_config_loads_with_defaults():
    config = load_objects_config(json.dumps({"objects": [lead(), contact()]}))
    contact_obj = config.get("Contact")
    assert contact_obj.schedule == "@hourly"
    assert contact_obj.unique_field == "id"
    assert contact_obj.bulk_threshold == 10_000
    assert contact_obj.lookback_seconds == 300
    assert contact_obj.page_size == 2000
    assert contact_obj.deleted_detection is True
    assert config.get("Lead").mappings[4].translations == {"Web": "website", "Other": None}
    assert config.get("Lead").mappings[0].translate_default == "keep"


def test_empty_objects_list_is_valid():
    assert load_objects_config('{"objects": []}').objects == []


def test_invalid_json_is_reported_plainly():
    assert problems_of('{"objects": [') == [
        "configuration: not valid JSON (Expecting value at line 1, column 14)"
    ]


def test_top_level_must_be_an_object_with_objects_list():
    assert problems_of("[]") == ['configuration: expected a JSON object like {"objects": [...]}']
    assert problems_of({"objects": {}}) == ['configuration: expected a JSON object like {"objects": [...]}']


def test_unknown_top_level_setting_is_refused():
    assert problems_of({"objects": [], "objectz": []}) == [
        "configuration, objectz: unknown setting (only 'objects' is allowed here)"
    ]


def test_unknown_object_setting_is_refused_naming_the_object():
    assert problems_of({"objects": [lead(scheduel="@daily")]}) == ["object 1 (Lead), scheduel: Extra inputs are not permitted"]


def test_unknown_row_setting_names_row_and_field():
    obj = lead()
    obj["mappings"][1]["translation"] = {}
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'FirstName'): translation: Extra inputs are not permitted"
    ]


def test_sobject_must_be_lead_or_contact():
    assert problems_of({"objects": [lead(sobject="Account")]}) == [
        "object 1 (Account), sobject: Input should be 'Lead' or 'Contact'"
    ]


def test_bad_deployteq_type_names_row():
    obj = lead()
    obj["mappings"][2]["deployteq_type"] = "number"
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 3 (Salesforce field 'NumberOfEmployees'): deployteq_type: Input should be "
        "'text', 'email', 'integer', 'decimal', 'boolean', 'date', 'datetime' or 'optin'"
    ]


def test_mappings_must_not_be_empty():
    assert problems_of({"objects": [lead(mappings=[])]}) == [
        "object 1 (Lead), mappings: List should have at least 1 item after validation, not 0"
    ]


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "*/15 * * * *", "0 6 * * 1-5", None])
def test_schedule_accepts_presets_cron_and_none(schedule):
    assert load_objects_config({"objects": [lead(schedule=schedule)]}).objects[0].schedule == schedule


@pytest.mark.parametrize("schedule", ["hourly", "61 * * * *", "* * * *", "0 0 * * * *", "@once"])
def test_schedule_rejects_garbage(schedule):
    (problem,) = problems_of({"objects": [lead(schedule=schedule)]})
    assert problem.startswith(f"object 1 (Lead), schedule: {schedule!r} is neither a 5-field cron expression")


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("page_size", 100, "page_size: Input should be greater than or equal to 200"),
        ("page_size", 2001, "page_size: Input should be less than or equal to 2000"),
        ("bulk_threshold", 0, "bulk_threshold: Input should be greater than or equal to 1"),
        ("lookback_seconds", -1, "lookback_seconds: Input should be greater than or equal to 0"),
        ("unique_field", "phone", "unique_field: Input should be 'id' or 'email'"),
    ],
)
def test_numeric_and_choice_settings_are_bounded(setting, value, expected):
    assert problems_of({"objects": [lead(**{setting: value})]}) == [f"object 1 (Lead), {expected}"]


@pytest.mark.parametrize(
    "name", ["Name; DELETE", "Email, (SELECT Id FROM User)", "1Field", "_x", "Account.Name", "Fïeld", "a" * 81]
)
def test_salesforce_field_must_be_an_api_name(name):
    obj = lead()
    obj["mappings"][1]["salesforce_field"] = name
    assert problems_of({"objects": [obj]}) == [
        f"object 1 (Lead), mapping row 2 (Salesforce field {name!r}): Salesforce field {name!r} is not a Salesforce "
        "API name (letters, digits and underscores, starting with a letter)"
    ]


def test_sync_flag_field_must_be_an_api_name():
    assert problems_of({"objects": [lead(sync_flag_field="Sync__c = true OR Id")]}) == [
        "object 1 (Lead), sync_flag_field: sync flag field 'Sync__c = true OR Id' is not a Salesforce API name "
        "(letters, digits and underscores, starting with a letter)"
    ]


@pytest.mark.parametrize("name", ["First Name", "FirstName", '"x"', "a-b"])
def test_deployteq_field_must_be_a_column_name(name):
    obj = lead()
    obj["mappings"][1]["deployteq_field"] = name
    assert problems_of({"objects": [obj]}) == [
        f"object 1 (Lead), mapping row 2 (Salesforce field 'FirstName'): Deployteq field {name!r} is not a column "
        "name (lower-case letters, digits and underscores)"
    ]


def test_one_object_per_sobject():
    assert problems_of({"objects": [lead(), contact(), lead(unique_field="email")]}) == [
        "object 3 (Lead), sobject: Lead is already configured as object 1; configure each object once"
    ]


def test_problems_of_every_object_are_reported_together():
    broken_lead = lead(page_size=1)
    broken_contact = with_rows(contact(), {**ID_KEY, "deployteq_field": "sf_contact_id"}, {"salesforce_field": "Email",
                               "deployteq_type": "text", "deployteq_field": "status"})
    problems = problems_of({"objects": [broken_lead, broken_contact]})
    assert problems == [
        "object 1 (Lead), page_size: Input should be greater than or equal to 200",
        "object 2 (Contact), mapping row 2 (Salesforce field 'Email'): Deployteq field 'status' is maintained by the "
        "sync itself and cannot be mapped",
    ]


def test_invalid_configuration_is_a_configuration_error_listing_problems():
    with pytest.raises(ConfigurationError, match=r"(?s)invalid configuration in deployteq_salesforce_objects "
                       r"\(1 problem\(s\)\):\n- object 1 \(Lead\), page_size"):
        load_objects_config({"objects": [lead(page_size=1)]})


# ----------------------------------------------------------------------------------- the unique key


def test_no_key_row_in_email_mode():
    obj = lead()
    obj["mappings"][0]["unique_key"] = False
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), unique_key: no mapping row is the unique key; mark the row the e-mail field -> 'email'"
    ]


def test_no_key_row_in_id_mode():
    obj = with_rows(contact(), {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Contact), unique_key: no mapping row is the unique key; mark the row 'Id' -> 'sf_contact_id'"
    ]


def test_two_key_rows():
    obj = lead()
    obj["mappings"][1]["unique_key"] = True
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), unique_key: rows 1, 2 are all marked as unique key; exactly one row may be"
    ]


def test_email_mode_key_must_fill_email():
    obj = with_rows(lead(), {**EMAIL_KEY, "deployteq_field": "first_name"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Email'): with unique field 'email' the key row must fill "
        "Deployteq field 'email', not 'first_name'"
    ]


def test_email_mode_key_must_have_email_type():
    obj = with_rows(lead(), {**EMAIL_KEY, "deployteq_type": "text"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Email'): the e-mail key row must have type 'email', not 'text'"
    ]


def test_id_mode_key_must_be_id_to_the_objects_id_column():
    obj = with_rows(lead(unique_field="id"), {**ID_KEY, "deployteq_field": "sf_contact_id"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Id'): with unique field 'id' the key row must map 'Id' to "
        "'sf_lead_id' (found 'Id' -> 'sf_contact_id')",
        "object 1 (Lead), mapping row 1 (Salesforce field 'Id'): Deployteq field 'sf_contact_id' is maintained by the "
        "sync itself and cannot be mapped",
    ]


def test_id_mode_key_must_not_be_the_email():
    obj = with_rows(lead(unique_field="id"), EMAIL_KEY)
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Email'): with unique field 'id' the key row must map 'Id' "
        "to 'sf_lead_id' (found 'Email' -> 'email')"
    ]


def test_id_key_row_must_be_text():
    obj = with_rows(lead(unique_field="id"), {**ID_KEY, "deployteq_type": "email"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Id'): the Id key row must have type 'text', not 'email'"
    ]


def test_key_row_cannot_translate():
    obj = with_rows(lead(), {**EMAIL_KEY, "translations": {"a@b.nl": "c@d.nl"}})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 1 (Salesforce field 'Email'): the unique key row cannot have translations"
    ]


# ------------------------------------------------------------------------------- other row rules


def test_deployteq_field_mapped_twice():
    obj = with_rows(
        lead(),
        EMAIL_KEY,
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "first_name"},
    )
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 3 (Salesforce field 'LastName'): Deployteq field 'first_name' is already filled "
        "by row 2"
    ]


@pytest.mark.parametrize(
    "column", ["status", "sf_lead_id", "sf_contact_id", "customer_id", "sf_system_modstamp", "sf_deleted", "email_key"]
)
def test_system_columns_cannot_be_mapped(column):
    obj = with_rows(lead(), EMAIL_KEY, {"salesforce_field": "Status", "deployteq_type": "text", "deployteq_field": column})
    assert problems_of({"objects": [obj]}) == [
        f"object 1 (Lead), mapping row 2 (Salesforce field 'Status'): Deployteq field {column!r} is maintained by the "
        "sync itself and cannot be mapped"
    ]


def test_id_may_map_into_the_id_column_only_as_the_key():
    obj = with_rows(lead(), EMAIL_KEY, {**ID_KEY, "unique_key": False})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'Id'): Deployteq field 'sf_lead_id' is maintained by the "
        "sync itself and cannot be mapped"
    ]


def test_optin_type_only_into_email_optin():
    obj = with_rows(lead(), EMAIL_KEY, {"salesforce_field": "Newsletter__c", "deployteq_type": "optin",
                                         "deployteq_field": "newsletter"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'Newsletter__c'): type 'optin' can only fill 'email_optin', "
        "not 'newsletter'"
    ]


def test_email_optin_only_with_optin_type():
    obj = with_rows(lead(), EMAIL_KEY, {"salesforce_field": "HasOptedOutOfEmail", "deployteq_type": "boolean",
                                         "deployteq_field": "email_optin"})
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'HasOptedOutOfEmail'): 'email_optin' must use type 'optin' "
        "(R8: 'Y' or true is yes, anything else no), not 'boolean'"
    ]


def test_translation_target_must_fit_the_type():
    row = {"salesforce_field": "Rating", "deployteq_type": "integer", "deployteq_field": "number_of_employees",
           "translations": {"Hot": "3", "Cold": "cold"}, "translate_default": "null"}
    assert problems_of({"objects": [with_rows(lead(), EMAIL_KEY, row)]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'Rating'): translation 'Cold' -> 'cold' does not fit type "
        "'integer': not a number"
    ]


def test_translate_default_null_needs_translations():
    row = {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name",
           "translate_default": "null"}
    assert problems_of({"objects": [with_rows(lead(), EMAIL_KEY, row)]}) == [
        "object 1 (Lead), mapping row 2 (Salesforce field 'FirstName'): translate_default 'null' without translations "
        "would empty every value; add translations or use 'keep'"
    ]


def test_translate_default_must_be_keep_or_null():
    obj = lead()
    obj["mappings"][4]["translate_default"] = "empty"
    assert problems_of({"objects": [obj]}) == [
        "object 1 (Lead), mapping row 5 (Salesforce field 'LeadSource'): translate_default: Input should be 'keep' or 'null'"
    ]


def test_direct_construction_also_enforces_the_rules():
    with pytest.raises(ValueError, match="no mapping row is the unique key"):
        ConfiguredObject(sobject="Lead", mappings=[{"salesforce_field": "Email", "deployteq_type": "email",
                                                     "deployteq_field": "email"}])
    with pytest.raises(ValueError, match="Lead is already configured as object 1"):
        ObjectsConfig(objects=[lead(), lead()])


# --------------------------------------------------------------------------------------- helpers


def test_query_fields_add_id_stamp_and_lead_conversion():
    config = load_objects_config({"objects": [lead(), contact()]})
    assert config.get("Lead").query_fields() == [
        "Email", "FirstName", "NumberOfEmployees", "Email_Opt_In__c", "LeadSource",
        "Id", "SystemModstamp", "MasterRecordId", "IsConverted", "ConvertedContactId",
    ]
    assert config.get("Contact").query_fields() == ["Id", "Email", "Birthdate", "SystemModstamp", "MasterRecordId"]


def test_id_key_row_is_not_a_value_column():
    contact_obj = load_objects_config({"objects": [contact()]}).objects[0]
    assert contact_obj.id_column == "sf_contact_id"
    assert contact_obj.deployteq_columns == ["email", "birth_date"]
    assert contact_obj.key_mapping.salesforce_field == "Id"


def test_enabled_objects():
    config = load_objects_config({"objects": [lead(enabled=False), contact()]})
    assert [o.sobject for o in config.enabled_objects()] == ["Contact"]


def test_dump_round_trips():
    config = load_objects_config({"objects": [lead(schedule="0 * * * *"), contact(enabled=False)]})
    assert load_objects_config(dump_objects_config(config)) == config
    assert load_objects_config(dump_objects_config_json(config)) == config
    assert load_objects_config(dump_objects_config(config, exclude_defaults=True)) == config
    compact = dump_objects_config(config, exclude_defaults=True)
    assert "page_size" not in compact["objects"][0]


# ------------------------------------------------------------------------- against Salesforce


def sf_field(name, type_, **extra):
    return {"name": name, "type": type_, "updateable": True, **extra}


LEAD_DESCRIBE = {
    "name": "Lead",
    "fields": [
        sf_field("Id", "id", updateable=False),
        sf_field("SystemModstamp", "datetime", updateable=False),
        sf_field("MasterRecordId", "reference", updateable=False),
        sf_field("IsConverted", "boolean", updateable=False),
        sf_field("ConvertedContactId", "reference", updateable=False),
        sf_field("ConvertedDate", "date", updateable=False),
        sf_field("Email", "email"),
        sf_field("FirstName", "string"),
        sf_field("NumberOfEmployees", "int"),
        sf_field("AnnualRevenue", "currency", scale=0),
        sf_field("Score__c", "double", scale=2),
        sf_field("Email_Opt_In__c", "string"),
        sf_field("LeadSource", "picklist", picklistValues=[{"value": "Web", "active": True},
                                                           {"value": "Other", "active": True}]),
        sf_field("Rating", "picklist", picklistValues=[{"value": "Hot"}, {"value": "Cold"}]),
        sf_field("Sync_to_Deployteq__c", "boolean"),
        sf_field("Locked_Flag__c", "boolean", updateable=False),
        sf_field("Flag_Text__c", "string"),
        sf_field("Newsletter__c", "boolean"),
        sf_field("LastActivity__c", "datetime"),
    ],
}
CUSTOMER_COLUMNS = {
    "customer_id": "bigint", "email": "text", "first_name": "text", "last_name": "text", "number_of_employees": "integer",
    "annual_revenue": "numeric", "lead_source": "text", "email_optin": "boolean", "newsletter": "boolean",
    "birth_date": "date", "sf_lead_id": "text", "sf_contact_id": "text", "preferences": "text",
    "last_activity": "timestamp with time zone", "status": "text",
}


def check(obj_dict, describe=LEAD_DESCRIBE, columns=CUSTOMER_COLUMNS) -> list[str]:
    obj = load_objects_config({"objects": [obj_dict]}).objects[0]
    return [str(p) for p in validate_against_salesforce(obj, describe, columns)]


def one_row(row, **obj_settings):
    return with_rows(lead(**obj_settings), EMAIL_KEY, row)


def test_valid_object_has_no_problems():
    assert check(lead()) == []


def test_unknown_salesforce_field():
    assert check(one_row({"salesforce_field": "Foo__c", "deployteq_type": "text", "deployteq_field": "first_name"})) == [
        "Lead, mapping row 2 (Salesforce field 'Foo__c'): no such field on Lead according to describe"
    ]


def test_wrongly_cased_salesforce_field_names_the_real_name():
    assert check(one_row({"salesforce_field": "firstname", "deployteq_type": "text", "deployteq_field": "first_name"})) == [
        "Lead, mapping row 2 (Salesforce field 'firstname'): the field is called 'FirstName' on Lead; use that exact spelling"
    ]


def test_unknown_deployteq_field():
    assert check(one_row({"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "nickname"})) == [
        "Lead, mapping row 2 (Salesforce field 'FirstName'): Deployteq field 'nickname' does not exist in the customer table"
    ]


@pytest.mark.parametrize(
    ("sf_name", "dt_type", "column", "expected"),
    [
        ("FirstName", "integer", "number_of_employees",
         "Salesforce type 'string' cannot be held by Deployteq type 'integer'; map it as 'text', or translate every "
         "value (translate_default 'null')"),
        ("LastActivity__c", "date", "birth_date",
         "Salesforce type 'datetime' cannot be held by Deployteq type 'date'; map it as 'datetime' (the day of an "
         "instant depends on the time zone)"),
        ("ConvertedDate", "datetime", "last_activity", "Salesforce type 'date' cannot be held by Deployteq type "
         "'datetime'; map it as 'date'"),
        ("Score__c", "integer", "number_of_employees",
         "Salesforce type 'double' cannot be held by Deployteq type 'integer'; it has 2 decimal place(s), map it as "
         "'decimal'"),
        ("NumberOfEmployees", "boolean", "newsletter", "Salesforce type 'int' cannot be held by Deployteq type 'boolean'"),
        ("Newsletter__c", "email", "preferences", "Salesforce type 'boolean' cannot be held by Deployteq type 'email'"),
    ],
)
def test_salesforce_type_that_cannot_be_held(sf_name, dt_type, column, expected):
    assert check(one_row({"salesforce_field": sf_name, "deployteq_type": dt_type, "deployteq_field": column})) == [
        f"Lead, mapping row 2 (Salesforce field {sf_name!r}): {expected}"
    ]


@pytest.mark.parametrize(
    ("sf_name", "dt_type", "column"),
    [
        ("NumberOfEmployees", "text", "preferences"),  # anything can be text
        ("AnnualRevenue", "integer", "number_of_employees"),  # currency without decimals
        ("Score__c", "decimal", "annual_revenue"),
        ("NumberOfEmployees", "decimal", "annual_revenue"),
        ("Newsletter__c", "boolean", "newsletter"),
        ("LastActivity__c", "datetime", "last_activity"),
        ("ConvertedDate", "date", "birth_date"),
    ],
)
def test_salesforce_types_that_fit(sf_name, dt_type, column):
    assert check(one_row({"salesforce_field": sf_name, "deployteq_type": dt_type, "deployteq_field": column})) == []


def test_text_into_typed_field_is_fine_when_every_value_is_translated():
    row = {"salesforce_field": "Rating", "deployteq_type": "integer", "deployteq_field": "number_of_employees",
           "translations": {"Hot": "3", "Cold": "1"}, "translate_default": "null"}
    assert check(one_row(row)) == []
    assert check(one_row({**row, "translate_default": "keep"})) == [
        "Lead, mapping row 2 (Salesforce field 'Rating'): Salesforce type 'picklist' cannot be held by Deployteq type "
        "'integer'; map it as 'text', or translate every value (translate_default 'null')"
    ]


def test_column_type_that_cannot_hold_the_deployteq_type():
    assert check(one_row({"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer",
                          "deployteq_field": "first_name"})) == [
        "Lead, mapping row 2 (Salesforce field 'NumberOfEmployees'): Deployteq field 'first_name' is a text column and "
        "cannot hold type 'integer' (fits: bigint, integer, numeric, smallint)"
    ]


def test_sync_flag_field_missing():
    assert check(lead(sync_flag_field="Sync__c")) == [
        "Lead, sync_flag_field: 'Sync__c': no such field on Lead according to describe"
    ]


def test_sync_flag_field_not_boolean():
    assert check(lead(sync_flag_field="Flag_Text__c")) == [
        "Lead, sync_flag_field: 'Flag_Text__c' is of type 'string'; the sync flag must be a Boolean (checkbox) field"
    ]


def test_sync_flag_field_not_updateable():
    assert check(lead(sync_flag_field="Locked_Flag__c")) == [
        "Lead, sync_flag_field: 'Locked_Flag__c' is not updateable, so it cannot be reset to false after the sync"
    ]


def test_translation_keys_not_in_picklist_are_a_warning():
    row = {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source",
           "translations": {"Web": "website", "Beurs": "fair"}}
    obj = load_objects_config({"objects": [one_row(row)]}).objects[0]
    (problem,) = validate_against_salesforce(obj, LEAD_DESCRIBE, CUSTOMER_COLUMNS)
    assert problem.severity == "warning"
    assert str(problem) == (
        "Lead, mapping row 2 (Salesforce field 'LeadSource'): warning: translation key(s) 'Beurs' are not picklist "
        "values of LeadSource (known: 'Other', 'Web')"
    )
    assert raise_for_errors([problem]) == [problem]


def test_describe_of_another_object_is_refused():
    assert check(lead(), describe={**LEAD_DESCRIBE, "name": "Contact"}) == [
        "Lead, sobject: the describe given is for Contact, not Lead"
    ]


def test_describe_without_the_fields_the_sync_reads():
    describe = {"name": "Lead", "fields": [f for f in LEAD_DESCRIBE["fields"] if f["name"] != "ConvertedContactId"]}
    assert check(lead(), describe=describe) == [
        "Lead, describe: Lead has no 'ConvertedContactId' field, which the sync reads"
    ]


def test_raise_for_errors_raises_on_any_error():
    problems = [
        ConfigProblem("Lead", 2, "Foo__c", "no such field on Lead according to describe"),
        ConfigProblem("Lead", 3, "Rating", "odd key", severity="warning"),
    ]
    with pytest.raises(InvalidConfiguration) as info:
        raise_for_errors(problems)
    assert info.value.problems == problems[:1]
    assert "Lead, mapping row 2 (Salesforce field 'Foo__c'): no such field on Lead according to describe" in str(info.value)


# --------------------------------------------------------- against the emulator's describe (contract)

STORE_CUSTOMER_COLUMNS = {  # the customer table of the store contract (0001 migration)
    "customer_id": "bigint", "email": "text", "email_key": "text", "first_name": "text", "last_name": "text",
    "salutation": "text", "company": "text", "job_title": "text", "phone": "text", "mobile_phone": "text",
    "street": "text", "postal_code": "text", "city": "text", "country": "text", "birth_date": "date",
    "lead_source": "text", "industry": "text", "annual_revenue": "numeric", "number_of_employees": "integer",
    "preferences": "text", "newsletter": "boolean", "status": "text", "email_optin": "boolean",
    "sf_lead_id": "text", "sf_contact_id": "text", "sf_system_modstamp": "timestamp with time zone",
}


def emulator_describe(sobject):
    schema = pytest.importorskip("include.salesforce_emulator.schema")
    return schema.sobject(sobject).describe("59.0")


def test_realistic_lead_config_fits_the_emulator_describe():
    rows = [
        EMAIL_KEY,
        *({"salesforce_field": sf, "deployteq_type": "text", "deployteq_field": dt} for sf, dt in [
            ("FirstName", "first_name"), ("LastName", "last_name"), ("Salutation", "salutation"),
            ("Company", "company"), ("Title", "job_title"), ("Phone", "phone"), ("MobilePhone", "mobile_phone"),
            ("Street", "street"), ("PostalCode", "postal_code"), ("City", "city"), ("Country", "country"),
            ("Industry", "industry"),
        ]),
        {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source",
         "translations": {"Web": "website", "Phone Inquiry": "telefoon"}},
        {"salesforce_field": "AnnualRevenue", "deployteq_type": "decimal", "deployteq_field": "annual_revenue"},
        {"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer", "deployteq_field": "number_of_employees"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ]
    obj = load_objects_config({"objects": [with_rows(lead(), *rows)]}).objects[0]
    assert validate_against_salesforce(obj, emulator_describe("Lead"), STORE_CUSTOMER_COLUMNS) == []


def test_emulator_describe_catches_a_wrong_mapping():
    row = {"salesforce_field": "AnnualRevenue", "deployteq_type": "integer", "deployteq_field": "number_of_employees"}
    obj = load_objects_config({"objects": [one_row(row, sync_flag_field="Email_Opt_In__c")]}).objects[0]
    assert [str(p) for p in validate_against_salesforce(obj, emulator_describe("Lead"), STORE_CUSTOMER_COLUMNS)] == [
        "Lead, mapping row 2 (Salesforce field 'AnnualRevenue'): Salesforce type 'currency' cannot be held by "
        "Deployteq type 'integer'; it has 2 decimal place(s), map it as 'decimal'",
        "Lead, sync_flag_field: 'Email_Opt_In__c' is of type 'picklist'; the sync flag must be a Boolean (checkbox) field",
    ]
