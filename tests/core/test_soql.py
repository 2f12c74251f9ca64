"""SOQL text: escaping (incl. injection attempts), the incremental window, keyset and Id chunks."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from deployteq_salesforce.core.soql import (
    SOQL_MAX_LENGTH,
    count_query,
    ids_query,
    incremental_query,
    keyset_after,
    quote_literal,
    select_list,
    validate_identifier,
)

UTC = timezone.utc
SINCE = datetime(2024, 1, 1, tzinfo=UTC)
UNTIL = datetime(2024, 1, 2, 8, 30, 15, tzinfo=UTC)


def unquote_soql(literal: str) -> str:
    """Decode a SOQL string literal the way Salesforce does (reference for the escaping tests)."""
    assert literal[0] == literal[-1] == "'"
    body, out, i = literal[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
    while i < len(body):
        char = body[i]
        if char == "'":
            raise AssertionError(f"unescaped quote at {i} in {literal!r}")
        if char == "\\":
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(simple[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


# ------------------------------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("O'Brien", r"'O\'Brien'"),
        ("back\\slash", r"'back\\slash'"),
        ("line\nbreak\r\ttab", r"'line\nbreak\r\ttab'"),
        ("bell\x07nul\x00", r"'bell\u0007nul\u0000'"),
        ('say "hi"', "'say \"hi\"'"),
        ("100% _x_", "'100% _x_'"),  # LIKE wildcards are only special in LIKE; = compares literally
        ("", "''"),
        ("Ærø €", "'Ærø €'"),
    ],
)
def test_strings_are_quoted_and_escaped(value, expected):
    assert quote_literal(value) == expected
    assert unquote_soql(expected) == value


@pytest.mark.parametrize(
    "attack",
    [
        "x' OR Id != null OR Name = 'y",
        "x\\' OR Id != null --",
        "\\",
        "'",
        "x'; DELETE FROM Lead; '",
        "x\\\\' OR '1'='1",
        "a' AND Email LIKE '%",
    ],
)
def test_injection_attempts_stay_one_literal(attack):
    literal = quote_literal(attack)
    assert unquote_soql(literal) == attack  # decodes back to exactly the input: nothing escaped the quotes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (1.5, "1.5"),
        (1e-7, "0.0000001"),
        (Decimal("12.340"), "12.340"),
        (Decimal("1E+3"), "1000"),
        (date(2024, 2, 29), "2024-02-29"),
        (datetime(2024, 1, 1, tzinfo=UTC), "2024-01-01T00:00:00Z"),
        (datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2))), "2024-01-01T00:00:00Z"),
        (datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC), "2024-01-01T00:00:00.123Z"),
    ],
)
def test_other_literals(value, expected):
    assert quote_literal(value) == expected


def test_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="has no time zone"):
        quote_literal(datetime(2024, 1, 1))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ValueError, match="cannot be written in SOQL"):
        quote_literal(value)


def test_unsupported_types_are_refused():
    with pytest.raises(TypeError, match="cannot write a list as a SOQL literal"):
        quote_literal(["a"])


# ----------------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("name", ["Id", "Email", "Sync_to_Deployteq__c", "ns__Field__c", "a1"])
def test_valid_identifiers(name):
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", ["", "Id,Name", "Id FROM User --", "1a", "Account.Name", "Na'me", "x" * 81, None])
def test_invalid_identifiers(name):
    with pytest.raises(ValueError, match="is not a valid Salesforce API name"):
        validate_identifier(name)


def test_select_list_deduplicates_case_insensitively_and_puts_required_last():
    assert select_list(["Email", "email", "Id", "FirstName"], required=["SystemModstamp", "Id"]) == [
        "Email", "FirstName", "SystemModstamp", "Id",
    ]


# ----------------------------------------------------------------------------- incremental query


def test_incremental_query_text():
    assert incremental_query("Lead", ["Email", "FirstName"], since=SINCE, until=UNTIL) == (
        "SELECT Email, FirstName, SystemModstamp, Id FROM Lead "
        "WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND SystemModstamp < 2024-01-02T08:30:15Z "
        "ORDER BY SystemModstamp, Id"
    )


def test_incremental_query_with_flag_and_deleted_marker():
    assert incremental_query(
        "Contact", ["Id", "Email", "SystemModstamp"], since=SINCE, until=UNTIL,
        sync_flag_field="Sync_to_Deployteq__c", include_deleted_marker=True,
    ) == (
        "SELECT Email, SystemModstamp, Id, IsDeleted FROM Contact "
        "WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND SystemModstamp < 2024-01-02T08:30:15Z "
        "AND Sync_to_Deployteq__c = true ORDER BY SystemModstamp, Id"
    )


def test_initial_load_has_no_lower_bound():
    assert incremental_query("Lead", ["Email"], since=None, until=UNTIL) == (
        "SELECT Email, SystemModstamp, Id FROM Lead WHERE SystemModstamp < 2024-01-02T08:30:15Z "
        "ORDER BY SystemModstamp, Id"
    )


def test_resume_after_a_keyset_position():
    query = incremental_query(
        "Lead", ["Email"], since=SINCE, until=UNTIL, after=(datetime(2024, 1, 1, 12, tzinfo=UTC), "00Q000000000009AAA")
    )
    assert query == (
        "SELECT Email, SystemModstamp, Id FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00Z "
        "AND (SystemModstamp > 2024-01-01T12:00:00Z OR (SystemModstamp = 2024-01-01T12:00:00Z "
        "AND Id > '00Q000000000009AAA')) AND SystemModstamp < 2024-01-02T08:30:15Z ORDER BY SystemModstamp, Id"
    )


def test_without_order_and_with_limit():
    assert incremental_query("Lead", ["Email"], since=SINCE, until=UNTIL, order=False, limit=500) == (
        "SELECT Email, SystemModstamp, Id FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00Z "
        "AND SystemModstamp < 2024-01-02T08:30:15Z LIMIT 500"
    )


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_limit_must_be_positive_whole(limit):
    with pytest.raises(ValueError, match="limit must be a positive whole number"):
        incremental_query("Lead", ["Email"], since=SINCE, until=UNTIL, limit=limit)


def test_window_must_not_be_reversed():
    with pytest.raises(ValueError, match="the window starts .* after it ends"):
        incremental_query("Lead", ["Email"], since=UNTIL, until=SINCE)


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"sobject": "Lead WHERE Id != null"}, "object"),
        ({"fields": ["Email, (SELECT Id FROM Contacts)"]}, "field"),
        ({"sync_flag_field": "Flag__c = false OR Id"}, "sync flag field"),
    ],
)
def test_incremental_query_validates_identifiers_again(kwargs, what):
    args = {"sobject": "Lead", "fields": ["Email"], "since": SINCE, "until": UNTIL, **kwargs}
    with pytest.raises(ValueError, match=f"^{what} name .* is not a valid Salesforce API name"):
        incremental_query(**args)


def test_naive_window_bounds_are_refused():
    with pytest.raises(ValueError, match="has no time zone"):
        incremental_query("Lead", ["Email"], since=None, until=datetime(2024, 1, 1))


def test_count_query_uses_the_same_window():
    assert count_query("Lead", since=SINCE, until=UNTIL, sync_flag_field="Sync_to_Deployteq__c") == (
        "SELECT COUNT() FROM Lead WHERE SystemModstamp >= 2024-01-01T00:00:00Z "
        "AND SystemModstamp < 2024-01-02T08:30:15Z AND Sync_to_Deployteq__c = true"
    )


def test_keyset_after_text():
    assert keyset_after(datetime(2024, 5, 1, 9, 0, 1, tzinfo=UTC), "003000000000001AAA") == (
        "(SystemModstamp > 2024-05-01T09:00:01Z OR (SystemModstamp = 2024-05-01T09:00:01Z AND Id > '003000000000001AAA'))"
    )


def test_keyset_after_accepts_a_15_character_id():
    assert "Id > '003000000000001'" in keyset_after(SINCE, "003000000000001")


@pytest.mark.parametrize("bad", ["x' OR Id != '", "003000000000001AA", "", None])
def test_keyset_after_only_takes_salesforce_ids(bad):
    with pytest.raises(ValueError, match="is not a Salesforce Id"):
        keyset_after(SINCE, bad)


# ------------------------------------------------------------------------------------------- ids


def make_ids(n, prefix="00Q"):
    return [f"{prefix}{i:012d}AAA" for i in range(n)]


def ids_in(query: str) -> list[str]:
    return re.findall(r"'([A-Za-z0-9]{15,18})'", query)


def test_ids_query_text():
    assert list(ids_query("Lead", make_ids(2), ["Email", "Id"])) == [
        "SELECT Email, Id FROM Lead WHERE Id IN ('00Q000000000000AAA', '00Q000000000001AAA')"
    ]


def test_ids_query_for_no_ids_yields_nothing():
    assert list(ids_query("Lead", [], ["Email"])) == []


def test_ids_query_deduplicates():
    queries = list(ids_query("Lead", make_ids(3) + make_ids(3), ["Id"]))
    assert [ids_in(q) for q in queries] == [make_ids(3)]


def test_ids_query_chunks_under_the_soql_limit_for_bulk():
    ids = make_ids(12_000)
    queries = list(ids_query("Lead", ids, ["Id", "Email", "FirstName"], max_url_length=None))
    assert len(queries) == 3  # 12,000 ids x 22 chars ~ 264,000 chars
    assert all(len(q) <= SOQL_MAX_LENGTH for q in queries)
    assert max(len(q) for q in queries) > SOQL_MAX_LENGTH - 30  # chunks are filled, not tiny
    assert [i for q in queries for i in ids_in(q)] == ids


def test_ids_query_chunks_for_a_rest_get_by_default():
    ids = make_ids(2000)
    queries = list(ids_query("Lead", ids, ["Id", "Email"]))
    assert all(len(urlencode({"q": q})) <= 12_000 for q in queries)
    assert len(queries) == -(-2000 * 28 // 12_000)  # each id costs 28 URL-encoded chars
    assert [i for q in queries for i in ids_in(q)] == ids


def test_ids_query_respects_a_custom_length():
    queries = list(ids_query("Lead", make_ids(10), ["Id"], max_length=100, max_url_length=None))
    assert all(len(q) <= 100 for q in queries)
    assert [i for q in queries for i in ids_in(q)] == make_ids(10)


def test_ids_query_refuses_non_ids():
    with pytest.raises(ValueError, match="is not a Salesforce Id"):
        list(ids_query("Lead", ["00Q000000000001AAA", "') OR Id != ('"], ["Id"]))


def test_ids_query_refuses_a_field_list_longer_than_the_limit():
    with pytest.raises(ValueError, match="the field list alone is longer than the query length limit"):
        list(ids_query("Lead", make_ids(1), [f"Field{i}__c" for i in range(20)], max_length=200))
