"""Wire formats of field values and their validation on write.

Stored records hold wire-format values: str for text/ids/picklists, ``2024-01-01T00:00:00.000+0000``
for datetimes (second precision, UTC), ``2024-01-01`` for dates, bool, int/float, None.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from .ids import MalformedId, to_18
from .schema import FieldDef

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NUMERIC_TYPES = {"double", "currency", "percent"}


class BadValue(ValueError):
    """A value that cannot be deserialised into the field's type (JSON_PARSER_ERROR in REST)."""

    def __init__(self, field: FieldDef, value: object, type_name: str):
        self.field = field
        self.value = value
        self.type_name = type_name
        super().__init__(f"Cannot deserialize instance of {type_name} from {_json_kind(value)} value {value}")


class RecordError(Exception):
    """A per-record error with Salesforce's status code, message and fields."""

    def __init__(self, status_code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.fields = fields or []

    def as_result_error(self) -> dict:
        return {"statusCode": self.status_code, "message": self.message, "fields": self.fields}

    def as_rest_error(self) -> dict:
        return {"message": self.message, "errorCode": self.status_code, "fields": self.fields}

    def as_bulk_error(self) -> str:
        return f"{self.status_code}:{self.message}:{','.join(self.fields)} --"


def _json_kind(value: object) -> str:
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER_INT" if isinstance(value, int) else "VALUE_NUMBER_FLOAT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_NULL"


# --- time -----------------------------------------------------------------------------------

def format_datetime(moment: datetime) -> str:
    """``2024-01-01T00:00:00.000+0000`` (UTC, second precision)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def format_epoch(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(seconds), tz=timezone.utc))


def parse_datetime(text: str) -> datetime:
    """Parse the ISO-8601 forms Salesforce accepts; a missing offset means UTC. Raises ValueError."""
    match = _DATETIME_RE.match(text.strip())
    if not match:
        raise ValueError(text)
    year, month, day, hour, minute, second, _fraction, offset = match.groups()
    tz = timezone.utc
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)


# The UTC shape clients send (``2024-01-01T10:00:00.000+0000``, ``...Z``, ``...+00:00``; year 1000 or later, as
# strftime pads no further): its normal form is its first 19 characters plus ``.000+0000`` once they are a valid
# date and time, which saves the regex groups, the datetime arithmetic and strftime of the general parser.
_UTC_DATETIME_RE = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|\+00:?00)", re.ASCII)


def normalise_datetime(text: str) -> str:
    if _UTC_DATETIME_RE.fullmatch(text):
        try:
            datetime.fromisoformat(text[:19])  # validates the date and time as the general parser would
        except ValueError:
            pass  # invalid: the general parser raises its own error
        else:
            return text[:19] + ".000+0000"
    return format_datetime(parse_datetime(text))


def epoch_of(wire_datetime: str) -> float:
    return parse_datetime(wire_datetime).timestamp()


# --- coercion on write ----------------------------------------------------------------------

def coerce(field: FieldDef, value: object) -> object:
    """The stored wire value for ``value`` written to ``field``; raises BadValue if it cannot be."""
    if value is None:
        return False if field.type == "boolean" else None
    return _COERCERS.get(field.type, _coerce_text)(field, value)


# one function per field type, found by a dict lookup (coerce runs per value of every record written)
def _coerce_boolean(field: FieldDef, value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadValue(field, value, "boolean")


def _coerce_int(field: FieldDef, value: object) -> object:
    if isinstance(value, bool):
        raise BadValue(field, value, "int")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise BadValue(field, value, "int") from None
        if number.is_integer():
            return int(number)
    raise BadValue(field, value, "int")


def _coerce_number(field: FieldDef, value: object) -> object:
    if isinstance(value, bool):
        raise BadValue(field, value, "double")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise BadValue(field, value, "double") from None
    raise BadValue(field, value, "double")


def _coerce_date(field: FieldDef, value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if _DATE_RE.match(text):
            try:
                date.fromisoformat(text)
                return text
            except ValueError:
                pass
        else:
            try:  # Salesforce takes a datetime for a date field and keeps its day
                return parse_datetime(text).astimezone(timezone.utc).date().isoformat()
            except ValueError:
                pass
    raise BadValue(field, value, "date")


def _coerce_datetime(field: FieldDef, value: object) -> object:
    if isinstance(value, str):
        try:
            return normalise_datetime(value)
        except ValueError:
            if _DATE_RE.match(value.strip()):
                return value.strip() + "T00:00:00.000+0000"
    raise BadValue(field, value, "datetime")


def _coerce_text(field: FieldDef, value: object) -> object:
    if isinstance(value, (dict, list)):
        raise BadValue(field, value, "String")
    if value == "":
        return None  # Salesforce stores empty text as null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


_COERCERS = {
    "boolean": _coerce_boolean,
    "int": _coerce_int,
    **dict.fromkeys(_NUMERIC_TYPES, _coerce_number),
    "date": _coerce_date,
    "datetime": _coerce_datetime,
}


def has_value_rules(field: FieldDef) -> bool:
    """Whether ``check_semantics`` can reject some value of ``field`` (keep in step with it)."""
    kind = field.type
    if kind in ("reference", "id"):
        return False
    return bool(field.length) or kind == "email" or (kind == "picklist" and field.restricted)


def length_limit(field: FieldDef) -> int | None:
    """The most characters a text value of ``field`` may have, when that is all ``check_semantics`` checks of it
    (else None; keep in step with it)."""
    kind = field.type
    if kind in ("reference", "id", "email") or (kind == "picklist" and field.restricted):
        return None
    return field.length or None


def check_semantics(field: FieldDef, value: object) -> None:
    """Per-record checks after coercion: length, e-mail syntax, restricted picklists, id shape."""
    if value is None or not isinstance(value, str):
        return
    kind = field.type
    if kind in ("reference", "id"):
        return  # checked against the store
    if field.length and len(value) > field.length:
        raise RecordError(
            "STRING_TOO_LONG",
            f"{field.display_label}: data value too large: {value[:40]} (max length={field.length})",
            [field.name],
        )
    if kind == "email" and value and not _EMAIL_RE.match(value):
        raise RecordError("INVALID_EMAIL_ADDRESS", f"{field.display_label}: invalid email address: {value}",
                          [field.name])
    if kind == "picklist" and field.restricted and value not in field.picklist:
        raise RecordError(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"{field.display_label}: bad value for restricted picklist field: {value}",
            [field.name],
        )


def normalise_reference(field: FieldDef, value: str) -> str:
    try:
        return to_18(value)
    except MalformedId:
        raise RecordError(
            "MALFORMED_ID", f"{field.display_label}: id value of incorrect type: {value}", [field.name]
        ) from None
