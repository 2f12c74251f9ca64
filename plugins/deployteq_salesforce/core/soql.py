"""Build SOQL text safely: identifiers are validated, literals escaped (no SOQL injection).

Field and object names must be Salesforce API names (letters, digits, underscores), so they
never need quoting; every value goes through :func:`quote_literal`.

The incremental cursor (R2) is ``SystemModstamp`` with an ``Id`` tie-break: queries are ordered by
``SystemModstamp, Id`` and :func:`keyset_after` continues strictly after a (stamp, Id) pair, so
thousands of records sharing one timestamp are neither skipped nor read in a loop.

No Airflow import here.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote_plus

from deployteq_salesforce.core.config_checks import SALESFORCE_NAME, SALESFORCE_NAME_MAX

# Salesforce's limit on one SOQL statement (Bulk API 2.0 sends it in a POST body)
SOQL_MAX_LENGTH = 100_000
# A REST query is a GET: URI + headers must stay under 16,384 bytes, so keep the encoded
# ``q=...`` well below that (room for the path, the session header and the rest).
REST_QUERY_URL_BUDGET = 12_000
SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
CURSOR_FIELD = "SystemModstamp"

# SOQL escape sequences (Quoted String Escape Sequences in the SOQL reference)
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r"[\\'\x00-\x1f\x7f]")


def validate_identifier(name: str, what: str = "field") -> str:
    """Return ``name`` if it is a Salesforce API name, else raise ``ValueError`` (it never reaches SOQL)."""
    if not isinstance(name, str) or len(name) > SALESFORCE_NAME_MAX or not SALESFORCE_NAME.match(name):
        raise ValueError(f"{what} name {name!r} is not a valid Salesforce API name")
    return name


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def format_datetime(value: datetime) -> str:
    """An aware datetime as a SOQL datetime literal in UTC, e.g. ``2024-01-01T00:00:00Z`` (ms kept if any)."""
    if value.tzinfo is None:
        raise ValueError(f"datetime {value!r} has no time zone; SOQL needs an instant (use UTC)")
    utc = value.astimezone(timezone.utc)
    millis = utc.microsecond // 1000
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def quote_literal(value: Any) -> str:
    """A Python value as a SOQL literal: strings quoted and escaped, datetimes/dates/numbers/booleans bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be written in SOQL")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} cannot be written in SOQL")
        return format(value, "f")
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + _NEEDS_ESCAPE.sub(_escape_char, value) + "'"
    raise TypeError(f"cannot write a {type(value).__name__} as a SOQL literal")


def select_list(fields: Iterable[str], *, required: Sequence[str] = ()) -> list[str]:
    """Validated fields, de-duplicated case-insensitively (SOQL rejects a field selected twice),
    with ``required`` appended at the end unless already present."""
    chosen: dict[str, str] = {}
    for name in [*fields, *required]:
        validate_identifier(name)
        chosen.setdefault(name.lower(), name)
    required_lower = {r.lower() for r in required}
    # keep the caller's order, but the required ones last and in the given order
    head = [n for k, n in chosen.items() if k not in required_lower]
    return head + [chosen[r.lower()] for r in required]


def keyset_after(modstamp: datetime, last_id: str) -> str:
    """Condition for "strictly after (modstamp, last_id)" in ``ORDER BY SystemModstamp, Id`` order."""
    stamp = format_datetime(modstamp)
    record_id = quote_literal(_check_id(last_id))
    return f"({CURSOR_FIELD} > {stamp} OR ({CURSOR_FIELD} = {stamp} AND Id > {record_id}))"


def _window_conditions(
    *,
    since: datetime | None,
    until: datetime,
    sync_flag_field: str | None,
    after: tuple[datetime, str] | None,
) -> list[str]:
    if since is not None and since > until:
        raise ValueError(f"the window starts ({since.isoformat()}) after it ends ({until.isoformat()})")
    conditions = []
    if since is not None:
        conditions.append(f"{CURSOR_FIELD} >= {format_datetime(since)}")
    if after is not None:
        conditions.append(keyset_after(*after))
    conditions.append(f"{CURSOR_FIELD} < {format_datetime(until)}")
    if sync_flag_field:
        conditions.append(f"{validate_identifier(sync_flag_field, 'sync flag field')} = true")
    return conditions


def incremental_query(
    sobject: str,
    fields: Iterable[str],
    *,
    since: datetime | None,
    until: datetime,
    sync_flag_field: str | None = None,
    include_deleted_marker: bool = False,
    after: tuple[datetime, str] | None = None,
    order: bool = True,
    limit: int | None = None,
) -> str:
    """``SELECT f1, f2, SystemModstamp, Id[, IsDeleted] FROM T WHERE SystemModstamp >= since
    [AND keyset_after(...)] AND SystemModstamp < until [AND Flag = true] ORDER BY SystemModstamp, Id``.

    ``since=None`` reads from the beginning (initial load).  ``until`` bounds the window at the
    run's start so records changed during the run wait for the next one.  ``after`` resumes behind
    a (stamp, Id) pair.  ``order=False`` leaves out ORDER BY (for Bulk API 2.0 jobs, whose
    results are re-ordered by the caller when needed).
    """
    validate_identifier(sobject, "object")
    required = [CURSOR_FIELD, "Id"] + (["IsDeleted"] if include_deleted_marker else [])
    columns = select_list(fields, required=required)
    where = " AND ".join(_window_conditions(since=since, until=until, sync_flag_field=sync_flag_field, after=after))
    query = f"SELECT {', '.join(columns)} FROM {sobject} WHERE {where}"
    if order:
        query += f" ORDER BY {CURSOR_FIELD}, Id"
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive whole number, not {limit!r}")
        query += f" LIMIT {limit}"
    return query


def count_query(
    sobject: str,
    *,
    since: datetime | None,
    until: datetime,
    sync_flag_field: str | None = None,
    after: tuple[datetime, str] | None = None,
) -> str:
    """``SELECT COUNT() FROM T WHERE <the same window>``: decides REST paging vs Bulk API 2.0."""
    validate_identifier(sobject, "object")
    where = " AND ".join(_window_conditions(since=since, until=until, sync_flag_field=sync_flag_field, after=after))
    return f"SELECT COUNT() FROM {sobject} WHERE {where}"


def _check_id(record_id: Any) -> str:
    if not isinstance(record_id, str) or not SALESFORCE_ID.match(record_id):
        raise ValueError(f"{record_id!r} is not a Salesforce Id (15 or 18 letters and digits)")
    return record_id


def ids_query(
    sobject: str,
    ids: Iterable[str],
    fields: Iterable[str],
    *,
    max_length: int = SOQL_MAX_LENGTH,
    max_url_length: int | None = REST_QUERY_URL_BUDGET,
) -> Iterator[str]:
    """Yield ``SELECT <fields> FROM T WHERE Id IN (...)`` queries covering ``ids`` (de-duplicated).

    Each query stays within ``max_length`` characters (Salesforce's SOQL limit) and, unless
    ``max_url_length`` is None, its URL-encoded ``q=`` parameter within ``max_url_length`` -- a REST
    query is a GET whose URI must fit 16 KB.  Pass ``max_url_length=None`` for Bulk API 2.0 jobs.
    """
    validate_identifier(sobject, "object")
    columns = select_list(fields, required=["Id"])
    prefix = f"SELECT {', '.join(columns)} FROM {sobject} WHERE Id IN ("
    suffix = ")"
    base_len = len(prefix) + len(suffix)
    base_url = len("q=") + len(quote_plus(prefix)) + len(quote_plus(suffix))
    if base_len >= max_length or (max_url_length is not None and base_url >= max_url_length):
        raise ValueError("the field list alone is longer than the query length limit")

    chunk: list[str] = []
    length, url_length = base_len, base_url
    seen: set[str] = set()
    for record_id in ids:
        _check_id(record_id)
        if record_id in seen:
            continue
        seen.add(record_id)
        literal = quote_literal(record_id)
        separator = ", " if chunk else ""
        add, add_url = len(separator) + len(literal), len(quote_plus(separator + literal))
        fits = length + add <= max_length and (max_url_length is None or url_length + add_url <= max_url_length)
        if not fits:
            if not chunk:
                raise ValueError(f"one Id does not fit the query length limit ({record_id!r})")
            yield prefix + ", ".join(chunk) + suffix
            chunk = []
            length, url_length = base_len, base_url
            add, add_url = len(literal), len(quote_plus(literal))
        chunk.append(literal)
        length += add
        url_length += add_url
    if chunk:
        yield prefix + ", ".join(chunk) + suffix
