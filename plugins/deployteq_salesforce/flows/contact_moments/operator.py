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
from dataclasses import dataclass
from datetime import datetime
from typing import Any


from deployteq_salesforce.assets import SALESFORCE_OBJECTS
from deployteq_salesforce.core.bulk import Bulk2Client, csv_parts
from deployteq_salesforce.core.incremental import one_ahead
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
    SUCCESSFUL_RESULT_COLUMNS,
    UNCHANGED,
    Allowance,
    BacklogTally,
    ContactMomentCounts,
    MomentRow,
    Outgoing,
    Sendable,
    SendPlanner,
    SendResult,
    bulk_results,
    composite_results,
    decide,
    figures_of,
    format_age,
    requests_allowed,
    route,
    triage,
)
from deployteq_salesforce.core.exceptions import BudgetExhausted, SalesforceRequestLimitExceeded
from deployteq_salesforce.core.timing import BOOKKEEPING, MAP, PARSE
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.operator import SalesforceFlowOperator
from deployteq_salesforce.core.store import RecordError
from deployteq_salesforce.core.datasets import SALESFORCE, Written
from deployteq_salesforce.flows.contact_moments.store import READ_CHUNK, ContactMomentStore


@dataclass
class _BulkJob:
    """One Bulk ingest job, ready to send: its CSV uploads and a slim copy of each moment in it."""

    sobject: str
    sent: list[Outgoing]
    parts: list[bytes]


class ContactMomentsToSalesforceOperator(SalesforceFlowOperator):
    """Send new and changed contact moments to ``ClangLead/ContactContactMoment__c`` within the API budget.

    :param hourly_share: part of the hourly API budget this flow may use in a rolling hour (the
        rest stays free for the other flows); the daily share and the org's allocation also apply.
    :param bulk_threshold: moments per object from which Bulk API 2.0 ingest is used (when cheaper).
    :param bulk_job_size: moments per Bulk ingest job.
    :param max_attempts: failures of the same payload after which a moment is no longer retried
        (until its data changes or someone requests a retry of its sync_error row).
    """

    asset_aliases = (SALESFORCE_OBJECTS,)

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

    # the README's promise: send what fits in the budget now, the rest goes with the next scheduled run
    defer_when_limited = False

    @property
    def flow(self) -> str:
        return FLOW

    def lineage_of(self, work: "ContactMomentSync"):
        """OpenLineage: contact_moment (+ the customer's Salesforce Id) -> the two custom objects."""
        from deployteq_salesforce.core import lineage

        return lineage.contact_moments(PARENT_FIELDS)

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
        self.moments = ContactMomentStore(store, phases=salesforce.phases)
        self.salesforce = salesforce
        self.hourly_share = hourly_share
        self.bulk_threshold = bulk_threshold
        self.bulk_job_size = bulk_job_size
        self.max_attempts = max_attempts
        self.log = log or logging.getLogger(__name__)
        self.counts = ContactMomentCounts()
        self.run_log_id: int | None = None
        self._handled = 0  # moments Salesforce answered for in this run (sent or rejected)
        self._failed_ids: set[int] = set()  # rejected in this run: not "left", they wait for their retry
        self._written: dict[str, Written] = {}  # Salesforce object -> what this run created/updated there

    # -- the run ---------------------------------------------------------------------------------------

    def resume_state(self) -> dict:
        return {}  # never deferred: what did not fit goes with the next run

    def written(self) -> list[Written]:
        return list(self._written.values())

    def run(self, resume: dict | None = None) -> ContactMomentCounts:
        """Two oldest-first passes over the candidates, one keyset chunk at a time: plan, then send the plan."""
        self._recover_bulk_jobs()
        now = self.moments.now()
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

    def _look_at_candidates(self, planner: SendPlanner) -> BacklogTally:
        """Pass 1: triage every candidate, remember unchanged ones, count the backlog and plan (no moment is kept)."""
        backlog = BacklogTally()
        by_reason: dict[str, int] = {NO_SALESFORCE_ID: 0, UNCHANGED: 0, GIVEN_UP: 0}
        unchanged: list[MomentRow] = []
        with self.salesforce.phases.phase(MAP):  # the reads in it are timed as lookup, per chunk
            for row in self.moments.candidates(slim=True):
                decision = triage(row, max_attempts=self.max_attempts)
                if isinstance(decision, Sendable):
                    backlog.add(decision)
                    planner.add(decision)
                    continue
                by_reason[decision.reason] += 1
                if decision.reason == UNCHANGED:
                    unchanged.append(row)
                    if len(unchanged) >= READ_CHUNK:
                        self.moments.mark_unchanged(unchanged)
                        unchanged = []
        self.moments.mark_unchanged(unchanged)
        self.counts.skipped = sum(by_reason.values())
        self.counts.fetched = backlog.size + self.counts.skipped
        self.counts.details.update(by_reason)
        return backlog

    def _planned_moments(self, sobjects: set[str], planner: SendPlanner) -> Iterator[Outgoing]:
        """Pass 2: the planned prefix again, for ``sobjects``; never more per object than planned (budget)."""
        taken = {sobject: 0 for sobject in sobjects}
        quota = {sobject: planner.planned[sobject] for sobject in sobjects}
        # one object: its moments only (the filter is in SQL); both (composite): every candidate
        (only,) = sobjects if len(sobjects) == 1 else (None,)
        for row in self.moments.candidates(upto=planner.last_key, sobject=only):
            target = route(row)
            if target is None or target.sobject not in taken:
                continue  # the other object's moment: not built nor hashed here
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
        flow_used = self.moments.flow_hourly_use(status.budget_key)
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
        ordered = sorted(parts, key=lambda part: part[0])
        for mode, run in itertools.groupby(ordered, key=lambda part: part[1]):
            if mode == "composite":
                for _, _, objects in run:
                    self._send_composite(self._planned_moments(objects, planner))
            else:  # the next Bulk job's CSV is written while Salesforce processes the one before
                bulk_objects = [sobject for _, _, (sobject,) in run]
                jobs = (job for sobject in bulk_objects for job in self._bulk_jobs(sobject, planner))
                for job in one_ahead(jobs, timer=self.salesforce.phases):
                    self._ingest(job)

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

    def _bulk_jobs(self, sobject: str, planner: SendPlanner) -> Iterator[_BulkJob]:
        """The planned moments of ``sobject`` as Bulk jobs of ``bulk_job_size``, written as CSV uploads; of each moment
        only a slim copy (id, hash, target) is kept to pair the results with."""
        moments = self._planned_moments({sobject}, planner)
        columns = [PARENT_FIELDS[sobject], *PAYLOAD_FIELDS]
        while (first := next(moments, None)) is not None:
            sent: list[Outgoing] = []

            def payloads(job: Iterator[Outgoing]) -> Iterator[dict[str, Any]]:
                for moment in job:
                    sent.append(moment.slim())
                    yield moment.payload()

            job = itertools.chain([first], itertools.islice(moments, self.bulk_job_size - 1))
            with self.salesforce.phases.phase(MAP):  # building the CSV (reading and deciding are phases of their own)
                parts = list(csv_parts(payloads(job), columns))
            yield _BulkJob(sobject, sent, parts)

    def _ingest(self, job: _BulkJob) -> None:
        bulk = Bulk2Client(self.salesforce.get_conn())
        phases = self.salesforce.phases

        def journal(job_id: str) -> None:
            with phases.phase(BOOKKEEPING):
                self.moments.journal_job(job_id, job.sobject, job.sent)

        # journaled before Salesforce may process the job: a crash from here on does not send it again
        result = bulk.ingest_csv(job.sobject, "upsert", job.parts, external_id_field=EXTERNAL_ID_FIELD,
                                 want_successful=False, before_processing=journal)
        self.log.info("Bulk API 2.0 upsert of %s moments into %s (job %s)", len(job.sent), job.sobject, result.job_id)
        # the successful results are streamed from a file instead of held as dicts
        with phases.phase(PARSE):
            successful = bulk.successful_results(job.sobject, result.job_id, SUCCESSFUL_RESULT_COLUMNS)
            self._record(bulk_results(job.sent, successful, result.failed), settled_job=result.job_id)

    def _recover_bulk_jobs(self) -> None:
        """Bulk jobs a crashed run closed but never recorded: record their results instead of sending them again."""
        bulk = Bulk2Client(self.salesforce.get_conn())
        for job_id, sobject, moments in self.moments.journaled_jobs():
            state = bulk.ingest_state(sobject, job_id)
            if state in (None, "Open", "Aborted"):
                if state == "Open":
                    bulk.abort_ingest(sobject, job_id)  # never closed: Salesforce processed nothing of it
                self.moments.forget_job(job_id)  # its moments are still pending and go out as usual
                self.log.info("Bulk job %s of an earlier run was never processed (%s); its %s moments are sent again",
                              job_id, state or "unknown to Salesforce", len(moments))
                continue
            if state == "Failed":
                result = bulk.unfinished_job_results(sobject, job_id)
                results = bulk_results(moments, result.successful, result.failed, whole_job=False)
            else:
                result = bulk.results(sobject, job_id, want_successful=False)
                successful = bulk.successful_results(sobject, job_id, SUCCESSFUL_RESULT_COLUMNS)
                results = bulk_results(moments, successful, result.failed)
            self.log.info("Recorded the results of Bulk job %s of an earlier run (%s moments) without sending them again",
                          job_id, len(results))
            self._record(results, settled_job=job_id)

    def _record(self, results: Sequence[SendResult], *, settled_job: str | None = None) -> None:
        """One transaction per batch: sent moments, failures (sync_error with statusCode + message)."""
        sent = [r for r in results if r.success]
        failed = [r for r in results if not r.success]
        self.counts.inserted += sum(1 for r in sent if r.created)
        self.counts.updated += sum(1 for r in sent if not r.created)
        created: dict[str, list[int]] = {}  # per object: [created, updated]; one Written.add per object, not per moment
        for result in sent:
            tally = created.setdefault(result.moment.target.sobject, [0, 0])
            tally[0 if result.created else 1] += 1
        for sobject, (inserted, updated) in created.items():
            self._written.setdefault(sobject, Written(SALESFORCE, sobject)).add(inserted=inserted, updated=updated)
        self.counts.errors += len(failed)
        progress = (self.run_log_id, self.counts.as_log_counts()) if self.run_log_id is not None else None
        with self.salesforce.phases.phase(BOOKKEEPING):
            self.moments.record(sent, failed, [self._record_error(r) for r in failed], progress=progress,
                                settled_job=settled_job)
        self._handled += len(results)
        self._failed_ids.update(r.moment.moment_id for r in failed)
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
            for row in self.moments.candidates(slim=True):
                if row.contact_moment_id in self._failed_ids:
                    continue
                decision = triage(row, max_attempts=self.max_attempts)
                if isinstance(decision, Sendable):
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
