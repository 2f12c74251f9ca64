"""Object links ("objectkoppelingen", R10) and the webhook receivers they write through: model and loading.

ONE Airflow Variable, ``deployteq_salesforce_object_links``, holds both, because links name
webhooks and webhooks name datamodel tables: validating them together means a link can never
point at a webhook that a separate, half-applied change removed.

    {"webhooks": [Webhook, ...], "links": [ObjectLink, ...]}

- A **webhook** is a named receiver definition: how the JSON fields of one object land in the
  columns of one datamodel table (with types), which column(s) de-duplicate, and optionally how a
  row relates to a customer (e.g. CampaignMember ``LeadId`` / ``ContactId`` -> the customer with that
  ``sf_lead_id`` / ``sf_contact_id``).  It is also a real HTTP endpoint:
  ``POST /deployteq-webhooks/<webhook name>`` (see ``webhook_app.py``).
- A **link** has exactly the manual's settings: name, allow inserts, delete, Salesforce object,
  webhook, datamodel, use sync column (``SyncWithClang__c``), plus how often it runs.

:func:`load_object_links` checks structure and cross-references without any network call; the
link's operator checks the fields against the object's describe before anything is fetched.
No Airflow import here: DAG files, operators, the webhook app and the UI share this module.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployteq_salesforce.core.config_checks import check_salesforce_name, check_schedule, pydantic_message, value_at
from deployteq_salesforce.core.exceptions import ConfigurationError

VARIABLE_NAME = "deployteq_salesforce_object_links"
SYNC_COLUMN = "SyncWithClang__c"  # the manual's fixed Boolean field for "use sync column"

ColumnType = Literal["text", "integer", "decimal", "boolean", "date", "datetime"]
CustomerField = Literal["sf_lead_id", "sf_contact_id", "email"]

# Datamodel tables share the schema with our own tables (customer, run_log, ...): the prefix keeps them apart.
DATAMODEL_PREFIX = "dm_"
DATAMODEL_NAME = re.compile(r"^dm_[a-z0-9_]+$")
COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
LINK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # used in DAG ids and flow names
WEBHOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # a URL path segment
JSON_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER = 63
MAX_TEXT_LENGTH = 10_485_760  # PostgreSQL's varchar limit

# Columns every datamodel table has, filled by us
DEPLOYTEQ_ID_COLUMN = "deployteq_id"
CUSTOMER_COLUMN = "customer_id"
RESERVED_COLUMNS = frozenset({DEPLOYTEQ_ID_COLUMN, CUSTOMER_COLUMN, "created_at", "updated_at"})

# Objects whose deletes Salesforce does not keep in the recycle bin (no IsDeleted row in queryAll):
# a link with delete = yes on them also gets a scheduled Id reconciliation.
HARD_DELETED_OBJECTS = frozenset({"CampaignMember"})


def _check(pattern: re.Pattern, value: str, what: str, rule: str) -> str:
    if len(value) > MAX_IDENTIFIER or not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not valid: {rule} (at most {MAX_IDENTIFIER} characters)")
    return value


class WebhookField(BaseModel):
    """One JSON field -> one typed datamodel column."""

    model_config = ConfigDict(extra="forbid")

    json_field: str  # the key in the pushed JSON object; for a link: the Salesforce field
    column: str
    type: ColumnType = "text"
    max_length: int | None = Field(None, ge=1, le=MAX_TEXT_LENGTH)  # text only; None = unlimited
    dedup: bool = False  # part of the de-duplication key

    @field_validator("json_field")
    @classmethod
    def _json_field_is_a_name(cls, value: str) -> str:
        return _check(JSON_FIELD, value, "JSON field", "letters, digits and underscores, not starting with a digit")

    @field_validator("column")
    @classmethod
    def _column_is_a_name(cls, value: str) -> str:
        _check(COLUMN_NAME, value, "column", "lower-case letters, digits and underscores")
        if value in RESERVED_COLUMNS:
            raise ValueError(f"column {value!r} is maintained by the datamodel itself; choose another name")
        return value

    @model_validator(mode="after")
    def _length_only_for_text(self) -> WebhookField:
        if self.max_length is not None and self.type != "text":
            raise ValueError(f"max_length applies to text columns only, not to {self.type!r} ({self.column!r})")
        return self


class CustomerRelation(BaseModel):
    """A column of the row that refers to a customer: the first one that matches a customer wins."""

    model_config = ConfigDict(extra="forbid")

    column: str  # a text column of this webhook (e.g. lead_id, filled from LeadId)
    customer_field: CustomerField  # what it matches in the customer table


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    datamodel: str  # the datamodel table this receiver writes
    fields: list[WebhookField] = Field(min_length=1)
    customer_relation: list[CustomerRelation] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_a_path_segment(cls, value: str) -> str:
        return _check(WEBHOOK_NAME, value, "webhook name", "lower-case letters, digits, '-' and '_'")

    @field_validator("datamodel")
    @classmethod
    def _datamodel_is_a_table_name(cls, value: str) -> str:
        return _check(DATAMODEL_NAME, value, "datamodel", f"'{DATAMODEL_PREFIX}' + lower-case letters, digits and underscores")

    @model_validator(mode="after")
    def _consistent(self) -> Webhook:
        columns: dict[str, WebhookField] = {}
        for f in self.fields:
            if f.column in columns:
                raise ValueError(f"column {f.column!r} is filled twice (JSON fields {columns[f.column].json_field!r} and {f.json_field!r})")
            columns[f.column] = f
        json_fields = [f.json_field for f in self.fields]
        twice = sorted({j for j in json_fields if json_fields.count(j) > 1})
        if twice:
            raise ValueError(f"JSON field(s) {twice} are mapped more than once")
        if not any(f.dedup for f in self.fields):
            raise ValueError("no field is marked dedup; mark the field(s) that identify a row (usually Id)")
        for relation in self.customer_relation:
            target = columns.get(relation.column)
            if target is None:
                raise ValueError(f"customer_relation column {relation.column!r} is not one of the webhook's columns {list(columns)}")
            if target.type != "text":
                raise ValueError(f"customer_relation column {relation.column!r} must be a text column, not {target.type!r}")
        return self

    # -- helpers ---------------------------------------------------------------------------------------

    @property
    def key_columns(self) -> list[str]:
        return [f.column for f in self.fields if f.dedup]

    @property
    def columns(self) -> list[str]:
        return [f.column for f in self.fields]

    @property
    def id_column(self) -> str | None:
        """The column holding the Salesforce record Id (JSON field ``Id``), if mapped."""
        return next((f.column for f in self.fields if f.json_field == "Id"), None)

    def field_for(self, column: str) -> WebhookField:
        return next(f for f in self.fields if f.column == column)


class ObjectLink(BaseModel):
    """One "objectkoppeling": a Salesforce object synced into a datamodel table through a webhook."""

    model_config = ConfigDict(extra="forbid")

    name: str
    allow_inserts: bool = True  # no: only rows already in the datamodel are updated
    delete: bool = False  # yes: records deleted in Salesforce are deleted from the datamodel
    sobject: str
    webhook: str
    datamodel: str
    use_sync_column: bool = False  # yes: only SyncWithClang__c = true, reset to false after the commit
    enabled: bool = True
    schedule: str | None = "@hourly"
    # Id reconciliation for hard-deleted objects; None = automatic (delete = yes on such an object)
    reconcile_ids: bool | None = None
    reconcile_schedule: str | None = "@daily"
    bulk_threshold: int = Field(10_000, ge=1)
    lookback_seconds: int = Field(300, ge=0, le=86_400)
    page_size: int = Field(2000, ge=200, le=2000)

    @field_validator("name")
    @classmethod
    def _name_is_an_identifier(cls, value: str) -> str:
        return _check(LINK_NAME, value, "link name", "lower-case letters, digits and underscores, starting with a letter")

    @field_validator("sobject")
    @classmethod
    def _sobject_is_an_api_name(cls, value: str) -> str:
        return check_salesforce_name(value, "Salesforce object")

    @field_validator("schedule", "reconcile_schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @property
    def sync_flag_field(self) -> str | None:
        """What ``FlagResetQueue`` and the reader need: the flag field, when the sync column is used."""
        return SYNC_COLUMN if self.use_sync_column else None

    @property
    def needs_reconciliation(self) -> bool:
        if not self.delete:
            return False
        return self.reconcile_ids if self.reconcile_ids is not None else self.sobject in HARD_DELETED_OBJECTS


class ObjectLinksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhooks: list[Webhook] = Field(default_factory=list)
    links: list[ObjectLink] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> ObjectLinksConfig:
        problems: list[str] = []
        for what, names in (("webhook", [w.name for w in self.webhooks]), ("link", [l.name for l in self.links])):
            for name in sorted({n for n in names if names.count(n) > 1}):
                problems.append(f"{what} name {name!r} is used more than once")
        tables: dict[str, str] = {}
        for webhook in self.webhooks:
            if webhook.datamodel in tables:
                problems.append(
                    f"webhooks {tables[webhook.datamodel]!r} and {webhook.name!r} both define datamodel "
                    f"{webhook.datamodel!r}; one table has one definition"
                )
            tables.setdefault(webhook.datamodel, webhook.name)
        webhooks = {w.name: w for w in self.webhooks}
        for link in self.links:
            webhook = webhooks.get(link.webhook)
            if webhook is None:
                problems.append(f"link {link.name!r}: webhook {link.webhook!r} is not defined; defined: {sorted(webhooks) or 'none'}")
                continue
            if link.datamodel != webhook.datamodel:
                problems.append(
                    f"link {link.name!r}: datamodel {link.datamodel!r} is not the table of webhook {webhook.name!r} "
                    f"({webhook.datamodel!r}); the webhook decides where the data lands"
                )
            if webhook.id_column is None:
                problems.append(
                    f"link {link.name!r}: webhook {webhook.name!r} does not map the JSON field 'Id'; "
                    "a link needs the Salesforce Id in a column (for updates, deletes and reconciliation)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)

    def link(self, name: str) -> ObjectLink | None:
        return next((l for l in self.links if l.name == name), None)

    def webhook_of(self, link: ObjectLink) -> Webhook:
        return next(w for w in self.webhooks if w.name == link.webhook)


def _location(raw: dict, loc: tuple) -> str:
    """``('links', 0, 'delete')`` -> ``links[1] ('campaign_members'), delete`` (items named where possible)."""
    parts: list[str] = []
    for depth, step in enumerate(loc):
        if isinstance(step, int):
            item = value_at(raw, *loc[: depth + 1])
            name = (item.get("name") or item.get("column") or item.get("json_field")) if isinstance(item, dict) else None
            parts[-1] = f"{parts[-1] if parts else ''}[{step + 1}]" + (f" ({name!r})" if name else "")
        else:
            parts.append(str(step))
    return ", ".join(parts)


def load_object_links(raw: str | dict | None) -> ObjectLinksConfig:
    """Parse and validate the Variable's value; every problem is named in one ConfigurationError."""
    if raw is None or raw == "":
        return ObjectLinksConfig()
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{VARIABLE_NAME} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f'{VARIABLE_NAME} must be a JSON object {{"webhooks": [...], "links": [...]}}')
    try:
        return ObjectLinksConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = _location(raw, tuple(error["loc"]))
            message = pydantic_message(error)
            lines.append(f"- {where}: {message}" if where else f"- {message}")
        raise ConfigurationError(f"invalid configuration in {VARIABLE_NAME} ({len(lines)} problem(s)):\n" + "\n".join(lines)) from None
