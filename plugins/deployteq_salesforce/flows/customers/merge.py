"""Decide how a batch of Salesforce leads/contacts lands in the Deployteq customer table (R6, R7).

Pure logic, no database and no Airflow: the caller loads the customers a batch can touch,
this module plans the final state of every touched customer and an outcome per record,
and the caller writes the plan in one transaction.

Rules (unique field = e-mail):
- a record first matches the customer that already carries its own Salesforce id, else the
  customer with the same e-mail key (trimmed, lower-case);
- contact data outranks lead data: a lead never overwrites a customer a contact has written
  (status ``Klant``); it only leaves its ``sf_lead_id`` there;
- a contact landing on a lead's customer overwrites it, keeps ``sf_lead_id`` and gains
  ``sf_contact_id`` (the conversion case);
- a converted lead whose contact is already known is folded into that contact's customer;
  one whose contact is not known yet pre-links ``sf_contact_id`` so the contact finds it;
- two records of the same kind with one address: the latest SystemModstamp wins (ties by Id),
  the loser is reported as ``merged`` with the winner's id.
With unique field = Salesforce Id every record owns its own customer (a converted lead and its
contact stay two customers, as the manual describes).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Literal

LEAD = "Lead"
CONTACT = "Contact"
STATUS_BY_SOBJECT = {LEAD: "Prospect", CONTACT: "Klant"}

Action = Literal["inserted", "updated", "merged", "skipped", "deleted", "error"]


# Not frozen: a frozen dataclass sets every field through object.__setattr__, five times slower to build (one per
# record read, and one outcome per record planned); nothing assigns to these after they are built.
@dataclass(slots=True)
class IncomingRecord:
    """One Salesforce Lead/Contact, already mapped to customer column values."""

    sobject: str
    sf_id: str
    modstamp: datetime
    email_key: str | None
    values: dict[str, Any]
    is_deleted: bool = False
    is_converted: bool = False
    converted_contact_id: str | None = None
    master_record_id: str | None = None


@dataclass
class CustomerState:
    """A customer as the plan sees it: loaded from the table, or new (``customer_id`` None)."""

    customer_id: int | None
    values: dict[str, Any]
    sf_lead_id: str | None = None
    sf_contact_id: str | None = None
    sf_system_modstamp: datetime | None = None
    status: str | None = None
    sf_deleted: bool = False
    sf_merged_into: str | None = None
    touched: bool = False
    ref: int = field(default_factory=itertools.count().__next__)

    @property
    def email_key(self) -> str | None:
        email = self.values.get("email")
        return email.strip().lower() if isinstance(email, str) and email.strip() else None

    @property
    def owned_by_contact(self) -> bool:
        return self.status == STATUS_BY_SOBJECT[CONTACT]


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see IncomingRecord
class RecordOutcome:
    sf_id: str
    action: Action
    customer_ref: int | None = None
    reason: str | None = None
    winner_id: str | None = None


@dataclass
class CustomerPlan:
    customers: list[CustomerState]
    outcomes: list[RecordOutcome]
    # records that lost an e-mail address to a newer record (reported, not written)
    losers: list[RecordOutcome] = field(default_factory=list)

    def count(self, action: Action) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    @property
    def to_write(self) -> list[CustomerState]:
        return [c for c in self.customers if c.touched]


class _Index:
    """Lookups over the customers known to this batch, kept current as the plan changes them."""

    def __init__(self, customers: Iterable[CustomerState]):
        self.customers: list[CustomerState] = []
        self.by_lead: dict[str, CustomerState] = {}
        self.by_contact: dict[str, CustomerState] = {}
        self.by_email: dict[str, CustomerState] = {}
        for customer in customers:
            self.add(customer)

    def add(self, customer: CustomerState) -> None:
        self.customers.append(customer)
        self.reindex(customer)

    def reindex(self, customer: CustomerState) -> None:
        if customer.sf_lead_id:
            self.by_lead[customer.sf_lead_id] = customer
        if customer.sf_contact_id:
            self.by_contact[customer.sf_contact_id] = customer
        key = customer.email_key
        # a deleted customer never claims an address over a live one
        if key and (key not in self.by_email or self.by_email[key].sf_deleted or not customer.sf_deleted):
            self.by_email[key] = customer

    def own(self, record: IncomingRecord) -> CustomerState | None:
        return (self.by_lead if record.sobject == LEAD else self.by_contact).get(record.sf_id)


def plan_customer_writes(
    records: Iterable[IncomingRecord],
    existing: Iterable[CustomerState],
    *,
    unique_field: Literal["id", "email"],
) -> CustomerPlan:
    """Apply ``records`` (any order) to ``existing`` customers; oldest first so the latest wins."""
    index = _Index(existing)
    outcomes: list[RecordOutcome] = []
    ordered = sorted(records, key=lambda r: (r.modstamp, r.sf_id))
    losers: list[RecordOutcome] = []
    planner = _EmailPlanner(index, losers) if unique_field == "email" else _IdPlanner(index)
    for record in ordered:
        if record.sobject not in STATUS_BY_SOBJECT:
            raise ValueError(f"customer sync handles Lead and Contact, not {record.sobject!r}")
        outcomes.append(_delete(index, record) if record.is_deleted else planner.apply(record))
    return CustomerPlan(customers=index.customers, outcomes=outcomes, losers=losers)


def _delete(index: _Index, record: IncomingRecord) -> RecordOutcome:
    customer = index.own(record)
    if customer is None:
        return RecordOutcome(record.sf_id, "skipped", reason="deleted in Salesforce; no customer had it")
    if record.sobject == LEAD and customer.owned_by_contact:
        # the contact still lives; only the lead link goes
        return RecordOutcome(record.sf_id, "skipped", customer.ref, reason="deleted lead; customer kept for its contact")
    if customer.sf_deleted:
        return RecordOutcome(record.sf_id, "skipped", customer.ref, reason="already marked deleted")
    customer.sf_deleted = True
    customer.sf_merged_into = record.master_record_id
    customer.sf_system_modstamp = max(filter(None, [customer.sf_system_modstamp, record.modstamp]))
    customer.touched = True
    reason = f"merged into {record.master_record_id}" if record.master_record_id else "deleted in Salesforce"
    return RecordOutcome(record.sf_id, "deleted", customer.ref, reason=reason)


def _write(customer: CustomerState, record: IncomingRecord) -> None:
    """Overwrite the customer with the record's data (the record owns it now)."""
    customer.values.update(record.values)
    customer.status = STATUS_BY_SOBJECT[record.sobject]
    if record.sobject == LEAD:
        customer.sf_lead_id = record.sf_id
        if record.is_converted and record.converted_contact_id and not customer.sf_contact_id:
            customer.sf_contact_id = record.converted_contact_id  # lets the contact find this customer
    else:
        customer.sf_contact_id = record.sf_id
    customer.sf_system_modstamp = record.modstamp
    customer.sf_deleted = False
    customer.sf_merged_into = None
    customer.touched = True


def _is_stale(customer: CustomerState, record: IncomingRecord) -> bool:
    return customer.sf_system_modstamp is not None and record.modstamp < customer.sf_system_modstamp


class _IdPlanner:
    def __init__(self, index: _Index):
        self.index = index

    def apply(self, record: IncomingRecord) -> RecordOutcome:
        customer = self.index.own(record)
        if customer is None:
            customer = CustomerState(customer_id=None, values={})
            _write(customer, record)
            # in Id mode a converted lead must not claim its contact's id: the contact owns it
            if record.sobject == LEAD and customer.sf_contact_id and customer.sf_contact_id in self.index.by_contact:
                customer.sf_contact_id = None
            self.index.add(customer)
            return RecordOutcome(record.sf_id, "inserted", customer.ref)
        if _is_stale(customer, record):
            return RecordOutcome(record.sf_id, "skipped", customer.ref, reason="older than the stored version")
        keep_contact = customer.sf_contact_id
        _write(customer, record)
        if record.sobject == LEAD:
            customer.sf_contact_id = keep_contact if keep_contact else None
        self.index.reindex(customer)
        return RecordOutcome(record.sf_id, "updated", customer.ref)


class _EmailPlanner:
    def __init__(self, index: _Index, losers: list[RecordOutcome]):
        self.index = index
        self.losers = losers

    def apply(self, record: IncomingRecord) -> RecordOutcome:
        if not record.email_key:
            return RecordOutcome(
                record.sf_id,
                "error",
                reason="no e-mail address, but the unique field is e-mail: fill in Email in Salesforce",
            )
        if record.sobject == LEAD and record.is_converted and record.converted_contact_id:
            contact_customer = self.index.by_contact.get(record.converted_contact_id)
            if contact_customer is not None and contact_customer.owned_by_contact:
                return self._fold_lead_into(contact_customer, record, reason="converted lead; its contact owns the customer")

        own = self.index.own(record)
        by_email = self.index.by_email.get(record.email_key)
        if own is not None:
            if by_email is not None and by_email is not own and not by_email.sf_deleted:
                return RecordOutcome(
                    record.sf_id,
                    "error",
                    own.ref,
                    reason=(
                        f"e-mail address {record.values.get('email')!r} already belongs to another customer "
                        f"(lead {by_email.sf_lead_id}, contact {by_email.sf_contact_id}); e-mail must stay unique"
                    ),
                )
            return self._update_own(own, record)
        if by_email is None:
            customer = CustomerState(customer_id=None, values={})
            _write(customer, record)
            self.index.add(customer)
            return RecordOutcome(record.sf_id, "inserted", customer.ref)
        return self._land_on_address(by_email, record)

    def _update_own(self, customer: CustomerState, record: IncomingRecord) -> RecordOutcome:
        if record.sobject == LEAD and customer.owned_by_contact:
            return RecordOutcome(record.sf_id, "skipped", customer.ref, reason="lead of a customer its contact owns")
        if _is_stale(customer, record):
            return RecordOutcome(record.sf_id, "skipped", customer.ref, reason="older than the stored version")
        _write(customer, record)
        self.index.reindex(customer)
        return RecordOutcome(record.sf_id, "updated", customer.ref)

    def _fold_lead_into(self, customer: CustomerState, record: IncomingRecord, *, reason: str) -> RecordOutcome:
        """Leave the lead's id on a contact-owned customer without touching the contact's data."""
        former = self.index.by_lead.get(record.sf_id)
        if former is not None and former is not customer:
            # the lead had a customer of its own before its contact arrived: retire it
            former.sf_lead_id = None
            former.sf_deleted = True
            former.sf_merged_into = customer.sf_contact_id
            former.touched = True
        if not customer.sf_lead_id:
            customer.sf_lead_id = record.sf_id
            customer.touched = True
        self.index.reindex(customer)
        return RecordOutcome(record.sf_id, "merged", customer.ref, reason=reason, winner_id=customer.sf_contact_id)

    def _land_on_address(self, customer: CustomerState, record: IncomingRecord) -> RecordOutcome:
        """The record's address belongs to a customer that does not carry the record's id yet."""
        if record.sobject == LEAD and customer.owned_by_contact:
            return self._fold_lead_into(customer, record, reason="a contact with this e-mail owns the customer")
        rival_id = customer.sf_lead_id if record.sobject == LEAD else customer.sf_contact_id
        if rival_id is None:
            # a contact enriching a lead's customer (the conversion case) or a first link
            _write(customer, record)
            self.index.reindex(customer)
            return RecordOutcome(record.sf_id, "merged", customer.ref, reason="matched an existing customer by e-mail")
        # two records of one kind share the address: the latest SystemModstamp (then Id) wins
        rival_stamp = customer.sf_system_modstamp
        if rival_stamp is None or (record.modstamp, record.sf_id) >= (rival_stamp, rival_id):
            same_kind = self.index.by_lead if record.sobject == LEAD else self.index.by_contact
            same_kind.pop(rival_id, None)
            _write(customer, record)
            self.index.reindex(customer)
            self.losers.append(
                RecordOutcome(
                    rival_id,
                    "merged",
                    customer.ref,
                    reason=f"same e-mail as {record.sf_id}, which is newer and took over the customer",
                    winner_id=record.sf_id,
                )
            )
            return RecordOutcome(record.sf_id, "updated", customer.ref, reason=f"won the e-mail address over {rival_id}")
        return RecordOutcome(
            record.sf_id,
            "merged",
            customer.ref,
            reason=f"same e-mail as {rival_id}, which is newer and keeps the customer",
            winner_id=rival_id,
        )
