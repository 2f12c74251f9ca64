"""Salesforce records -> customer rows (R5-R8), batch de-duplication, and values back (R13)."""

from __future__ import annotations

import random
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from deployteq_salesforce.flows.customers.config import FieldMapping, load_objects_config
from deployteq_salesforce.flows.customers.merge import IncomingRecord
from deployteq_salesforce.flows.customers.mapping import (
    ConversionError,
    CustomerRow,
    NonInvertibleTranslation,
    RecordProblem,
    build_customer_row,
    build_customer_rows,
    build_incoming_records,
    convert_value,
    dedupe_by_key,
    inverse_translations,
    is_optin_yes,
    to_salesforce_value,
    translate,
)

LEAD_ID = "00Q000000000001AAA"
LEAD_ID_2 = "00Q000000000002AAA"
CONTACT_ID = "003000000000001AAA"
STAMP = "2024-03-01T10:00:00.000+0000"
UTC = timezone.utc


def configured(sobject="Lead", unique_field="email", extra_rows=()):
    key = (
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True}
        if unique_field == "email"
        else {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": f"sf_{sobject.lower()}_id",
              "unique_key": True}
    )
    rows = [
        key,
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer", "deployteq_field": "number_of_employees"},
        {"salesforce_field": "AnnualRevenue", "deployteq_type": "decimal", "deployteq_field": "annual_revenue"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
        {"salesforce_field": "Birthdate__c", "deployteq_type": "date", "deployteq_field": "birth_date"},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source",
         "translations": {"Web": "website", "Other": None, "": "unknown"}},
        *extra_rows,
    ]
    return load_objects_config({"objects": [{"sobject": sobject, "unique_field": unique_field, "mappings": rows}]}).objects[0]


def record(**fields):
    base = {
        "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{LEAD_ID}"},
        "Id": LEAD_ID,
        "SystemModstamp": STAMP,
        "MasterRecordId": None,
        "IsConverted": False,
        "ConvertedContactId": None,
        "Email": "  Jan.Jansen@Example.NL ",
        "FirstName": "Jan",
        "NumberOfEmployees": 12,
        "AnnualRevenue": 1500000.5,
        "Newsletter__c": True,
        "Birthdate__c": "1980-05-17",
        "Email_Opt_In__c": "Y",
        "LeadSource": "Web",
    }
    base.update(fields)
    return base


def row_of(obj, rec) -> CustomerRow:
    result = build_customer_row(obj, rec)
    assert isinstance(result, CustomerRow), str(result)
    return result


def problem_of(obj, rec) -> RecordProblem:
    result = build_customer_row(obj, rec)
    assert isinstance(result, RecordProblem), result
    return result


# --------------------------------------------------------------------------------------- rows


def test_rest_record_becomes_a_customer_row():
    row = row_of(configured(), record())
    assert row.values == {
        "email": "Jan.Jansen@Example.NL",
        "first_name": "Jan",
        "number_of_employees": 12,
        "annual_revenue": Decimal("1500000.5"),
        "newsletter": True,
        "birth_date": date(1980, 5, 17),
        "email_optin": True,
        "lead_source": "website",
    }
    assert row.sf_id == LEAD_ID
    assert row.sf_system_modstamp == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert row.email_key == "jan.jansen@example.nl"


def test_bulk_csv_record_gives_the_same_row_as_rest():
    csv_record = {k: ("" if v is None else v) for k, v in record().items() if k != "attributes"}
    csv_record.update(
        NumberOfEmployees="12", AnnualRevenue="1500000.5", Newsletter__c="true", IsConverted="false",
        SystemModstamp="2024-03-01T10:00:00.000Z",
    )
    assert row_of(configured(), csv_record) == row_of(configured(), record())


def test_lead_status_is_prospect_and_keeps_its_lead_id():
    row = row_of(configured(), record())
    assert row.status == "Prospect"
    assert (row.sf_lead_id, row.sf_contact_id) == (LEAD_ID, None)
    assert row.columns()["status"] == "Prospect"
    assert row.columns()["sf_lead_id"] == LEAD_ID
    assert row.columns()["sf_system_modstamp"] == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_contact_status_is_klant_and_keeps_its_contact_id():
    row = row_of(configured("Contact"), record(Id=CONTACT_ID))
    assert row.status == "Klant"
    assert (row.sf_lead_id, row.sf_contact_id) == (None, CONTACT_ID)
    assert row.columns()["sf_contact_id"] == CONTACT_ID
    assert "sf_lead_id" not in row.columns()


def test_id_key_row_is_not_repeated_in_values():
    row = row_of(configured("Contact", unique_field="id"), record(Id=CONTACT_ID))
    assert "sf_contact_id" not in row.values
    assert row.columns()["sf_contact_id"] == CONTACT_ID


def test_lead_conversion_info_is_kept():
    row = row_of(configured(), record(IsConverted=True, ConvertedContactId=CONTACT_ID))
    assert row.is_converted is True
    assert row.converted_contact_id == CONTACT_ID


def test_contact_ignores_lead_only_fields():
    row = row_of(configured("Contact"), record(Id=CONTACT_ID, IsConverted=True, ConvertedContactId=CONTACT_ID))
    assert (row.is_converted, row.converted_contact_id) == (False, None)


def test_deleted_and_merged_records_are_marked():
    row = row_of(configured(), record(IsDeleted=True, MasterRecordId=LEAD_ID_2))
    assert row.is_deleted is True
    assert row.master_record_id == LEAD_ID_2
    assert row_of(configured(), record()).is_deleted is False


def test_row_converts_into_a_merge_record():
    row = row_of(configured(), record(IsConverted=True, ConvertedContactId=CONTACT_ID))
    assert row.to_incoming_record() == IncomingRecord(
        sobject="Lead",
        sf_id=LEAD_ID,
        modstamp=datetime(2024, 3, 1, 10, tzinfo=UTC),
        email_key="jan.jansen@example.nl",
        values=row.values,
        is_converted=True,
        converted_contact_id=CONTACT_ID,
    )


@pytest.mark.parametrize("email", [None, "", "   "])
def test_missing_email_leaves_no_key(email):
    row = row_of(configured(), record(Email=email))
    assert row.values["email"] is None
    assert row.email_key is None


def test_email_that_is_no_address_is_a_record_problem():
    problem = problem_of(configured(), record(Email="jan at example"))
    assert str(problem) == f"Lead {LEAD_ID}: field 'Email' value 'jan at example': cannot be stored as email: not an e-mail address"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("NumberOfEmployees", "twelve", "cannot be stored as integer: not a number"),
        ("NumberOfEmployees", 12.5, "cannot be stored as integer: not a whole number"),
        ("NumberOfEmployees", True, "cannot be stored as integer: a Boolean is not a number"),
        ("NumberOfEmployees", "1e30", "cannot be stored as integer: whole number out of range"),
        ("AnnualRevenue", "NaN", "cannot be stored as decimal: not a finite number"),
        ("AnnualRevenue", "1,5", "cannot be stored as decimal: not a number"),
        ("Newsletter__c", "yes", "cannot be stored as boolean: not a Boolean (true/false)"),
        ("Newsletter__c", 1, "cannot be stored as boolean: not a Boolean (true/false)"),
        ("Birthdate__c", "17-05-1980", "cannot be stored as date: not a date like 2024-01-31"),
        ("Birthdate__c", "1980-02-30", "cannot be stored as date: not a date like 2024-01-31"),
    ],
)
def test_type_conversion_errors_name_record_field_and_value(field, value, message):
    problem = problem_of(configured(), record(**{field: value}))
    assert problem.record_id == LEAD_ID
    assert problem.field == field
    assert problem.reason == f"field {field!r} value {value!r}: {message}"


def test_every_bad_field_of_a_record_is_reported():
    problem = problem_of(configured(), record(NumberOfEmployees="x", Newsletter__c="x"))
    assert [i.field for i in problem.issues] == ["NumberOfEmployees", "Newsletter__c"]
    assert problem.detail == {
        "sobject": "Lead",
        "issues": [
            {"field": "NumberOfEmployees", "value": "x", "message": "cannot be stored as integer: not a number"},
            {"field": "Newsletter__c", "value": "x", "message": "cannot be stored as boolean: not a Boolean (true/false)"},
        ],
    }


def test_record_without_id_or_stamp_is_a_problem():
    problem = problem_of(configured(), record(Id=None, SystemModstamp="yesterday"))
    assert str(problem) == (
        "Lead (without Id): field 'Id' value None: the record has no Salesforce Id; field 'SystemModstamp' value "
        "'yesterday': not a date-time like 2024-01-01T00:00:00.000+0000"
    )


def test_field_not_selected_is_a_problem():
    rec = record()
    del rec["FirstName"]
    assert problem_of(configured(), rec).reason == (
        "field 'FirstName' value None: missing from the record (was it selected in the query?)"
    )


def test_bad_records_do_not_stop_the_batch():
    rows, problems = build_customer_rows(
        configured(), [record(), record(Id=LEAD_ID_2, NumberOfEmployees="many"), record(Id="00Q000000000003AAA")]
    )
    assert [r.sf_id for r in rows] == [LEAD_ID, "00Q000000000003AAA"]
    assert [p.record_id for p in problems] == [LEAD_ID_2]


def test_empty_values_become_null():
    row = row_of(configured(), record(FirstName="", NumberOfEmployees=None, Birthdate__c=""))
    assert (row.values["first_name"], row.values["number_of_employees"], row.values["birth_date"]) == (None, None, None)


def test_datetime_field_is_utc_aware():
    obj = configured(extra_rows=[{"salesforce_field": "Seen__c", "deployteq_type": "datetime",
                                  "deployteq_field": "last_seen"}])
    assert row_of(obj, record(Seen__c="2024-01-01T12:00:00.000+0200")).values["last_seen"] == datetime(
        2024, 1, 1, 10, tzinfo=UTC
    )
    assert problem_of(obj, record(Seen__c="2024-01-01T12:00:00")).reason == (
        "field 'Seen__c' value '2024-01-01T12:00:00': cannot be stored as datetime: date-time has no time zone offset"
    )


def test_numbers_into_text_lose_no_digits():
    assert convert_value("text", 12.0) == "12"
    assert convert_value("text", 12.25) == "12.25"
    assert convert_value("text", False) == "false"


def test_whole_number_from_a_double_field_is_accepted():
    assert row_of(configured(), record(NumberOfEmployees=12.0)).values["number_of_employees"] == 12
    assert row_of(configured(), record(NumberOfEmployees="12.0")).values["number_of_employees"] == 12


# ------------------------------------------------------------------------------- translations R5


def test_translation_applies():
    assert row_of(configured(), record(LeadSource="Web")).values["lead_source"] == "website"


def test_translation_to_null():
    assert row_of(configured(), record(LeadSource="Other")).values["lead_source"] is None


def test_translation_of_empty_value():
    assert row_of(configured(), record(LeadSource=None)).values["lead_source"] == "unknown"
    assert row_of(configured(), record(LeadSource="")).values["lead_source"] == "unknown"


def test_value_without_translation_is_kept_by_default():
    assert row_of(configured(), record(LeadSource="Phone Inquiry")).values["lead_source"] == "Phone Inquiry"


def test_value_without_translation_becomes_null_with_default_null():
    mapping = FieldMapping(salesforce_field="Rating", deployteq_type="text", deployteq_field="preferences",
                           translations={"Hot": "heet"}, translate_default="null")
    assert translate(mapping, "Hot") == "heet"
    assert translate(mapping, "Warm") is None


def test_translation_is_exact_not_case_folded():
    assert row_of(configured(), record(LeadSource="web")).values["lead_source"] == "web"


def test_translation_keys_for_booleans_and_numbers():
    mapping = FieldMapping(salesforce_field="Newsletter__c", deployteq_type="text", deployteq_field="preferences",
                           translations={"true": "ja", "false": "nee", "3": "drie"})
    assert translate(mapping, True) == "ja"
    assert translate(mapping, "false") == "nee"  # Bulk CSV form
    assert translate(mapping, 3.0) == "drie"


def test_translation_then_type_conversion():
    obj = configured(extra_rows=[{
        "salesforce_field": "Rating", "deployteq_type": "integer", "deployteq_field": "score",
        "translations": {"Hot": "3", "Warm": "2", "Cold": "1"}, "translate_default": "null",
    }])
    assert row_of(obj, record(Rating="Warm")).values["score"] == 2
    assert row_of(obj, record(Rating="Unknown")).values["score"] is None


# --------------------------------------------------------------------------------------- opt-in R8


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Y", True), ("y", True), (" Y ", True), ("\ty\n", True), (True, True), ("true", True), ("TRUE", True),
        ("N", False), ("n", False), ("Yes", False), ("YY", False), ("1", False), (1, False), ("", False),
        (None, False), (False, False), ("false", False), ("J", False),
    ],
)
def test_optin_truth_table(value, expected):
    assert is_optin_yes(value) is expected
    assert row_of(configured(), record(Email_Opt_In__c=value)).values["email_optin"] is expected


def test_optin_after_translation():
    obj = load_objects_config({"objects": [{"sobject": "Lead", "unique_field": "email", "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "Opt__c", "deployteq_type": "optin", "deployteq_field": "email_optin",
         "translations": {"Ja": "Y", "Nee": "N"}},
    ]}]}).objects[0]
    assert row_of(obj, record(Opt__c="Ja")).values["email_optin"] is True
    assert row_of(obj, record(Opt__c="Nee")).values["email_optin"] is False
    assert row_of(obj, record(Opt__c="Y")).values["email_optin"] is True


# ------------------------------------------------------------------------------------------ dedupe


def row(sf_id, stamp_minute, email="a@b.nl", **extra):
    return CustomerRow(
        sobject="Lead", sf_id=sf_id, sf_system_modstamp=datetime(2024, 1, 1, 0, stamp_minute, tzinfo=UTC),
        values={"email": email}, email_key=email.lower() if email else None, **extra,
    )


A, B, C = "00Q00000000000AAAA", "00Q00000000000BAAA", "00Q00000000000CAAA"


def test_dedupe_by_email_latest_stamp_wins():
    winners, losers = dedupe_by_key([row(A, 5), row(B, 9), row(C, 7)], "email")
    assert [w.sf_id for w in winners] == [B]
    assert sorted((l.row.sf_id, l.winner_id, l.action) for l in losers) == [(A, B, "merged"), (C, B, "merged")]


def test_dedupe_tie_goes_to_the_higher_id():
    winners, losers = dedupe_by_key([row(B, 5), row(A, 5)], "email")
    assert [w.sf_id for w in winners] == [B]
    assert [(l.row.sf_id, l.winner_id) for l in losers] == [(A, B)]
    assert "same e-mail address as 00Q00000000000BAAA" in losers[0].reason


def test_dedupe_is_independent_of_input_order():
    rows = [row(A, 5), row(B, 5), row(C, 3), row("00Q00000000000DAAA", 1, email="x@y.nl"), row(A, 2)]
    expected = dedupe_by_key(rows, "email")
    for seed in range(20):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        winners, losers = dedupe_by_key(shuffled, "email")
        assert winners == expected[0]
        assert sorted(losers, key=repr) == sorted(expected[1], key=repr)


def test_dedupe_matches_email_case_insensitively():
    winners, _ = dedupe_by_key([row(A, 1, email="Jan@X.nl"), row(B, 2, email="jan@x.NL")], "email")
    assert [w.sf_id for w in winners] == [B]


def test_same_record_twice_keeps_the_latest_copy_in_both_modes():
    for mode in ("id", "email"):
        winners, losers = dedupe_by_key([row(A, 5, email="new@b.nl"), row(A, 1, email="old@b.nl")], mode)
        assert [(w.sf_id, w.values["email"]) for w in winners] == [(A, "new@b.nl")]
        assert [(l.row.values["email"], l.winner_id, l.action) for l in losers] == [("old@b.nl", A, "skipped")]


def test_id_mode_keeps_different_records_with_one_email():
    winners, losers = dedupe_by_key([row(A, 5), row(B, 9)], "id")
    assert [w.sf_id for w in winners] == [A, B]
    assert losers == []


def test_deleted_converted_and_addressless_rows_do_not_compete_for_an_address():
    deleted = row(C, 9, is_deleted=True)
    converted = row("00Q00000000000DAAA", 8, is_converted=True, converted_contact_id=CONTACT_ID)
    no_email = row("00Q00000000000EAAA", 7, email=None)
    winners, losers = dedupe_by_key([row(A, 1), deleted, converted, no_email], "email")
    assert [w.sf_id for w in winners] == [A, "00Q00000000000EAAA", "00Q00000000000DAAA", C]
    assert losers == []


def test_loser_names_the_final_winner_in_a_chain():
    _, losers = dedupe_by_key([row(A, 1), row(B, 2), row(C, 3)], "email")
    assert {l.row.sf_id: l.winner_id for l in losers} == {A: C, B: C}


# --------------------------------------------------------------------------- inverse translations


def mapping(**kwargs):
    base = {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source"}
    return FieldMapping(**{**base, **kwargs})


def test_inverse_translations_lists_every_source():
    m = mapping(translations={"Web": "online", "Webinar": "online", "Phone": "phone", "Other": None})
    assert inverse_translations(m) == {"online": ("Web", "Webinar"), "phone": ("Phone",)}


def test_to_salesforce_value_inverts_a_translation():
    m = mapping(translations={"Web": "online", "Phone": "phone"})
    assert to_salesforce_value(m, "online") == "Web"


def test_non_invertible_value_raises_only_when_sent():
    m = mapping(translations={"Web": "online", "Webinar": "online", "Phone": "phone"})
    assert to_salesforce_value(m, "phone") == "Phone"
    with pytest.raises(NonInvertibleTranslation) as info:
        to_salesforce_value(m, "online")
    assert (info.value.field, info.value.deployteq_value, info.value.candidates) == ("LeadSource", "online", ("Web", "Webinar"))
    assert str(info.value) == (
        "cannot send 'online' to Salesforce field 'LeadSource': the translation is not invertible, 'Web', 'Webinar' "
        "all translate to it; make the translations one-to-one or leave 'LeadSource' out of the fields sent"
    )


def test_untranslated_value_is_sent_as_is_and_null_as_null():
    m = mapping(translations={"Web": "online"})
    assert to_salesforce_value(m, "Trade Show") == "Trade Show"
    assert to_salesforce_value(m, None) is None


def test_inverse_of_typed_translations_compares_values():
    m = mapping(deployteq_type="integer", deployteq_field="score", translations={"Hot": "3", "Cold": "1"},
                translate_default="null")
    assert inverse_translations(m) == {3: ("Hot",), 1: ("Cold",)}
    assert to_salesforce_value(m, 3) == "Hot"
    dm = mapping(deployteq_type="decimal", deployteq_field="annual_revenue", translations={"Big": "1.50"})
    assert to_salesforce_value(dm, Decimal("1.5")) == "Big"


def test_inverse_to_a_typed_salesforce_field():
    m = mapping(deployteq_type="text", translations={"true": "ja", "false": "nee"})
    assert to_salesforce_value(m, "ja", salesforce_type="boolean") is True
    assert to_salesforce_value(m, "nee", salesforce_type="boolean") is False
    n = mapping(translations={"3": "drie"})
    assert to_salesforce_value(n, "drie", salesforce_type="int") == 3


def test_optin_goes_back_as_y_n_or_boolean():
    m = mapping(salesforce_field="Email_Opt_In__c", deployteq_type="optin", deployteq_field="email_optin")
    assert to_salesforce_value(m, True) == "Y"
    assert to_salesforce_value(m, False) == "N"
    assert to_salesforce_value(m, True, salesforce_type="boolean") is True
    translated = mapping(salesforce_field="Opt__c", deployteq_type="optin", deployteq_field="email_optin",
                         translations={"Ja": "Y", "Nee": "N"})
    assert to_salesforce_value(translated, True) == "Ja"
    assert to_salesforce_value(translated, False) == "Nee"
    ambiguous = mapping(salesforce_field="Opt__c", deployteq_type="optin", deployteq_field="email_optin",
                        translations={"Ja": "Y", "Nee": "N", "Onbekend": "?"})
    with pytest.raises(NonInvertibleTranslation, match="'Nee', 'Onbekend' all translate to it"):
        to_salesforce_value(ambiguous, False)


def test_values_are_rendered_for_salesforce_json():
    assert to_salesforce_value(mapping(deployteq_type="decimal"), Decimal("12.50")) == 12.5
    assert to_salesforce_value(mapping(deployteq_type="integer"), Decimal("12")) == 12
    assert to_salesforce_value(mapping(deployteq_type="date"), date(2024, 2, 29)) == "2024-02-29"
    sent = to_salesforce_value(mapping(deployteq_type="datetime"), datetime(2024, 1, 1, 12, 30, tzinfo=UTC))
    assert sent == "2024-01-01T12:30:00.000Z"


def test_convert_value_rejects_unknown_type():
    with pytest.raises(ConversionError, match="unknown Deployteq type 'money'"):
        convert_value("money", "1")


def test_a_batch_maps_each_record_exactly_as_it_maps_alone():
    """Columns are converted once per distinct value: that must never leak between records."""
    obj = configured(extra_rows=[{"salesforce_field": "Description", "deployteq_type": "text",
                                  "deployteq_field": "preferences"}])
    without_first_name = record(Id="00Q000000000009AAA", Email="i@example.nl", Description="x")
    del without_first_name["FirstName"]
    batch = [
        record(Description="Nieuwsbrief"),
        record(Id=LEAD_ID_2, Email="b@example.nl", Description=True),  # True == 1 == 1.0 as dict keys
        record(Id="00Q000000000003AAA", Email="c@example.nl", Description=1),
        record(Id="00Q000000000004AAA", Email="d@example.nl", Description="1", NumberOfEmployees="12"),
        record(Id="00Q000000000005AAA", Email="e@example.nl", Description={"street": "Dam 1"}),  # compound value
        record(Id="00Q000000000006AAA", Email="f@example.nl", NumberOfEmployees="many", Newsletter__c="maybe",
               Description="x"),
        record(Id="00Q000000000007AAA", Email="not an address", LeadSource="Web", Description="x"),
        record(Id="00Q000000000008AAA", Email="h@example.nl", Newsletter__c="false", Email_Opt_In__c="true",
               SystemModstamp="2024-03-01T10:00:00.000Z", AnnualRevenue="", Description="x"),
        without_first_name,
    ]
    rows, problems = build_customer_rows(obj, batch)
    alone = [build_customer_rows(obj, [r]) for r in batch]
    assert rows == [row for one_rows, _ in alone for row in one_rows]
    assert [(p.record_id, p.issues) for p in problems] == [
        (p.record_id, p.issues) for _, one_problems in alone for p in one_problems
    ]
    assert [r.values["preferences"] for r in rows[1:5]] == ["true", "1", "1", "{'street': 'Dam 1'}"]
    assert [p.record_id for p in problems] == ["00Q000000000006AAA", "00Q000000000007AAA", "00Q000000000009AAA"]


def test_incoming_records_of_a_batch_are_the_rows_for_the_merge():
    batch = [record(), record(Id=LEAD_ID_2, Email="b@example.nl", IsConverted=True, ConvertedContactId=CONTACT_ID)]
    incoming, problems = build_incoming_records(configured(), batch)
    rows, _ = build_customer_rows(configured(), batch)
    assert problems == []
    assert incoming == [row.to_incoming_record() for row in rows]
