"""Reading what changed in Salesforce since the last run: the machinery every inbound flow shares.

- ``SyncWindow``: from the committed watermark (minus a lookback) up to Salesforce's own "now".
- ``IncrementalReader``: one query in SystemModstamp, Id order over REST pages, switching to
  Bulk API 2.0 when the first page says the change set is large; deletions via queryAll.
- ``batched``: fixed-size batches so memory stays flat whatever the volume; ``prefetched``: the next
  batch is fetched in a background thread while the flow writes the current one; ``one_ahead``: the same
  for items as large as a Bulk job, at most one in the making.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator, TypeVar

from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.core.exceptions import BudgetExhausted
from deployteq_salesforce.core.soql import incremental_query
from deployteq_salesforce.core.store import Watermark
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime
from deployteq_salesforce.core.timing import PARSE, READ_WAIT, PhaseTimer

T = TypeVar("T")

PROGRESS_EVERY_SECONDS = 15.0


@dataclass
class SyncCounts:
    """What one run of an inbound flow did; the run log stores these columns."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    merged: int = 0
    skipped: int = 0
    errors: int = 0
    deleted: int = 0
    flags_reset: int = 0
    details: dict = field(default_factory=dict)

    def as_log_counts(self) -> dict:
        counts = asdict(self)
        counts.update(counts.pop("details"))
        return counts

    def as_resume(self) -> dict:
        """JSON-able, for a deferred run to continue counting (``SyncCounts(**counts.as_resume())``)."""
        return asdict(self)


@dataclass(frozen=True)
class SyncWindow:
    """The records one run reads, and how its progress is kept.

    The watermark of ``flow`` moves only when a run completes.  While a run goes, each committed
    batch records how far it got under ``progress_flow``; a run stopped half-way (API budget, crash)
    thus leaves the watermark as it was, and the next run continues from that progress instead of
    reading everything again.
    """

    since: datetime | None  # None: from the beginning
    until: datetime  # exclusive bound of the query
    end: datetime  # the watermark this window leaves behind
    resume_after: Watermark | None = None  # (stamp, Id) an interrupted full read stopped at
    flow: str = ""
    progress_flow: str = ""

    @classmethod
    def for_run(
        cls, store, *, flow: str, server_now: datetime, lookback_seconds: int, full_load: bool = False
    ) -> "SyncWindow":
        """Incremental from ``flow``'s watermark (minus the lookback); ``full_load``: everything, resumable."""
        end = server_now.replace(microsecond=0)
        # SystemModstamp has whole seconds: "< end + 1s" includes what changed earlier in this second;
        # the watermark stays at ``end`` so later changes in that second are read next run
        until = end + timedelta(seconds=1)
        progress_flow = f"{flow}:{'full_load_progress' if full_load else 'progress'}"
        progress = store.get_watermark(progress_flow)
        progress = progress if progress and progress.modstamp else None
        if full_load:
            return cls(None, until, end, progress, flow, progress_flow)
        watermark = store.get_watermark(flow)
        since = watermark.modstamp - timedelta(seconds=lookback_seconds) if watermark and watermark.modstamp else None
        if progress is not None:
            # an interrupted run committed everything up to its progress; late commits behind it are
            # caught by the same lookback as usual
            resumed = progress.modstamp - timedelta(seconds=lookback_seconds)
            since = resumed if since is None else max(since, resumed)
        return cls(since, until, end, None, flow, progress_flow)

    def record_progress(self, store, last_record: dict, *, conn) -> None:
        """After a batch read in (SystemModstamp, Id) order: everything up to this record is stored."""
        stamp = parse_salesforce_datetime(last_record["SystemModstamp"])
        store.set_watermark(self.progress_flow, Watermark(stamp, last_record["Id"]), conn=conn)

    def complete(self, store) -> None:
        """The whole window is stored: move the watermark and forget the progress of this run."""
        with store.connect() as conn:
            store.set_watermark(self.flow, Watermark(self.end, None), conn=conn)
            store.set_watermark(self.progress_flow, Watermark(None, None), conn=conn)


def server_now(salesforce) -> datetime:
    """Salesforce's clock as seen in its latest answer (local UTC before any request)."""
    return (getattr(salesforce, "server_time", None) or datetime.now(timezone.utc)).replace(microsecond=0)


def _as_is(batch: list[dict]) -> list[dict]:
    return batch


def batched(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """The records in lists of ``size``; when reading stops on the API budget, the records read so far
    come out as a last batch before the stop goes on (nothing read is thrown away)."""
    batch: list[dict] = []
    try:
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield batch
                batch = []
    except BudgetExhausted:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def write_in_batches(records: Iterable[dict], size: int, write: Callable[[list[dict]], None]) -> None:
    """``write`` the records in batches of ``size`` (see ``batched``: a budget stop writes what was read first)."""
    for batch in batched(records, size):
        write(batch)


def prefetched(items: Iterator[T], *, timer: PhaseTimer, depth: int = 2) -> Iterator[T]:
    """``items`` produced in a background thread, at most ``depth`` ahead of the consumer.

    Fetching and parsing the next batch (network, Salesforce, CSV) thus overlaps with the caller
    writing the current one.  An exception of the producer (a budget stop, a failed request) is
    raised here, at the point the caller would have met it; when the caller stops early the
    producer stops at its next batch and its generator is closed in its own thread.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    producer = threading.Thread(target=produce, name="deployteq-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            with timer.phase(READ_WAIT):
                kind, item = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


_EXHAUSTED = object()


def one_ahead(items: Iterator[T], *, timer: PhaseTimer) -> Iterator[T]:
    """``items`` produced in a worker thread, the next one while the caller handles the current one.

    Unlike :func:`prefetched`, the worker starts an item only once the caller has taken the one before: at most
    two exist at a time (for items as large as a whole Bulk job).  The generator runs in the worker thread only
    (its database connections are that thread's); its exception is raised here, and when the caller stops early
    the item in the making is finished and the generator closed there.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deployteq-ahead") as worker:
        upcoming = worker.submit(next, items, _EXHAUSTED)
        try:
            while True:
                with timer.phase(READ_WAIT):
                    item = upcoming.result()
                if item is _EXHAUSTED:
                    return
                upcoming = worker.submit(next, items, _EXHAUSTED)
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                worker.submit(close).result()  # after the item in the making: one worker, run in order


def rest_pages(sf, soql: str, *, include_deleted: bool, batch_size: int = 2000) -> Iterator[tuple[int, list[dict]]]:
    """Yield ``(totalSize, records)`` per REST page, following ``nextRecordsUrl``; records lose ``attributes``."""
    headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}
    result = sf.query(soql, include_deleted=include_deleted, headers=headers)
    while True:
        records = result.get("records", [])
        for record in records:
            record.pop("attributes", None)
        yield result["totalSize"], records
        next_url = result.get("nextRecordsUrl")
        if result.get("done", True) or not next_url:
            return
        result = sf.query_more(next_url, identifier_is_url=True, include_deleted=include_deleted, headers=headers)


class IncrementalReader:
    """Reads one object's changed records, REST or Bulk API 2.0 by volume.

    After ``read`` started: ``total`` is the number of records the query matched, ``ordered``
    tells whether they arrive in (SystemModstamp, Id) order (REST) or not (Bulk).
    """

    def __init__(
        self,
        salesforce,
        *,
        sobject: str,
        fields: list[str],
        field_types: dict[str, str],
        page_size: int = 2000,
        bulk_threshold: int = 10_000,
        flow: str = "",
        log: logging.Logger | None = None,
    ) -> None:
        self.salesforce = salesforce
        self.sobject = sobject
        self.fields = [f for f in dict.fromkeys(fields) if f in field_types]
        self.field_types = field_types
        self.page_size = page_size
        self.bulk_threshold = bulk_threshold
        self.flow = flow or sobject
        self.log = log or logging.getLogger(__name__)
        self.total = 0
        self.ordered = True

    def read_batches(
        self,
        window: SyncWindow,
        *,
        batch_size: int,
        sync_flag_field: str | None = None,
        include_deleted: bool = False,
        prepare: Callable[[list[dict]], T] = _as_is,
    ) -> Iterator[T]:
        """The window's records in lists of ``batch_size``, each passed through ``prepare`` (the flow's pure
        work on it, e.g. mapping; what it returns is what the caller gets, so the raw records need not stay
        in memory).  REST pages, or, when the first page says the change set is large, one Bulk API 2.0 job
        read, parsed and prepared ahead in a background thread (``prefetched``)."""
        after = (window.resume_after.modstamp, window.resume_after.last_id) if window.resume_after else None
        common = dict(since=window.since, until=window.until, sync_flag_field=sync_flag_field)
        soql = incremental_query(self.sobject, self.fields, after=after, **common)
        phases = self.salesforce.phases
        pages = phases.iterate(PARSE, rest_pages(self.salesforce.get_conn(), soql, include_deleted=include_deleted,
                                                  batch_size=self.page_size))
        self.total, first_page = next(pages)
        use_bulk = self.total > self.bulk_threshold
        self.log.info("%s: %s changed records to read (%s)", self.flow, self.total, "Bulk API 2.0" if use_bulk else "REST")
        if use_bulk:
            pages.close()
            self.ordered = False
            # Bulk API 2.0 keeps no order; the keyset resume point is not needed either (all or nothing)
            bulk_soql = incremental_query(self.sobject, self.fields, order=False, **common)
            batches = Bulk2Client(self.salesforce.get_conn()).query_batches(
                self.sobject, bulk_soql, include_deleted=include_deleted, field_types=self.field_types,
                batch_size=batch_size,
            )
            yield from prefetched((prepare(batch) for batch in batches), timer=phases)
            return
        self.ordered = True
        records = itertools.chain(first_page, (record for _, page in pages for record in page))
        yield from map(prepare, batched(records, batch_size))

    def read_deleted(self, window: SyncWindow) -> Iterator[dict]:
        """Records deleted (or merged away) within the window, from queryAll.

        A first run (no watermark yet) reads every deleted record Salesforce still has: an earlier attempt
        that died before its watermark may have stored records deleted since, and no later window reaches back.
        """
        soql = incremental_query(self.sobject, [*self.fields, "IsDeleted"], since=window.since, until=window.until, order=False)
        soql = soql.replace(" WHERE ", " WHERE IsDeleted = true AND ", 1)
        for _, page in rest_pages(self.salesforce.get_conn(), soql, include_deleted=True, batch_size=2000):
            yield from page


class ProgressLog:
    """A progress line at most every PROGRESS_EVERY_SECONDS during long runs."""

    def __init__(self, log, flow: str):
        self.log = log
        self.flow = flow
        self._last = time.monotonic()

    def __call__(self, done: int, total: int, requests: int) -> None:
        if time.monotonic() - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = time.monotonic()
        self.log.info(
            "%s: %s of %s records written (%.0f%%), %s Salesforce requests so far",
            self.flow, done, total, 100.0 * done / max(total, 1), requests,
        )
