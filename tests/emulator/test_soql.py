"""SOQL parser and evaluator of the Salesforce emulator (include/salesforce_emulator/soql.py).

Benchmark (not a test): ``.venv/bin/python -m tests.emulator.test_soql [--records N]`` from the repo root.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from include.salesforce_emulator.ids import make_id
from include.salesforce_emulator.soql import FieldInfo, SoqlError, compile_query

_FIELDS = {
    "Lead": {
        "Id": "id",
        "FirstName": "string",
        "LastName": "string",
        "Email": "email",
        "Status": "picklist",
        "Phone": "phone",
        "NumberOfEmployees": "int",
        "AnnualRevenue": "currency",
        "IsConverted": "boolean",
        "Sync_to_Deployteq__c": "boolean",
        "ConvertedContactId": "reference",
        "ConvertedDate": "date",
        "SystemModstamp": "datetime",
    },
    "Contact": {"Id": "id", "LastName": "string", "Email": "email", "AccountId": "reference", "Birthdate": "date"},
    "Account": {"Id": "id", "Name": "string", "Industry": "picklist", "Rating__c": "double"},
}
_RELATIONSHIPS = {
    ("Lead", "convertedcontact"): ("ConvertedContactId", "Contact"),
    ("Contact", "account"): ("AccountId", "Account"),
}
_CHILD_RELATIONSHIPS = {
    ("Account", "contacts"): ("Contact", "AccountId"),
    ("Contact", "convertedleads"): ("Lead", "ConvertedContactId"),
}


class Schema:
    """Lead, Contact and Account with a few fields of each type; names resolve case-insensitively.

    Subqueries read ``rows`` (object -> records; default: the module's records) and count how often.
    """

    def __init__(self, rows: dict[str, list[dict]] | None = None):
        self.rows = rows
        self.reads: list[str] = []

    def sobject_name(self, name: str) -> str | None:
        return next((o for o in _FIELDS if o.lower() == name.lower()), None)

    def field(self, sobject: str, name: str) -> FieldInfo | None:
        fields = _FIELDS[sobject]
        canonical = next((f for f in fields if f.lower() == name.lower()), None)
        return FieldInfo(canonical, fields[canonical]) if canonical else None

    def fields(self, sobject: str) -> list[FieldInfo]:
        return [FieldInfo(name, field_type) for name, field_type in _FIELDS[sobject].items()]

    def relationship(self, sobject: str, name: str) -> tuple[str, str] | None:
        return _RELATIONSHIPS.get((sobject, name.lower()))

    def child_relationship(self, sobject: str, name: str) -> tuple[str, str] | None:
        return _CHILD_RELATIONSHIPS.get((sobject, name.lower()))

    def live_rows(self, sobject: str) -> list[dict]:
        self.reads.append(sobject)
        rows = self.rows if self.rows is not None else {"Lead": LEADS, "Contact": [CONTACT, ORPHAN_CONTACT],
                                                         "Account": [ACCOUNT]}
        return rows.get(sobject, [])


SCHEMA = Schema()
ACCOUNT = {"Id": make_id("001", 1), "Name": "Acme", "Industry": "Retail", "Rating__c": 4.5}
CONTACT = {"Id": make_id("003", 1), "LastName": "Jansen", "Email": "j@acme.nl", "AccountId": ACCOUNT["Id"]}
ORPHAN_CONTACT = {"Id": make_id("003", 2), "LastName": "Alone", "Email": None, "AccountId": None}
RELATED = {(r["Id"]): r for r in (ACCOUNT, CONTACT, ORPHAN_CONTACT)}


def lookup(sobject: str, record_id: str):
    record = RELATED.get(record_id)
    return record if record is not None and record["Id"][:3] == {"Account": "001", "Contact": "003"}[sobject] else None


def lead(number: int, **values) -> dict:
    record = dict.fromkeys(_FIELDS["Lead"])
    record.update(Id=make_id("00Q", number), IsConverted=False, Sync_to_Deployteq__c=False)
    record.update(values)
    return record


LEADS = [
    lead(1, LastName="de Vries", Email="Anna@Example.com", Status="Open", NumberOfEmployees=10,
         AnnualRevenue=1000.5, SystemModstamp="2024-01-01T00:00:00.000+0000", Sync_to_Deployteq__c=True),
    lead(2, LastName="Bakker", Email="bob@example.com", Status="Working", NumberOfEmployees=200,
         SystemModstamp="2024-01-02T12:30:00.000+0000", ConvertedDate="2024-01-02", IsConverted=True,
         ConvertedContactId=CONTACT["Id"]),
    lead(3, LastName="o'Brien", Email=None, Status="Open", NumberOfEmployees=None,
         SystemModstamp="2024-01-03T08:00:00.000+0000", ConvertedDate="2024-03-01", Sync_to_Deployteq__c=True),
    lead(4, LastName="Zwart", Email="50%_off@example.com", Status=None, NumberOfEmployees=10,
         SystemModstamp="2023-12-31T23:59:59.999+0000", ConvertedContactId=ORPHAN_CONTACT["Id"]),
]


def run(soql: str, records=LEADS, **kwargs) -> list[dict]:
    return compile_query(soql, SCHEMA).run(records, lookup, **kwargs)


def last_names(soql: str, records=LEADS, **kwargs) -> list[str]:
    return [r["LastName"] for r in run(soql, records, **kwargs)]


def error_of(soql: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        compile_query(soql, SCHEMA)
    return caught.value


# --- SELECT and projection ------------------------------------------------------------------------


def test_select_names_are_case_insensitive_and_returned_canonically_in_select_order():
    query = compile_query("select email, LASTNAME, id from lead", SCHEMA)
    projected = query.project(LEADS[0], lookup)
    assert list(projected) == ["attributes", "Email", "LastName", "Id"]
    assert projected["attributes"] == {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{LEADS[0]['Id']}"}
    assert query.sobject == "Lead" and query.select_paths == [("Email",), ("LastName",), ("Id",)]


def test_project_uses_the_requested_api_version_in_urls():
    projected = compile_query("SELECT Id FROM Lead", SCHEMA).project(LEADS[0], lookup, api_version="60.0")
    assert projected["attributes"]["url"].startswith("/services/data/v60.0/sobjects/Lead/")


def test_relationship_paths_are_canonical_and_projected_as_nested_records():
    query = compile_query("SELECT Id, convertedcontact.EMAIL, ConvertedContact.LastName FROM Lead", SCHEMA)
    assert query.select_paths == [("Id",), ("ConvertedContact", "Email"), ("ConvertedContact", "LastName")]
    projected = query.project(LEADS[1], lookup)
    assert projected["ConvertedContact"] == {
        "attributes": {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{CONTACT['Id']}"},
        "Email": "j@acme.nl",
        "LastName": "Jansen",
    }


def test_an_empty_reference_projects_as_null():
    query = compile_query("SELECT Id, ConvertedContact.Email FROM Lead", SCHEMA)
    assert query.project(LEADS[0], lookup)["ConvertedContact"] is None


def test_two_level_relationship_paths_follow_both_references():
    query = compile_query("SELECT ConvertedContact.Account.Name FROM Lead", SCHEMA)
    assert query.select_paths == [("ConvertedContact", "Account", "Name")]
    assert query.project(LEADS[1], lookup)["ConvertedContact"]["Account"]["Name"] == "Acme"
    assert query.project(LEADS[3], lookup)["ConvertedContact"]["Account"] is None


def test_object_name_and_alias_may_prefix_fields():
    assert compile_query("SELECT Lead.Email FROM Lead", SCHEMA).select_paths == [("Email",)]
    assert last_names("SELECT l.Id FROM Lead l WHERE l.Status = 'working'") == ["Bakker"]


def test_count_query_counts_matching_records():
    query = compile_query("SELECT COUNT() FROM Lead WHERE Status = 'Open'", SCHEMA)
    assert query.is_count and query.select_paths == []
    assert len(query.run(LEADS, lookup)) == 2


def test_count_of_a_field_is_an_aggregate_result_skipping_nulls():
    query = compile_query("SELECT COUNT(Email) total FROM Lead", SCHEMA)
    assert query.is_aggregate and not query.is_count
    rows = query.aggregate(query.run(LEADS, lookup), lookup)
    assert rows == [{"attributes": {"type": "AggregateResult"}, "total": 3}]


def aggregate(soql: str, records=LEADS) -> list[dict]:
    query = compile_query(soql, SCHEMA)
    return [{k: v for k, v in row.items() if k != "attributes"} for row in query.aggregate(query.run(records, lookup), lookup)]


def test_aggregate_functions_without_group_by_give_one_row_with_expr_names():
    rows = aggregate("SELECT MIN(NumberOfEmployees), MAX(SystemModstamp) latest, SUM(NumberOfEmployees), "
                     "AVG(NumberOfEmployees), COUNT_DISTINCT(Status) FROM Lead")
    assert rows == [{"expr0": 10, "latest": "2024-01-03T08:00:00.000+0000", "expr1": 220, "expr2": 220 / 3, "expr3": 2}]


def test_group_by_gives_a_row_per_group_in_group_order_with_limit():
    rows = aggregate("SELECT Status, COUNT(Id) n FROM Lead GROUP BY Status")
    assert rows == [{"Status": None, "n": 1}, {"Status": "Open", "n": 2}, {"Status": "Working", "n": 1}]
    rows = aggregate("SELECT Status, COUNT(Id) n FROM Lead GROUP BY Status ORDER BY Status DESC NULLS LAST LIMIT 2")
    assert rows == [{"Status": "Working", "n": 1}, {"Status": "Open", "n": 2}]


def test_order_by_an_aggregate_sorts_the_groups():
    rows = aggregate("SELECT Status, COUNT(Id) n FROM Lead GROUP BY Status ORDER BY COUNT(Id) DESC, Status LIMIT 2")
    assert rows == [{"Status": "Open", "n": 2}, {"Status": None, "n": 1}]
    # the aggregate need not be selected
    rows = aggregate("SELECT Status FROM Lead GROUP BY Status ORDER BY MAX(NumberOfEmployees) DESC, Status")
    assert rows == [{"Status": "Working"}, {"Status": None}, {"Status": "Open"}]


def test_order_by_an_aggregate_needs_an_aggregate_query():
    error = error_of("SELECT Id FROM Lead ORDER BY COUNT(Id)")
    assert error.error_code == "MALFORMED_QUERY" and "GROUP BY" in str(error)


def test_aggregates_of_no_records_are_null_and_counts_zero():
    assert aggregate("SELECT COUNT(Id), MAX(NumberOfEmployees) FROM Lead WHERE LastName = 'nobody'") == [
        {"expr0": 0, "expr1": None}
    ]


@pytest.mark.parametrize(("soql", "message"), [
    ("SELECT Status, COUNT(Id) FROM Lead", "Field must be grouped or aggregated: Status"),
    ("SELECT Email FROM Lead GROUP BY Status", "Field must be grouped or aggregated: Email"),
    ("SELECT SUM(Email) FROM Lead", "field Email does not support aggregate operator SUM"),
    ("SELECT COUNT(IsConverted) FROM Lead", "field IsConverted does not support aggregate operator COUNT"),
    ("SELECT Status, COUNT(Id) FROM Lead GROUP BY Status ORDER BY Email", "Ordered field must be grouped or aggregated: Email"),
])
def test_aggregate_queries_salesforce_refuses(soql, message):
    error = error_of(soql)
    assert error.error_code == "MALFORMED_QUERY" and message in str(error)


# Per Status group: Open (2 leads, 10 and no employees, revenue 1000.5), Working (1 lead, 200), null (1 lead, 10)
@pytest.mark.parametrize(("having", "statuses"), [
    ("COUNT(Id) > 1", ["Open"]),
    ("COUNT() = 1", [None, "Working"]),
    ("MAX(NumberOfEmployees) < 100", [None, "Open"]),
    ("SUM(AnnualRevenue) >= 1000", ["Open"]),
    ("AVG(NumberOfEmployees) IN (10, 200)", [None, "Open", "Working"]),
    ("COUNT(Id) NOT IN (1)", ["Open"]),
    ("COUNT_DISTINCT(LastName) = 2", ["Open"]),
    ("MAX(SystemModstamp) > 2024-01-02T00:00:00Z", ["Open", "Working"]),
    ("MIN(LastName) LIKE 'B%'", ["Working"]),
    ("COUNT(Id) > 1 AND MAX(NumberOfEmployees) < 100", ["Open"]),
    ("COUNT(Id) > 1 OR MAX(NumberOfEmployees) >= 100", ["Open", "Working"]),
    ("NOT (COUNT(Id) > 1 OR Status = null)", ["Working"]),
])
def test_having_keeps_the_groups_whose_aggregates_pass(having, statuses):
    rows = aggregate(f"SELECT Status FROM Lead GROUP BY Status HAVING {having}")
    assert [row["Status"] for row in rows] == statuses


@pytest.mark.parametrize(("having", "statuses"), [
    ("Status = 'open'", ["Open"]),
    ("Status IN ('Working', null)", [None, "Working"]),
    ("Status LIKE 'wor%' OR Status = null", [None, "Working"]),
])
def test_having_compares_grouped_fields_like_where(having, statuses):
    rows = aggregate(f"SELECT Status, COUNT(Id) FROM Lead GROUP BY Status HAVING {having}")
    assert [row["Status"] for row in rows] == statuses


def test_having_reads_grouped_relationship_fields():
    rows = aggregate("SELECT COUNT(Id) FROM Lead GROUP BY ConvertedContact.LastName "
                     "HAVING ConvertedContact.LastName LIKE 'j%'")
    assert rows == [{"expr0": 1}]


def test_having_filters_the_groups_before_order_by_offset_and_limit():
    # without HAVING first, OFFSET 1 would land on the Open group, which HAVING then drops
    rows = aggregate("SELECT Status, COUNT(Id) n FROM Lead GROUP BY Status HAVING COUNT(Id) = 1 "
                     "ORDER BY Status DESC LIMIT 1 OFFSET 1")
    assert rows == [{"Status": None, "n": 1}]


def test_date_literals_in_having_use_the_given_clock():
    query = compile_query("SELECT Status FROM Lead GROUP BY Status HAVING MAX(SystemModstamp) = LAST_N_DAYS:1", SCHEMA)
    rows = query.aggregate(query.run(LEADS, lookup), lookup, now=datetime(2024, 1, 3, 15, 0, tzinfo=timezone.utc))
    assert [row["Status"] for row in rows] == ["Open", "Working"]


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT COUNT(Id) FROM Lead HAVING COUNT(Id) > 1", "MALFORMED_QUERY", "unexpected token: 'HAVING'"),
    ("SELECT Status FROM Lead GROUP BY Status ORDER BY Status HAVING COUNT(Id) > 1", "MALFORMED_QUERY",
     "unexpected token: 'HAVING'"),
    ("SELECT Status FROM Lead WHERE COUNT(Id) > 1 GROUP BY Status", "MALFORMED_QUERY", "unexpected token: '('"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING COUNT(Id) > 1 AND Email LIKE 'a%'", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: Email"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING SUM(Email) > 1", "MALFORMED_QUERY",
     "field Email does not support aggregate operator SUM"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING Status IN (SELECT Email FROM Contact)", "MALFORMED_QUERY",
     "Semi join sub-selects are not allowed in the HAVING clause"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING COUNT(Id) > '1'", "INVALID_FIELD",
     "value of filter criterion for field 'COUNT(Id)' must be of type integer and should not be enclosed in quotes"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING AVG(NumberOfEmployees) = true", "INVALID_FIELD",
     "field 'AVG(NumberOfEmployees)' must be of type double and should not be enclosed in quotes"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING MAX(SystemModstamp) > 2024-01-01", "INVALID_FIELD",
     "field 'MAX(SystemModstamp)' must be of type dateTime and should not be enclosed in quotes"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING MIN(LastName) > 5", "INVALID_FIELD",
     "field 'MIN(LastName)' must be of type string and should be enclosed in quotes"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING Status = 5", "INVALID_FIELD",
     "field 'Status' must be of type string and should be enclosed in quotes"),
    ("SELECT Status FROM Lead GROUP BY Status HAVING COUNT(Id) LIKE '1%'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid operator on int field"),
])
def test_having_clauses_salesforce_refuses(soql, code, message):
    error = error_of(soql)
    assert error.error_code == code and str(error).endswith(message)


# --- WHERE ------------------------------------------------------------------------------------


def test_string_equality_is_case_insensitive():
    assert last_names("SELECT Id FROM Lead WHERE Email = 'ANNA@example.COM'") == ["de Vries"]


@pytest.mark.parametrize("operator", ["!=", "<>"])
def test_not_equal_also_matches_nulls(operator):
    assert last_names(f"SELECT Id FROM Lead WHERE Status {operator} 'Open'") == ["Bakker", "Zwart"]


def test_null_comparisons():
    assert last_names("SELECT Id FROM Lead WHERE Email = null") == ["o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE Email != NULL") == ["de Vries", "Bakker", "Zwart"]


def test_empty_text_counts_as_null():
    records = [lead(9, LastName="Empty", Email="")]
    assert last_names("SELECT Id FROM Lead WHERE Email = null", records) == ["Empty"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("NumberOfEmployees < 200", ["de Vries", "Zwart"]),
        ("NumberOfEmployees <= 200", ["de Vries", "Bakker", "Zwart"]),
        ("NumberOfEmployees > 10", ["Bakker"]),
        ("NumberOfEmployees >= 10", ["de Vries", "Bakker", "Zwart"]),
        ("AnnualRevenue > 1000.25", ["de Vries"]),
        ("NumberOfEmployees = 10", ["de Vries", "Zwart"]),
        ("NumberOfEmployees != 10", ["Bakker", "o'Brien"]),
    ],
)
def test_number_comparisons_skip_nulls(condition, expected):
    assert last_names(f"SELECT Id FROM Lead WHERE {condition}") == expected


def test_string_ordering_comparisons_are_case_insensitive():
    assert last_names("SELECT Id FROM Lead WHERE LastName < 'C'") == ["Bakker"]


def test_in_and_not_in():
    assert last_names("SELECT Id FROM Lead WHERE Status IN ('open', 'Closed')") == ["de Vries", "o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE Status NOT IN ('Open')") == ["Bakker", "Zwart"]
    assert last_names("SELECT Id FROM Lead WHERE Status IN ('Working', null)") == ["Bakker", "Zwart"]


def test_id_in_list_accepts_15_and_18_character_ids():
    id15, id18 = LEADS[0]["Id"][:15], LEADS[2]["Id"]
    assert last_names(f"SELECT Id FROM Lead WHERE Id IN ('{id15}', '{id18}')") == ["de Vries", "o'Brien"]


def test_like_wildcards_are_case_insensitive():
    assert last_names("SELECT Id FROM Lead WHERE Email LIKE '%@EXAMPLE.com'") == ["de Vries", "Bakker", "Zwart"]
    assert last_names("SELECT Id FROM Lead WHERE LastName LIKE 'bak_er'") == ["Bakker"]
    assert last_names("SELECT Id FROM Lead WHERE LastName LIKE 'bak_'") == []


def test_like_escaped_wildcards_match_literally():
    assert last_names(r"SELECT Id FROM Lead WHERE Email LIKE '50\%\_%'") == ["Zwart"]
    assert last_names(r"SELECT Id FROM Lead WHERE Email LIKE 'anna\_%'") == []


def test_booleans():
    assert last_names("SELECT Id FROM Lead WHERE Sync_to_Deployteq__c = TRUE") == ["de Vries", "o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE IsConverted = false") == ["de Vries", "o'Brien", "Zwart"]
    assert last_names("SELECT Id FROM Lead WHERE IsConverted != true") == ["de Vries", "o'Brien", "Zwart"]


def test_and_or_not_with_parentheses():
    soql = "SELECT Id FROM Lead WHERE Status = 'Open' AND (NumberOfEmployees = 10 OR Email = null)"
    assert last_names(soql) == ["de Vries", "o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE NOT (Status = 'Open' OR Status = null)") == ["Bakker"]
    assert last_names("SELECT Id FROM Lead WHERE NOT Status = 'Open' AND NumberOfEmployees > 100") == ["Bakker"]


@pytest.mark.parametrize(
    ("literal", "escaped"),
    [(r"o\'Brien", "o'Brien"), (r"a\"b", 'a"b'), ("a\\\\b", "a\\b"), (r"a\nb", "a\nb"), (r"a\tb", "a\tb")],
)
def test_string_escapes(literal, escaped):
    records = [lead(9, LastName=escaped)]
    assert last_names(f"SELECT Id FROM Lead WHERE LastName = '{literal}'", records) == [escaped]


@pytest.mark.parametrize(
    "literal", ["2024-01-02T12:30:00Z", "2024-01-02T12:30:00.000+0000", "2024-01-02T13:30:00+01:00"]
)
def test_datetime_literals_compare_as_instants(literal):
    assert last_names(f"SELECT Id FROM Lead WHERE SystemModstamp = {literal}") == ["Bakker"]
    assert last_names(f"SELECT Id FROM Lead WHERE SystemModstamp >= {literal}") == ["Bakker", "o'Brien"]


def test_millisecond_precision_counts_in_datetime_comparisons():
    assert last_names("SELECT Id FROM Lead WHERE SystemModstamp < 2024-01-01T00:00:00Z") == ["Zwart"]
    assert last_names("SELECT Id FROM Lead WHERE SystemModstamp > 2023-12-31T23:59:59.998Z") == [
        "de Vries", "Bakker", "o'Brien", "Zwart"]


def test_stored_datetimes_in_other_offsets_compare_as_instants():
    records = [lead(9, LastName="Offset", SystemModstamp="2024-01-01T00:30:00+01:00")]
    assert last_names("SELECT Id FROM Lead WHERE SystemModstamp < 2024-01-01T00:00:00Z", records) == ["Offset"]


def test_date_literals_on_date_fields():
    assert last_names("SELECT Id FROM Lead WHERE ConvertedDate >= 2024-02-01") == ["o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE ConvertedDate = 2024-01-02") == ["Bakker"]


def test_relative_date_literals_use_the_given_clock():
    now = datetime(2024, 1, 3, 15, 0, tzinfo=timezone.utc)
    soql = "SELECT Id FROM Lead WHERE SystemModstamp = {}"
    assert last_names(soql.format("TODAY"), now=now) == ["o'Brien"]
    assert last_names(soql.format("YESTERDAY"), now=now) == ["Bakker"]
    assert last_names(soql.format("LAST_N_DAYS:2"), now=now) == ["de Vries", "Bakker", "o'Brien"]
    assert last_names("SELECT Id FROM Lead WHERE SystemModstamp < YESTERDAY", now=now) == ["de Vries", "Zwart"]
    assert last_names("SELECT Id FROM Lead WHERE ConvertedDate = THIS_MONTH", now=now) == ["Bakker"]


def test_id_literals_of_15_characters_match_stored_18_character_ids():
    assert last_names(f"SELECT Id FROM Lead WHERE Id = '{LEADS[1]['Id'][:15]}'") == ["Bakker"]


def test_keyset_condition_on_stamp_and_id():
    stamp, after_id = "2024-01-01T00:00:00Z", LEADS[0]["Id"]
    records = LEADS + [lead(10, LastName="Same stamp", SystemModstamp="2024-01-01T00:00:00.000+0000")]
    soql = (
        f"SELECT Id FROM Lead WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{after_id}'))"
        " ORDER BY SystemModstamp, Id"
    )
    assert last_names(soql, records) == ["Same stamp", "Bakker", "o'Brien"]


def test_relationship_fields_in_where():
    assert last_names("SELECT Id FROM Lead WHERE ConvertedContact.LastName = 'jansen'") == ["Bakker"]
    assert last_names("SELECT Id FROM Lead WHERE ConvertedContact.Account.Name LIKE 'ac%'") == ["Bakker"]


# --- ORDER BY, LIMIT, OFFSET -------------------------------------------------------------------------


def test_order_by_defaults_to_ascending_with_nulls_first():
    assert last_names("SELECT Id FROM Lead ORDER BY NumberOfEmployees") == ["o'Brien", "de Vries", "Zwart", "Bakker"]


def test_order_by_desc_puts_nulls_last():
    assert last_names("SELECT Id FROM Lead ORDER BY NumberOfEmployees DESC") == [
        "Bakker", "de Vries", "Zwart", "o'Brien"]


def test_order_by_explicit_null_placement():
    assert last_names("SELECT Id FROM Lead ORDER BY Email ASC NULLS LAST") == ["Zwart", "de Vries", "Bakker", "o'Brien"]
    assert last_names("SELECT Id FROM Lead ORDER BY Email DESC NULLS FIRST") == ["o'Brien", "Bakker", "de Vries", "Zwart"]


def test_order_by_several_keys_with_their_own_directions():
    assert last_names("SELECT Id FROM Lead ORDER BY NumberOfEmployees ASC NULLS LAST, LastName DESC") == [
        "Zwart", "de Vries", "Bakker", "o'Brien"]


def test_text_ordering_is_case_insensitive():
    assert last_names("SELECT Id FROM Lead ORDER BY LastName") == ["Bakker", "de Vries", "o'Brien", "Zwart"]


def test_order_by_datetime_uses_instants():
    records = [
        lead(1, LastName="later", SystemModstamp="2024-01-01T00:30:00.000+0000"),
        lead(2, LastName="earlier", SystemModstamp="2024-01-01T01:00:00+01:00"),
    ]
    assert last_names("SELECT Id FROM Lead ORDER BY SystemModstamp", records) == ["earlier", "later"]


def test_ordering_is_stable_for_equal_keys():
    assert last_names("SELECT Id FROM Lead ORDER BY Status") == ["Zwart", "de Vries", "o'Brien", "Bakker"]


def test_order_by_a_relationship_field():
    records = [lead(1, LastName="none"), lead(2, LastName="jansen", ConvertedContactId=CONTACT["Id"]),
               lead(3, LastName="alone", ConvertedContactId=ORPHAN_CONTACT["Id"])]
    assert last_names("SELECT Id FROM Lead ORDER BY ConvertedContact.LastName DESC", records) == [
        "jansen", "alone", "none"]


def test_limit_and_offset_apply_after_ordering():
    query = compile_query("SELECT Id FROM Lead ORDER BY LastName LIMIT 2 OFFSET 1", SCHEMA)
    assert (query.limit, query.offset) == (2, 1)
    assert [r["LastName"] for r in query.run(LEADS, lookup)] == ["de Vries", "o'Brien"]


def test_offset_up_to_2000_is_allowed():
    assert compile_query("SELECT Id FROM Lead OFFSET 2000", SCHEMA).offset == 2000


def test_offset_above_2000_is_refused():
    error = error_of("SELECT Id FROM Lead LIMIT 10 OFFSET 2001")
    assert error.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert str(error) == "Maximum SOQL offset allowed for apiVersion 59.0 is 2000"


def test_run_accepts_any_iterable_of_records():
    assert last_names("SELECT Id FROM Lead WHERE Status = 'Open'", iter(LEADS)) == ["de Vries", "o'Brien"]


# --- errors -------------------------------------------------------------------------------------------


def test_syntax_error_names_the_unexpected_token_with_its_position():
    error = error_of("SELECT Id FORM Lead")
    assert error.error_code == "MALFORMED_QUERY"
    assert str(error) == "\nSELECT Id FORM Lead\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"


def test_unknown_field_error_matches_salesforce():
    error = error_of("SELECT Id, Foo FROM Lead")
    assert error.error_code == "INVALID_FIELD"
    assert str(error) == (
        "\nSELECT Id, Foo FROM Lead\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Lead'. "
        "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
        "Please reference your WSDL or the describe call for the appropriate names."
    )


def test_unknown_field_in_where_and_order_by_is_reported():
    assert "No such column 'Bar' on entity 'Lead'" in str(error_of("SELECT Id FROM Lead WHERE Bar = 1"))
    assert "No such column 'Baz' on entity 'Lead'" in str(error_of("SELECT Id FROM Lead ORDER BY Baz"))


def test_unknown_object_error_matches_salesforce():
    error = error_of("SELECT Id FROM Foo")
    assert error.error_code == "INVALID_TYPE"
    assert str(error).endswith(
        "\nERROR at Row:1:Column:16\nsObject type 'Foo' is not supported. If you are attempting to use a custom "
        "object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
        "for the appropriate names."
    )


def test_unknown_relationship_error():
    error = error_of("SELECT Foo.Name FROM Contact")
    assert error.error_code == "INVALID_FIELD"
    assert "Didn't understand relationship 'Foo' in field path." in str(error)


def test_unknown_field_on_a_related_object_names_that_object():
    assert "No such column 'Nope' on entity 'Account'" in str(error_of("SELECT Account.Nope FROM Contact"))


def test_quoted_value_for_a_datetime_field_is_refused():
    error = error_of("SELECT Id FROM Lead WHERE SystemModstamp >= '2024-01-01T00:00:00Z'")
    assert error.error_code == "INVALID_FIELD"
    assert str(error).endswith(
        "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be "
        "enclosed in quotes"
    )


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("SystemModstamp > 2024-01-01", "field 'SystemModstamp' must be of type dateTime and should not be enclosed"),
        ("ConvertedDate > 2024-01-01T00:00:00Z", "field 'ConvertedDate' must be of type date and should not be"),
        ("NumberOfEmployees = '10'", "field 'NumberOfEmployees' must be of type integer and should not be"),
        ("IsConverted = 'true'", "field 'IsConverted' must be of type boolean and should not be"),
        ("LastName = 5", "field 'LastName' must be of type string and should be enclosed in quotes"),
        ("Id = true", "field 'Id' must be of type id and should be enclosed in quotes"),
        ("Status = TODAY", "field 'Status' must be of type string and should be enclosed in quotes"),
    ],
)
def test_values_of_the_wrong_type_are_refused(condition, message):
    error = error_of(f"SELECT Id FROM Lead WHERE {condition}")
    assert error.error_code == "INVALID_FIELD"
    assert message in str(error)


def test_malformed_id_literal_is_refused():
    error = error_of("SELECT Id FROM Lead WHERE Id = 'abc'")
    assert error.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert str(error).endswith("\ninvalid ID field: abc")


def test_like_on_a_non_text_field_is_refused():
    error = error_of("SELECT Id FROM Lead WHERE Id LIKE '00Q%'")
    assert error.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert str(error).endswith("\ninvalid operator on id field")


def test_mixing_and_or_without_parentheses_is_a_syntax_error():
    error = error_of("SELECT Id FROM Lead WHERE Status = 'a' AND Email = null OR LastName = 'b'")
    assert error.error_code == "MALFORMED_QUERY"
    assert str(error).endswith("unexpected token: 'OR'")


@pytest.mark.parametrize(
    ("soql", "message"),
    [
        ("SELECT Id FROM", "unexpected token: '<EOF>'"),
        ("SELECT FROM Lead", "unexpected token: 'FROM'"),
        ("SELECT Id FROM Lead WHERE", "unexpected token: '<EOF>'"),
        ("SELECT Id FROM Lead WHERE Status IN ()", "unexpected token: ')'"),
        ("SELECT Id FROM Lead ORDER BY Id NULLS", "unexpected token: '<EOF>'"),
        ("SELECT Id FROM Lead LIMIT -1", "unexpected token: '-1'"),
        ("SELECT Id FROM Lead LIMIT 5 WHERE Status = 'a'", "unexpected token: 'WHERE'"),
        ("SELECT Id FROM Lead WHERE Status = Open", "unexpected token: 'Open'"),
        ("SELECT COUNT(), Id FROM Lead", "unexpected token: ','"),
        ("SELECT Id, COUNT() FROM Lead", "unexpected token: 'COUNT'"),
        ("SELECT Id FROM Lead WHERE SystemModstamp = LAST_N_DAYS", "unexpected token: '<EOF>'"),
    ],
)
def test_syntax_errors(soql, message):
    error = error_of(soql)
    assert error.error_code == "MALFORMED_QUERY"
    assert str(error).endswith(message)


@pytest.mark.parametrize(
    ("soql", "message"),
    [
        ("SELECT Id FROM Lead WHERE LastName = 'abc", "line 1:41 mismatched character '<EOF>' expecting '''"),
        ("SELECT Id FROM Lead WHERE Id # 'a'", "line 1:29 no viable alternative at character '#'"),
        (r"SELECT Id FROM Lead WHERE LastName = 'a\qb'", r"Invalid string literal ''a\qb''. Illegal character sequence '\q' in string literal."),
    ],
)
def test_lexical_errors(soql, message):
    error = error_of(soql)
    assert (error.error_code, str(error)) == ("MALFORMED_QUERY", message)


def test_duplicate_selected_field_is_refused():
    error = error_of("SELECT Id, Email, EMAIL FROM Lead")
    assert error.error_code == "INVALID_FIELD"
    assert str(error).endswith("\nduplicate field selected: Email")


def test_count_of_a_field_cannot_be_mixed_with_plain_fields():
    error = error_of("SELECT COUNT(Id), Email FROM Lead")
    assert error.error_code == "MALFORMED_QUERY"
    assert str(error).endswith("Field must be grouped or aggregated: Email")


def test_errors_in_multi_line_queries_point_at_row_and_column():
    error = error_of("SELECT Id\nFROM Lead\nWHERE Nope = 1")
    assert str(error).startswith("\nWHERE Nope = 1\n      ^\nERROR at Row:3:Column:7\nNo such column 'Nope'")


def test_errors_far_into_a_long_row_quote_only_the_nearby_part():
    soql = "SELECT Id, FirstName, LastName, Email, Status, Phone FROM Lead WHERE Nope = 1"
    error = error_of(soql)
    # the excerpt starts at the first word at most 40 characters left of the error, as Salesforce trims
    shown = "Email, Status, Phone FROM Lead WHERE Nope = 1"
    caret = " " * shown.index("Nope") + "^"
    assert str(error).startswith(f"\n{shown}\n{caret}\nERROR at Row:1:Column:70\n")


# --- semi-joins and anti-joins ------------------------------------------------------------------------


def test_semi_join_keeps_records_whose_field_is_in_the_inner_ids():
    assert last_names("SELECT Id FROM Lead WHERE ConvertedContactId IN (SELECT Id FROM Contact WHERE AccountId != null)"
                      ) == ["Bakker"]


def test_anti_join_keeps_records_whose_field_is_not_in_the_inner_ids_and_never_nulls():
    # Bakker's contact has an account; Zwart's has none; de Vries and o'Brien have no contact at all
    assert last_names("SELECT Id FROM Lead WHERE ConvertedContactId NOT IN (SELECT Id FROM Contact "
                      "WHERE AccountId != null)") == ["Zwart"]


def test_nulls_in_the_inner_set_exclude_nothing_and_match_nothing():
    bare = {"Id": make_id("001", 2), "Name": "Bare"}
    query = compile_query("SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)", SCHEMA)
    assert query.run([ACCOUNT, bare], lookup) == [bare]  # the orphan contact's null AccountId is ignored
    # most leads have no ConvertedContactId; that null does not match the orphan contact's null AccountId
    query = compile_query("SELECT Id FROM Contact WHERE AccountId IN (SELECT ConvertedContactId FROM Lead)", SCHEMA)
    assert query.run([CONTACT, ORPHAN_CONTACT], lookup) == []


def test_semi_join_combines_with_other_conditions_and_the_inner_where_follows_relationships():
    soql = ("SELECT Id FROM Lead WHERE Status = 'working' AND ConvertedContactId IN "
            "(SELECT Id FROM Contact WHERE Account.Name = 'acme')")
    assert last_names(soql) == ["Bakker"]
    assert last_names(soql.replace("'working'", "'open'")) == []


def test_the_inner_query_runs_once_per_run_not_per_record():
    schema = Schema()
    query = compile_query("SELECT Id FROM Lead WHERE ConvertedContactId IN (SELECT Id FROM Contact)", schema)
    assert schema.reads == []  # compiling reads no records
    assert [r["LastName"] for r in query.run(LEADS, lookup)] == ["Bakker", "Zwart"]
    assert schema.reads == ["Contact"]


def test_the_inner_query_reads_the_records_of_each_run():
    contacts = [CONTACT]
    query = compile_query("SELECT Id FROM Lead WHERE ConvertedContactId IN (SELECT Id FROM Contact)",
                          Schema({"Contact": contacts}))
    assert [r["LastName"] for r in query.run(LEADS, lookup)] == ["Bakker"]
    contacts.append(ORPHAN_CONTACT)
    assert [r["LastName"] for r in query.run(LEADS, lookup)] == ["Bakker", "Zwart"]


@pytest.mark.parametrize(("soql", "message"), [
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Id IN "
     "(SELECT ConvertedContactId FROM Lead))", "Nesting of semi join sub-selects is not supported"),
    ("SELECT Id FROM Account WHERE Name = 'a' OR Id IN (SELECT AccountId FROM Contact)",
     "Semi join sub-selects are not allowed with the 'OR' operator"),
    ("SELECT Id FROM Account WHERE (Name = 'a' AND Id IN (SELECT AccountId FROM Contact)) AND Name != null",
     "Semi join sub-selects are only allowed at the top level WHERE expressions and not in nested WHERE "
     "expressions."),
    ("SELECT Id FROM Account WHERE NOT Id IN (SELECT AccountId FROM Contact)",
     "Semi join sub-selects are only allowed at the top level WHERE expressions"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact) AND Id IN (SELECT AccountId FROM Contact) "
     "AND Id NOT IN (SELECT AccountId FROM Contact)", "Maximum 2 semi join sub-selects are allowed"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT LastName FROM Contact)",
     "semi join sub selects can only query id fields, cannot use: 'LastName'"),
    ("SELECT Id FROM Account WHERE Name IN (SELECT AccountId FROM Contact)",
     "semi join sub selects can only be compared to id fields, cannot use: 'Name'"),
    ("SELECT Id FROM Contact WHERE Id IN (SELECT Id FROM Contact)",
     "The inner and outer selects should not be on the same object type"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId, Id FROM Contact)", "unexpected token: ','"),
    ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact ORDER BY Id)", "unexpected token: 'ORDER'"),
])
def test_semi_joins_salesforce_refuses(soql, message):
    error = error_of(soql)
    assert error.error_code == "MALFORMED_QUERY" and message in str(error)


def test_two_semi_joins_at_the_top_level_are_allowed():
    soql = ("SELECT Id FROM Lead WHERE ConvertedContactId IN (SELECT Id FROM Contact) "
            "AND ConvertedContactId NOT IN (SELECT Id FROM Contact WHERE AccountId != null)")
    assert last_names(soql) == ["Zwart"]


# --- parent-to-child subqueries --------------------------------------------------------------------

BARE_ACCOUNT = {"Id": make_id("001", 2), "Name": "Bare", "Industry": None, "Rating__c": None}


def contact(number: int, last_name: str, account: dict | None = ACCOUNT, email: str | None = None) -> dict:
    return {"Id": make_id("003", number), "LastName": last_name, "Email": email,
            "AccountId": account and account["Id"], "Birthdate": None}


def projected(soql: str, parents: list[dict], schema: Schema = SCHEMA) -> list[dict]:
    query = compile_query(soql, schema)
    return [query.project(record, lookup) for record in query.run(parents, lookup)]


def test_child_subquery_nests_the_children_or_null_in_select_order():
    rows = projected("SELECT Name, (SELECT LastName FROM Contacts), Id FROM Account ORDER BY Name",
                     [BARE_ACCOUNT, ACCOUNT])
    assert list(rows[0]) == ["attributes", "Name", "Contacts", "Id"]
    assert rows[0]["Contacts"] == {"totalSize": 1, "done": True, "records": [{
        "attributes": {"type": "Contact", "url": f"/services/data/v59.0/sobjects/Contact/{CONTACT['Id']}"},
        "LastName": "Jansen",
    }]}
    assert rows[1]["Name"] == "Bare" and rows[1]["Contacts"] is None


@pytest.mark.parametrize(("subquery", "key"), [
    ("(SELECT Id FROM contacts)", "contacts"),
    ("(SELECT Id FROM Account.Contacts)", "Contacts"),
    ("(SELECT c.Id FROM a.Contacts c)", "Contacts"),
])
def test_child_list_key_is_the_relationship_as_written(subquery, key):
    [row] = projected(f"SELECT Id, {subquery} FROM Account a", [ACCOUNT])
    assert row[key]["records"][0]["Id"] == CONTACT["Id"]


def test_child_subquery_filters_orders_and_limits_per_parent():
    other = {**BARE_ACCOUNT, "Name": "Other"}
    contacts = [contact(11, "Smit", email="s@x.nl"), contact(12, "Bos", email="b@x.nl"), contact(13, "Aa"),
                contact(14, "Vos", email="v@x.nl"), contact(15, "Kok", other, "k@x.nl"),
                contact(16, "Eik", other, "e@x.nl")]
    schema = Schema({"Contact": contacts})
    rows = projected("SELECT Name, (SELECT LastName FROM Contacts WHERE Email != null ORDER BY LastName DESC LIMIT 2) "
                     "FROM Account ORDER BY Name", [ACCOUNT, other], schema)
    assert [[c["LastName"] for c in row["Contacts"]["records"]] for row in rows] == [["Vos", "Smit"], ["Kok", "Eik"]]
    assert rows[0]["Contacts"]["totalSize"] == 2


def test_child_records_may_select_their_own_relationship_fields():
    [row] = projected("SELECT Id, (SELECT LastName, Account.Name FROM Contacts) FROM Account", [ACCOUNT])
    assert row["Contacts"]["records"][0]["Account"]["Name"] == "Acme"


def test_children_are_indexed_once_per_run_for_all_parents():
    schema = Schema()
    query = compile_query("SELECT Id, (SELECT Id FROM ConvertedLeads) FROM Contact", schema)
    matching = query.run([CONTACT, ORPHAN_CONTACT], lookup)
    assert schema.reads == ["Lead"]
    assert [[lead["LastName"] for lead in record["ConvertedLeads"]] for record in matching] == [["Bakker"], ["Zwart"]]


def test_child_lists_are_attached_to_copies_not_to_the_stored_records():
    query = compile_query("SELECT Id, (SELECT Id FROM Contacts) FROM Account", SCHEMA)
    [record] = query.run([ACCOUNT], lookup)
    assert record["Contacts"] == [CONTACT] and "Contacts" not in ACCOUNT


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT Id, (SELECT Id FROM Leads) FROM Account", "INVALID_TYPE",
     "Didn't understand relationship 'Leads' in FROM part of query call. If you are attempting to use a custom "
     "relationship, be sure to append the '__r' after the custom relationship name."),
    ("SELECT Id, (SELECT Id FROM Lead.Contacts) FROM Account", "INVALID_TYPE",
     "Didn't understand relationship 'Lead.Contacts' in FROM part of query call."),
    ("SELECT Id, (SELECT Id, (SELECT Id FROM ConvertedLeads) FROM Contacts) FROM Account", "MALFORMED_QUERY",
     "SOQL statements cannot query aggregate relationships more than 1 level away from the root entity object."),
    ("SELECT Id, (SELECT COUNT(Id) FROM Contacts) FROM Account", "MALFORMED_QUERY",
     "only root queries support aggregate expressions"),
    ("SELECT Name, COUNT(Id), (SELECT Id FROM Contacts) FROM Account GROUP BY Name", "MALFORMED_QUERY",
     "Field must be grouped or aggregated: Contacts"),
    ("SELECT Id, (SELECT Nope FROM Contacts) FROM Account", "INVALID_FIELD",
     "No such column 'Nope' on entity 'Contact'"),
])
def test_child_subqueries_salesforce_refuses(soql, code, message):
    error = error_of(soql)
    assert error.error_code == code and message in str(error)


# --- FIELDS() ---------------------------------------------------------------------------------------


def test_fields_all_standard_and_custom_expand_to_the_objects_fields():
    assert compile_query("SELECT FIELDS(ALL) FROM Account LIMIT 200", SCHEMA).select_paths == [
        ("Id",), ("Name",), ("Industry",), ("Rating__c",)]
    assert compile_query("SELECT FIELDS(STANDARD) FROM Account", SCHEMA).select_paths == [
        ("Id",), ("Name",), ("Industry",)]
    assert compile_query("select fields(custom) FROM Account LIMIT 1", SCHEMA).select_paths == [("Rating__c",)]


def test_fields_combines_with_other_items_and_projects_like_them():
    query = compile_query("SELECT Name, FIELDS(CUSTOM), (SELECT FIELDS(STANDARD) FROM Contacts) FROM Account LIMIT 5",
                          SCHEMA)
    [record] = query.run([ACCOUNT], lookup)
    row = query.project(record, lookup)
    assert list(row) == ["attributes", "Name", "Rating__c", "Contacts"]
    assert row["Rating__c"] == 4.5
    assert {k: v for k, v in row["Contacts"]["records"][0].items() if k != "attributes"} == {
        name: CONTACT.get(name) for name in _FIELDS["Contact"]}


@pytest.mark.parametrize("soql", [
    "SELECT FIELDS(ALL) FROM Account",
    "SELECT FIELDS(CUSTOM) FROM Account LIMIT 201",
    "SELECT Id, (SELECT FIELDS(ALL) FROM Contacts) FROM Account LIMIT 10",
])
def test_fields_all_and_custom_need_a_limit_of_at_most_200(soql):
    error = error_of(soql)
    assert (error.error_code, str(error)) == (
        "MALFORMED_QUERY", "The SOQL FIELDS function must have a LIMIT of at most 200")


def test_a_field_selected_again_through_fields_is_a_duplicate():
    error = error_of("SELECT Id, FIELDS(STANDARD) FROM Account")
    assert error.error_code == "INVALID_FIELD" and str(error).endswith("\nduplicate field selected: Id")


def test_fields_takes_only_all_standard_or_custom():
    error = error_of("SELECT FIELDS(MINE) FROM Account LIMIT 1")
    assert error.error_code == "MALFORMED_QUERY" and str(error).endswith("unexpected token: 'MINE'")


# --- benchmark (not a unit test) -------------------------------------------------------------------


def _benchmark(record_count: int) -> None:
    import random
    import time

    records = [
        lead(
            number,
            Email=f"user{number}@example.com",
            LastName=f"Name {number}",
            SystemModstamp=f"2024-{1 + number % 12:02d}-{1 + number % 28:02d}T{number % 24:02d}:00:00.000+0000",
            Sync_to_Deployteq__c=number % 2 == 0,
        )
        for number in range(record_count)
    ]
    soql = (
        "SELECT Id, Email, FirstName, LastName, Status, SystemModstamp FROM Lead "
        "WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND Sync_to_Deployteq__c = true ORDER BY SystemModstamp, Id"
    )
    started = time.perf_counter()
    query = compile_query(soql, SCHEMA)
    print(f"compile: {(time.perf_counter() - started) * 1000:.2f} ms")
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    for layout, data in (("insertion order", records), ("shuffled in memory", shuffled)):
        wall, cpu = [], []
        for _ in range(5):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            matching = query.run(data, lookup)
            wall.append(time.perf_counter() - wall_start)
            cpu.append(time.process_time() - cpu_start)
        print(
            f"filter + order {record_count} records ({layout}) -> {len(matching)} matches: "
            f"wall best {min(wall) * 1000:.0f} ms / median {sorted(wall)[2] * 1000:.0f} ms, "
            f"cpu best {min(cpu) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Time one incremental SOQL query over N stored records.")
    parser.add_argument("--records", type=int, default=100_000)
    _benchmark(parser.parse_args().records)
