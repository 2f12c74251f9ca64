"""Other Salesforce objects -> datamodel tables through a webhook definition (R10).

``ObjectLinkSyncOperator(link_name=...)`` runs one object link ("objectkoppeling"):

- incremental like leads/contacts (the shared ``IncrementalReader`` / ``SyncWindow``), each batch one
  transaction with its rows, customer relations, errors, watermark and flag-reset queue entries;
- allow inserts = no: only rows already in the datamodel are updated, new ones count as skipped;
- use sync column = yes: only ``SyncWithClang__c = true`` records are read, and the flags are reset
  after the commit by the same ``FlagResetQueue`` as the lead/contact flag;
- delete = yes: records deleted in Salesforce (queryAll ``IsDeleted``) are deleted from the datamodel;
- rows whose customer is not there yet are stored without it and resolved on later runs (the count
  of unresolved rows is in the run log, ``details.unresolved_relations``).

``ObjectLinkSyncOperator(link_name=..., reconcile=True)`` is the scheduled Id reconciliation for
objects Salesforce hard-deletes (CampaignMember): ONE ``SELECT Id FROM <object>`` read through REST
pages (2,000 Ids a request) or, above the link's bulk threshold, one Bulk API 2.0 job; rows whose
Id Salesforce no longer has are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence


from deployteq_salesforce.assets import DEPLOYTEQ_DATAMODEL
from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.flows.customers.config import SALESFORCE_TYPES_FOR
from deployteq_salesforce.flows.object_links.datamodel import convert_records
from deployteq_salesforce.flows.object_links.store import DatamodelStore
from deployteq_salesforce.core.variables import require_variable
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.incremental import (
    IncrementalReader, ProgressLog, SyncCounts, SyncWindow, rest_pages, server_now, write_in_batches,
)
from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME, ObjectLink, Webhook, load_object_links
from deployteq_salesforce.core.operator import SalesforceFlowOperator
from deployteq_salesforce.core.soql import validate_identifier
from deployteq_salesforce.core.store import RecordError
from deployteq_salesforce.core.datasets import DEPLOYTEQ, Written
from deployteq_salesforce.core.flag_reset import FlagResetQueue, read_again_hasher
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime
from deployteq_salesforce.core.timing import BOOKKEEPING, FLAG_RESET, MAP

LINKS_VARIABLE = VARIABLE_NAME


class ObjectLinkSyncOperator(SalesforceFlowOperator):
    """Sync one object link into its datamodel table, or (``reconcile=True``) reconcile its Ids.

    :param link_name: the link's name in the Variable ``deployteq_salesforce_object_links``
        (read at run time), or in ``links_config`` when given.
    :param reconcile: run the Id reconciliation instead of the incremental sync.
    :param batch_size: records per database transaction.
    """

    template_fields: Sequence[str] = ("link_name", "salesforce_conn_id", "deployteq_conn_id")
    asset_aliases = (DEPLOYTEQ_DATAMODEL,)

    def __init__(
        self,
        *,
        link_name: str,
        reconcile: bool = False,
        links_config: dict | str | None = None,
        batch_size: int = 5000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(link_name, str) or not link_name:
            raise ValueError("link_name must be the name of an object link")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.link_name = link_name
        self.reconcile = reconcile
        self.links_config = links_config
        self.batch_size = batch_size

    @property
    def flow(self) -> str:
        return f"{'reconcile' if self.reconcile else 'link'}:{self.link_name}"

    def build_run(self, store: DeployteqHook, salesforce: BudgetedSalesforceHook):
        link, webhook = self._link()
        if self.reconcile:
            return IdReconciliation(link, webhook, salesforce, store, log=self.log)
        return ObjectLinkSync(link, webhook, salesforce, store, batch_size=self.batch_size, log=self.log)

    def lineage_of(self, work: "ObjectLinkSync | IdReconciliation"):
        """OpenLineage: the webhook's fields -> datamodel columns (the reconciliation: Ids only)."""
        from deployteq_salesforce.core import lineage

        return lineage.object_link(work.link, work.webhook, field_types=getattr(work, "field_types", None),
                                   reconcile=self.reconcile)

    def _link(self) -> tuple[ObjectLink, Webhook]:
        raw = self.links_config if self.links_config is not None else require_variable(LINKS_VARIABLE)
        config = load_object_links(raw)
        link = config.link(self.link_name)
        if link is None:
            raise ConfigurationError(
                f"{self.link_name!r} is not an object link in the Variable {LINKS_VARIABLE!r}; "
                f"links: {', '.join(l.name for l in config.links) or 'none'}"
            )
        return link, config.webhook_of(link)


def check_link_against_describe(link: ObjectLink, webhook: Webhook, describe: dict) -> list[str]:
    """Problems that stop the link before anything is fetched: unknown fields, types that do not fit."""
    types = {f["name"]: f["type"] for f in describe["fields"]}
    problems = []
    for f in webhook.fields:
        sf_type = types.get(f.json_field)
        if sf_type is None:
            problems.append(f"field {f.json_field!r} (column {f.column!r}) is not a field of {link.sobject}")
        elif sf_type not in SALESFORCE_TYPES_FOR[f.type]:
            problems.append(f"field {f.json_field!r} is a Salesforce {sf_type}, which a {f.type} column cannot hold")
    if link.use_sync_column and link.sync_flag_field not in types:
        problems.append(
            f"use sync column is on, but {link.sobject} has no field {link.sync_flag_field!r}; "
            "create the custom Boolean field SyncWithClang in Salesforce, or turn use sync column off"
        )
    elif link.use_sync_column and types[link.sync_flag_field] != "boolean":
        problems.append(f"{link.sync_flag_field} of {link.sobject} is a {types[link.sync_flag_field]}, not a Boolean")
    return problems


def _describe(salesforce, link: ObjectLink, webhook: Webhook) -> dict:
    validate_identifier(link.sobject, "object")
    describe = getattr(salesforce.get_conn(), link.sobject).describe()
    problems = check_link_against_describe(link, webhook, describe)
    if problems:
        raise ConfigurationError(
            f"Object link {link.name!r} ({link.sobject} -> {webhook.datamodel}) is invalid; nothing was fetched:\n"
            + "\n".join(f"- {p}" for p in problems)
        )
    return describe


class _Flagged:
    """What FlagResetQueue stores per record."""

    __slots__ = ("sf_id", "modstamp")

    def __init__(self, sf_id: str, modstamp):
        self.sf_id = sf_id
        self.modstamp = modstamp


@dataclass
class PreparedBatch:
    """A batch as the writer needs it, prepared (possibly in the reader's background thread)."""

    count: int
    rows: list[tuple]  # in webhook.columns order
    written: list[_Flagged]  # the Salesforce record of each row (Id, SystemModstamp)
    deleted_ids: list[str]
    errors: list[RecordError]
    last_record: dict  # how far an ordered read got once this batch is stored
    record_hashes: dict[str, bytes]  # sf_id -> the record as Salesforce sent it (read_again_hasher; flag mode only)


class ObjectLinkSync:
    """The work of one incremental run of a link; ``counts`` stays readable when the run stops early."""

    def __init__(self, link: ObjectLink, webhook: Webhook, salesforce, store: DeployteqHook, *, batch_size: int, log):
        self.link = link
        self.webhook = webhook
        self.salesforce = salesforce
        self.store = store
        self.datamodel = DatamodelStore(store)
        self.batch_size = batch_size
        self.log = log
        self.flow = f"link:{link.name}"
        self.counts = SyncCounts()
        self.run_log_id: int | None = None
        self.use_flag = link.use_sync_column
        self.progress = ProgressLog(log, self.flow)
        self.field_types: dict[str, str] = {}
        self.window: SyncWindow | None = None
        self.hash_record = None  # flag mode: read_again_hasher, what the read after a flag reset compares

    def _config(self) -> str:
        return self.link.model_dump_json() + self.webhook.model_dump_json()

    def run(self, resume: dict | None = None) -> SyncCounts:
        if resume:
            self.counts = SyncCounts(**resume["counts"])
        if resume and resume.get("config") == self._config() and resume.get("field_types"):
            # back from waiting for budget: describe and datamodel table were checked before the wait
            self.field_types = resume["field_types"]
        else:
            describe = _describe(self.salesforce, self.link, self.webhook)
            changes = self.datamodel.ensure_table(self.webhook)
            if changes:
                self.counts.details["datamodel_changes"] = changes
            self.field_types = {f["name"]: f["type"] for f in describe["fields"]}
        fields = [f.json_field for f in self.webhook.fields] + ["Id", "IsDeleted"] + ([self.link.sync_flag_field] if self.use_flag else [])
        self.reader = IncrementalReader(
            self.salesforce, sobject=self.link.sobject, fields=fields, field_types=self.field_types,
            page_size=self.link.page_size, bulk_threshold=self.link.bulk_threshold, flow=self.flow, log=self.log,
        )
        self.window = window = SyncWindow.for_run(
            self.store, flow=self.flow, server_now=server_now(self.salesforce), lookback_seconds=self.link.lookback_seconds
        )
        if self.use_flag:
            self.hash_record = read_again_hasher(
                fields, flag_field=self.link.sync_flag_field, mapped={f.json_field for f in self.webhook.fields},
                config=[self.link.model_dump(mode="json"), self.webhook.model_dump(mode="json")], field_types=self.field_types,
            )
            self.flags = FlagResetQueue(
                self.store, self.flow, sobject=self.link.sobject, flag_field=self.link.sync_flag_field,
                fields=self.reader.fields, field_types=self.field_types, store_again=self._store_again, bulk_threshold=self.link.bulk_threshold,
                prepare_again=self._prepare,
            )
            # a run that died between a flag reset and reading those records again: read them first
            self.flags.read_again_after_reset(self.salesforce)
            read_started = self.flags.read_started()
        # with the flag, deleted rows are read separately (a deleted record's flag cannot be reset)
        include_deleted = self.link.delete and not self.use_flag
        batches = self.reader.read_batches(
            window, batch_size=self.batch_size, sync_flag_field=self.link.sync_flag_field, include_deleted=include_deleted,
            prepare=self._prepare,
        )
        for batch in batches:
            self._write_batch(batch, in_order=self.reader.ordered)
        if self.use_flag and self.link.delete:
            write_in_batches(self.reader.read_deleted(window), self.batch_size,
                             lambda records: self._write_batch(self._prepare(records)))
        with self.store.connect() as conn:
            resolved_late = self.datamodel.resolve_relations(conn, self.webhook)
            unresolved = self.datamodel.unresolved_count(conn, self.webhook)
        if self.use_flag:
            self.flags.drop_unread(read_started)
        window.complete(self.store)
        if self.webhook.customer_relation:
            self.counts.details.update(relations_resolved_late=resolved_late, unresolved_relations=unresolved)
        if self.use_flag:
            with self.salesforce.phases.phase(FLAG_RESET):
                self.counts.flags_reset += self.flags.flush(self.salesforce)
        return self.counts

    def resume_state(self) -> dict:
        return {"config": self._config(), "field_types": self.field_types}

    def written(self) -> list[Written]:
        counts = self.counts
        updated = counts.updated + counts.details.get("updated_on_read_again", 0)
        return [Written(DEPLOYTEQ, self.webhook.datamodel,
                        {"inserted": counts.inserted, "updated": updated, "deleted": counts.deleted},
                        watermark=self.window.end.isoformat() if self.window is not None else None)]

    def _store_again(self, batch: PreparedBatch) -> None:
        """Records read again right after their flag was reset (prepared by ``_prepare`` in the reader): stored like
        any batch, not queued again.

        Nearly all come back exactly as they were first read (only the reset changed them): those are recognised by
        the record hash queued with their reset and not written a second time."""
        self.counts.details["read_again_after_flag_reset"] = (
            self.counts.details.get("read_again_after_flag_reset", 0) + batch.count
        )
        with self.salesforce.phases.phase(BOOKKEEPING), self.store.connect() as conn:
            unchanged = self.flags.unchanged_since_queued(conn, batch.record_hashes)
        if unchanged:
            keep = [i for i, w in enumerate(batch.written) if w.sf_id not in unchanged]
            batch = replace(batch, rows=[batch.rows[i] for i in keep], written=[batch.written[i] for i in keep])
        if batch.rows or batch.deleted_ids or batch.errors:
            self._write_batch(batch, queue_flags=False)

    def _prepare(self, records: list[dict]) -> PreparedBatch:
        """Pure: convert the records into rows (field by field), split off deletions and refused records."""
        with self.salesforce.phases.phase(MAP):
            live = [r for r in records if not r.get("IsDeleted")]
            deleted_ids = [r["Id"] for r in records if r.get("IsDeleted")]
            rows, written, errors = [], [], []
            record_hashes: dict[str, bytes] = {}
            hash_record = self.hash_record
            stamps: dict[Any, Any] = {}  # each distinct SystemModstamp parsed once
            for record, converted in zip(live, convert_records(self.webhook, live)):
                if isinstance(converted, list):
                    errors.append(RecordError(
                        record_id=record.get("Id"), reason="; ".join(str(p) for p in converted),
                        detail={"sobject": self.link.sobject, "datamodel": self.webhook.datamodel},
                    ))
                    continue
                rows.append(converted)
                stamp = record.get("SystemModstamp")  # absent in records read again after a reset (not queued)
                if stamp not in stamps:
                    stamps[stamp] = parse_salesforce_datetime(stamp) if self.use_flag and stamp is not None else None
                written.append(_Flagged(record["Id"], stamps[stamp]))
                if hash_record is not None:
                    record_hashes[record["Id"]] = hash_record(record)
        return PreparedBatch(len(records), rows, written, deleted_ids, errors, records[-1], record_hashes)

    def _write_batch(self, batch: PreparedBatch, *, in_order: bool = False, queue_flags: bool = True) -> None:
        phases = self.salesforce.phases
        if queue_flags:
            self.counts.fetched += batch.count
        rows, written_records, deleted_ids, errors = batch.rows, batch.written, batch.deleted_ids, batch.errors
        with phases.phase(BOOKKEEPING), self.store.connect() as conn:
            skip: set[str] = set()
            if self.use_flag and queue_flags:
                skip = self.flags.permanently_failed(conn, written_records)
                if skip:
                    keep = [i for i, r in enumerate(written_records) if r.sf_id not in skip]
                    rows = [rows[i] for i in keep]
                    written_records = [written_records[i] for i in keep]
            deleted = self.datamodel.delete_ids(conn, self.webhook, deleted_ids) if self.link.delete else 0
            # relates the rows to their customers too (new ones on insert, existing ones after the upsert)
            written = self.datamodel.write_rows(conn, self.webhook, rows, allow_inserts=self.link.allow_inserts,
                                                phases=phases)
            self.store.resolve_errors(self.flow, [r.sf_id for r in written_records], conn=conn)
            if errors:
                self.store.record_errors(self.flow, errors, conn=conn)
            if self.use_flag and queue_flags:
                self.flags.enqueue(conn, written_records, batch.record_hashes)
            if in_order and not self.use_flag:
                self.window.record_progress(self.store, batch.last_record, conn=conn)
            if queue_flags:  # a read-again after a flag reset is counted apart (read_again_after_flag_reset)
                self.counts.inserted += written.inserted
                self.counts.updated += written.updated
                self.counts.deleted += deleted
                not_deleted = 0 if self.link.delete else len(deleted_ids)
                self.counts.skipped += written.unchanged + written.not_inserted + len(skip) + not_deleted
                if written.not_inserted:
                    self.counts.details["not_inserted"] = self.counts.details.get("not_inserted", 0) + written.not_inserted
            else:  # a record changed in Salesforce between its first read and its flag reset
                details = self.counts.details
                details["updated_on_read_again"] = details.get("updated_on_read_again", 0) + written.inserted + written.updated
            self.counts.errors += len(errors)
            if self.run_log_id is not None:
                self.store.record_progress(self.run_log_id, self.counts.as_log_counts(), conn=conn)
        self.progress(self.counts.fetched, self.reader.total, self.salesforce.requests_sent)


class IdReconciliation:
    """Remove datamodel rows whose Salesforce record is gone (hard deletes leave no trace in queryAll)."""

    def __init__(self, link: ObjectLink, webhook: Webhook, salesforce, store: DeployteqHook, *, log):
        self.link = link
        self.webhook = webhook
        self.salesforce = salesforce
        self.store = store
        self.datamodel = DatamodelStore(store)
        self.log = log
        self.counts = SyncCounts()
        self.run_log_id: int | None = None

    def salesforce_ids(self) -> Iterator[str]:
        """Every Id of the object: REST pages of 2,000, or one Bulk API 2.0 job when there are many."""
        soql = f"SELECT Id FROM {validate_identifier(self.link.sobject, 'object')}"
        pages = rest_pages(self.salesforce.get_conn(), soql, include_deleted=False, batch_size=2000)
        total, first_page = next(pages)
        self.counts.details["salesforce_ids"] = total
        if total > self.link.bulk_threshold:
            pages.close()
            self.log.info("reconcile:%s: %s Ids in Salesforce, read with Bulk API 2.0", self.link.name, total)
            for record in Bulk2Client(self.salesforce.get_conn()).query(self.link.sobject, soql, field_types={"Id": "id"}):
                yield record["Id"]
            return
        for record in first_page:
            yield record["Id"]
        for _, page in pages:
            for record in page:
                yield record["Id"]

    def run(self, resume: dict | None = None) -> SyncCounts:
        """All or nothing (one staging transaction): a run resumed after a budget wait starts over."""
        _describe(self.salesforce, self.link, self.webhook)
        self.datamodel.ensure_table(self.webhook)
        with self.store.connect() as conn:
            started = self.datamodel.start_reconciliation(conn)
            self.counts.details["stored_rows"] = self.datamodel.count_rows(conn, self.webhook)
            self.counts.fetched = self.datamodel.stage_salesforce_ids(conn, self.salesforce_ids())
            self.counts.deleted = self.datamodel.delete_missing(conn, self.webhook, started)
        self.log.info(
            "reconcile:%s: %s Ids in Salesforce, %s stored rows, %s rows of deleted records removed",
            self.link.name, self.counts.fetched, self.counts.details["stored_rows"], self.counts.deleted,
        )
        return self.counts

    def resume_state(self) -> dict:
        return {}

    def written(self) -> list[Written]:
        return [Written(DEPLOYTEQ, self.webhook.datamodel, {"deleted": self.counts.deleted})]
