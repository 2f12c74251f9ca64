"""Contact moments, Deployteq -> Salesforce (R11, R12): the pure part (no Airflow, no I/O).

- routing: a moment goes to ``ClangContactContactMoment__c`` when its customer has a contact id,
  else to ``ClangLeadContactMoment__c`` when it has a lead id, else it is not sent (reason
  ``no_salesforce_id``).  Once sent, a moment stays on the object it was sent to (its external
  id lives there), so after a lead conversion only moments not sent yet go to the contact.
- payloads: one upsert record per moment, keyed on the external id ``Deployteq_Id__c``.
- change detection: the payload's hash is stored when Salesforce accepted it; a moment whose
  row changed (new open, click, bounce) is sent again only when its payload hash differs.
- retry policy: a failed moment is retried on later runs until ``max_attempts`` failures of the
  same payload; a changed payload or an operator's retry request starts it over.
- budget planning: the largest oldest-first prefix of the backlog whose requests (composite
  upsert, 200 per request, or Bulk API 2.0 ingest jobs above a threshold) fit what the budget allows.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import msgspec

from deployteq_salesforce.core.salesforce_errors import parse_bulk_error

FLOW = "contact_moments"
LEAD_OBJECT = "ClangLeadContactMoment__c"
CONTACT_OBJECT = "ClangContactContactMoment__c"
EXTERNAL_ID_FIELD = "Deployteq_Id__c"
PARENT_FIELDS = {LEAD_OBJECT: "Lead__c", CONTACT_OBJECT: "Contact__c"}

COMPOSITE_SIZE = 200  # Salesforce's maximum per composite/sobjects request
DEFAULT_BULK_THRESHOLD = 2_000  # from here one Bulk job (~6 requests) beats 10+ composite requests
DEFAULT_BULK_JOB_SIZE = 100_000
# One Bulk 2.0 ingest job: create, upload, close, status poll, successful + failed results = 6;
# two spare polls for a job that is not done at the first look.
BULK_JOB_REQUESTS = 8
DEFAULT_MAX_ATTEMPTS = 5

NAME_LENGTH = 80
TEXT_LENGTH = 255

# Why a moment that is new or changed is not sent in this run.
NO_SALESFORCE_ID = "no_salesforce_id"
UNCHANGED = "unchanged"
GIVEN_UP = "given_up"

# The payload fields of both custom objects, in CSV column order (after the lookup field).
PAYLOAD_FIELDS = (
    EXTERNAL_ID_FIELD,
    "Name",
    "Mailing_Name__c",
    "Subject__c",
    "Sent_Date__c",
    "Opened__c",
    "First_Opened_Date__c",
    "Open_Count__c",
    "Clicked__c",
    "First_Clicked_Date__c",
    "Click_Count__c",
    "Bounced__c",
    "Bounce_Date__c",
    "Bounce_Type__c",
    "Online_Version_URL__c",
)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which made building the rows of a
# candidate read (22 fields each, hundreds of thousands per run) 11x slower; nothing mutates these rows, and
# unsafe_hash keeps them hashable and comparable by value as before.
@dataclass(slots=True, unsafe_hash=True)
class MomentRow:
    """One ``contact_moment`` row with its customer's Salesforce ids and its sync state."""

    contact_moment_id: int
    changed_at: datetime
    sent_at: datetime
    mailing_name: str | None = None
    subject: str | None = None
    opened_first_at: datetime | None = None
    open_count: int = 0
    clicked_first_at: datetime | None = None
    click_count: int = 0
    bounced_at: datetime | None = None
    bounce_type: str | None = None
    online_version_url: str | None = None
    mailing_id: int | None = None
    sf_lead_id: str | None = None
    sf_contact_id: str | None = None
    # what was sent before (contact_moment_sync), and the retry state
    sent_object: str | None = None
    sent_parent_id: str | None = None
    sent_hash: str | None = None
    failed_hash: str | None = None
    attempts: int = 0
    retry_requested: bool = False


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see MomentRow
class Target:
    """Where one moment goes: the custom object and the lead/contact it hangs under."""

    sobject: str
    parent_id: str

    @property
    def parent_field(self) -> str:
        return PARENT_FIELDS[self.sobject]


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see MomentRow
class Outgoing:
    """A moment to send: its row, target and the hash of its payload."""

    row: MomentRow
    target: Target
    payload_hash: str
    built: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the payload decide() hashed

    @property
    def moment_id(self) -> int:
        return self.row.contact_moment_id

    def payload(self) -> dict[str, Any]:
        return self.built if self.built is not None else build_payload(self.row, self.target)

    def slim(self) -> "Outgoing":
        """The same moment without its payload fields: what recording its result needs (Bulk jobs hold many; the
        sent and failed hashes tell whether it has a contact_moment_sync row yet)."""
        row = self.row
        # positional (MomentRow's field order; the defaults in between): keywords made this twice as slow (hot: a
        # slim copy of every moment of a Bulk job)
        return Outgoing(
            MomentRow(row.contact_moment_id, row.changed_at, row.sent_at, None, None, None, 0, None, 0, None, None, None,
                      None, None, None, None, None, row.sent_hash, row.failed_hash, row.attempts),
            self.target, self.payload_hash,
        )


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see MomentRow
class Skipped:
    row: MomentRow
    reason: str  # NO_SALESFORCE_ID, UNCHANGED or GIVEN_UP
    payload_hash: str | None = None


def route(row: MomentRow) -> Target | None:
    """Contact before lead; a moment already sent keeps its object and parent."""
    if row.sent_object and row.sent_parent_id:
        return Target(row.sent_object, row.sent_parent_id)
    if row.sf_contact_id:
        return Target(CONTACT_OBJECT, row.sf_contact_id)
    if row.sf_lead_id:
        return Target(LEAD_OBJECT, row.sf_lead_id)
    return None


def external_id(contact_moment_id: int) -> str:
    """The value of ``Deployteq_Id__c``: the Deployteq contact moment id."""
    return str(contact_moment_id)


def sf_datetime(value: datetime | None) -> str | None:
    """Salesforce's datetime form, UTC (``2024-01-01T09:30:00.000+0000``)."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"datetime {value!r} has no time zone; contact moment times must be aware")
    if offset:
        value = value.astimezone(timezone.utc)
    # isoformat is several times faster than strftime (hot: four datetimes per moment, twice per run)
    return value.isoformat(timespec="seconds")[:19] + ".000+0000"


def _text(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value[:length] or None


def moment_name(row: MomentRow) -> str:
    """The record's Name: mailing (or subject) and the day it was sent, at most 80 characters."""
    title = _text(row.mailing_name, NAME_LENGTH) or _text(row.subject, NAME_LENGTH) or "E-mail"
    day = row.sent_at.astimezone(timezone.utc).date().isoformat() if isinstance(row.sent_at, (datetime, date)) else ""
    suffix = f" ({day})" if day else ""
    return (title[: NAME_LENGTH - len(suffix)].rstrip() + suffix)[:NAME_LENGTH]


def build_payload(row: MomentRow, target: Target) -> dict[str, Any]:
    """The upsert record (JSON-ready values; None clears a field) for one moment."""
    open_count = int(row.open_count or 0)
    click_count = int(row.click_count or 0)
    bounced = row.bounced_at is not None or row.bounce_type is not None
    return {
        target.parent_field: target.parent_id,
        EXTERNAL_ID_FIELD: external_id(row.contact_moment_id),
        "Name": moment_name(row),
        "Mailing_Name__c": _text(row.mailing_name, TEXT_LENGTH),
        "Subject__c": _text(row.subject, TEXT_LENGTH),
        "Sent_Date__c": sf_datetime(row.sent_at),
        "Opened__c": open_count > 0 or row.opened_first_at is not None,
        "First_Opened_Date__c": sf_datetime(row.opened_first_at),
        "Open_Count__c": open_count,
        "Clicked__c": click_count > 0 or row.clicked_first_at is not None,
        "First_Clicked_Date__c": sf_datetime(row.clicked_first_at),
        "Click_Count__c": click_count,
        "Bounced__c": bounced,
        "Bounce_Date__c": sf_datetime(row.bounced_at),
        "Bounce_Type__c": row.bounce_type,
        # a URL is not shortened: a cut-off link is worse than Salesforce's STRING_TOO_LONG error
        "Online_Version_URL__c": (row.online_version_url or "").strip() or None,
    }


# json.dumps([...], sort_keys=True, separators=(",", ":"), default=str) with the encoder built once (dumps builds one
# per call): the text the hashes stored in contact_moment_sync were made of
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
# msgspec (an Airflow dependency) writes that same text five times faster for values of these types in plain ASCII;
# json escapes DEL and everything above it as \uXXXX where msgspec writes it as is, and writes other types (datetime,
# ...) with str(): those payloads take the standard library
_FAST_JSON = msgspec.json.Encoder(order="sorted")
_FAST_JSON_TYPES = frozenset({str, int, bool, type(None)})


def payload_hash(target: Target, payload: dict[str, Any]) -> str:
    """Identifies what Salesforce holds after this upsert: object plus field values."""
    value = [target.sobject, payload]
    text = _FAST_JSON.encode(value) if _FAST_JSON_TYPES.issuperset(map(type, payload.values())) else None
    if text is None or not text.isascii() or b"\x7f" in text:
        text = _CANONICAL_JSON.encode(value).encode()
    return hashlib.sha256(text).hexdigest()[:32]


def retry_allowed(row: MomentRow, current_hash: str, *, max_attempts: int) -> bool:
    """A failed payload is tried ``max_attempts`` times; a new payload or a retry request starts over."""
    if row.failed_hash is None or row.failed_hash != current_hash:
        return True
    return row.retry_requested or row.attempts < max_attempts


def decide(row: MomentRow, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Outgoing | Skipped:
    """Send, or why not: no Salesforce id, nothing changed since it was sent, or retries used up."""
    target = route(row)
    if target is None:
        return Skipped(row, NO_SALESFORCE_ID)
    payload = build_payload(row, target)
    digest = payload_hash(target, payload)
    if digest == row.sent_hash:
        return Skipped(row, UNCHANGED, digest)
    if not retry_allowed(row, digest, max_attempts=max_attempts):
        return Skipped(row, GIVEN_UP, digest)
    return Outgoing(row, target, digest, payload)


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see MomentRow
class Sendable:
    """A moment that goes out, as counting and planning see it: row and target, its payload not built."""

    row: MomentRow
    target: Target

    @property
    def moment_id(self) -> int:
        return self.row.contact_moment_id


def triage(row: MomentRow, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Sendable | Skipped:
    """What :func:`decide` says, without building and hashing the payload where the answer cannot depend on
    it: a moment never sent and never refused goes out whatever it holds (the run counts every candidate
    before it sends; hashing each one there too cost as much as the sending)."""
    target = route(row)
    if target is None:
        return Skipped(row, NO_SALESFORCE_ID)
    if row.sent_hash is None and row.failed_hash is None:
        return Sendable(row, target)
    decision = decide(row, max_attempts=max_attempts)
    return Sendable(row, decision.target) if isinstance(decision, Outgoing) else decision


# -- budget planning ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """How many requests this run may spend, and which rule set it."""

    requests: int
    limited_by: str
    blocked: bool = False


def requests_allowed(
    *,
    hourly_limit: int,
    hourly_used: int,
    flow_hourly_used: int,
    hourly_share: float,
    daily_limit: int | None,
    daily_used: int,
    org_daily_max: int | None = None,
    org_daily_used: int | None = None,
    blocked: bool = False,
) -> Allowance:
    """Requests that fit now: the hourly budget left, this flow's share of it, our daily share, the org's allocation.

    ``hourly_share`` is the part of the hourly budget the contact moments may take in a rolling hour
    (the rest stays for the other flows); ``flow_hourly_used`` is what they spent in the last hour.
    """
    if not 0 < hourly_share <= 1:
        raise ValueError(f"hourly_share must be a fraction in (0, 1], got {hourly_share!r}")
    if blocked:
        return Allowance(0, "Salesforce blocked the token (REQUEST_LIMIT_EXCEEDED)", blocked=True)
    limits = [
        (hourly_limit - hourly_used, f"hourly budget ({hourly_used}/{hourly_limit} used)"),
        (
            math.floor(hourly_share * hourly_limit) - flow_hourly_used,
            f"contact moments' share of the hourly budget ({flow_hourly_used}/{math.floor(hourly_share * hourly_limit)} used)",
        ),
    ]
    if daily_limit is not None:
        limits.append((daily_limit - daily_used, f"daily share ({daily_used}/{daily_limit} used in 24 h)"))
    if org_daily_max is not None and org_daily_used is not None:
        limits.append((org_daily_max - org_daily_used, f"org's daily allocation ({org_daily_used}/{org_daily_max} used)"))
    remaining, reason = min(limits, key=lambda item: item[0])
    return Allowance(max(0, remaining), reason)


@dataclass
class Batch:
    """One unit of sending: a composite request (<= 200) or one Bulk API 2.0 ingest job."""

    sobject: str
    mode: str  # "composite" or "bulk"
    moments: list[Outgoing]
    requests: int  # planned


@dataclass
class SendPlan:
    batches: list[Batch] = field(default_factory=list)
    planned_requests: int = 0
    left: list[Outgoing] = field(default_factory=list)

    @property
    def planned_moments(self) -> int:
        return sum(len(b.moments) for b in self.batches)


def target_cost(count: int, *, bulk_threshold: int, bulk_job_size: int, bulk_job_requests: int = BULK_JOB_REQUESTS) -> tuple[int, str]:
    """Requests (and mode) to upsert ``count`` moments into ONE object: composite, or Bulk when cheaper."""
    if count <= 0:
        return 0, "composite"
    composite = math.ceil(count / COMPOSITE_SIZE)
    if count >= bulk_threshold:
        bulk = bulk_job_requests * math.ceil(count / bulk_job_size)
        if bulk < composite:
            return bulk, "bulk"
    return composite, "composite"


class SendPlanner:
    """``plan_sends`` one moment at a time (oldest first), keeping counters only: flat memory.

    After the backlog went by, ``planned`` says how many moments per object the best prefix holds
    (its cost never exceeds ``requests_available``), ``modes`` how each object is sent, and
    ``last_key`` / ``first_left_changed_at`` where the prefix ends.
    """

    def __init__(
        self,
        requests_available: int,
        *,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk_job_size: int = DEFAULT_BULK_JOB_SIZE,
        bulk_job_requests: int = BULK_JOB_REQUESTS,
    ) -> None:
        if bulk_threshold < 1 or bulk_job_size < 1:
            raise ValueError("bulk_threshold and bulk_job_size must be at least 1")
        self.requests_available = requests_available
        self.cost_options = dict(bulk_threshold=bulk_threshold, bulk_job_size=bulk_job_size,
                                 bulk_job_requests=bulk_job_requests)
        self.counts = {LEAD_OBJECT: 0, CONTACT_OBJECT: 0}
        self.seen = 0
        self.best_n = 0
        self.best_cost = 0
        self.planned = {LEAD_OBJECT: 0, CONTACT_OBJECT: 0}
        self.last_key: tuple[datetime, int] | None = None  # (changed_at, id) of the prefix's newest moment
        self.first_left_changed_at: datetime | None = None  # the oldest moment after the prefix

    def add(self, moment: Outgoing | Sendable) -> None:
        """Every prefix length is looked at: crossing the Bulk threshold can make more moments cheaper."""
        self.seen += 1
        self.counts[moment.target.sobject] += 1
        cost = sum(target_cost(c, **self.cost_options)[0] for c in self.counts.values())
        if cost <= self.requests_available:
            self.best_n, self.best_cost = self.seen, cost
            self.planned = dict(self.counts)
            self.last_key = (moment.row.changed_at, moment.moment_id)
            self.first_left_changed_at = None
        elif self.seen == self.best_n + 1:
            self.first_left_changed_at = moment.row.changed_at

    def mode(self, sobject: str) -> str:
        return target_cost(self.planned[sobject], **self.cost_options)[1]


def plan_sends(
    outgoing: Sequence[Outgoing],
    requests_available: int,
    *,
    bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
    bulk_job_size: int = DEFAULT_BULK_JOB_SIZE,
    bulk_job_requests: int = BULK_JOB_REQUESTS,
) -> SendPlan:
    """Send the longest oldest-first prefix of ``outgoing`` whose requests fit ``requests_available``.

    ``outgoing`` must be oldest first.  The cost of a prefix is the sum over both objects of
    ``target_cost`` (see ``SendPlanner``).  The rest is left for the next run.
    """
    kw = dict(bulk_threshold=bulk_threshold, bulk_job_size=bulk_job_size, bulk_job_requests=bulk_job_requests)
    planner = SendPlanner(requests_available, **kw)
    for moment in outgoing:
        planner.add(moment)
    best_n, best_cost = planner.best_n, planner.best_cost
    chosen, left = list(outgoing[:best_n]), list(outgoing[best_n:])
    plan = SendPlan(planned_requests=best_cost, left=left)
    for sobject in (LEAD_OBJECT, CONTACT_OBJECT):
        moments = [m for m in chosen if m.target.sobject == sobject]
        if not moments:
            continue
        _, mode = target_cost(len(moments), **kw)
        size = bulk_job_size if mode == "bulk" else COMPOSITE_SIZE
        for start in range(0, len(moments), size):
            part = moments[start : start + size]
            plan.batches.append(Batch(sobject, mode, part, bulk_job_requests if mode == "bulk" else 1))
    # oldest first across both objects: a run cut short has sent the oldest moments
    order = {m.moment_id: i for i, m in enumerate(chosen)}
    plan.batches.sort(key=lambda b: order[b.moments[0].moment_id])
    return plan


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    """What Salesforce said about one moment."""

    moment: Outgoing
    success: bool
    record_id: str | None = None
    created: bool | None = None
    status_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return f"{self.status_code}: {self.message}"


def composite_results(moments: Sequence[Outgoing], answers: Sequence[dict]) -> list[SendResult]:
    """Pair composite upsert answers (request order) with the moments sent."""
    if len(answers) != len(moments):
        raise ValueError(f"{len(answers)} composite results for {len(moments)} contact moments")
    results = []
    for moment, answer in zip(moments, answers):
        if answer.get("success"):
            results.append(SendResult(moment, True, answer.get("id"), answer.get("created")))
            continue
        error = (answer.get("errors") or [{}])[0]
        results.append(
            SendResult(
                moment, False, status_code=error.get("statusCode") or "UNKNOWN_ERROR",
                message=error.get("message") or "Salesforce gave no message", fields=tuple(error.get("fields") or ()),
            )
        )
    return results


# what bulk_results reads of a successful result row (the job's other columns are what was sent)
SUCCESSFUL_RESULT_COLUMNS = (EXTERNAL_ID_FIELD, "sf__Id", "sf__Created")


def bulk_results(moments: Sequence[Outgoing], successful: Iterable[dict], failed: Sequence[dict], *,
                 whole_job: bool = True) -> list[SendResult]:
    """Pair Bulk ingest result rows (matched on the external id column) with the moments sent.

    A moment in neither list is taken as sent without record id when Salesforce processed the whole
    job (``whole_job``); of a job that ended ``Failed`` it was not processed and is left out.
    """
    by_key = {external_id(m.moment_id): m for m in moments}
    results: dict[int, SendResult] = {}
    for row in failed:
        moment = by_key.get(row.get(EXTERNAL_ID_FIELD) or "")
        if moment is None:
            continue
        code, message, fields = parse_bulk_error(row.get("sf__Error"))
        results[moment.moment_id] = SendResult(moment, False, status_code=code, message=message, fields=fields)
    for row in successful:
        moment = by_key.get(row.get(EXTERNAL_ID_FIELD) or "")
        if moment is None or moment.moment_id in results:
            continue
        created = str(row.get("sf__Created", "")).lower() == "true"
        results[moment.moment_id] = SendResult(moment, True, row.get("sf__Id") or None, created)
    if not whole_job:
        return [results[m.moment_id] for m in moments if m.moment_id in results]
    return [results.get(m.moment_id) or SendResult(m, True) for m in moments]


# -- counts and backlog ------------------------------------------------------------------------------


@dataclass
class ContactMomentCounts:
    """What one run did; the run log stores the first columns, the rest goes to its details."""

    fetched: int = 0  # new or changed moments looked at
    inserted: int = 0  # created in Salesforce
    updated: int = 0  # existing Salesforce records updated (new opens, clicks, bounces)
    skipped: int = 0  # unchanged + no Salesforce id + retries used up
    errors: int = 0  # rejected by Salesforce this run (recorded in sync_error)
    details: dict[str, Any] = field(default_factory=dict)

    def as_log_counts(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched, "inserted": self.inserted, "updated": self.updated,
            "skipped": self.skipped, "errors": self.errors, **self.details,
        }


def format_age(seconds: float | None) -> str:
    """``3 h 05 min``, ``12 min 30 s``, ``45 s``; ``-`` when there is nothing waiting."""
    if seconds is None:
        return "-"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class BacklogTally:
    """Backlog figures counted one moment at a time (oldest first)."""

    def __init__(self) -> None:
        self.size = 0
        self.by_object = {LEAD_OBJECT: 0, CONTACT_OBJECT: 0}
        self.oldest: datetime | None = None
        self.first_key: dict[str, tuple[datetime, int]] = {}  # per object: its oldest moment's (changed_at, id)

    def add(self, moment: Outgoing | Sendable) -> None:
        self.size += 1
        self.by_object[moment.target.sobject] += 1
        if self.oldest is None:
            self.oldest = moment.row.changed_at
        self.first_key.setdefault(moment.target.sobject, (moment.row.changed_at, moment.moment_id))

    def figures(self, now: datetime) -> dict[str, Any]:
        return figures_of(self.size, self.by_object[LEAD_OBJECT], self.by_object[CONTACT_OBJECT], self.oldest, now)


def figures_of(size: int, to_leads: int, to_contacts: int, oldest: datetime | None, now: datetime) -> dict[str, Any]:
    return {
        "size": size,
        "to_leads": to_leads,
        "to_contacts": to_contacts,
        "oldest_changed_at": oldest.isoformat() if oldest else None,
        "oldest_age_seconds": round((now - oldest).total_seconds()) if oldest else None,
    }


def backlog_figures(waiting: Iterable[Outgoing], now: datetime) -> dict[str, Any]:
    """Size of a backlog (oldest first) and how long its oldest moment has waited."""
    tally = BacklogTally()
    for moment in waiting:
        tally.add(moment)
    return tally.figures(now)
