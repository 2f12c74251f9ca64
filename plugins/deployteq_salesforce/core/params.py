"""Query parameters for large lists (psycopg only: no Airflow, so command-line tools can import it)."""

from __future__ import annotations

from collections.abc import Sequence


def text_array(values: Sequence[str]) -> str | list[str]:
    """``values`` as the parameter of ``%s::text[]``: Salesforce ids (letters and digits) as one array literal.

    psycopg dumps a list parameter element by element in Python and the server reads it back element by element:
    5.1 ms per 5,000 ids against 1.2 ms for one literal, several arrays per batch of every flow.  Other text (with
    quotes, commas, spaces ...) is returned as a list, which psycopg quotes itself."""
    if not values:
        return "{}"
    if all(map(str.isalnum, values)):  # nothing to escape; quoted, so that no id can read as NULL
        return '{"' + '","'.join(values) + '"}'
    return list(values)
