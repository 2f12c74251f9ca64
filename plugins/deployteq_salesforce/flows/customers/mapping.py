"""Salesforce Lead/Contact records -> Deployteq customer rows, and Deployteq values back (R5-R8, R13).

Records are dicts as the REST API (JSON: str/bool/number/None) or a Bulk API 2.0 CSV (every value a
string, empty for null) return them; both give the same rows.  Per mapped field the order is:
translation (R5) on the Salesforce value, then conversion into the Deployteq type.  Translation
keys are the Salesforce value as text: booleans ``'true'``/``'false'``, numbers without a trailing
``.0``, and ``''`` for an empty value.

A record that cannot be converted becomes a :class:`RecordProblem` naming its Id, the fields and
values; the caller records it and the rest of the batch goes on.

No Airflow import here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

from deployteq_salesforce.core.exceptions import DeployteqSalesforceError
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime
from deployteq_salesforce.flows.customers.merge import IncomingRecord

if TYPE_CHECKING:
    from deployteq_salesforce.flows.customers.config import ConfiguredObject, FieldMapping

STATUS_BY_SOBJECT = {"Lead": "Prospect", "Contact": "Klant"}  # R7
# where the Salesforce Id of each object is kept in the customer table (always stored, R6)
ID_COLUMN = {"Lead": "sf_lead_id", "Contact": "sf_contact_id"}
_INT8 = (-(2**63), 2**63 - 1)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# deliberately simple: Salesforce validated e-mail fields already; this catches text fields holding junk
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class ConversionError(ValueError):
    """A value does not fit a Deployteq type; the message says why."""


class NonInvertibleTranslation(DeployteqSalesforceError):
    """A Deployteq value maps back to several Salesforce values, so it cannot be sent (R13)."""

    def __init__(self, field: str, deployteq_value: Any, candidates: tuple[str, ...]) -> None:
        self.field = field
        self.deployteq_value = deployteq_value
        self.candidates = candidates
        super().__init__(
            f"cannot send {deployteq_value!r} to Salesforce field {field!r}: the translation is not invertible, "
            f"{', '.join(repr(c) for c in candidates)} all translate to it; make the translations one-to-one "
            f"or leave {field!r} out of the fields sent"
        )


# --------------------------------------------------------------------------------------------- values


def salesforce_text(value: Any) -> str:
    """The text form of a Salesforce value, as translation keys are written (also how Bulk CSV shows it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_empty(value: Any) -> bool:
    # Salesforce stores no empty strings: REST returns null, Bulk CSV an empty cell
    return value is None or (isinstance(value, str) and value == "")


def _to_datetime(value: Any) -> datetime:
    try:
        return parse_salesforce_datetime(value)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConversionError("not a Boolean (true/false)")


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ConversionError("a Boolean is not a number")
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ConversionError("not a number") from None
    else:
        raise ConversionError(f"not a number ({type(value).__name__})")
    if not number.is_finite():
        raise ConversionError("not a finite number")
    return number


def is_optin_yes(value: Any) -> bool:
    """R8: ``'Y'`` (any case, trimmed) or Boolean true means yes; anything else no.

    ``'true'`` counts as Boolean true because Bulk API CSV renders a checkbox that way.
    """
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in ("y", "true")


def convert_value(deployteq_type: str, value: Any) -> Any:
    """Convert a (translated) Salesforce value into the Deployteq type; raise :class:`ConversionError`."""
    if deployteq_type == "optin":
        return is_optin_yes(value)
    if _is_empty(value):
        return None
    if deployteq_type == "text":
        return salesforce_text(value)
    if deployteq_type == "email":
        if not isinstance(value, str):
            raise ConversionError("an e-mail address must be text")
        email = value.strip()
        if not email:
            return None
        if not _EMAIL.match(email):
            raise ConversionError("not an e-mail address")
        return email
    if deployteq_type == "integer":
        number = _to_decimal(value)
        if number != number.to_integral_value():
            raise ConversionError("not a whole number")
        whole = int(number)
        if not _INT8[0] <= whole <= _INT8[1]:
            raise ConversionError("whole number out of range")
        return whole
    if deployteq_type == "decimal":
        return _to_decimal(value)
    if deployteq_type == "boolean":
        return _to_bool(value)
    if deployteq_type == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ConversionError("not a date like 2024-01-31")
    if deployteq_type == "datetime":
        return _to_datetime(value)
    raise ConversionError(f"unknown Deployteq type {deployteq_type!r}")


def translate(mapping: FieldMapping, value: Any) -> Any:
    """R5: the translated value, or the value itself / None for values not in the table."""
    if not mapping.translations:
        return value
    key = salesforce_text(value)
    if key in mapping.translations:
        return mapping.translations[key]
    if mapping.translate_default == "null":
        return None
    return value


# ------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class FieldIssue:
    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"field {self.field!r} value {self.value!r}: {self.message}"


@dataclass(frozen=True)
class RecordProblem:
    """A record that could not become a customer row; ``reason`` is what the error table shows."""

    sobject: str
    record_id: str | None
    issues: tuple[FieldIssue, ...]

    @property
    def field(self) -> str:
        return self.issues[0].field

    @property
    def reason(self) -> str:
        return "; ".join(str(i) for i in self.issues)

    @property
    def detail(self) -> dict[str, Any]:
        return {
            "sobject": self.sobject,
            "issues": [{"field": i.field, "value": salesforce_text(i.value), "message": i.message} for i in self.issues],
        }

    def __str__(self) -> str:
        return f"{self.sobject} {self.record_id or '(without Id)'}: {self.reason}"


@dataclass(frozen=True)
class CustomerRow:
    """One Salesforce record as customer-table values plus what the merge logic needs to place it."""

    sobject: str
    sf_id: str
    sf_system_modstamp: datetime
    values: dict[str, Any]  # mapped Deployteq columns only (incl. email / email_optin when mapped)
    email_key: str | None = None  # trimmed, lower-case e-mail (R6), None if no address
    is_deleted: bool = False
    is_converted: bool = False
    converted_contact_id: str | None = None
    master_record_id: str | None = None

    @property
    def status(self) -> str:
        return STATUS_BY_SOBJECT[self.sobject]

    @property
    def sf_lead_id(self) -> str | None:
        return self.sf_id if self.sobject == "Lead" else None

    @property
    def sf_contact_id(self) -> str | None:
        return self.sf_id if self.sobject == "Contact" else None

    def columns(self) -> dict[str, Any]:
        """Every customer column this record sets: mapped values, status, its Salesforce id and stamp."""
        return {
            **self.values,
            "status": self.status,
            ID_COLUMN[self.sobject]: self.sf_id,
            "sf_system_modstamp": self.sf_system_modstamp,
        }

    def to_incoming_record(self) -> IncomingRecord:
        """The input of ``customer_merge.plan_customer_writes``."""
        return IncomingRecord(
            sobject=self.sobject,
            sf_id=self.sf_id,
            modstamp=self.sf_system_modstamp,
            email_key=self.email_key,
            values=dict(self.values),
            is_deleted=self.is_deleted,
            is_converted=self.is_converted,
            converted_contact_id=self.converted_contact_id,
            master_record_id=self.master_record_id,
        )


_MISSING = object()  # a field the record does not carry at all (not selected), unlike a null value


def email_key(email: Any) -> str | None:
    """R6 key: trimmed, lower-case; None for no address."""
    if not isinstance(email, str):
        return None
    key = email.strip().lower()
    return key or None


class _Batch:
    """One batch being mapped column by column; collects the issues of each record by position."""

    def __init__(self, records: Sequence[dict[str, Any]]):
        self.records = records
        self.issues: dict[int, list[FieldIssue]] = {}

    def issue(self, index: int, field: str, value: Any, message: str) -> None:
        self.issues.setdefault(index, []).append(FieldIssue(field, value, message))

    def column(self, field: str) -> list[Any]:
        return [record.get(field, _MISSING) for record in self.records]

    def converted(self, field: str, convert: Callable[[Any], Any], message: Callable[[ConversionError], str], *,
                  required: bool = False) -> list[Any]:
        """``convert`` applied to the field of every record, each distinct value once (values repeat a lot:
        picklists, flags, timestamps); a value that does not convert becomes None plus an issue of its record.
        A field the record lacks is null, or (``required``) an issue of its own."""
        memo: dict[Any, Any] = {}
        out: list[Any] = []
        append = out.append
        for index, value in enumerate(self.column(field)):
            # True == 1 == 1.0 as dict keys: non-text values are remembered with their type
            key = value if type(value) is str else (type(value), value)
            try:
                if key in memo:
                    append(memo[key])
                    continue
            except TypeError:  # a compound value (address, location) cannot be a key: not remembered
                key = None
            if value is _MISSING:
                if required:
                    self.issue(index, field, None, "missing from the record (was it selected in the query?)")
                    append(None)
                    continue
                value = None
            try:
                result = convert(value)
            except ConversionError as exc:
                self.issue(index, field, value, message(exc))
                append(None)
                continue
            if key is not None:
                memo[key] = result
            append(result)
        return out

    def mapped(self, mapping: FieldMapping) -> list[Any]:
        """Translation (R5), then conversion into the Deployteq type, for one mapping row."""
        kind = mapping.deployteq_type
        if kind == "text" and not mapping.translations:
            # the bulk of most mappings: text stays text (Salesforce stores no empty strings: "" is null)
            column = self.column(mapping.salesforce_field)
            if all(type(value) is str for value in column):
                return [value or None for value in column]
        return self.converted(
            mapping.salesforce_field,
            lambda value: convert_value(kind, translate(mapping, value)),
            lambda exc: f"cannot be stored as {kind}: {exc}",
            required=True,
        )

    def flags(self, field: str) -> list[bool]:
        return self.converted(field, lambda value: False if _is_empty(value) else _to_bool(value), str)

    def optional_ids(self, field: str) -> list[str | None]:
        return [None if value is _MISSING or _is_empty(value) else str(value) for value in self.column(field)]


def _map_batch(obj: ConfiguredObject, records: Sequence[dict[str, Any]]) -> tuple[list[tuple], list[RecordProblem]]:
    """The mapping of a batch, column by column: per record ``(sf_id, modstamp, email_key, values, is_deleted,
    is_converted, converted_contact_id, master_record_id)``, and the records that could not be mapped.

    Issues are collected column by column in the order a single record lists them (Id, SystemModstamp,
    the mapping rows, IsDeleted, IsConverted)."""
    batch = _Batch(records)
    count = len(records)
    ids = batch.column("Id")
    for index, sf_id in enumerate(ids):
        if type(sf_id) is not str or not sf_id:
            batch.issue(index, "Id", None if sf_id is _MISSING else sf_id, "the record has no Salesforce Id")
            ids[index] = None
    stamps = batch.converted("SystemModstamp", _to_datetime, str)
    columns = [(m.deployteq_field, batch.mapped(m)) for m in obj.value_mappings]
    deleted = batch.flags("IsDeleted")
    is_lead = obj.sobject == "Lead"
    converted = batch.flags("IsConverted") if is_lead else [False] * count
    converted_to = batch.optional_ids("ConvertedContactId") if is_lead else [None] * count
    masters = batch.optional_ids("MasterRecordId")

    names = [name for name, _ in columns]
    value_rows = zip(*(values for _, values in columns)) if columns else [()] * count
    emails = dict(columns).get("email")
    mapped: list[tuple] = []
    problems: list[RecordProblem] = []
    for index, values in enumerate(value_rows):
        issues = batch.issues.get(index)
        if issues:
            problems.append(RecordProblem(obj.sobject, ids[index], tuple(issues)))
            continue
        mapped.append((
            ids[index], stamps[index], email_key(emails[index]) if emails else None, dict(zip(names, values)),
            deleted[index], converted[index], converted_to[index], masters[index],
        ))
    return mapped, problems


def build_customer_rows(
    obj: ConfiguredObject, records: Iterable[dict[str, Any]]
) -> tuple[list[CustomerRow], list[RecordProblem]]:
    """Map a batch of Salesforce records of ``obj.sobject`` (see :func:`build_customer_row`)."""
    mapped, problems = _map_batch(obj, list(records))
    return [
        CustomerRow(obj.sobject, sf_id, stamp, values, key, *rest) for sf_id, stamp, key, values, *rest in mapped
    ], problems


def build_incoming_records(
    obj: ConfiguredObject, records: Sequence[dict[str, Any]]
) -> tuple[list[IncomingRecord], list[RecordProblem]]:
    """Like :func:`build_customer_rows`, straight into the input of ``merge.plan_customer_writes``."""
    mapped, problems = _map_batch(obj, records)
    sobject = obj.sobject
    return [IncomingRecord(sobject, *row) for row in mapped], problems


def build_customer_row(obj: ConfiguredObject, record: dict[str, Any]) -> CustomerRow | RecordProblem:
    """Map one Salesforce record of ``obj.sobject`` to a :class:`CustomerRow` (or a :class:`RecordProblem`)."""
    rows, problems = build_customer_rows(obj, [record])
    return rows[0] if rows else problems[0]


# ------------------------------------------------------------------------------------------- dedupe


@dataclass(frozen=True)
class DuplicateLoser:
    """A row that lost to another in the same batch: ``action`` 'skipped' = an older copy of the same
    record, 'merged' = another record with the same e-mail address is newer."""

    row: CustomerRow
    winner_id: str
    action: Literal["skipped", "merged"]

    @property
    def reason(self) -> str:
        if self.action == "skipped":
            return "a newer copy of this record is in the same batch"
        return f"same e-mail address as {self.winner_id}, which is newer (latest SystemModstamp wins, ties by Id)"


def _rank(row: CustomerRow) -> tuple[datetime, str]:
    return (row.sf_system_modstamp, row.sf_id)


def dedupe_by_key(
    rows: Iterable[CustomerRow], unique_field: Literal["id", "email"]
) -> tuple[list[CustomerRow], list[DuplicateLoser]]:
    """Keep one row per key; the latest SystemModstamp wins, a tie goes to the higher Id.

    Same Id twice (a lookback re-read) always collapses.  With ``unique_field == "email"`` live,
    unconverted rows also compete per (sobject, e-mail key); deleted and converted rows do not
    claim an address (they are placed by their Id / contact), and rows without an address pass
    through for the caller to reject.  Winners come back ordered by (SystemModstamp, Id), so the
    result does not depend on input order.
    """
    losers: list[DuplicateLoser] = []
    by_id: dict[tuple[str, str], CustomerRow] = {}
    for row in rows:
        key = (row.sobject, row.sf_id)
        current = by_id.get(key)
        if current is None:
            by_id[key] = row
        elif _rank(row) > _rank(current) or (_rank(row) == _rank(current) and row.is_deleted and not current.is_deleted):
            losers.append(DuplicateLoser(current, row.sf_id, "skipped"))
            by_id[key] = row
        else:
            losers.append(DuplicateLoser(row, current.sf_id, "skipped"))

    winners = sorted(by_id.values(), key=_rank)
    if unique_field == "email":
        by_email: dict[tuple[str, str], CustomerRow] = {}
        passing: list[CustomerRow] = []
        for row in winners:  # ascending, so a later row is never older than the one it meets
            if row.is_deleted or row.is_converted or not row.email_key:
                passing.append(row)
                continue
            key = (row.sobject, row.email_key)
            current = by_email.get(key)
            if current is not None:
                losers.append(DuplicateLoser(current, row.sf_id, "merged"))
            by_email[key] = row
        winners = sorted([*passing, *by_email.values()], key=_rank)
    # losers of a merged row must name the final winner, not an intermediate one
    final = {(w.sobject, w.email_key): w.sf_id for w in winners if w.email_key and not w.is_deleted and not w.is_converted}
    losers = [
        DuplicateLoser(l.row, final.get((l.row.sobject, l.row.email_key), l.winner_id), l.action)
        if l.action == "merged"
        else l
        for l in losers
    ]
    return winners, losers


# ------------------------------------------------------------------------------ Deployteq -> Salesforce


def inverse_translations(mapping: FieldMapping) -> Mapping[Any, tuple[str, ...]]:
    """Deployteq value (as stored, typed) -> the Salesforce value(s) that translate to it.

    More than one Salesforce value for a Deployteq value means that value is not invertible;
    :func:`to_salesforce_value` raises only when such a value is actually sent.
    """
    return _inverse_of(mapping.deployteq_type, tuple(mapping.translations.items()))


@lru_cache(maxsize=1024)  # asked once per value sent: 100,000 records must not rebuild it each time
def _inverse_of(deployteq_type: str, translations: tuple[tuple[str, str | None], ...]) -> Mapping[Any, tuple[str, ...]]:
    inverse: dict[Any, list[str]] = {}
    for source, target in translations:
        if target is None:
            continue  # null is always sent as null (clears the field)
        typed = convert_value(deployteq_type, target)
        inverse.setdefault(typed, []).append(source)
    return MappingProxyType({k: tuple(sorted(v)) for k, v in inverse.items()})  # shared by every caller: read-only


def _render(value: Any) -> Any:
    """Deployteq value -> JSON value Salesforce accepts."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConversionError("date-time has no time zone")
        utc = value.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConversionError("not a finite number")
    return value


def _as_salesforce_type(text: str, salesforce_type: str | None) -> Any:
    """A translation key (text) as the JSON value a field of ``salesforce_type`` takes."""
    if salesforce_type == "boolean":
        return text.strip().lower() == "true"
    if text == "":
        return None
    if salesforce_type in ("int", "long"):
        return int(Decimal(text))
    if salesforce_type in ("double", "currency", "percent"):
        return _render(Decimal(text))
    return text


def to_salesforce_value(mapping: FieldMapping, deployteq_value: Any, *, salesforce_type: str | None = None) -> Any:
    """The value to send to ``mapping.salesforce_field`` for a stored Deployteq value (R13).

    ``salesforce_type`` (from describe) decides how an opt-in is written: a Boolean field gets
    true/false, any other 'Y'/'N'.  Raises :class:`NonInvertibleTranslation` when several
    Salesforce values translate to ``deployteq_value``.
    """
    if deployteq_value is None:
        return None
    if mapping.deployteq_type == "optin":
        deployteq_value = bool(deployteq_value)
    inverse = inverse_translations(mapping) if mapping.translations else {}
    candidates = inverse.get(deployteq_value)
    if candidates:
        if len(candidates) > 1:
            raise NonInvertibleTranslation(mapping.salesforce_field, deployteq_value, candidates)
        return _as_salesforce_type(candidates[0], salesforce_type)
    if mapping.deployteq_type == "optin":
        if salesforce_type == "boolean":
            return deployteq_value
        return "Y" if deployteq_value else "N"
    return _render(deployteq_value)
