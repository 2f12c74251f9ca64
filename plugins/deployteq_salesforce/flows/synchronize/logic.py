"""Salesforce Synchronize (R13-R15): Deployteq customers -> updates of Leads/Contacts, routed to four exits.

Pure logic, no Airflow and no network: which Salesforce record a customer updates (R15), the
payload built from the customer's columns with the inverse value translations (R13), and how
Salesforce's per-record answers become exits (R14).  ``operators/synchronize.py`` does the I/O.

Exits (R14):
- ``continue``   every record that passed the step (all of them);
- ``on_success`` updated in Salesforce;
- ``on_error``   not updated, with the reason (precondition, translation, or Salesforce's statusCode + message);
- ``on_limit``   not sent because the API budget ran out or Salesforce blocked the token; safe to send again.

Matching is always on the Salesforce Id (``sf_lead_id`` / ``sf_contact_id``), also when the configured
unique field is the e-mail address (R13).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deployteq_salesforce.flows.customers.config import ID_COLUMN, ConfiguredObject, FieldMapping
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.customers.mapping import ConversionError, NonInvertibleTranslation, to_salesforce_value

CONTINUE = "continue"
ON_SUCCESS = "on_success"
ON_ERROR = "on_error"
ON_LIMIT = "on_limit"
EXITS = (CONTINUE, ON_SUCCESS, ON_ERROR, ON_LIMIT)
RECORD_EXITS = (ON_SUCCESS, ON_ERROR, ON_LIMIT)  # every record ends in exactly one of these
PENDING = "pending"  # stored state of a record not (yet) sent in its run

Target = Literal["Lead", "Contact", "auto"]
TARGETS = ("Lead", "Contact", "auto")

CONVERTED_LEAD = "CANNOT_UPDATE_CONVERTED_LEAD"
# status codes of our own (never sent by Salesforce) so every on_error row has a code to filter on
MISSING_SALESFORCE_ID = "MISSING_SALESFORCE_ID"
NOT_INVERTIBLE = "NON_INVERTIBLE_TRANSLATION"
INVALID_VALUE = "INVALID_VALUE"
CONVERTED_WITHOUT_CONTACT = "CONVERTED_LEAD_WITHOUT_CONTACT"
DUPLICATE_TARGET = "DUPLICATE_TARGET"
CUSTOMER_GONE = "CUSTOMER_NOT_FOUND"
BUDGET = "API_BUDGET"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
RESULT_UNKNOWN = "RESULT_UNKNOWN"


@dataclass(frozen=True)
class Outcome:
    """Where one customer of a run ended, and why (stored per run and record)."""

    customer_id: int
    exit: str
    sobject: str | None = None
    sf_id: str | None = None
    reason: str | None = None
    status_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()
    sent_via: str | None = None  # "composite" / "bulk" when the record reached Salesforce

    def __post_init__(self) -> None:
        if self.exit not in RECORD_EXITS:
            raise ValueError(f"exit must be one of {RECORD_EXITS}, got {self.exit!r}")


@dataclass(frozen=True)
class Update:
    """One record to PATCH in Salesforce: ``payload`` holds ``Id`` and the fields sent."""

    customer_id: int
    sobject: str
    sf_id: str
    payload: dict[str, Any]
    converted_from: str | None = None  # the lead id when this goes to the lead's contact

    def failed(self, status_code: str, message: str, fields: Sequence[str] = (), *, sent_via: str | None) -> Outcome:
        where = f"{self.sobject} {self.sf_id}" + (f" (contact of converted lead {self.converted_from})" if self.converted_from else "")
        return Outcome(
            self.customer_id, ON_ERROR, self.sobject, self.sf_id,
            reason=f"Salesforce refused the update of {where}: {status_code}: {message}".rstrip(": "),
            status_code=status_code, message=message, fields=tuple(fields), sent_via=sent_via,
        )

    def succeeded(self, *, sent_via: str) -> Outcome:
        return Outcome(self.customer_id, ON_SUCCESS, self.sobject, self.sf_id, sent_via=sent_via)

    def limited(self, reason: str, *, status_code: str = BUDGET) -> Outcome:
        return Outcome(
            self.customer_id, ON_LIMIT, self.sobject, self.sf_id,
            reason=f"not sent: {reason}", status_code=status_code,
        )


# ------------------------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class FieldPlan:
    """The mapping rows sent per target object, resolved once per run from the chosen fields."""

    columns: tuple[str, ...]  # Deployteq columns whose values are sent
    rows: dict[str, tuple[FieldMapping, ...]] = field(default_factory=dict)  # sobject -> rows

    def salesforce_fields(self, sobject: str) -> list[str]:
        return [m.salesforce_field for m in self.rows.get(sobject, ())]


def _sendable(obj: ConfiguredObject) -> list[FieldMapping]:
    """Rows that can be sent: every mapped field except the Id row (the Id is how we match, R13)."""
    return [m for m in obj.mappings if m.salesforce_field != "Id" and m.deployteq_field != ID_COLUMN[obj.sobject]]


def objects_involved(target: str, objects: Mapping[str, ConfiguredObject]) -> list[str]:
    """Objects a step may write: its own, plus Contact for a Lead step (converted leads, R15)."""
    if target == "auto":
        wanted = ["Lead", "Contact"]
    elif target == "Lead":
        wanted = ["Lead", "Contact"]
    else:
        wanted = ["Contact"]
    return [s for s in wanted if s in objects]


def plan_fields(target: str, objects: Mapping[str, ConfiguredObject], fields: Sequence[str] | None = None) -> FieldPlan:
    """Resolve the chosen fields (Salesforce or Deployteq names of mapping rows) into rows per object.

    Without ``fields`` every mapped field of the step's object is sent (R13: the same fields as in
    the mapping).  A chosen field must be a mapping row of the step's object (for ``auto``: of Lead
    or Contact); the Id cannot be chosen, it is what the update matches on.
    """
    if target not in TARGETS:
        raise ConfigurationError(f"sobject must be one of {', '.join(TARGETS)}, got {target!r}")
    primary = ["Lead", "Contact"] if target == "auto" else [target]
    missing = [s for s in primary if s not in objects]
    if target != "auto" and missing or target == "auto" and len(missing) == 2:
        raise ConfigurationError(
            f"{' and '.join(missing)} is not a configured object (Variable deployteq_salesforce_objects); "
            "Salesforce Synchronize sends the fields of the object's mapping"
        )
    primary = [s for s in primary if s in objects]
    if fields is None:
        columns = list(dict.fromkeys(m.deployteq_field for s in primary for m in _sendable(objects[s])))
    else:
        if isinstance(fields, str) or not fields:
            raise ConfigurationError("fields must be a non-empty list of field names (or None for every mapped field)")
        columns = []
        problems = []
        for name in fields:
            if name in ("Id", "sf_lead_id", "sf_contact_id"):
                problems.append(f"{name!r}: the Salesforce Id is what the update matches on; it cannot be sent as a field")
                continue
            row = next(
                (m for s in primary for m in _sendable(objects[s]) if name in (m.salesforce_field, m.deployteq_field)),
                None,
            )
            if row is None:
                known = sorted({m.salesforce_field for s in primary for m in _sendable(objects[s])})
                problems.append(f"{name!r} is not a mapped field of {' or '.join(primary)} (mapped: {', '.join(known)})")
                continue
            columns.append(row.deployteq_field)
        if problems:
            raise ConfigurationError("Salesforce Synchronize: invalid fields:\n" + "\n".join(f"- {p}" for p in problems))
        columns = list(dict.fromkeys(columns))
    rows = {}
    for sobject in objects_involved(target, objects):
        by_column = {m.deployteq_field: m for m in _sendable(objects[sobject])}
        rows[sobject] = tuple(by_column[c] for c in columns if c in by_column)
    return FieldPlan(columns=tuple(columns), rows=rows)


# ----------------------------------------------------------------------------------- precondition R15


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def choose_target(customer: Mapping[str, Any], target: str, contact_configured: bool) -> tuple[str, str, str | None] | Outcome:
    """R15: the (sobject, Salesforce Id, converted lead id) a customer updates, or its ``on_error`` outcome.

    A customer without the needed id was never enriched from Salesforce and is never sent.  A lead
    customer that also carries a contact id was converted: it goes to its contact (Salesforce refuses
    updates of converted leads).
    """
    customer_id = int(customer["customer_id"])
    lead_id, contact_id = _text(customer.get("sf_lead_id")), _text(customer.get("sf_contact_id"))
    if target == "auto":
        if contact_id:
            return ("Contact", contact_id, None)
        if lead_id:
            return ("Lead", lead_id, None)
        return _missing_id(customer_id, "lead id or contact id")
    if target == "Contact":
        if contact_id:
            return ("Contact", contact_id, None)
        hint = f"; it is a lead ({lead_id}) that has not been converted, use a Lead step" if lead_id else ""
        return _missing_id(customer_id, "contact id (sf_contact_id)", hint)
    if not lead_id:
        hint = f"; it is a contact ({contact_id}), use a Contact step" if contact_id else ""
        return _missing_id(customer_id, "lead id (sf_lead_id)", hint)
    if contact_id:
        if not contact_configured:
            return Outcome(
                customer_id, ON_ERROR, "Lead", lead_id,
                reason=f"lead {lead_id} was converted to contact {contact_id}, but Contact is not a configured object, "
                "so there is no mapping to update the contact with",
                status_code=CONVERTED_WITHOUT_CONTACT,
            )
        return ("Contact", contact_id, lead_id)
    return ("Lead", lead_id, None)


def _missing_id(customer_id: int, what: str, hint: str = "") -> Outcome:
    return Outcome(
        customer_id, ON_ERROR,
        reason=f"customer {customer_id} has no {what}: it was never enriched from Salesforce, so it cannot be "
        f"sent (sync it from Salesforce first){hint}",
        status_code=MISSING_SALESFORCE_ID,
    )


# ------------------------------------------------------------------------------------------- payloads


def build_update(
    customer: Mapping[str, Any],
    sobject: str,
    sf_id: str,
    rows: Sequence[FieldMapping],
    salesforce_types: Mapping[str, str],
    converted_from: str | None = None,
) -> Update | Outcome:
    """The PATCH payload of one customer: each chosen column, translated back (R5 inverse), by Id."""
    customer_id = int(customer["customer_id"])
    payload: dict[str, Any] = {"Id": sf_id}
    problems = []
    for row in rows:
        value = customer.get(row.deployteq_field)
        try:
            payload[row.salesforce_field] = to_salesforce_value(row, value, salesforce_type=salesforce_types.get(row.salesforce_field))
        except NonInvertibleTranslation as exc:
            return Outcome(customer_id, ON_ERROR, sobject, sf_id, reason=str(exc), status_code=NOT_INVERTIBLE,
                           fields=(row.salesforce_field,))
        except ConversionError as exc:
            problems.append((row.salesforce_field, f"field {row.deployteq_field!r} value {value!r}: {exc}"))
    if problems:
        return Outcome(customer_id, ON_ERROR, sobject, sf_id, reason="; ".join(p for _, p in problems),
                       status_code=INVALID_VALUE, fields=tuple(f for f, _ in problems))
    return Update(customer_id, sobject, sf_id, payload, converted_from)


def plan_updates(
    customers: Iterable[Mapping[str, Any]],
    *,
    target: str,
    plan: FieldPlan,
    salesforce_types: Mapping[str, Mapping[str, str]],
    claimed: dict[tuple[str, str], int] | None = None,
    contested: set[str] | None = None,
) -> tuple[list[Update], list[Outcome]]:
    """Route every customer: an :class:`Update` to send, or an ``on_error`` outcome (never sent).

    ``claimed`` ((sobject, lower-case id) -> customer id) carries the records already updated by this
    run across calls, so one Salesforce record is updated from one customer only.  ``contested``: the
    lower-case ids more than one customer of the run carries; only those can collide, so only those are
    claimed (None: every id), which keeps ``claimed`` small however large the run.
    """
    updates: list[Update] = []
    rejected: list[Outcome] = []
    claimed = {} if claimed is None else claimed
    contact_configured = "Contact" in plan.rows
    for customer in customers:
        if customer.get("customer_exists") is False:
            rejected.append(Outcome(int(customer["customer_id"]), ON_ERROR,
                                    reason=f"customer {customer['customer_id']} no longer exists in the customer table",
                                    status_code=CUSTOMER_GONE))
            continue
        chosen = choose_target(customer, target, contact_configured)
        if isinstance(chosen, Outcome):
            rejected.append(chosen)
            continue
        sobject, sf_id, converted_from = chosen
        built = build_update(customer, sobject, sf_id, plan.rows.get(sobject, ()), salesforce_types.get(sobject, {}), converted_from)
        if isinstance(built, Outcome):
            rejected.append(built)
            continue
        key = (sobject, sf_id.lower())
        if contested is not None and key[1] not in contested:
            updates.append(built)
            continue
        other = claimed.get(key)
        if other is not None:
            rejected.append(Outcome(built.customer_id, ON_ERROR, sobject, sf_id,
                                    reason=f"customer {other} in this run already updates {sobject} {sf_id}; "
                                    "one Salesforce record is updated from one customer only",
                                    status_code=DUPLICATE_TARGET))
            continue
        claimed[key] = built.customer_id
        updates.append(built)
    return updates, rejected


# -------------------------------------------------------------------------------- Salesforce answers


def outcome_from_result(update: Update, result: Mapping[str, Any], *, sent_via: str = "composite") -> Outcome:
    """A composite/sobjects result ``{"id","success","errors":[{"statusCode","message","fields"}]}``."""
    if result.get("success"):
        return update.succeeded(sent_via=sent_via)
    errors = result.get("errors") or [{}]
    first = errors[0] or {}
    code = str(first.get("statusCode") or "UNKNOWN_ERROR")
    message = "; ".join(str(e.get("message") or "") for e in errors if e) or "no message"
    fields = tuple(str(f) for e in errors if e for f in (e.get("fields") or ()))
    return update.failed(code, message, fields, sent_via=sent_via)


def is_converted_lead_error(outcome: Outcome) -> bool:
    return outcome.exit == ON_ERROR and outcome.sobject == "Lead" and outcome.status_code == CONVERTED_LEAD


def redirect_to_contact(
    customer: Mapping[str, Any],
    lead_id: str,
    contact_id: str | None,
    plan: FieldPlan,
    salesforce_types: Mapping[str, Mapping[str, str]],
) -> Update | Outcome:
    """A lead Salesforce reports as converted: update its contact instead, or explain why not (R15)."""
    customer_id = int(customer["customer_id"])
    if not contact_id:
        return Outcome(customer_id, ON_ERROR, "Lead", lead_id,
                       reason=f"lead {lead_id} is converted in Salesforce, but its contact is not known "
                       "(no ConvertedContactId); nothing was updated",
                       status_code=CONVERTED_WITHOUT_CONTACT)
    if "Contact" not in plan.rows:
        return Outcome(customer_id, ON_ERROR, "Lead", lead_id,
                       reason=f"lead {lead_id} was converted to contact {contact_id}, but Contact is not a configured "
                       "object, so there is no mapping to update the contact with",
                       status_code=CONVERTED_WITHOUT_CONTACT)
    return build_update(customer, "Contact", contact_id, plan.rows["Contact"], salesforce_types.get("Contact", {}), lead_id)


def count_exits(exits: Iterable[str]) -> dict[str, int]:
    """Counts per exit; ``continue`` is every record of the run."""
    counts = {name: 0 for name in EXITS}
    for name in exits:
        counts[CONTINUE] += 1
        if name in counts:
            counts[name] += 1
    return counts
