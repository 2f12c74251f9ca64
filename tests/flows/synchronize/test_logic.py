"""Pure Salesforce Synchronize logic: precondition R15, payloads with inverse translations, exits R14."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from deployteq_salesforce.flows.customers.config import ConfiguredObject
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.synchronize.logic import (
    ON_ERROR,
    ON_LIMIT,
    ON_SUCCESS,
    Outcome,
    Update,
    choose_target,
    count_exits,
    outcome_from_result,
    plan_fields,
    plan_updates,
    redirect_to_contact,
)

LEAD = ConfiguredObject.model_validate({
    "sobject": "Lead",
    "unique_field": "id",
    "mappings": [
        {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True},
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email"},
        {"salesforce_field": "Salutation", "deployteq_type": "text", "deployteq_field": "salutation",
         "translations": {"Mr.": "Dhr.", "Ms.": "Mevr.", "Mrs.": "Mevr."}},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer", "deployteq_field": "number_of_employees"},
        {"salesforce_field": "AnnualRevenue", "deployteq_type": "decimal", "deployteq_field": "annual_revenue"},
    ],
})
CONTACT = ConfiguredObject.model_validate({
    "sobject": "Contact",
    "unique_field": "email",
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "Birthdate", "deployteq_type": "date", "deployteq_field": "birth_date"},
    ],
})
OBJECTS = {"Lead": LEAD, "Contact": CONTACT}
TYPES = {"Lead": {"Email_Opt_In__c": "picklist", "Salutation": "picklist"}, "Contact": {"Email_Opt_In__c": "boolean"}}


def customer(customer_id=1, **values):
    return {"customer_id": customer_id, "sf_lead_id": None, "sf_contact_id": None, **values}


# ---------------------------------------------------------------------------------------------- fields


def test_default_fields_are_every_mapped_field_except_the_id():
    plan = plan_fields("Lead", OBJECTS)
    assert plan.columns == ("email", "salutation", "email_optin", "number_of_employees", "annual_revenue")
    assert plan.salesforce_fields("Lead")[0] == "Email" and "Id" not in plan.salesforce_fields("Lead")
    # the contact of a converted lead gets the same columns, as far as Contact maps them
    assert plan.salesforce_fields("Contact") == ["Email", "Email_Opt_In__c"]


def test_fields_can_be_named_by_salesforce_or_deployteq_name():
    plan = plan_fields("Lead", OBJECTS, ["Email_Opt_In__c", "salutation"])
    assert plan.columns == ("email_optin", "salutation")


def test_unknown_fields_and_the_id_are_refused_with_the_mapped_names():
    with pytest.raises(ConfigurationError) as error:
        plan_fields("Lead", OBJECTS, ["Phone", "Id"])
    message = str(error.value)
    assert "'Phone' is not a mapped field of Lead" in message and "Email_Opt_In__c" in message
    assert "'Id': the Salesforce Id is what the update matches on" in message


def test_an_unconfigured_object_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="Contact is not a configured object"):
        plan_fields("Contact", {"Lead": LEAD})
    with pytest.raises(ConfigurationError, match="sobject must be one of"):
        plan_fields("Account", OBJECTS)


# ------------------------------------------------------------------------------------------------ R15


def test_lead_step_needs_a_lead_id():
    outcome = choose_target(customer(7), "Lead", contact_configured=True)
    assert isinstance(outcome, Outcome) and outcome.exit == ON_ERROR
    assert outcome.status_code == "MISSING_SALESFORCE_ID" and "customer 7 has no lead id (sf_lead_id)" in outcome.reason
    assert "never enriched from Salesforce" in outcome.reason


def test_lead_step_sends_a_lead_by_its_id():
    assert choose_target(customer(sf_lead_id="00Q1"), "Lead", contact_configured=True) == ("Lead", "00Q1", None)


def test_converted_lead_goes_to_its_known_contact():
    assert choose_target(customer(sf_lead_id="00Q1", sf_contact_id="0031"), "Lead", contact_configured=True) == (
        "Contact", "0031", "00Q1")


def test_converted_lead_without_contact_mapping_explains_why():
    outcome = choose_target(customer(sf_lead_id="00Q1", sf_contact_id="0031"), "Lead", contact_configured=False)
    assert outcome.status_code == "CONVERTED_LEAD_WITHOUT_CONTACT" and "0031" in outcome.reason


def test_contact_step_hints_at_an_unconverted_lead():
    outcome = choose_target(customer(sf_lead_id="00Q1"), "Contact", contact_configured=True)
    assert outcome.exit == ON_ERROR and "not been converted" in outcome.reason


def test_auto_prefers_the_contact():
    assert choose_target(customer(sf_lead_id="00Q1", sf_contact_id="0031"), "auto", True) == ("Contact", "0031", None)
    assert choose_target(customer(sf_lead_id="00Q1"), "auto", True) == ("Lead", "00Q1", None)
    assert choose_target(customer(sf_lead_id="  "), "auto", True).exit == ON_ERROR


# ------------------------------------------------------------------------------------------- payloads


def test_payload_translates_back_and_renders_types():
    plan = plan_fields("Lead", OBJECTS)
    row = customer(sf_lead_id="00Q1", email="a@b.nl", salutation="Dhr.", email_optin=True,
                   number_of_employees=12, annual_revenue=Decimal("1500.50"))
    (update,), rejected = plan_updates([row], target="Lead", plan=plan, salesforce_types=TYPES)
    assert rejected == []
    assert update.payload == {"Id": "00Q1", "Email": "a@b.nl", "Salutation": "Mr.", "Email_Opt_In__c": "Y",
                              "NumberOfEmployees": 12, "AnnualRevenue": 1500.5}


def test_optin_into_a_boolean_field_and_dates_on_the_contact():
    plan = plan_fields("Contact", OBJECTS)
    row = customer(sf_contact_id="0031", email="a@b.nl", email_optin=False, birth_date=date(1990, 2, 3))
    (update,), _ = plan_updates([row], target="Contact", plan=plan, salesforce_types=TYPES)
    assert update.payload == {"Id": "0031", "Email": "a@b.nl", "Email_Opt_In__c": False, "Birthdate": "1990-02-03"}


def test_null_clears_the_field():
    plan = plan_fields("Lead", OBJECTS, ["Salutation"])
    (update,), _ = plan_updates([customer(sf_lead_id="00Q1", salutation=None)], target="Lead", plan=plan, salesforce_types=TYPES)
    assert update.payload == {"Id": "00Q1", "Salutation": None}


def test_non_invertible_value_goes_to_on_error_but_others_of_the_field_are_sent():
    plan = plan_fields("Lead", OBJECTS, ["Salutation"])
    rows = [customer(1, sf_lead_id="00Q1", salutation="Mevr."), customer(2, sf_lead_id="00Q2", salutation="Dhr.")]
    updates, rejected = plan_updates(rows, target="Lead", plan=plan, salesforce_types=TYPES)
    assert [u.customer_id for u in updates] == [2]
    (error,) = rejected
    assert error.status_code == "NON_INVERTIBLE_TRANSLATION" and error.fields == ("Salutation",)
    assert "'Mrs.', 'Ms.'" in error.reason


def test_two_customers_on_one_salesforce_record_only_the_first_is_sent():
    plan = plan_fields("Lead", OBJECTS, ["Email"])
    rows = [customer(1, sf_lead_id="00Q1", email="a@b.nl"), customer(2, sf_lead_id="00q1", email="b@b.nl")]
    updates, rejected = plan_updates(rows, target="Lead", plan=plan, salesforce_types=TYPES)
    assert [u.customer_id for u in updates] == [1]
    assert rejected[0].status_code == "DUPLICATE_TARGET" and "customer 1" in rejected[0].reason


def test_only_ids_several_customers_carry_are_claimed_so_a_large_run_keeps_little():
    plan = plan_fields("Lead", OBJECTS, ["Email"])
    rows = [customer(1, sf_lead_id="00Q1", email="a@b.nl"), customer(2, sf_lead_id="00Q2", email="b@b.nl"),
            customer(3, sf_lead_id="00q1", email="c@b.nl")]
    claimed: dict = {}
    updates, rejected = plan_updates(rows, target="Lead", plan=plan, salesforce_types=TYPES, claimed=claimed,
                                     contested={"00q1"})
    assert [u.customer_id for u in updates] == [1, 2]
    assert [(r.customer_id, r.status_code) for r in rejected] == [(3, "DUPLICATE_TARGET")]
    assert claimed == {("Lead", "00q1"): 1}


def test_a_customer_that_disappeared_is_an_error():
    plan = plan_fields("Lead", OBJECTS)
    _, rejected = plan_updates([customer(5, customer_exists=False)], target="Lead", plan=plan, salesforce_types=TYPES)
    assert rejected[0].status_code == "CUSTOMER_NOT_FOUND"


# -------------------------------------------------------------------------------- Salesforce answers


UPDATE = Update(3, "Lead", "00Q3", {"Id": "00Q3"})


def test_success_result():
    assert outcome_from_result(UPDATE, {"id": "00Q3", "success": True, "errors": []}).exit == ON_SUCCESS


def test_failed_result_keeps_status_code_message_and_fields():
    outcome = outcome_from_result(UPDATE, {"id": "00Q3", "success": False, "errors": [
        {"statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "message": "No partners", "fields": ["LeadSource"]}]})
    assert (outcome.exit, outcome.status_code, outcome.message, outcome.fields) == (
        ON_ERROR, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No partners", ("LeadSource",))
    assert "Lead 00Q3" in outcome.reason and "No partners" in outcome.reason


def test_limited_update_says_it_was_not_sent():
    outcome = UPDATE.limited("hourly budget used up")
    assert outcome.exit == ON_LIMIT and outcome.reason == "not sent: hourly budget used up" and outcome.sent_via is None


def test_redirect_of_a_lead_salesforce_reports_converted():
    plan = plan_fields("Lead", OBJECTS)
    row = customer(4, sf_lead_id="00Q4", email="a@b.nl", email_optin=True)
    update = redirect_to_contact(row, "00Q4", "0034", plan, TYPES)
    assert (update.sobject, update.sf_id, update.converted_from) == ("Contact", "0034", "00Q4")
    assert update.payload == {"Id": "0034", "Email": "a@b.nl", "Email_Opt_In__c": True}
    unknown = redirect_to_contact(row, "00Q4", None, plan, TYPES)
    assert unknown.exit == ON_ERROR and "contact is not known" in unknown.reason


def test_counts_include_continue_for_every_record():
    assert count_exits([ON_SUCCESS, ON_SUCCESS, ON_ERROR, ON_LIMIT]) == {
        "continue": 4, "on_success": 2, "on_error": 1, "on_limit": 1}
