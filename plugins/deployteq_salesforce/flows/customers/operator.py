"""Salesforce Lead/Contact -> Deployteq customer table (R2-R9).

One run: describe the object (validates the mapping before anything is fetched and tells the
server's clock), read the changed records page by page (Bulk API 2.0 above a threshold), write
them batch by batch (each batch one transaction with its watermark), then reset the sync flag
in Salesforce in batches.  A run stopped by the API budget keeps what it committed and defers
until budget is free again; the next run continues from the committed watermark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


from deployteq_salesforce.assets import DEPLOYTEQ_CUSTOMERS
from deployteq_salesforce.flows.customers.config import ConfiguredObject, load_objects_config, validate_against_salesforce
from deployteq_salesforce.flows.customers.merge import IncomingRecord
from deployteq_salesforce.flows.customers.store import (
    apply_batch, binary_copy_types, remember_sources, stored_values_hashes, values_hash,
)
from deployteq_salesforce.core.variables import require_variable
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.incremental import (
    IncrementalReader, ProgressLog, SyncCounts, SyncWindow, rest_pages, server_now, write_in_batches,
)
from deployteq_salesforce.flows.customers.mapping import RecordProblem, build_incoming_records
from deployteq_salesforce.core.operator import SalesforceFlowOperator
from deployteq_salesforce.core.store import RecordError
from deployteq_salesforce.core.datasets import DEPLOYTEQ, Written
from deployteq_salesforce.core.soql import ids_query
from deployteq_salesforce.core.flag_reset import FlagResetQueue, read_again_hasher
from deployteq_salesforce.core.timing import BOOKKEEPING, FLAG_RESET, MAP

OBJECTS_VARIABLE = "deployteq_salesforce_objects"


class SalesforceToDeployteqOperator(SalesforceFlowOperator):
    """Sync one configured object (Lead or Contact) from Salesforce into the customer table.

    :param sobject: ``Lead`` or ``Contact``; its mapping is read from the Variable
        ``deployteq_salesforce_objects`` at run time (or given as ``object_config``).
    :param full_load: R9 initial load: every record, ignoring the sync flag and without
        touching anything in Salesforce; resumable, and it leaves the incremental watermark at its start.
    :param batch_size: records per database transaction.
    """

    template_fields: Sequence[str] = ("sobject", "salesforce_conn_id", "deployteq_conn_id")
    asset_aliases = (DEPLOYTEQ_CUSTOMERS,)

    def __init__(
        self,
        *,
        sobject: str,
        full_load: bool = False,
        object_config: dict | str | None = None,
        batch_size: int = 5000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sobject = sobject
        self.full_load = full_load
        self.object_config = object_config
        self.batch_size = batch_size

    @property
    def flow(self) -> str:
        return f"{'full_load' if self.full_load else 'sync'}:{self.sobject}"

    def build_run(self, store: DeployteqHook, salesforce: BudgetedSalesforceHook) -> "CustomerSync":
        return CustomerSync(self._object_config(), salesforce, store, full_load=self.full_load, batch_size=self.batch_size, log=self.log)

    def lineage_of(self, work: "CustomerSync"):
        """OpenLineage: the object's mapped fields -> customer columns (with translations)."""
        from deployteq_salesforce.core import lineage

        return lineage.customers(work.obj, field_types=work.field_types)

    def _object_config(self) -> ConfiguredObject:
        raw = self.object_config if self.object_config is not None else require_variable(OBJECTS_VARIABLE)
        config = load_objects_config(raw)
        for obj in config.objects:
            if obj.sobject.lower() == self.sobject.lower():
                return obj
        raise ConfigurationError(
            f"{self.sobject} is not a configured object in the Variable {OBJECTS_VARIABLE!r}; "
            f"configured: {', '.join(o.sobject for o in config.objects) or 'none'}"
        )


@dataclass
class MappedBatch:
    """A batch of records as the writer needs it: mapped (or refused), without the raw records."""

    count: int
    incoming: list[IncomingRecord]
    problems: list[RecordProblem]
    last_record: dict  # how far an ordered read got once this batch is stored
    hashes: dict[str, bytes]  # sf_id -> what the record says about its customer (values_hash)
    record_hashes: dict[str, bytes]  # sf_id -> the record as Salesforce sent it (read_again_hasher; flag mode only)


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
        self.run_log_id: int | None = None
        self.flow = f"{'full_load' if full_load else 'sync'}:{obj.sobject}"
        self.watermark_flow = f"sync:{obj.sobject}"
        self.use_flag = bool(obj.sync_flag_field) and not full_load
        self.progress = ProgressLog(log, self.flow)
        self.field_types: dict[str, str] = {}
        self.window: SyncWindow | None = None

    def run(self, resume: dict | None = None) -> SyncCounts:
        customer_columns = self.store.table_columns("customer")
        if resume and resume.get("config") == self.obj.model_dump_json() and resume.get("field_types"):
            # back from waiting for budget: the mapping was checked against this describe already
            self.counts = SyncCounts(**resume["counts"])
            self.field_types = resume["field_types"]
        else:
            if resume:
                self.counts = SyncCounts(**resume["counts"])
            describe = getattr(self.salesforce.get_conn(), self.obj.sobject).describe()
            self._check_mapping(describe, customer_columns)
            self.field_types = {f["name"]: f["type"] for f in describe["fields"]}
        fields = [*self.obj.query_fields(), "IsDeleted", *([self.obj.sync_flag_field] if self.obj.sync_flag_field else [])]
        self.reader = IncrementalReader(
            self.salesforce, sobject=self.obj.sobject, fields=fields, field_types=self.field_types,
            page_size=self.obj.page_size, bulk_threshold=self.obj.bulk_threshold, flow=self.flow, log=self.log,
        )
        self.window = window = SyncWindow.for_run(
            self.store, flow=self.watermark_flow, server_now=server_now(self.salesforce),
            lookback_seconds=self.obj.lookback_seconds, full_load=self.full_load,
        )
        self.mapped_columns = list(dict.fromkeys(m.deployteq_field for m in self.obj.value_mappings))
        self.copy_types = binary_copy_types(self.mapped_columns,
                                            [(m.deployteq_field, m.deployteq_type) for m in self.obj.value_mappings],
                                            customer_columns)
        # flag mode only: each record is hashed as read and queued with its reset; the read after the reset compares
        self.hash_record = read_again_hasher(
            self.reader.fields, flag_field=self.obj.sync_flag_field, mapped={m.salesforce_field for m in self.obj.mappings},
            config=self.obj.model_dump(mode="json"), field_types=self.field_types,
        ) if self.use_flag else None
        if self.use_flag:
            self.flags = FlagResetQueue(
                self.store, self.watermark_flow, sobject=self.obj.sobject, flag_field=self.obj.sync_flag_field,
                fields=self.reader.fields, field_types=self.field_types, store_again=self._store_again, bulk_threshold=self.obj.bulk_threshold,
                prepare_again=self._hash_again,
            )
            # a run that died between a flag reset and reading those records again: read them first
            self.flags.read_again_after_reset(self.salesforce)
            read_started = self.flags.read_started()

        # with the flag, deleted rows are read separately (a deleted record's flag cannot be reset)
        include_deleted = not self.use_flag and not self.full_load and self.obj.deleted_detection
        batches = self.reader.read_batches(
            window, batch_size=self.batch_size, sync_flag_field=self.obj.sync_flag_field if self.use_flag else None,
            include_deleted=include_deleted, prepare=self._map,
        )
        for batch in batches:
            self._write_batch(batch, in_order=self.reader.ordered)
        if self.use_flag and self.obj.deleted_detection:
            write_in_batches(self.reader.read_deleted(window), self.batch_size, self._write_records)
        self._retry_requested()
        if self.use_flag:
            self.flags.drop_unread(read_started)
        window.complete(self.store)
        if self.use_flag:
            with self.salesforce.phases.phase(FLAG_RESET):
                self.counts.flags_reset += self.flags.flush(self.salesforce)
        return self.counts

    def resume_state(self) -> dict:
        return {"config": self.obj.model_dump_json(), "field_types": self.field_types}

    def written(self) -> list[Written]:
        counts = self.counts
        updated = counts.updated + counts.details.get("updated_on_read_again", 0)
        return [Written(DEPLOYTEQ, "customer",
                        {"inserted": counts.inserted, "updated": updated, "merged": counts.merged, "deleted": counts.deleted},
                        watermark=self.window.end.isoformat() if self.window is not None else None)]

    def _hash_again(self, records: list[dict]) -> tuple[list[dict], dict[str, bytes]]:
        """Records read again right after their flag was reset, with their record hashes (pure: runs in the reader)."""
        hash_record = self.hash_record
        with self.salesforce.phases.phase(MAP):
            return records, {record.get("Id"): hash_record(record) for record in records}

    def _store_again(self, hashed: tuple[list[dict], dict[str, bytes]]) -> None:
        """Records read again right after their flag was reset: stored like any batch, not queued again.

        Nearly all come back exactly as they were first read (only the reset changed them): those are recognised by
        the record hash queued with their reset and dropped before mapping; the rest go through the mapping and the
        usual checks."""
        records, hashes = hashed
        self.counts.details["read_again_after_flag_reset"] = (
            self.counts.details.get("read_again_after_flag_reset", 0) + len(records)
        )
        with self.salesforce.phases.phase(BOOKKEEPING), self.store.connect() as conn:
            unchanged = self.flags.unchanged_since_queued(conn, hashes)
        if unchanged:
            records = [record for record in records if record.get("Id") not in unchanged]
        if records:
            self._write_batch(self._map(records), queue_flags=False)

    def _retry_requested(self) -> None:
        """Read again the failed records someone queued for retry (UI action), whatever their timestamp."""
        ids = self.store.retry_requested(self.watermark_flow)
        if not ids:
            return
        self.log.info("%s: reading %s records queued for retry", self.flow, len(ids))
        for soql in ids_query(self.obj.sobject, ids, self.reader.fields):
            for _, page in rest_pages(self.salesforce.get_conn(), soql, include_deleted=True, batch_size=2000):
                write_in_batches(page, self.batch_size, self._write_records)
        # records Salesforce no longer has are not asked for again
        self.store.clear_retry_requests(self.watermark_flow, ids)

    def _check_mapping(self, describe: dict, customer_columns: dict[str, str]) -> None:
        problems = validate_against_salesforce(self.obj, describe, customer_columns)
        for warning in (p for p in problems if not p.is_error):
            self.log.warning("Mapping: %s", warning)
        errors = [p for p in problems if p.is_error]
        if errors:
            raise ConfigurationError(
                f"The mapping of {self.obj.sobject} is invalid; nothing was fetched:\n" + "\n".join(f"- {p}" for p in errors)
            )

    # -- writing -------------------------------------------------------------------------------------------

    def _map(self, records: list[dict]) -> MappedBatch:
        """Pure: may run in the reader's background thread, ahead of the batch being written."""
        with self.salesforce.phases.phase(MAP):
            incoming, problems = build_incoming_records(self.obj, records)
            hashes = {r.sf_id: values_hash(r, self.mapped_columns) for r in incoming}
            hash_record = self.hash_record
            record_hashes = {record.get("Id"): hash_record(record) for record in records} if hash_record else {}
        return MappedBatch(len(records), incoming, problems, records[-1], hashes, record_hashes)

    def _write_records(self, records: list[dict]) -> None:
        self._write_batch(self._map(records))

    def _write_batch(self, batch: MappedBatch, *, in_order: bool = False, queue_flags: bool = True) -> None:
        """Plan and write one mapped batch in one transaction; ``in_order``: the main read in
        (SystemModstamp, Id) order, whose last record marks how far the window is stored."""
        phases = self.salesforce.phases
        if queue_flags:
            self.counts.fetched += batch.count
        incoming = batch.incoming
        errors = [RecordError(record_id=p.record_id, reason=p.reason, detail=p.detail) for p in batch.problems]
        with phases.phase(BOOKKEEPING), self.store.connect() as conn:
            skip = self.flags.permanently_failed(conn, incoming) if self.use_flag and queue_flags else set()
            if skip:
                incoming = [r for r in incoming if r.sf_id not in skip]
            # a full load writes everything (a changed mapping must reach every customer); otherwise a record
            # Salesforce sends again unchanged leaves its customer alone (a Deployteq-side change stays)
            hashes = batch.hashes
            stored = {} if self.full_load else stored_values_hashes(conn, list(hashes))
            unchanged = {sf_id for sf_id, stored_hash in stored.items() if stored_hash == hashes[sf_id]}
            to_write = [r for r in incoming if r.sf_id not in unchanged] if unchanged else incoming
            plan, written = apply_batch(conn, to_write, self.mapped_columns, unique_field=self.obj.unique_field,
                                        phases=phases, copy_types=self.copy_types)
            failed = set()
            for outcome in plan.outcomes:
                if outcome.action == "error":
                    failed.add(outcome.sf_id)
                    errors.append(RecordError(record_id=outcome.sf_id, reason=outcome.reason, detail={"sobject": self.obj.sobject}))
            for loser in plan.losers:
                errors.append(
                    RecordError(record_id=loser.sf_id, reason=f"merged: {loser.reason}", detail={"winner_id": loser.winner_id})
                )
            # earlier errors of records that went through now are settled; new ones recorded after
            self.store.resolve_errors(self.watermark_flow, [o.sf_id for o in plan.outcomes if o.action != "error"], conn=conn)
            if errors:
                # one error list per object, whichever DAG met the record
                self.store.record_errors(self.watermark_flow, errors, conn=conn)
            # a batch of records never stored before (a first or full load) is remembered by a plain INSERT
            remember_sources(conn, {r.sf_id: hashes[r.sf_id] for r in to_write if r.sf_id not in failed},
                             probably_new=self.full_load or not stored)
            if self.use_flag and queue_flags:
                # R3: only stored records lose their flag; a failed one keeps it and is read again next run
                self.flags.enqueue(conn, [r for r in incoming if not r.is_deleted and r.sf_id not in failed],
                                   batch.record_hashes)
            if in_order and not self.use_flag:
                self.window.record_progress(self.store, batch.last_record, conn=conn)
            if queue_flags:  # a read-again after a flag reset is counted apart (read_again_after_flag_reset)
                self.counts.inserted += written.inserted
                self.counts.updated += written.updated
                self.counts.merged += plan.count("merged")
                self.counts.skipped += plan.count("skipped") + written.unchanged + len(skip) + len(unchanged)
                self.counts.deleted += plan.count("deleted")
            else:  # a record changed in Salesforce between its first read and its flag reset
                details = self.counts.details
                details["updated_on_read_again"] = details.get("updated_on_read_again", 0) + written.inserted + written.updated
            self.counts.errors += len(errors) - len(plan.losers)
            if self.run_log_id is not None:
                self.store.record_progress(self.run_log_id, self.counts.as_log_counts(), conn=conn)
        self.progress(self.counts.fetched, self.reader.total, self.salesforce.requests_sent)

