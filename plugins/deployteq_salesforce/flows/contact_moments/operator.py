"""Contact moments, Deployteq -> Salesforce custom objects, on time and within budget (R11, R12).

One run: read the new and changed moments (oldest first), decide per moment (send / unchanged /
no Salesforce id / retries used up), ask the API budget how many requests may be spent now, plan
the largest oldest-first part of the backlog that fits (composite upsert 200 per request, Bulk API
2.0 ingest above a threshold) and send it batch by batch, committing each batch's outcome before
the next request.  What does not fit stays for the next run.  A 403 REQUEST_LIMIT_EXCEEDED or an
exhausted budget stops the run at once: committed batches stay sent, the rest is still pending.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from psycopg.rows import args_row

from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.flows.contact_moments.logic import (
    BULK_JOB_REQUESTS,
    COMPOSITE_SIZE,
    CONTACT_OBJECT,
    DEFAULT_BULK_JOB_SIZE,
    DEFAULT_BULK_THRESHOLD,
    DEFAULT_MAX_ATTEMPTS,
    EXTERNAL_ID_FIELD,
    FLOW,
    GIVEN_UP,
    LEAD_OBJECT,
    NO_SALESFORCE_ID,
    PARENT_FIELDS,
    PAYLOAD_FIELDS,
    UNCHANGED,
    Allowance,
    BacklogTally,
    ContactMomentCounts,
    MomentRow,
    Outgoing,
    SendPlanner,
    SendResult,
    bulk_results,
    composite_results,
    decide,
    figures_of,
    format_age,
    requests_allowed,
)
from deployteq_salesforce.core.exceptions import BudgetExhausted, SalesforceRequestLimitExceeded
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.operator import SalesforceFlowOperator
from deployteq_salesforce.core.store import RecordError

# The object a moment goes to, as ``contact_moments.route`` decides it (kept equal by a test): pass 2 reads
# only the moments of the objects it sends.
TARGET_OBJECT_SQL = f"""
CASE WHEN nullif(s.sf_object, '') IS NOT NULL AND nullif(s.sf_parent_id, '') IS NOT NULL THEN s.sf_object
     WHEN nullif(c.sf_contact_id, '') IS NOT NULL THEN '{CONTACT_OBJECT}'
     WHEN nullif(c.sf_lead_id, '') IS NOT NULL THEN '{LEAD_OBJECT}' END"""
# New and changed moments (columns in MomentRow's order): never dealt with, or their row changed since (changed_at differs); oldest first,
# one keyset chunk at a time (contact_moment_changed_at_idx).
CANDIDATES_SQL = f"""
SELECT cm.contact_moment_id, cm.changed_at, cm.sent_at, cm.mailing_name, cm.subject,
       cm.opened_first_at, cm.open_count, cm.clicked_first_at, cm.click_count, cm.bounced_at, cm.bounce_type,
       cm.online_version_url, cm.mailing_id, c.sf_lead_id, c.sf_contact_id,
       s.sf_object AS sent_object, s.sf_parent_id AS sent_parent_id, s.sent_hash, s.failed_hash,
       coalesce(s.attempts, 0) AS attempts, coalesce(e.retry_requested, false) AS retry_requested
  FROM contact_moment cm
  LEFT JOIN customer c ON c.customer_id = cm.customer_id AND NOT c.sf_deleted
  LEFT JOIN contact_moment_sync s ON s.contact_moment_id = cm.contact_moment_id
  LEFT JOIN sync_error e ON e.flow = %(flow)s AND e.record_id = cm.contact_moment_id::text AND e.resolved_at IS NULL
 WHERE (s.contact_moment_id IS NULL OR s.synced_changed_at IS DISTINCT FROM cm.changed_at)
   AND (cm.changed_at, cm.contact_moment_id) > (%(after_at)s, %(after_id)s)
   AND (cm.changed_at, cm.contact_moment_id) <= (%(upto_at)s, %(upto_id)s)
   AND (%(targets)s::text[] IS NULL OR {TARGET_OBJECT_SQL} = ANY(%(targets)s::text[]))
 ORDER BY cm.changed_at, cm.contact_moment_id
 LIMIT %(chunk)s
"""
# Keyset bounds that include every row.
FIRST_KEY = (datetime(1, 1, 1, tzinfo=timezone.utc), -(2**63))
LAST_KEY = (datetime(9999, 12, 31, tzinfo=timezone.utc), 2**63 - 1)
READ_CHUNK = 5_000  # candidates per query: memory stays flat however large the backlog

MARK_SENT_SQL = """
INSERT INTO contact_moment_sync AS s (contact_moment_id, synced_changed_at, sent_hash, sf_object, sf_parent_id,
                                      sf_record_id, sent_at, attempts, failed_hash, last_error, last_error_at, updated_at)
SELECT r.id, r.changed_at, r.hash, r.sobject, r.parent_id, r.record_id, clock_timestamp(), 0, NULL, NULL, NULL,
       clock_timestamp()
  FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[])
       AS r (id, changed_at, hash, sobject, parent_id, record_id)
ON CONFLICT (contact_moment_id) DO UPDATE SET
    synced_changed_at = excluded.synced_changed_at, sent_hash = excluded.sent_hash, sf_object = excluded.sf_object,
    sf_parent_id = excluded.sf_parent_id, sf_record_id = coalesce(excluded.sf_record_id, s.sf_record_id),
    sent_at = excluded.sent_at, attempts = 0, failed_hash = NULL, last_error = NULL, last_error_at = NULL,
    updated_at = excluded.updated_at
"""

MARK_FAILED_SQL = """
INSERT INTO contact_moment_sync AS s (contact_moment_id, attempts, failed_hash, last_error, last_error_at, updated_at)
SELECT r.id, 1, r.hash, r.error, clock_timestamp(), clock_timestamp()
  FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS r (id, hash, error)
ON CONFLICT (contact_moment_id) DO UPDATE SET
    attempts = CASE WHEN s.failed_hash = excluded.failed_hash THEN s.attempts + 1 ELSE 1 END,
    failed_hash = excluded.failed_hash, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
    updated_at = excluded.updated_at
"""

# Looked at, payload as sent before: remember this row version so it is not read again.
MARK_UNCHANGED_SQL = """
UPDATE contact_moment_sync s SET synced_changed_at = r.changed_at, updated_at = clock_timestamp()
  FROM unnest(%s::bigint[], %s::timestamptz[]) AS r (id, changed_at)
 WHERE s.contact_moment_id = r.id
"""

FLOW_HOURLY_USE_SQL = """
SELECT count(*) FROM api_ledger
 WHERE budget_key = %s AND flow = %s AND requested_at > clock_timestamp() - interval '1 hour'
"""


class ContactMomentsToSalesforceOperator(SalesforceFlowOperator):
    """Send new and changed contact moments to ``ClangLead/ContactContactMoment__c`` within the API budget.

    :param hourly_share: part of the hourly API budget this flow may use in a rolling hour (the
        rest stays free for the other flows); the daily share and the org's allocation also apply.
    :param bulk_threshold: moments per object from which Bulk API 2.0 ingest is used (when cheaper).
    :param bulk_job_size: moments per Bulk ingest job.
    :param max_attempts: failures of the same payload after which a moment is no longer retried
        (until its data changes or someone requests a retry of its sync_error row).
    """

    def __init__(
        self,
        *,
        hourly_share: float = 0.5,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk_job_size: int = DEFAULT_BULK_JOB_SIZE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < hourly_share <= 1:
            raise ValueError(f"hourly_share must be a fraction in (0, 1], got {hourly_share!r}")
        for name, value in (("bulk_threshold", bulk_threshold), ("bulk_job_size", bulk_job_size), ("max_attempts", max_attempts)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        self.hourly_share = hourly_share
        self.bulk_threshold = bulk_threshold
        self.bulk_job_size = bulk_job_size
        self.max_attempts = max_attempts

    @property
    def flow(self) -> str:
        return FLOW

    def build_run(self, store: DeployteqHook, salesforce: BudgetedSalesforceHook) -> "ContactMomentSync":
        return ContactMomentSync(
            store, salesforce, hourly_share=self.hourly_share, bulk_threshold=self.bulk_threshold,
            bulk_job_size=self.bulk_job_size, max_attempts=self.max_attempts, log=self.log,
        )


class ContactMomentSync:
    """The work of one run; ``counts`` stays readable when the run stops early."""

    def __init__(
        self,
        store: DeployteqHook,
        salesforce: BudgetedSalesforceHook,
        *,
        hourly_share: float = 0.5,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        bulk_job_size: int = DEFAULT_BULK_JOB_SIZE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        log: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.salesforce = salesforce
        self.hourly_share = hourly_share
        self.bulk_threshold = bulk_threshold
        self.bulk_job_size = bulk_job_size
        self.max_attempts = max_attempts
        self.log = log or logging.getLogger(__name__)
        self.counts = ContactMomentCounts()
        self._handled = 0  # moments Salesforce answered for in this run (sent or rejected)
        self._failed_ids: set[int] = set()  # rejected in this run: not "left", they wait for their retry

    # -- the run ---------------------------------------------------------------------------------------

    def run(self) -> ContactMomentCounts:
        """Two oldest-first passes over the candidates, one keyset chunk at a time: plan, then send the plan."""
        now = self._now()
        allowance = self._allowance()
        planner = SendPlanner(allowance.requests, bulk_threshold=self.bulk_threshold,
                              bulk_job_size=self.bulk_job_size, bulk_job_requests=BULK_JOB_REQUESTS)
        backlog = self._look_at_candidates(planner)
        figures = backlog.figures(now)
        self._backlog, self._planner = backlog, planner
        self.counts.details.update(
            backlog=figures["size"], backlog_to_leads=figures["to_leads"], backlog_to_contacts=figures["to_contacts"],
            oldest_unsent_at=figures["oldest_changed_at"], oldest_unsent_age_seconds=figures["oldest_age_seconds"],
            requests_allowed=allowance.requests, budget_limited_by=allowance.limited_by,
            requests_planned=planner.best_cost, planned=planner.best_n,
        )
        self.log.info(
            "Contact moments: backlog %s (%s to leads, %s to contacts), oldest unsent moment waiting %s; "
            "not sendable: %s without Salesforce id, %s retries used up; %s unchanged since sent",
            figures["size"], figures["to_leads"], figures["to_contacts"], format_age(figures["oldest_age_seconds"]),
            self.counts.details.get(NO_SALESFORCE_ID, 0), self.counts.details.get(GIVEN_UP, 0),
            self.counts.details.get(UNCHANGED, 0),
        )
        self.log.info(
            "API budget allows %s requests now (limited by the %s): sending %s of %s moments "
            "(%s requests planned), %s left for the next run",
            allowance.requests, allowance.limited_by, planner.best_n, figures["size"],
            planner.best_cost, figures["size"] - planner.best_n,
        )
        if allowance.blocked:
            self._raise_blocked()

        try:
            self._send_plan(planner, backlog)
        except BudgetExhausted:
            self._finish_figures(now, stopped_early=True)
            raise
        self._finish_figures(now, stopped_early=False)
        return self.counts

    # -- reading ----------------------------------------------------------------------------------------

    def _now(self) -> datetime:
        with self.store.connect() as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def _candidates(self, upto: tuple[datetime, int] = LAST_KEY, targets: set[str] | None = None) -> Iterator[MomentRow]:
        """New and changed moments oldest first, up to ``upto`` (changed_at, id), READ_CHUNK rows per query;
        with ``targets`` only moments that go to those objects.

        Each chunk is its own short transaction: what the run commits in between (sent, unchanged) is
        behind the keyset and never read twice.
        """
        after = FIRST_KEY
        while True:
            with self.store.connect() as conn, conn.cursor(row_factory=args_row(MomentRow)) as cur:
                cur.execute(CANDIDATES_SQL, {"flow": FLOW, "after_at": after[0], "after_id": after[1],
                                             "upto_at": upto[0], "upto_id": upto[1], "chunk": READ_CHUNK,
                                             "targets": sorted(targets) if targets is not None else None})
                rows = cur.fetchall()
            yield from rows
            if len(rows) < READ_CHUNK:
                return
            after = (rows[-1].changed_at, rows[-1].contact_moment_id)

    def _look_at_candidates(self, planner: SendPlanner) -> BacklogTally:
        """Pass 1: decide every candidate, remember unchanged ones, count the backlog and plan (no moment is kept)."""
        backlog = BacklogTally()
        by_reason: dict[str, int] = {NO_SALESFORCE_ID: 0, UNCHANGED: 0, GIVEN_UP: 0}
        unchanged: list[MomentRow] = []
        for row in self._candidates():
            decision = decide(row, max_attempts=self.max_attempts)
            if isinstance(decision, Outgoing):
                backlog.add(decision)
                planner.add(decision)
                continue
            by_reason[decision.reason] += 1
            if decision.reason == UNCHANGED:
                unchanged.append(row)
                if len(unchanged) >= READ_CHUNK:
                    self._mark_unchanged(unchanged)
                    unchanged = []
        self._mark_unchanged(unchanged)
        self.counts.skipped = sum(by_reason.values())
        self.counts.fetched = backlog.size + self.counts.skipped
        self.counts.details.update(by_reason)
        return backlog

    def _mark_unchanged(self, rows: Sequence[MomentRow]) -> None:
        if rows:
            with self.store.connect() as conn:
                conn.execute(MARK_UNCHANGED_SQL, ([r.contact_moment_id for r in rows], [r.changed_at for r in rows]))

    def _planned_moments(self, sobjects: set[str], planner: SendPlanner) -> Iterator[Outgoing]:
        """Pass 2: the planned prefix again, for ``sobjects``; never more per object than planned (budget)."""
        taken = {sobject: 0 for sobject in sobjects}
        quota = {sobject: planner.planned[sobject] for sobject in sobjects}
        for row in self._candidates(upto=planner.last_key, targets=sobjects):
            decision = decide(row, max_attempts=self.max_attempts)
            if not isinstance(decision, Outgoing) or decision.target.sobject not in taken:
                continue
            sobject = decision.target.sobject
            if taken[sobject] >= quota[sobject]:
                continue
            taken[sobject] += 1
            yield decision
            if taken == quota:
                return

    # -- the budget -------------------------------------------------------------------------------------

    def _allowance(self) -> Allowance:
        status = self.salesforce.budget_status()
        with self.store.connect() as conn:
            flow_used = conn.execute(FLOW_HOURLY_USE_SQL, (status.budget_key, FLOW)).fetchone()[0]
        self._status = status
        return requests_allowed(
            hourly_limit=status.hourly_limit, hourly_used=status.hourly_used, flow_hourly_used=flow_used,
            hourly_share=self.hourly_share, daily_limit=status.daily_limit, daily_used=status.daily_used,
            org_daily_max=status.org_daily_max, org_daily_used=status.org_daily_used, blocked=status.blocked,
        )

    def _raise_blocked(self) -> None:
        status = self._status
        resume = status.blocked_until.strftime("%Y-%m-%d %H:%M UTC")
        raise SalesforceRequestLimitExceeded(
            f"Salesforce blocks the API requests of {status.budget_key} (REQUEST_LIMIT_EXCEEDED: "
            f"{status.block_message or 'TotalRequests Limit exceeded.'}) since "
            f"{status.blocked_since:%Y-%m-%d %H:%M UTC}; no contact moment was sent, all "
            f"{self._backlog.size} wait and are sent from {resume} on",
            since=status.blocked_since, resume_at=status.blocked_until,
        )

    # -- sending ----------------------------------------------------------------------------------------

    def _send_plan(self, planner: SendPlanner, backlog: BacklogTally) -> None:
        """Composite objects in one pass (batches of 200 as they fill), each Bulk object in its own pass;
        the part holding the oldest moment goes first."""
        sobjects = [s for s in (LEAD_OBJECT, CONTACT_OBJECT) if planner.planned[s]]
        composite = {s for s in sobjects if planner.mode(s) == "composite"}
        parts: list[tuple[tuple[datetime, int], str, set[str]]] = []
        if composite:
            parts.append((min(backlog.first_key[s] for s in composite), "composite", composite))
        for sobject in sobjects:
            if sobject not in composite:
                parts.append((backlog.first_key[sobject], "bulk", {sobject}))
        for _, mode, objects in sorted(parts, key=lambda part: part[0]):
            if mode == "composite":
                self._send_composite(self._planned_moments(objects, planner))
            else:
                (sobject,) = objects
                self._send_bulk(sobject, self._planned_moments(objects, planner))

    def _send_composite(self, moments: Iterator[Outgoing]) -> None:
        pending: dict[str, list[Outgoing]] = {LEAD_OBJECT: [], CONTACT_OBJECT: []}
        for moment in moments:
            batch = pending[moment.target.sobject]
            batch.append(moment)
            if len(batch) == COMPOSITE_SIZE:
                self._send_batch(moment.target.sobject, batch)
                pending[moment.target.sobject] = []
        rest = [(sobject, batch) for sobject, batch in pending.items() if batch]
        for sobject, batch in sorted(rest, key=lambda item: (item[1][0].row.changed_at, item[1][0].moment_id)):
            self._send_batch(sobject, batch)

    def _send_batch(self, sobject: str, moments: list[Outgoing]) -> None:
        answers = self.salesforce.composite(
            "PATCH", sobject, [m.payload() for m in moments], external_id_field=EXTERNAL_ID_FIELD
        )
        self._record(composite_results(moments, answers))

    def _send_bulk(self, sobject: str, moments: Iterator[Outgoing]) -> None:
        """One ingest job per ``bulk_job_size`` moments; the CSV is built from the stream while uploading and only
        a slim copy of each moment (id, hash, target) is kept to pair the results with."""
        while (first := next(moments, None)) is not None:
            job = itertools.chain([first], itertools.islice(moments, self.bulk_job_size - 1))
            self._record(self._ingest(sobject, job))

    def _ingest(self, sobject: str, moments: Iterator[Outgoing]) -> list[SendResult]:
        sent: list[Outgoing] = []

        def payloads() -> Iterator[dict[str, Any]]:
            for moment in moments:
                sent.append(moment.slim())
                yield moment.payload()

        columns = [PARENT_FIELDS[sobject], *PAYLOAD_FIELDS]
        bulk = Bulk2Client(self.salesforce.get_conn())
        # the successful results are downloaded below, streamed to a file instead of held as dicts
        result = bulk.ingest(sobject, "upsert", payloads(), columns=columns, external_id_field=EXTERNAL_ID_FIELD,
                             want_successful=False)
        self.log.info("Bulk API 2.0 upsert of %s moments into %s (job %s)", len(sent), sobject, result.job_id)
        return bulk_results(sent, bulk.successful_results(sobject, result.job_id), result.failed)

    def _record(self, results: Sequence[SendResult]) -> None:
        """One transaction per batch: sent moments, failures (sync_error with statusCode + message)."""
        sent = [r for r in results if r.success]
        failed = [r for r in results if not r.success]
        with self.store.connect() as conn:
            if sent:
                conn.execute(MARK_SENT_SQL, (
                    [r.moment.moment_id for r in sent], [r.moment.row.changed_at for r in sent],
                    [r.moment.payload_hash for r in sent], [r.moment.target.sobject for r in sent],
                    [r.moment.target.parent_id for r in sent], [r.record_id for r in sent],
                ))
                self.store.resolve_errors(FLOW, [str(r.moment.moment_id) for r in sent], conn=conn)
            if failed:
                conn.execute(MARK_FAILED_SQL, (
                    [r.moment.moment_id for r in failed], [r.moment.payload_hash for r in failed],
                    [r.reason for r in failed],
                ))
                self.store.record_errors(FLOW, [self._record_error(r) for r in failed], conn=conn)
        self._handled += len(results)
        self._failed_ids.update(r.moment.moment_id for r in failed)
        self.counts.inserted += sum(1 for r in sent if r.created)
        self.counts.updated += sum(1 for r in sent if not r.created)
        self.counts.errors += len(failed)
        for result in failed[:5]:
            self.log.warning(
                "Contact moment %s -> %s rejected: %s", result.moment.moment_id, result.moment.target.sobject, result.reason
            )
        if len(failed) > 5:
            self.log.warning("... and %s more rejected contact moments (see sync_error, flow %s)", len(failed) - 5, FLOW)

    @staticmethod
    def _record_error(result: SendResult) -> RecordError:
        moment = result.moment
        return RecordError(
            record_id=str(moment.moment_id),
            reason=result.reason,
            detail={
                "statusCode": result.status_code, "message": result.message, "fields": list(result.fields),
                "sobject": moment.target.sobject, "parent_id": moment.target.parent_id,
                "attempt": (moment.row.attempts + 1) if moment.row.failed_hash == moment.payload_hash else 1,
            },
        )

    def _finish_figures(self, start: datetime, *, stopped_early: bool) -> None:
        """What is left for the next run; after an early stop the candidates are counted again (not sent yet,
        not rejected in this run)."""
        planner, backlog = getattr(self, "_planner", None), getattr(self, "_backlog", None)
        if planner is None or backlog is None:
            return
        if stopped_early:
            left = BacklogTally()
            for row in self._candidates():
                if row.contact_moment_id in self._failed_ids:
                    continue
                decision = decide(row, max_attempts=self.max_attempts)
                if isinstance(decision, Outgoing):
                    left.add(decision)
            figures = left.figures(start)
        else:
            oldest = backlog.oldest if self._handled == 0 else planner.first_left_changed_at
            size = max(0, backlog.size - self._handled)
            figures = figures_of(size, 0, 0, oldest if size else None, start)
        self.counts.details.update(
            left_for_next_run=figures["size"], oldest_left_at=figures["oldest_changed_at"],
            oldest_left_age_seconds=figures["oldest_age_seconds"],
        )
        self.log.info(
            "Contact moments sent: %s created, %s updated, %s rejected; %s left for the next run "
            "(oldest waiting %s); %s Salesforce requests",
            self.counts.inserted, self.counts.updated, self.counts.errors, figures["size"],
            format_age(figures["oldest_age_seconds"]), self.salesforce.requests_sent,
        )
