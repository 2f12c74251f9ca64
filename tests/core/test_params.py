"""core.params.text_array: any list of text arrives in PostgreSQL as the same text[] (PostgreSQL at pg_url)."""

import psycopg
import pytest

from deployteq_salesforce.core.params import text_array

IDS = [f"00Q{n:015d}" for n in range(5000)]


@pytest.mark.parametrize("values", [
    [],
    ["00Q000000000001AAA"],
    IDS,
    ["NULL", "null", "Null"],  # quoted in the literal: text, never SQL NULL
    ["é1", "ß", "日本"],  # letters beyond ASCII
    ['a"b', "c,d", "e f", "g\\h", "", "{x}", " lead "],  # needs quoting: psycopg's own list
])
def test_text_array_arrives_as_the_same_list(pg_url, values):
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT %s::text[]", (text_array(values),)).fetchone()[0] == values


def test_ids_go_as_one_literal_other_text_as_a_list():
    assert text_array(["001A", "003B"]) == '{"001A","003B"}'
    assert text_array([]) == "{}"
    assert text_array(["a b", "c"]) == ["a b", "c"]
