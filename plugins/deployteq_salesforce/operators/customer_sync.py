"""Salesforce Lead/Contact -> Deployteq customer table (R2-R9).

One run: describe the object (validates the mapping before anything is fetched and tells the
server's clock), read the changed records page by page (Bulk API 2.0 above a threshold), write
them batch by batch (each batch one transaction with its watermark), then reset the sync flag
in Salesforce in batches.  A run stopped by the API budget keeps what it committed and defers
until budget is free again; the next run continues from the committed watermark.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Sequence

from airflow.sdk import BaseOperator, Variable

from deployteq_salesforce.bulk import Bulk2Client
from deployteq_salesforce.config import ConfiguredObject, load_objects_config, validate_against_salesforce
from deployteq_salesforce.customer_merge import IncomingRecord
from deployteq_salesforce.customer_writer import apply_batch
from deployteq_salesforce.exceptions import BudgetExhausted, ConfigurationError
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.mapping import RecordProblem, build_customer_row
from deployteq_salesforce.soql_builder import incremental_query
from deployteq_salesforce.store import RecordError, Watermark
from deployteq_salesforce.sync_support import (
    FlagResetQueue,
    defer_or_skip_for_budget,
    parse_sf_datetime,
    rest_pages,
)

OBJECTS_VARIABLE = "deployteq_salesforce_objects"
PROGRESS_EVERY_SECONDS = 15.0


@dataclass
class SyncCounts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    merged: int = 0
    skipped: int = 0
    errors: int = 0
    deleted: int = 0
    flags_reset: int = 0
    details: dict = field(default_factory=dict)

    def as_log_counts(self) -> dict[str, int]:
        counts = asdict(self)
        counts.pop("details")
        return counts


class SalesforceToDeployteqOperator(BaseOperator):
    """Sync one configured object (Lead or Contact) from Salesforce into the customer table.

    :param sobject: ``Lead`` or ``Contact``; its mapping is read from the Variable
        ``deployteq_salesforce_objects`` at run time (or given as ``object_config``).
    :param full_load: R9 initial load: every record, ignoring the sync flag and without
        touching anything in Salesforce; resumable, and it leaves the incremental watermark at its start.
    """

    template_fields: Sequence[str] = ("sobject", "salesforce_conn_id", "deployteq_conn_id")
    ui_color = "#e8f4fb"

    def __init__(
        self,
        *,
        sobject: str,
        full_load: bool = False,
        object_config: dict | None = None,
        salesforce_conn_id: str = "salesforce_default",
        deployteq_conn_id: str = "deployteq_default",
        batch_size: int = 5000,
        max_budget_wait: timedelta = timedelta(hours=1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sobject = sobject
        self.full_load = full_load
        self.object_config = object_config
        self.salesforce_conn_id = salesforce_conn_id
        self.deployteq_conn_id = deployteq_conn_id
        self.batch_size = batch_size
        self.max_budget_wait = max_budget_wait

    # -- Airflow entry points -------------------------------------------------------------------------

    @property
    def flow(self) -> str:
        return f"{'full_load' if self.full_load else 'sync'}:{self.sobject}"

    def execute(self, context: Any) -> dict:
        obj = self._object_config()
        store = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        store.migrate()
        salesforce = BudgetedSalesforceHook(
            salesforce_conn_id=self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow=self.flow
        )
        dag_run = context.get("dag_run") if context else None
        run_log_id = store.start_run(
            self.flow, dag_id=getattr(dag_run, "dag_id", None), run_id=getattr(dag_run, "run_id", None)
        )
        sync = CustomerSync(obj, salesforce, store, full_load=self.full_load, batch_size=self.batch_size, log=self.log)
        try:
            counts = sync.run()
        except BudgetExhausted as exc:
            store.finish_run(
                run_log_id,
                outcome="limited",
                counts=sync.counts.as_log_counts(),
                message=str(exc),
                api_requests=salesforce.requests_sent,
            )
            self.log.warning(
                "%s stopped by the Salesforce API budget after %s records: %s. Everything fetched so far is "
                "committed; the sync continues from there at %s.",
                self.flow, sync.counts.fetched, exc, exc.resume_at.isoformat(),
            )
            defer_or_skip_for_budget(self, exc, self.max_budget_wait)
            raise
        except Exception as exc:
            store.finish_run(
                run_log_id,
                outcome="failed",
                counts=sync.counts.as_log_counts(),
                message=f"{type(exc).__name__}: {exc}",
                api_requests=salesforce.requests_sent,
            )
            raise
        outcome = "partial" if counts.errors else "success"
        store.finish_run(
            run_log_id, outcome=outcome, counts=counts.as_log_counts(), api_requests=salesforce.requests_sent
        )
        summary = {"flow": self.flow, "outcome": outcome, **counts.as_log_counts(), "api_requests": salesforce.requests_sent}
        self.log.info(
            "%s done: fetched %s, inserted %s, updated %s, merged %s, skipped %s, deleted %s, errors %s, "
            "flags reset %s, Salesforce requests %s",
            self.flow, counts.fetched, counts.inserted, counts.updated, counts.merged, counts.skipped,
            counts.deleted, counts.errors, counts.flags_reset, salesforce.requests_sent,
        )
        return summary

    def execute_complete(self, context: Any, event: Any = None) -> dict:
        """Budget is free again: run once more; it continues from the committed watermark."""
        return self.execute(context)

    def _object_config(self) -> ConfiguredObject:
        raw = self.object_config if self.object_config is not None else Variable.get(OBJECTS_VARIABLE)
        config = load_objects_config(raw if isinstance(raw, (str, dict)) else dict(raw))
        for obj in config.objects:
            if obj.sobject.lower() == self.sobject.lower():
                return obj
        raise ConfigurationError(
            f"{self.sobject} is not a configured object in the Variable {OBJECTS_VARIABLE!r}; "
            f"configured: {', '.join(o.sobject for o in config.objects) or 'none'}"
        )


class CustomerSync:
    """The work of one run; ``counts`` stays readable when the run stops early."""

    def __init__(self, obj: ConfiguredObject, salesforce: BudgetedSalesforceHook, store: DeployteqHook, *,
                 full_load: bool, batch_size: int, log):
        self.obj = obj
        self.salesforce = salesforce
        self.store = store
        self.full_load = full_load
        self.batch_size = batch_size
        self.log = log
        self.counts = SyncCounts()
        self.flow = f"{'full_load' if full_load else 'sync'}:{obj.sobject}"
        self.watermark_flow = f"sync:{obj.sobject}"
        self.use_flag = bool(obj.sync_flag_field) and not full_load
        self.flags = FlagResetQueue(store, self.watermark_flow)
        self._last_progress = time.monotonic()

    # -- the run ------------------------------------------------------------------------------------------

    def run(self) -> SyncCounts:
        sf = self.salesforce.get_conn()
        describe = getattr(sf, self.obj.sobject).describe()
        columns = self.store.table_columns("customer")
        problems = validate_against_salesforce(self.obj, describe, columns)
        for warning in (p for p in problems if not p.is_error):
            self.log.warning("Mapping: %s", warning)
        problems = [p for p in problems if p.is_error]
        if problems:
            raise ConfigurationError(
                f"The mapping of {self.obj.sobject} is invalid; nothing was fetched:\n"
                + "\n".join(f"- {p}" for p in problems)
            )
        self.field_types = {f["name"]: f["type"] for f in describe["fields"]}
        window_end = self._server_now()
        # SystemModstamp has whole seconds: "< end + 1s" includes what changed before the run in this
        # second; the watermark stays at ``window_end`` so later changes in that second come next run
        until = window_end + timedelta(seconds=1)
        if self.use_flag:
            # flags left over by an interrupted run go first: they cost no read
            self.counts.flags_reset += self.flags.flush(self.salesforce, self.obj)
        mapped_columns = list(dict.fromkeys(m.deployteq_field for m in self.obj.value_mappings))

        since, resume_after = self._window()
        for batch in self._batches(self._fetch(since, until, resume_after)):
            self._write_batch(batch, mapped_columns)
        if self.use_flag and since is not None and self.obj.deleted_detection:
            # flagged reads skip deleted rows; deletions come from queryAll on the same window
            for batch in self._batches(self._fetch_deleted(since, until)):
                self._write_batch(batch, mapped_columns)
        self._finish_window(window_end)
        if self.use_flag:
            self.counts.flags_reset += self.flags.flush(self.salesforce, self.obj)
        return self.counts

    def _server_now(self) -> datetime:
        """Salesforce's clock (Date header of the describe), so the window never outruns the server."""
        server_time = getattr(self.salesforce, "server_time", None)
        now = server_time or datetime.now(timezone.utc)
        return now.replace(microsecond=0)

    def _window(self) -> tuple[datetime | None, Watermark | None]:
        if self.full_load:
            progress = self.store.get_watermark(self.flow)  # where an interrupted full load stopped
            return None, progress
        watermark = self.store.get_watermark(self.watermark_flow)
        if watermark is None or watermark.modstamp is None:
            return None, None
        return watermark.modstamp - timedelta(seconds=self.obj.lookback_seconds), None

    def _finish_window(self, until: datetime) -> None:
        with self.store.connect() as conn:
            self.store.set_watermark(self.watermark_flow, Watermark(until, None), conn=conn)
            if self.full_load:
                self.store.set_watermark(self.flow, Watermark(None, None), conn=conn)

    # -- reading -------------------------------------------------------------------------------------------

    def _select_fields(self) -> list[str]:
        wanted = [*self.obj.query_fields(), "IsDeleted"]
        if self.obj.sync_flag_field:
            wanted.append(self.obj.sync_flag_field)
        return list(dict.fromkeys(f for f in wanted if f in self.field_types))

    def _fetch(self, since: datetime | None, until: datetime, resume_after: Watermark | None) -> Iterator[dict]:
        soql = incremental_query(
            self.obj.sobject,
            self._select_fields(),
            since=since,
            until=until,
            sync_flag_field=self.obj.sync_flag_field if self.use_flag else None,
            after=(resume_after.modstamp, resume_after.last_id) if resume_after and resume_after.modstamp else None,
        )
        bulk_soql = incremental_query(
            self.obj.sobject,
            self._select_fields(),
            since=since,
            until=until,
            sync_flag_field=self.obj.sync_flag_field if self.use_flag else None,
            order=False,  # Bulk API 2.0 keeps no order; the batch writer needs none
        )
        include_deleted = not self.use_flag and not self.full_load and self.obj.deleted_detection
        pages = rest_pages(self.salesforce.get_conn(), soql, include_deleted=include_deleted, batch_size=self.obj.page_size)
        total, first_page = next(pages)
        self.total = total
        self.log.info("%s: %s changed records to read (%s)", self.flow, total, "Bulk API 2.0" if total > self.obj.bulk_threshold else "REST")
        if total > self.obj.bulk_threshold:
            pages.close()
            self.ordered = False
            yield from Bulk2Client(self.salesforce.get_conn()).query(
                self.obj.sobject, bulk_soql, include_deleted=include_deleted, field_types=self.field_types
            )
            return
        self.ordered = True
        yield from first_page
        for _, page in pages:
            yield from page

    def _fetch_deleted(self, since: datetime, until: datetime) -> Iterator[dict]:
        window = incremental_query(self.obj.sobject, self._select_fields(), since=since, until=until, order=False)
        soql = window.replace(" WHERE ", " WHERE IsDeleted = true AND ", 1)
        for _, page in rest_pages(self.salesforce.get_conn(), soql, include_deleted=True, batch_size=2000):
            yield from page

    def _batches(self, records: Iterator[dict]) -> Iterator[list[dict]]:
        batch: list[dict] = []
        for record in records:
            batch.append(record)
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- writing -------------------------------------------------------------------------------------------

    def _write_batch(self, records: list[dict], mapped_columns: list[str]) -> None:
        self.counts.fetched += len(records)
        incoming: list[IncomingRecord] = []
        errors: list[RecordError] = []
        for record in records:
            built = build_customer_row(self.obj, record)
            if isinstance(built, RecordProblem):
                errors.append(RecordError(record_id=built.record_id, reason=built.reason, detail=built.detail))
            else:
                incoming.append(built.to_incoming_record())
        with self.store.connect() as conn:
            skip = self.flags.permanently_failed(conn, incoming) if self.use_flag else set()
            incoming = [r for r in incoming if r.sf_id not in skip]
            plan, written = apply_batch(conn, incoming, mapped_columns, unique_field=self.obj.unique_field)
            for outcome in plan.outcomes:
                if outcome.action == "error":
                    errors.append(RecordError(record_id=outcome.sf_id, reason=outcome.reason, detail={"sobject": self.obj.sobject}))
            for loser in plan.losers:
                errors.append(
                    RecordError(record_id=loser.sf_id, reason=f"merged: {loser.reason}", detail={"winner_id": loser.winner_id})
                )
            # earlier errors of records that went through now are settled; new ones recorded after
            self.store.resolve_errors(self.flow, [o.sf_id for o in plan.outcomes if o.action != "error"], conn=conn)
            if errors:
                self.store.record_errors(self.flow, errors, conn=conn)
            if self.use_flag:
                self.flags.enqueue(conn, [r for r in incoming if not r.is_deleted])
            if self.ordered and not self.use_flag:
                last = records[-1]
                progress = Watermark(parse_sf_datetime(last["SystemModstamp"]), last["Id"])
                self.store.set_watermark(self.flow if self.full_load else self.watermark_flow, progress, conn=conn)
        self.counts.inserted += written.inserted
        self.counts.updated += written.updated
        self.counts.merged += plan.count("merged")
        self.counts.skipped += plan.count("skipped") + written.unchanged + len(skip)
        self.counts.deleted += plan.count("deleted")
        self.counts.errors += len(errors) - len(plan.losers)
        self._progress()

    def _progress(self) -> None:
        if time.monotonic() - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        self._last_progress = time.monotonic()
        total = getattr(self, "total", 0) or self.counts.fetched
        self.log.info(
            "%s: %s of %s records written (%.0f%%), %s Salesforce requests so far",
            self.flow, self.counts.fetched, total, 100.0 * self.counts.fetched / max(total, 1),
            self.salesforce.requests_sent,
        )
