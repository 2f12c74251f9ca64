"""Bulk API 2.0 query and ingest, frugal with requests and flat in memory.

Uses simple-salesforce's low-level Bulk 2.0 client (so every call goes through the budgeted
session of the hook that built ``sf``) but does its own polling: a job that is done at the
first status check costs one request, not a sleep-and-poll loop per second.  Query results
are streamed: each result page is parsed as it arrives from the HTTP response, in batches, and
never held whole (nor written to disk).
"""

from __future__ import annotations

import codecs
import csv
import itertools
import io
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from simple_salesforce import Salesforce
from simple_salesforce.util import call_salesforce

from deployteq_salesforce.core.timing import PARSE, SALESFORCE_HTTP, PhaseTimer

log = logging.getLogger(__name__)

NUMERIC_TYPES = {"int", "double", "currency", "percent", "long"}
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # Salesforce accepts 150 MB per upload; stay well below
FINAL_STATES = {"JobComplete", "Failed", "Aborted"}
# records per result page (one request each); the page is streamed, so its size costs no memory
QUERY_PAGE_RECORDS = 250_000
STREAM_CHUNK_BYTES = 1 << 18


class BulkJobFailed(RuntimeError):
    """A Bulk API 2.0 job ended Failed or Aborted; the message carries Salesforce's reason."""


def _csv_number(kind: str, value: str) -> int | float:
    """A numeric Bulk CSV cell as the REST API returns it: ``int`` fields as integers, the other numbers as floats."""
    number = float(value)
    return int(number) if kind == "int" and number.is_integer() else number


_BOOLEANS = {"true": True, "false": False}


def csv_records(header: Sequence[str], rows: Iterable[list[str]], field_types: dict[str, str]) -> Iterator[dict]:
    """Dicts typed like REST answers from Bulk CSV rows: an empty cell is null, only non-text columns are converted
    (booleans, the usual typed column, inline: this runs for every row of every Bulk result)."""
    booleans = [i for i, name in enumerate(header) if field_types.get(name) == "boolean"]
    numbers = [(i, field_types[name]) for i, name in enumerate(header) if field_types.get(name) in NUMERIC_TYPES]
    for row in rows:
        values = [value or None for value in row]
        for i in booleans:
            value = values[i]
            if value is not None:
                flag = _BOOLEANS.get(value)
                values[i] = flag if flag is not None else value.lower() == "true"
        for i, kind in numbers:
            value = values[i]
            if value is not None:
                values[i] = _csv_number(kind, value)
        yield dict(zip(header, values))


def _phases(sf: Salesforce) -> PhaseTimer:
    """The timer of the budgeted session behind ``sf`` (a private one for any other session)."""
    return getattr(sf.session, "phases", None) or PhaseTimer()


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text lines (with their newline) from byte chunks; quoted newlines are left to the CSV reader."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    for chunk in chunks:
        if b"\x00" in chunk:
            chunk = chunk.replace(b"\x00", b"")  # Salesforce can send NUL bytes in text fields
        lines = (rest + decoder.decode(chunk)).split("\n")
        rest = lines.pop()
        for line in lines:
            yield line + "\n"
    rest += decoder.decode(b"", final=True)
    if rest:
        yield rest


@dataclass
class IngestResult:
    job_id: str
    successful: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)


class Bulk2Client:
    def __init__(self, sf: Salesforce, *, poll_initial: float = 0.5, poll_max: float = 30.0, timeout: float = 3600.0):
        self.sf = sf
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.timeout = timeout

    def _client(self, sobject: str):
        return getattr(self.sf.bulk2, sobject)._client

    def _wait(self, client, job_id: str, *, is_query: bool) -> dict:
        """Poll with growing pauses; most jobs are done at the first check."""
        delay = self.poll_initial
        deadline = time.monotonic() + self.timeout
        while True:
            info = client.get_job(job_id, is_query)
            if info["state"] in FINAL_STATES:
                if info["state"] != "JobComplete":
                    raise BulkJobFailed(f"Bulk job {job_id} ended {info['state']}: {info.get('errorMessage') or 'no reason given'}")
                return info
            if time.monotonic() > deadline:
                raise BulkJobFailed(f"Bulk job {job_id} still {info['state']} after {self.timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, self.poll_max)

    def query_batches(
        self,
        sobject: str,
        soql: str,
        *,
        include_deleted: bool = False,
        field_types: dict[str, str] | None = None,
        batch_size: int = 5000,
        page_records: int = QUERY_PAGE_RECORDS,
    ) -> Iterator[list[dict]]:
        """Run a query job and yield its records in lists of ``batch_size`` (values typed like REST answers).

        Result pages are streamed from the HTTP response and parsed as they arrive; a page is one request.
        """
        client = self._client(sobject)
        job = client.create_job("queryAll" if include_deleted else "query", soql)
        self._wait(client, job["id"], is_query=True)
        phases = _phases(self.sf)
        types = field_types or {}
        locator = ""
        while True:
            with closing(self._result_page(client, job["id"], locator, page_records, phases)) as response:
                locator = response.headers.get("Sforce-Locator", "")
                rows = csv.reader(_lines(phases.iterate(SALESFORCE_HTTP, response.iter_content(STREAM_CHUNK_BYTES))))
                header = next(rows, None)
                if header is not None:
                    records = csv_records(header, rows, types)
                    while True:
                        with phases.phase(PARSE):
                            batch = list(itertools.islice(records, batch_size))
                        if not batch:
                            break
                        yield batch
            if not locator or locator == "null":
                return

    def query(self, sobject: str, soql: str, **options: Any) -> Iterator[dict]:
        """Like :meth:`query_batches`, record by record."""
        for batch in self.query_batches(sobject, soql, **options):
            yield from batch

    @staticmethod
    def _result_page(client, job_id: str, locator: str, page_records: int, phases: PhaseTimer):
        """One page of a query job's results as a streamed response (headers read, body not yet)."""
        params: dict[str, Any] = {"maxRecords": page_records}
        if locator:
            params["locator"] = locator
        with phases.phase(SALESFORCE_HTTP):
            return call_salesforce(
                url=client._construct_request_url(job_id, True) + "/results",
                method="GET",
                session=client.session,
                headers=client._get_headers(client.JSON_CONTENT_TYPE, client.CSV_CONTENT_TYPE),
                params=params,
                stream=True,
            )

    def ingest(
        self,
        sobject: str,
        operation: str,
        records: Iterable[dict],
        *,
        columns: list[str],
        external_id_field: str | None = None,
        want_successful: bool = True,
        before_processing: Callable[[str], None] | None = None,
    ) -> IngestResult:
        """Run one ingest job (insert/update/upsert/delete) and return per-record results.

        Results carry Salesforce's columns ``sf__Id``/``sf__Created`` (successful) or
        ``sf__Id``/``sf__Error`` (failed, ``STATUS_CODE:message``) next to the sent fields.
        Without ``want_successful`` the successful results are not downloaded (one request less):
        callers that know what they sent take "sent minus failed" as the successes.
        ``before_processing(job_id)`` runs once the data is uploaded and before Salesforce may process
        it: a caller that records the job there can read its results after a crash instead of sending
        the records again (``results``).
        """
        return self.ingest_csv(sobject, operation, csv_parts(records, columns), external_id_field=external_id_field,
                               want_successful=want_successful, before_processing=before_processing)

    def ingest_csv(
        self,
        sobject: str,
        operation: str,
        parts: Iterable[bytes],
        *,
        external_id_field: str | None = None,
        want_successful: bool = True,
        before_processing: Callable[[str], None] | None = None,
    ) -> IngestResult:
        """:meth:`ingest` of records already written as CSV uploads (:func:`csv_parts`)."""
        client = self._client(sobject)
        job = client.create_job(operation, external_id_field=external_id_field)
        for part in parts:
            self._upload(client, job["id"], part)
        if before_processing is not None:
            before_processing(job["id"])
        client.close_job(job["id"])
        return self.results(sobject, job["id"], want_successful=want_successful)

    @staticmethod
    def _upload(client, job_id: str, data: bytes) -> None:
        """One CSV upload, sent as the bytes it was written in (simple-salesforce's ``upload_job_data`` takes text
        and encodes it twice: two more copies of up to 100 MB)."""
        response = call_salesforce(
            url=client._construct_request_url(job_id, False) + "/batches",
            method="PUT",
            session=client.session,
            headers=client._get_headers(client.CSV_CONTENT_TYPE, client.JSON_CONTENT_TYPE),
            data=data,
        )
        if response.status_code != 201:
            raise BulkJobFailed(f"Upload to Bulk job {job_id} answered {response.status_code}: {response.text[:500]}")

    def results(self, sobject: str, job_id: str, *, want_successful: bool = True) -> IngestResult:
        """Wait for an ingest job that was closed (by this run or a crashed one) and fetch its results."""
        client = self._client(sobject)
        info = self._wait(client, job_id, is_query=False)
        log.info(
            "Bulk %s of %s: job %s processed %s records, %s failed",
            info.get("operation"), sobject, job_id, info.get("numberRecordsProcessed"), info.get("numberRecordsFailed"),
        )
        result = IngestResult(job_id=job_id)
        if want_successful:
            result.successful = list(csv.DictReader(io.StringIO(client.get_ingest_results(job_id, "successfulResults"))))
        if int(info.get("numberRecordsFailed") or 0):
            result.failed = list(csv.DictReader(io.StringIO(client.get_ingest_results(job_id, "failedResults"))))
        return result

    def unfinished_job_results(self, sobject: str, job_id: str) -> IngestResult:
        """Both result lists of a job that ended ``Failed``: what Salesforce did process of it."""
        client = self._client(sobject)
        return IngestResult(
            job_id=job_id,
            successful=list(csv.DictReader(io.StringIO(client.get_ingest_results(job_id, "successfulResults")))),
            failed=list(csv.DictReader(io.StringIO(client.get_ingest_results(job_id, "failedResults")))),
        )

    def ingest_state(self, sobject: str, job_id: str) -> str | None:
        """The state of an ingest job (``Open``, ``UploadComplete``, ``InProgress``, ``JobComplete``, ...), or
        None when Salesforce no longer knows it (deleted, or older than its retention)."""
        from simple_salesforce.exceptions import SalesforceResourceNotFound

        try:
            return self._client(sobject).get_job(job_id, False)["state"]
        except SalesforceResourceNotFound:
            return None

    def abort_ingest(self, sobject: str, job_id: str) -> None:
        """Abort an ingest job that was never closed: Salesforce processes none of its records."""
        self._client(sobject).abort_job(job_id, False)

    def successful_results(self, sobject: str, job_id: str, columns: Sequence[str] | None = None) -> Iterator[dict]:
        """Stream an ingest job's successful results (``sf__Id``, ``sf__Created`` + sent columns) via a temp file;
        ``columns``: only these (None where the results lack one), much cheaper than every sent column per row."""
        client = self._client(sobject)
        handle, path = tempfile.mkstemp(prefix="sf-bulk-results-", suffix=".csv")
        os.close(handle)
        try:
            client.download_ingest_results(path, job_id, "successfulResults", chunk_size=1 << 16)
            with open(path, newline="", encoding="utf-8") as results:
                if columns is None:
                    yield from csv.DictReader(results)
                    return
                rows = csv.reader(results)
                header = next(rows, [])
                wanted = [(name, header.index(name) if name in header else None) for name in columns]
                for row in rows:
                    if row:  # as csv.DictReader: a blank line is no record
                        yield {name: None if i is None or i >= len(row) else row[i] for name, i in wanted}
        finally:
            os.unlink(path)

def csv_parts(records: Iterable[dict], columns: list[str]) -> Iterator[bytes]:
    """CSV uploads (UTF-8) of at most MAX_UPLOAD_BYTES, each with the header row; written as bytes straight away."""

    def new_part() -> tuple[io.BytesIO, io.TextIOWrapper, Any]:
        buffer = io.BytesIO()
        text = io.TextIOWrapper(buffer, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        return buffer, text, writer

    buffer, text, writer = new_part()
    header_size = buffer.tell()
    for record in records:
        # null is "#N/A" for Bulk API, booleans lower case; csv.writer renders numbers with str() (hot: every value)
        writer.writerow(["#N/A" if v is None else "true" if v is True else "false" if v is False else v
                         for v in map(record.get, columns)])
        if buffer.tell() >= MAX_UPLOAD_BYTES:
            yield buffer.getvalue()
            buffer, text, writer = new_part()
    if buffer.tell() > header_size:
        yield buffer.getvalue()
