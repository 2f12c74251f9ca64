"""Datamodel tables from webhook definitions (R10): DDL planning and JSON -> row conversion.

Pure: no database and no Airflow.  ``store.py`` turns what this plans into DDL and runs it.

- :func:`table_definition` reduces a webhook to what its table looks like (stored in the registry
  table ``datamodel_table`` when applied).
- :func:`plan_table` compares the applied definition with a new one and returns the DDL that gets
  there, or raises :class:`DestructiveChange` when that would lose data: a dropped column, a
  narrowed type (e.g. text -> integer, a shorter ``max_length``), a dropped customer relation, or a
  changed de-duplication key.  Adding columns and widening types are applied.
- :func:`convert_record` turns one JSON object (a pushed object or a Salesforce record) into a row,
  or a list of :class:`FieldProblem` naming each field that does not fit; :func:`convert_records` does
  the same for a batch of records, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.object_links.config import CUSTOMER_COLUMN, Webhook
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# type changes that keep every value (besides "same type"); text may also get longer
WIDENINGS = {
    ("integer", "decimal"),
    ("integer", "text"),
    ("decimal", "text"),
    ("boolean", "text"),
    ("date", "text"),
    ("datetime", "text"),
}


class DestructiveChange(ConfigurationError):
    """A webhook definition change that would lose data; nothing of it was applied."""

    def __init__(self, table: str, problems: list[str]) -> None:
        self.table = table
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(
            f"The new definition of datamodel {table!r} would lose data, so it was NOT applied:\n{lines}\n"
            "Restore the column(s) in the webhook definition, or create a new datamodel table and move the data yourself."
        )


# -- definitions and DDL ---------------------------------------------------------------------------------


def table_definition(webhook: Webhook) -> dict:
    """The table shape a webhook asks for, as stored in the registry (JSON)."""
    return {
        "columns": [{"name": f.column, "type": f.type, "max_length": f.max_length} for f in webhook.fields],
        "key": webhook.key_columns,
        "relation": bool(webhook.customer_relation),
    }


def _label(column: dict) -> str:
    return f"{column['type']}({column['max_length']})" if column.get("max_length") else column["type"]


@dataclass(frozen=True)
class TableChange:
    """One step from the applied table to the new definition; ``store.py`` turns it into DDL.

    ``kind``: ``create_table``, ``touch_trigger``, ``relation_index``, ``add_column``, ``widen_column``
    or ``add_relation``; ``column`` is the column definition for the column steps.
    """

    kind: str
    description: str
    column: dict | None = None


def _create_steps(table: str, new: dict) -> list[TableChange]:
    steps = [
        TableChange("create_table", f"create table {table}"),
        TableChange("touch_trigger", f"touch updated_at of {table} on change"),
    ]
    if new["relation"]:
        steps.append(_relation_index(table))
    return steps


def _relation_index(table: str) -> TableChange:
    return TableChange("relation_index", f"index {table}.{CUSTOMER_COLUMN}")


def constraint_name(table: str, suffix: str) -> str:
    return f"{table[: 62 - len(suffix)]}_{suffix}"


def _widening_problem(name: str, old: dict, new: dict) -> str | None:
    if old["type"] == new["type"]:
        if old["type"] != "text":
            return None
        old_len, new_len = old.get("max_length"), new.get("max_length")
        if new_len is not None and (old_len is None or new_len < old_len):
            return f"column {name!r} would shrink from {old_len or 'unlimited'} to {new_len} characters"
        return None
    if (old["type"], new["type"]) in WIDENINGS:
        if new["type"] == "text" and new.get("max_length"):
            return f"column {name!r} would become text limited to {new['max_length']} characters; leave max_length out"
        return None
    return f"column {name!r} would change from {old['type']} to {new['type']}, which cannot hold every value"


def plan_table(table: str, applied: dict | None, new: dict) -> list[TableChange]:
    """The DDL that turns the ``applied`` definition (None: no table yet) into ``new``; [] when equal."""
    if applied is None:
        return _create_steps(table, new)
    old_columns = {c["name"]: c for c in applied["columns"]}
    new_columns = {c["name"]: c for c in new["columns"]}
    problems = [f"column {name!r} would be dropped" for name in old_columns if name not in new_columns]
    if applied["key"] != new["key"]:
        problems.append(f"the de-duplication key would change from {applied['key']} to {new['key']}")
    if applied["relation"] and not new["relation"]:
        problems.append(f"the customer relation would be removed (column {CUSTOMER_COLUMN!r} dropped)")
    for name, column in new_columns.items():
        if name in old_columns:
            problem = _widening_problem(name, old_columns[name], column)
            if problem:
                problems.append(problem)
    if problems:
        raise DestructiveChange(table, problems)
    steps = []
    for name, column in new_columns.items():
        old = old_columns.get(name)
        if old is None:
            steps.append(TableChange("add_column", f"add column {table}.{name}", column))
        elif (old["type"], old.get("max_length")) != (column["type"], column.get("max_length")):
            steps.append(TableChange("widen_column", f"widen column {table}.{name} from {_label(old)} to {_label(column)}", column))
    if new["relation"] and not applied["relation"]:
        steps.append(TableChange("add_relation", f"add customer relation {table}.{CUSTOMER_COLUMN}"))
        steps.append(_relation_index(table))
    return steps


# -- JSON -> row -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    field: str  # the JSON field
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class _Unfit(ValueError):
    pass


def _to_text(value: Any, max_length: int | None) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (str, int, float, Decimal)):
        text = str(value)
    else:
        raise _Unfit(f"expected text, got a JSON {type(value).__name__}")
    if "\x00" in text:
        raise _Unfit("text contains a NUL character")
    if max_length is not None and len(text) > max_length:
        raise _Unfit(f"{len(text)} characters, the column holds at most {max_length}")
    return text


def _to_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise _Unfit("expected a whole number, got true/false")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    else:
        raise _Unfit(f"expected a whole number, got {value!r}")
    if not BIGINT_MIN <= number <= BIGINT_MAX:
        raise _Unfit(f"{number} is out of range for a 64-bit integer")
    return number


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Unfit(f"expected a number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _Unfit(f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise _Unfit(f"{value!r} is not a finite number")
    return number


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _Unfit(f"expected true or false, got {value!r}")


def _to_date(value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _Unfit(f"expected a date YYYY-MM-DD, got {value!r}")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if "T" in text or " " in text:
            try:
                return parse_salesforce_datetime(text, naive_is_utc=True)
            except ValueError:
                pass
    raise _Unfit(f"expected a date-time like 2024-01-31T12:00:00.000+0000, got {value!r}")


def convert_value(value: Any, kind: str, max_length: int | None = None) -> Any:
    """One JSON value as the Python value of a column of type ``kind``; ValueError when it does not fit."""
    if value is None:
        return None
    if kind == "text":
        return _to_text(value, max_length)
    if kind == "integer":
        return _to_integer(value)
    if kind == "decimal":
        return _to_decimal(value)
    if kind == "boolean":
        return _to_boolean(value)
    if kind == "date":
        return _to_date(value)
    if kind == "datetime":
        return _to_datetime(value)
    raise ValueError(f"unknown column type {kind!r}")


def convert_record(webhook: Webhook, record: Any) -> tuple | list[FieldProblem]:
    """A row (in ``webhook.columns`` order) or the problems of every field that does not fit.

    A missing or null JSON field gives NULL, except in a de-duplication column.
    """
    if not isinstance(record, dict):
        return [FieldProblem("(object)", f"expected a JSON object, got a JSON {type(record).__name__}")]
    row: list[Any] = []
    problems: list[FieldProblem] = []
    for f in webhook.fields:
        value = record.get(f.json_field)
        if value is None and f.dedup:
            problems.append(FieldProblem(f.json_field, "missing; it is (part of) the de-duplication key"))
            row.append(None)
            continue
        try:
            row.append(convert_value(value, f.type, f.max_length))
        except ValueError as exc:
            problems.append(FieldProblem(f.json_field, f"does not fit column {f.column!r} ({f.type}): {exc}"))
            row.append(None)
    return problems if problems else tuple(row)


def convert_records(webhook: Webhook, records: list[dict]) -> list[tuple | list[FieldProblem]]:
    """:func:`convert_record` of every record (dicts), field by field: each distinct value of a field is
    converted once (Salesforce batches repeat values a lot: picklists, flags, parent ids)."""
    problems: dict[int, list[FieldProblem]] = {}
    columns = []
    for f in webhook.fields:
        memo: dict[Any, Any] = {}
        column = []
        append = column.append
        for index, record in enumerate(records):
            value = record.get(f.json_field)
            if value is None:
                if f.dedup:
                    problems.setdefault(index, []).append(
                        FieldProblem(f.json_field, "missing; it is (part of) the de-duplication key"))
                append(None)
                continue
            # True == 1 == 1.0 as dict keys: non-text values are remembered with their type
            key = value if type(value) is str else (type(value), value)
            try:
                if key in memo:
                    append(memo[key])
                    continue
            except TypeError:  # a JSON object or list: not remembered (and refused below)
                key = None
            try:
                converted = convert_value(value, f.type, f.max_length)
            except ValueError as exc:
                problems.setdefault(index, []).append(
                    FieldProblem(f.json_field, f"does not fit column {f.column!r} ({f.type}): {exc}"))
                append(None)
                continue
            if key is not None:
                memo[key] = converted
            append(converted)
        columns.append(column)
    rows = list(zip(*columns)) if columns else [()] * len(records)
    return [problems.get(index) or row for index, row in enumerate(rows)]
