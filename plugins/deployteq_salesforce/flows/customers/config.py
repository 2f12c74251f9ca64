"""The "configured objects" of the Lead/Contact sync (R4, R5, R6, R3): model, loading, validation.

The Airflow Variable ``deployteq_salesforce_objects`` holds ``{"objects": [ConfiguredObject, ...]}``.
Checking happens in two steps, both before anything is fetched:

1. :func:`load_objects_config` -- structure only, no network: types, identifiers, key rules,
   system columns.  Every problem is collected and raised together as one
   :class:`InvalidConfiguration` whose message names object, mapping row and problem.
2. :func:`validate_against_salesforce` -- one object against the Salesforce describe of its
   sobject and the columns of the customer table.  Returns :class:`ConfigProblem` s; warnings
   (translation keys that are not picklist values) do not stop a run, errors do.

Objects and mapping rows are numbered from 1 in messages, as the UI editor shows them.

Type decisions (Salesforce describe type -> Deployteq type), see ``SALESFORCE_TYPES_FOR``:
a datetime is NOT accepted into a ``date`` field (the day of a UTC instant depends on the time
zone) and a date is not accepted into ``datetime`` (it would invent a time and zone); map them
as the type they are.  A text-like Salesforce field (e.g. a picklist) may feed a typed Deployteq
field only when its translations cover every value (``translate_default: "null"``), because then
every value that can arrive is one of the checked translation targets.

No Airflow import here: DAG files, operators and the UI share this module.
"""

from __future__ import annotations

import json
from functools import cached_property
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from deployteq_salesforce.core.config_checks import (
    check_salesforce_name,
    check_schedule,
    pydantic_message,
    value_at,
)
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.customers.mapping import ID_COLUMN, ConversionError, convert_value

VARIABLE_NAME = "deployteq_salesforce_objects"

SObject = Literal["Lead", "Contact"]
DeployteqType = Literal["text", "email", "integer", "decimal", "boolean", "date", "datetime", "optin"]
UniqueField = Literal["id", "email"]

# Deployteq columns are unquoted-style PostgreSQL names (they are always quoted anyway).
DEPLOYTEQ_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
DEPLOYTEQ_NAME_MAX = 63

EMAIL_COLUMN = "email"
OPTIN_COLUMN = "email_optin"
# columns the sync maintains itself; ``sf_*`` is reserved as a whole
SYSTEM_COLUMNS = frozenset(
    {"customer_id", "status", "email_key", "created_at", "updated_at", "sf_lead_id", "sf_contact_id"}
)
SYSTEM_PREFIX = "sf_"

# Fields every incremental query selects besides the mapped ones (see ``ConfiguredObject.query_fields``).
BASE_FIELDS = ("Id", "SystemModstamp", "MasterRecordId")
LEAD_CONVERSION_FIELDS = ("IsConverted", "ConvertedContactId")

_TEXT_LIKE = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url", "id", "reference",
     "encryptedstring"}
)
_NUMBER = frozenset({"int", "long", "double", "currency", "percent"})
# Salesforce describe types each Deployteq type can hold without loss
SALESFORCE_TYPES_FOR: dict[str, frozenset[str]] = {
    "text": _TEXT_LIKE | _NUMBER | {"boolean", "date", "datetime", "time"},
    "email": frozenset({"email", "string", "combobox"}),
    "integer": frozenset({"int", "long"}),  # + double/currency/percent with scale 0, see _salesforce_type_fits
    "decimal": _NUMBER,
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "optin": frozenset({"boolean", "string", "picklist", "combobox"}),
}
# PostgreSQL column types (information_schema.columns.data_type) each Deployteq type can be stored in
COLUMN_TYPES_FOR: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "character varying", "character", "citext"}),
    "email": frozenset({"text", "character varying", "citext"}),
    "integer": frozenset({"smallint", "integer", "bigint", "numeric"}),
    "decimal": frozenset({"numeric", "double precision", "real"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"timestamp with time zone", "timestamp without time zone"}),
    "optin": frozenset({"boolean"}),
}


# --------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configured object.

    ``object`` labels the object ("Lead", or "object 2 (Lead)" while loading), ``row`` is the
    1-based mapping row (None for object-level settings), ``field`` the Salesforce field of that
    row or the name of the object-level setting.
    """

    object: str
    row: int | None
    field: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = self.object
        if self.row is not None:
            where += f", mapping row {self.row}"
            if self.field:
                where += f" (Salesforce field {self.field!r})"
        elif self.field:
            where += f", {self.field}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {prefix}{self.message}"


class InvalidConfiguration(ConfigurationError):
    """The configured objects are invalid; ``problems`` lists every error found."""

    def __init__(self, problems: list[ConfigProblem], *, source: str = VARIABLE_NAME) -> None:
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"invalid configuration in {source} ({len(problems)} problem(s)):\n{lines}")


# ------------------------------------------------------------------------------------------------ model


class FieldMapping(BaseModel):
    """One mapping row: Salesforce field -> Deployteq type -> Deployteq field (-> part of the key)."""

    model_config = ConfigDict(extra="forbid")

    salesforce_field: str
    deployteq_type: DeployteqType
    deployteq_field: str
    unique_key: bool = False
    # R5: Salesforce value (as text: 'true'/'false' for booleans, '' for empty) -> Deployteq value
    translations: dict[str, str | None] = Field(default_factory=dict)
    translate_default: Literal["keep", "null"] = "keep"

    @field_validator("salesforce_field")
    @classmethod
    def _salesforce_field_is_a_name(cls, value: str) -> str:
        return check_salesforce_name(value, "Salesforce field")

    @field_validator("deployteq_field")
    @classmethod
    def _deployteq_field_is_a_name(cls, value: str) -> str:
        if len(value) > DEPLOYTEQ_NAME_MAX or not DEPLOYTEQ_NAME.match(value):
            raise ValueError(
                f"Deployteq field {value!r} is not a column name (lower-case letters, digits and underscores)"
            )
        return value


class ConfiguredObject(BaseModel):
    """One synchronised Salesforce object (Lead or Contact) and its mapping."""

    model_config = ConfigDict(extra="forbid")

    sobject: SObject
    enabled: bool = True
    # cron expression or preset; None = only triggered by hand
    schedule: str | None = "@hourly"
    unique_field: UniqueField = "id"
    # R3: Boolean field that marks changes to sync; reset to false after the commit
    sync_flag_field: str | None = None
    mappings: list[FieldMapping] = Field(min_length=1)
    # above this many changed records the read switches to a Bulk API 2.0 query
    bulk_threshold: int = Field(10_000, ge=1)
    # the cursor re-reads this far back to catch records committed late behind it
    lookback_seconds: int = Field(300, ge=0, le=86_400)
    page_size: int = Field(2000, ge=200, le=2000)
    deleted_detection: bool = True

    @field_validator("schedule")
    @classmethod
    def _schedule_is_cron_or_preset(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("sync_flag_field")
    @classmethod
    def _flag_is_a_name(cls, value: str | None) -> str | None:
        return None if value is None else check_salesforce_name(value, "sync flag field")

    @model_validator(mode="after")
    def _structure(self, info: ValidationInfo) -> ConfiguredObject:
        # load_objects_config collects these itself (one problem each); direct construction raises here
        if info.context and info.context.get("collect_problems"):
            return self
        errors = structural_problems(self)
        if errors:
            raise ValueError("; ".join(str(p) for p in errors))
        return self

    # --- helpers for the sync, the DAG factory and the UI -----------------------------------------

    @property
    def id_column(self) -> str:
        """``sf_lead_id`` or ``sf_contact_id``: where this object's Salesforce Id is always stored (R6)."""
        return ID_COLUMN[self.sobject]

    @property
    def key_mapping(self) -> FieldMapping:
        return next(m for m in self.mappings if m.unique_key)

    @cached_property
    def value_mappings(self) -> list[FieldMapping]:
        """Rows that fill customer columns (the Id key row only repeats ``id_column``).

        Cached: the mapping of every record asks for it; a configuration is never edited in place
        (editors build a new model)."""
        return [m for m in self.mappings if m.deployteq_field != self.id_column]

    @property
    def deployteq_columns(self) -> list[str]:
        return [m.deployteq_field for m in self.value_mappings]

    def query_fields(self) -> list[str]:
        """Salesforce fields a sync query selects: mapped ones plus Id, stamps and conversion/merge info."""
        fields = [m.salesforce_field for m in self.mappings] + list(BASE_FIELDS)
        if self.sobject == "Lead":
            fields += LEAD_CONVERSION_FIELDS
        return list(dict.fromkeys(fields))

    def mapping_for(self, deployteq_field: str) -> FieldMapping | None:
        return next((m for m in self.mappings if m.deployteq_field == deployteq_field), None)


class ObjectsConfig(BaseModel):
    """The whole Variable: ``{"objects": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    objects: list[ConfiguredObject] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_object_per_sobject(self, info: ValidationInfo) -> ObjectsConfig:
        if info.context and info.context.get("collect_problems"):
            return self
        problems = _duplicate_sobject_problems([(i, o.sobject) for i, o in enumerate(self.objects)])
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self

    def get(self, sobject: str) -> ConfiguredObject | None:
        return next((o for o in self.objects if o.sobject == sobject), None)

    def enabled_objects(self) -> list[ConfiguredObject]:
        return [o for o in self.objects if o.enabled]


# ------------------------------------------------------------------------------- structural checks


def _row_problem(label: str, row_index: int, mapping: FieldMapping, message: str) -> ConfigProblem:
    return ConfigProblem(label, row_index + 1, mapping.salesforce_field, message)


def structural_problems(obj: ConfiguredObject, label: str | None = None) -> list[ConfigProblem]:
    """Rules that span rows or need no Salesforce: the key, system columns, duplicates, opt-in, translations."""
    label = label or obj.sobject
    problems: list[ConfigProblem] = []
    id_column = ID_COLUMN[obj.sobject]

    key_rows = [(i, m) for i, m in enumerate(obj.mappings) if m.unique_key]
    if not key_rows:
        expected = (
            f"'Id' -> {id_column!r}" if obj.unique_field == "id" else f"the e-mail field -> {EMAIL_COLUMN!r}"
        )
        problems.append(
            ConfigProblem(label, None, "unique_key", f"no mapping row is the unique key; mark the row {expected}")
        )
    elif len(key_rows) > 1:
        rows = ", ".join(str(i + 1) for i, _ in key_rows)
        problems.append(
            ConfigProblem(
                label, None, "unique_key", f"rows {rows} are all marked as unique key; exactly one row may be"
            )
        )
    else:
        problems += _key_row_problems(obj, label, *key_rows[0])

    seen: dict[str, int] = {}
    for index, mapping in enumerate(obj.mappings):
        target = mapping.deployteq_field
        if target in seen:
            problems.append(
                _row_problem(label, index, mapping, f"Deployteq field {target!r} is already filled by row {seen[target] + 1}")
            )
        else:
            seen[target] = index
        is_key_target = mapping.unique_key and target == id_column and obj.unique_field == "id"
        if (target in SYSTEM_COLUMNS or target.startswith(SYSTEM_PREFIX)) and not is_key_target:
            problems.append(
                _row_problem(
                    label, index, mapping,
                    f"Deployteq field {target!r} is maintained by the sync itself and cannot be mapped",
                )
            )
        if mapping.deployteq_type == "optin" and target != OPTIN_COLUMN:
            problems.append(
                _row_problem(label, index, mapping, f"type 'optin' can only fill {OPTIN_COLUMN!r}, not {target!r}")
            )
        if target == OPTIN_COLUMN and mapping.deployteq_type != "optin":
            problems.append(
                _row_problem(
                    label, index, mapping,
                    f"{OPTIN_COLUMN!r} must use type 'optin' (R8: 'Y' or true is yes, anything else no), "
                    f"not {mapping.deployteq_type!r}",
                )
            )
        problems += _translation_problems(label, index, mapping)
    return problems


def _key_row_problems(obj: ConfiguredObject, label: str, index: int, key: FieldMapping) -> list[ConfigProblem]:
    problems = []
    id_column = ID_COLUMN[obj.sobject]
    if obj.unique_field == "id":
        if key.salesforce_field != "Id" or key.deployteq_field != id_column:
            problems.append(
                _row_problem(
                    label, index, key,
                    f"with unique field 'id' the key row must map 'Id' to {id_column!r} "
                    f"(found {key.salesforce_field!r} -> {key.deployteq_field!r})",
                )
            )
        elif key.deployteq_type != "text":
            problems.append(_row_problem(label, index, key, f"the Id key row must have type 'text', not {key.deployteq_type!r}"))
    else:
        if key.deployteq_field != EMAIL_COLUMN:
            problems.append(
                _row_problem(
                    label, index, key,
                    f"with unique field 'email' the key row must fill Deployteq field {EMAIL_COLUMN!r}, "
                    f"not {key.deployteq_field!r}",
                )
            )
        elif key.deployteq_type != "email":
            problems.append(
                _row_problem(label, index, key, f"the e-mail key row must have type 'email', not {key.deployteq_type!r}")
            )
    if key.translations:
        problems.append(_row_problem(label, index, key, "the unique key row cannot have translations"))
    return problems


def _translation_problems(label: str, index: int, mapping: FieldMapping) -> list[ConfigProblem]:
    problems = []
    if mapping.translate_default == "null" and not mapping.translations:
        problems.append(
            _row_problem(
                label, index, mapping,
                "translate_default 'null' without translations would empty every value; add translations or use 'keep'",
            )
        )
    for source, target in mapping.translations.items():
        if target is None or mapping.deployteq_type in ("text", "optin"):
            continue
        try:
            convert_value(mapping.deployteq_type, target)
        except ConversionError as exc:
            problems.append(
                _row_problem(
                    label, index, mapping,
                    f"translation {source!r} -> {target!r} does not fit type {mapping.deployteq_type!r}: {exc}",
                )
            )
    return problems


def _duplicate_sobject_problems(sobjects: list[tuple[int, str]]) -> list[ConfigProblem]:
    """``sobjects``: (index, sobject) of each object; at most one object per sobject."""
    problems = []
    first: dict[str, int] = {}
    for index, sobject in sobjects:
        if sobject in first:
            problems.append(
                ConfigProblem(
                    _object_label(index, sobject), None, "sobject",
                    f"{sobject} is already configured as object {first[sobject] + 1}; configure each object once",
                )
            )
        else:
            first[sobject] = index
    return problems


# --------------------------------------------------------------------------------------------- loading


def _object_label(index: int, sobject: Any) -> str:
    return f"object {index + 1} ({sobject})" if isinstance(sobject, str) and sobject else f"object {index + 1}"


def _problem_from_pydantic(error: dict[str, Any], raw_obj: Any, label: str) -> ConfigProblem:
    """Turn one pydantic error of one object into a problem that names object, row and setting."""
    loc = list(error["loc"])
    # our own validators' messages name the setting already; pydantic's need it in front
    own = error["type"] == "value_error"
    message = pydantic_message(error)
    if len(loc) >= 2 and loc[0] == "mappings" and isinstance(loc[1], int):
        sf_field = value_at(raw_obj, "mappings", loc[1], "salesforce_field")
        setting = ".".join(str(p) for p in loc[2:])
        return ConfigProblem(
            label,
            loc[1] + 1,
            sf_field if isinstance(sf_field, str) else None,
            f"{setting}: {message}" if setting and not own else message,
        )
    return ConfigProblem(label, None, ".".join(str(p) for p in loc) or None, message)


def load_objects_config(raw: str | bytes | dict[str, Any]) -> ObjectsConfig:
    """Parse and structurally validate the Variable's JSON; raises :class:`InvalidConfiguration`."""
    if isinstance(raw, (str, bytes)):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidConfiguration(
                [ConfigProblem("configuration", None, None, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")]
            ) from None
    else:
        data = raw
    if not isinstance(data, dict) or not isinstance(data.get("objects", []), list):
        raise InvalidConfiguration(
            [ConfigProblem("configuration", None, None, 'expected a JSON object like {"objects": [...]}')]
        )
    unknown = sorted(set(data) - set(ObjectsConfig.model_fields))
    problems = [
        ConfigProblem("configuration", None, key, "unknown setting (only 'objects' is allowed here)") for key in unknown
    ]
    # each object on its own, so one broken object does not hide the problems of the others
    objects: list[ConfiguredObject] = []
    for index, raw_obj in enumerate(data.get("objects", [])):
        label = _object_label(index, value_at(raw_obj, "sobject"))
        try:
            obj = ConfiguredObject.model_validate(raw_obj, context={"collect_problems": True})
        except ValidationError as exc:
            problems += [_problem_from_pydantic(e, raw_obj, label) for e in exc.errors()]
            continue
        problems += structural_problems(obj, label)
        objects.append(obj)
    problems += _duplicate_sobject_problems(
        [(i, o.get("sobject")) for i, o in enumerate(data.get("objects", [])) if isinstance(o, dict) and o.get("sobject")]
    )
    if problems:
        raise InvalidConfiguration(problems)
    return ObjectsConfig(objects=objects)


def dump_objects_config(config: ObjectsConfig, *, exclude_defaults: bool = False) -> dict[str, Any]:
    """JSON-able dict of the model; ``load_objects_config(dump_objects_config(c)) == c``."""
    return config.model_dump(mode="json", exclude_defaults=exclude_defaults)


def dump_objects_config_json(config: ObjectsConfig, *, indent: int | None = 2, exclude_defaults: bool = False) -> str:
    """The text to store in the Variable (what the UI editor saves)."""
    return json.dumps(dump_objects_config(config, exclude_defaults=exclude_defaults), indent=indent, ensure_ascii=False)


def objects_config_json_schema() -> dict[str, Any]:
    """JSON schema of the Variable, for the UI editor's form and hints."""
    return ObjectsConfig.model_json_schema()


# ------------------------------------------------------------------------------ against Salesforce


def _salesforce_type_fits(deployteq_type: str, field: dict[str, Any]) -> bool:
    sf_type = field.get("type")
    if sf_type in SALESFORCE_TYPES_FOR[deployteq_type]:
        return True
    # a number field without decimals holds whole numbers
    return deployteq_type == "integer" and sf_type in ("double", "currency", "percent") and field.get("scale") == 0


def validate_against_salesforce(
    obj: ConfiguredObject, describe: dict[str, Any], customer_columns: dict[str, str]
) -> list[ConfigProblem]:
    """Check ``obj`` against its sobject describe and the customer table's ``column -> type``.

    Returns all problems; those with ``severity == "error"`` must stop the sync before it fetches.
    """
    label = obj.sobject
    problems: list[ConfigProblem] = []
    described = describe.get("name")
    if described and described != obj.sobject:
        return [ConfigProblem(label, None, "sobject", f"the describe given is for {described}, not {obj.sobject}")]
    fields = {f["name"]: f for f in describe.get("fields", [])}
    by_lower = {name.lower(): name for name in fields}

    def lookup(name: str) -> tuple[dict[str, Any] | None, str | None]:
        if name in fields:
            return fields[name], None
        actual = by_lower.get(name.lower())
        if actual:
            return None, f"the field is called {actual!r} on {obj.sobject}; use that exact spelling"
        return None, f"no such field on {obj.sobject} according to describe"

    for index, mapping in enumerate(obj.mappings):
        row = index + 1
        field, missing = lookup(mapping.salesforce_field)
        if field is None:
            problems.append(ConfigProblem(label, row, mapping.salesforce_field, missing or ""))
        else:
            problems += _type_problems(label, row, mapping, field)
            problems += _picklist_warnings(label, row, mapping, field)
        problems += _column_problems(label, row, mapping, customer_columns, obj)

    if obj.sync_flag_field:
        flag, missing = lookup(obj.sync_flag_field)
        if flag is None:
            problems.append(ConfigProblem(label, None, "sync_flag_field", f"{obj.sync_flag_field!r}: {missing}"))
        elif flag.get("type") != "boolean":
            problems.append(
                ConfigProblem(
                    label, None, "sync_flag_field",
                    f"{obj.sync_flag_field!r} is of type {flag.get('type')!r}; the sync flag must be a Boolean (checkbox) field",
                )
            )
        elif flag.get("updateable") is False:
            problems.append(
                ConfigProblem(
                    label, None, "sync_flag_field",
                    f"{obj.sync_flag_field!r} is not updateable, so it cannot be reset to false after the sync",
                )
            )
    for required in obj.query_fields():
        if required not in {m.salesforce_field for m in obj.mappings} and required not in fields and fields:
            problems.append(
                ConfigProblem(label, None, "describe", f"{obj.sobject} has no {required!r} field, which the sync reads")
            )
    return problems


def _type_problems(label: str, row: int, mapping: FieldMapping, field: dict[str, Any]) -> list[ConfigProblem]:
    dt_type = mapping.deployteq_type
    if _salesforce_type_fits(dt_type, field):
        return []
    sf_type = field.get("type")
    fully_translated = bool(mapping.translations) and mapping.translate_default == "null"
    if fully_translated and sf_type in _TEXT_LIKE | {"boolean"} and dt_type not in ("email",):
        return []  # every value arriving is a translation target, each checked to fit the type
    hint = ""
    if sf_type in _TEXT_LIKE and dt_type in ("integer", "decimal", "boolean", "date", "datetime"):
        hint = "; map it as 'text', or translate every value (translate_default 'null')"
    elif sf_type == "datetime" and dt_type == "date":
        hint = "; map it as 'datetime' (the day of an instant depends on the time zone)"
    elif sf_type == "date" and dt_type == "datetime":
        hint = "; map it as 'date'"
    elif sf_type in ("double", "currency", "percent") and dt_type == "integer":
        hint = f"; it has {field.get('scale')} decimal place(s), map it as 'decimal'"
    return [
        ConfigProblem(
            label, row, mapping.salesforce_field,
            f"Salesforce type {sf_type!r} cannot be held by Deployteq type {dt_type!r}{hint}",
        )
    ]


def _picklist_warnings(label: str, row: int, mapping: FieldMapping, field: dict[str, Any]) -> list[ConfigProblem]:
    if not mapping.translations or field.get("type") not in ("picklist", "multipicklist"):
        return []
    known = {p.get("value") for p in field.get("picklistValues") or []}
    unknown = [k for k in mapping.translations if k and k not in known]
    if not unknown:
        return []
    return [
        ConfigProblem(
            label, row, mapping.salesforce_field,
            f"translation key(s) {', '.join(repr(k) for k in unknown)} are not picklist values of "
            f"{mapping.salesforce_field} (known: {', '.join(repr(v) for v in sorted(known, key=str))})",
            severity="warning",
        )
    ]


def _column_problems(
    label: str, row: int, mapping: FieldMapping, customer_columns: dict[str, str], obj: ConfiguredObject
) -> list[ConfigProblem]:
    column_type = customer_columns.get(mapping.deployteq_field)
    if column_type is None:
        return [
            ConfigProblem(
                label, row, mapping.salesforce_field,
                f"Deployteq field {mapping.deployteq_field!r} does not exist in the customer table",
            )
        ]
    if mapping.deployteq_field == obj.id_column:
        return []
    allowed = COLUMN_TYPES_FOR[mapping.deployteq_type]
    if column_type.lower() not in allowed:
        return [
            ConfigProblem(
                label, row, mapping.salesforce_field,
                f"Deployteq field {mapping.deployteq_field!r} is a {column_type} column and cannot hold "
                f"type {mapping.deployteq_type!r} (fits: {', '.join(sorted(allowed))})",
            )
        ]
    return []


def raise_for_errors(problems: list[ConfigProblem], *, source: str = VARIABLE_NAME) -> list[ConfigProblem]:
    """Raise :class:`InvalidConfiguration` if any problem is an error; return the warnings otherwise."""
    errors = [p for p in problems if p.is_error]
    if errors:
        raise InvalidConfiguration(errors, source=source)
    return [p for p in problems if not p.is_error]
