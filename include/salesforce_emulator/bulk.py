"""Bulk API 2.0: query jobs (CSV results paged by locator) and ingest jobs (CSV upload, per-record results).

Jobs run synchronously: a query job is complete when created, an ingest job when its upload is closed.
"""

from __future__ import annotations

import base64
import csv
import gc
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter

from . import schema
from .ids import make_id
from .store import PLAIN_TEXT_TYPES, RequestError, Store, Txn, parse_values
from .values import BadValue, RecordError, coerce

DEFAULT_MAX_RECORDS = 50_000
CSV_CHUNK_ROWS = 5_000  # rows per chunk of a streamed CSV answer
_CONVERTED_TYPES = ("boolean", "datetime")  # the only values whose CSV text is not what csv.writer makes of them
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}


def csv_text(value) -> str:
    """A stored value as Bulk API 2.0 writes it in CSV results."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        if len(value) == 28 and value.endswith(".000+0000") and value[10] == "T":
            return value[:-5] + "Z"  # Bulk results carry datetimes in Zulu form
        return value
    return str(value)


def csv_chunks(header: list[str], rows: Sequence, cells: Callable[[object], list] | None = None,
               delimiter: str = ",", line_ending: str = "\n") -> Iterator[bytes]:
    """Bulk CSV (every value quoted, RFC 4180, None as empty) in UTF-8 chunks of ``CSV_CHUNK_ROWS`` rows, to stream
    an answer without holding all of it; ``cells`` turns a row into its values (default: it is its values)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_ending, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    if not rows:
        yield buffer.getvalue().encode()
    for start in range(0, len(rows), CSV_CHUNK_ROWS):
        chunk = rows[start : start + CSV_CHUNK_ROWS]
        writer.writerows(map(cells, chunk) if cells else chunk)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def query_rows(compiled, records: list[dict], lookup, api_version: str) -> tuple[list[str], list, Callable]:
    """The CSV header (SELECT paths such as ``Account.Name``), the rows of the matched records and what gives the
    cell texts of a chunk of rows, column by column (see ``query_csv_chunks``).

    With plain fields only, the rows are the records themselves, turned into cells as they are written (records
    are never changed in place: they are the snapshot).  Relationship fields are read now, as Salesforce does
    when the job completes: a related record may change before the results are fetched.
    """
    paths = compiled.select_paths
    header = [".".join(path) for path in paths]
    if any(len(path) > 1 for path in paths):
        rows = []
        for record in records:
            projected = compiled.project(record, lookup, api_version)
            row = []
            for path in paths:
                value = projected
                for part in path:
                    value = value.get(part) if isinstance(value, dict) else None
                row.append(csv_text(value))
            rows.append(row)
        return header, rows, _text_columns
    fields = schema.OBJECTS[compiled.sobject].fields
    return header, records, RecordColumns([path[0] for path in paths], fields)


def _text_columns(rows: Sequence[list[str]]) -> list[Sequence[str]]:
    """The columns of rows of cell texts."""
    return list(zip(*rows))


_NULL_AS_EMPTY = {None: ""}  # ``map(_NULL_AS_EMPTY.get, values, values)``: None becomes "", any other text stays
_STR = frozenset({str})
_TEXT_OR_NULL = frozenset({str, type(None)})
_REPEATING_KINDS = frozenset({str, bool, type(None)})  # values no two of which are equal with different texts
_REPEATING_TYPES = frozenset({"boolean", "datetime", "date", "picklist"})  # few distinct values in a column


def _writer_text(value) -> str:
    """The text csv.writer writes for a cell value (before quoting): None as empty, others as ``str``."""
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


class RecordColumns:
    """The cell texts of a chunk of records, column by column: what csv.writer wrote of the values the rows had
    before (``csv_text`` of booleans and datetimes, the stored value of other fields).

    The work per column is resolved once per job, and most of the work per chunk runs in C (``map``, ``zip``):
    the chunk's values are read a record at a time (one ``itemgetter``), then each column is converted as a
    whole: text columns are their values (nulls made empty); a column whose values repeat (booleans, datetimes,
    dates, picklists) converts each distinct value once; other values (numbers, anything unexpected) are
    converted one by one.
    """

    def __init__(self, names: list[str], fields: dict[str, schema.FieldDef]):
        self.names = names
        self.values_of = itemgetter(*names) if names else None  # a record -> its values (one value: one name)
        self.text_of = [csv_text if fields[name].type in _CONVERTED_TYPES else _writer_text for name in names]
        # value -> text, per column whose values repeat (else None)
        self.known = [{} if fields[name].type in _REPEATING_TYPES else None for name in names]

    def __call__(self, records: Sequence[dict]) -> list[Sequence[str]]:
        try:
            value_rows = list(map(self.values_of, records))
        except KeyError:  # a record stored without some field: null, as ``record.get`` reads it
            value_rows = [self.values_of(dict.fromkeys(self.names) | record) for record in records]
        columns = list(zip(*value_rows)) if len(self.names) > 1 else [value_rows]
        return list(map(self._texts, columns, self.text_of, self.known))

    @staticmethod
    def _texts(values: Sequence, text_of: Callable[[object], str], known: dict | None) -> Sequence[str]:
        kinds = set(map(type, values))
        if known is not None and kinds <= _REPEATING_KINDS:
            distinct = set(values)
            if not distinct <= known.keys():
                for value in distinct.difference(known):
                    known[value] = text_of(value)
            return list(map(known.__getitem__, values))
        if text_of is _writer_text:
            if kinds <= _STR:
                return values
            if kinds <= _TEXT_OR_NULL:
                return list(map(_NULL_AS_EMPTY.get, values, values))
        return list(map(text_of, values))


def query_csv_chunks(header: list[str], rows: Sequence, columns_of: Callable[[Sequence], list[Sequence[str]]],
                     delimiter: str = ",", line_ending: str = "\n") -> Iterator[bytes]:
    """What ``csv_chunks`` writes of ``rows`` (the same bytes in the same chunks), given what turns a chunk of rows
    into its columns of cell texts (see ``query_rows``): with every cell quoted, a row is its cell texts joined
    by ``"<delimiter>"`` between an opening and a closing quote, so a chunk is built by a few joins in C."""
    if not header:  # no cells to join
        yield from csv_chunks(header, [[] for _ in rows], None, delimiter, line_ending)
        return
    cell_separator = '"' + delimiter + '"'
    row_separator = '"' + line_ending + '"'

    def text(columns: list[Sequence[str]], row_count: int) -> str:
        text = '"' + row_separator.join(map(cell_separator.join, zip(*columns))) + '"' + line_ending
        # Unless a cell holds a quote, the only quotes are those around the cells (no delimiter or line ending
        # has one); csv.writer doubles a quote in a cell.
        if text.count('"') != 2 * len(columns) * row_count:
            columns = [[cell.replace('"', '""') for cell in cells] for cells in columns]
            text = '"' + row_separator.join(map(cell_separator.join, zip(*columns))) + '"' + line_ending
        return text

    header_text = text([[name] for name in header], 1)
    if not rows:
        yield header_text.encode()
    for start in range(0, len(rows), CSV_CHUNK_ROWS):
        chunk = rows[start : start + CSV_CHUNK_ROWS]
        chunk_text = text(columns_of(chunk), len(chunk))
        yield (header_text + chunk_text if start == 0 else chunk_text).encode()


def csv_cells(raw: dict) -> dict:
    """The values of one uploaded CSV row: empty cells leave a field alone, ``#N/A`` sets it to null."""
    return {name: (None if value == "#N/A" else value) for name, value in raw.items() if value != ""}


_cell_of = itemgetter(1)  # of a (name, cell) pair


class _Conversions(dict):
    """The stored value by cell text of one converted column: a text is converted when first met (a text the
    column's type does not take raises, each time it is met)."""

    def __init__(self, field: schema.FieldDef):
        super().__init__({"#N/A": coerce(field, None)})
        self.field = field

    def __missing__(self, cell: str) -> object:
        try:
            value = self[cell] = coerce(self.field, cell)
        except BadValue:
            field = self.field
            raise RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                              f"{field.display_label}: value not of required type: {cell}", [field.name]) from None
        return value


class CsvRowValues:
    """What ``parse_values(sdef, csv_cells(dict(zip(names, row))), strict_types=False)`` makes of an uploaded row
    (the same values, in the same order, and the same error for the first bad cell), with the work per column done
    once per job: every row has the job's header, so its fields and their converters are resolved here, and a
    converted column (boolean, number, date, datetime: the other types keep their text) converts each distinct
    text once, as such cells repeat (``true``, ``0``, one timestamp per mailing).

    ``names`` are canonical field names without duplicates (with duplicates the last cell wins in the dict but the
    first keeps its place; the caller takes the general path then).
    """

    def __init__(self, sdef: schema.SObjectDef, names: list[str]):
        fields = [sdef.fields[name] for name in names]
        self.names = names
        self.blank = dict.fromkeys(names)  # the keys of a row's values in order: copied, then filled without growing
        self.nulls = {field.name: coerce(field, None) for field in fields}  # what ``#N/A`` stores
        # (name, position, conversions) per converted column, in column order
        self.converted = [(field.name, position, _Conversions(field)) for position, field in enumerate(fields)
                          if field.type not in PLAIN_TEXT_TYPES]

    def __call__(self, row: list[str]) -> dict:
        """The values of a row with at least one cell per name."""
        names = self.names
        if "" in row or len(row) != len(names):  # an empty cell leaves its field out (and extra cells are ignored)
            return self._values_cell_by_cell(row)
        # Every field given, in column order: the text cells by calls that run in C (this runs per row of a job)
        values = self.blank.copy()
        values.update(zip(names, row))
        position = -1
        for _ in range(row.count("#N/A")):  # nulls its field (a text field's null is None; converted ones follow)
            position = row.index("#N/A", position + 1)
            values[names[position]] = None
        for name, position, conversions in self.converted:  # in column order: the first bad cell raises
            values[name] = conversions[row[position]]  # (a plain loop: cheaper than zip and map, even for 9 columns)
        return values

    def _values_cell_by_cell(self, row: list[str]) -> dict:
        values = dict(filter(_cell_of, zip(self.names, row)))  # an empty cell leaves its field out
        if "#N/A" in row:  # nulls its field
            nulls = self.nulls
            for name, cell in zip(self.names, row):
                if cell == "#N/A":
                    values[name] = nulls[name]
        for name, position, conversions in self.converted:
            cell = row[position]  # in column order: the first bad cell raises
            if cell != "":
                values[name] = conversions[cell]
        return values


@contextmanager
def _gc_paused():
    """No cyclic garbage collection while a job runs: it allocates a few containers per row (parsed rows, result
    rows), none in a cycle, and the collections they would set off walk all those held so far, again and again
    (a sixth of a job's time). Reference counting still frees what the job drops; the collector resumes (if it
    ran before) afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset(locator: str) -> int:
    try:
        return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}") from None


@dataclass
class Job:
    id: str
    kind: str  # "query" | "ingest"
    operation: str
    object: str
    created: str
    api_version: str
    line_ending: str = "LF"
    delimiter: str = "COMMA"
    state: str = "Open"
    external_id_field: str | None = None
    error_message: str | None = None
    modstamp: str = ""
    # query jobs (see ``query_rows``)
    header: list[str] = field(default_factory=list)
    rows: list = field(default_factory=list)
    columns_of: Callable | None = None
    # ingest jobs
    uploads: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    processed: int = 0

    def info(self) -> dict:
        body = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": schema.API_USER_ID,
            "createdDate": self.created,
            "systemModstamp": self.modstamp or self.created,
            "state": self.state,
        }
        if self.kind == "ingest" and self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        body.update({
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query" if self.kind == "query" else "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter,
        })
        if self.kind == "ingest":
            body["contentUrl"] = f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches"
            body["numberRecordsProcessed"] = self.processed
            body["numberRecordsFailed"] = len(self.failed)
        else:
            body["numberRecordsProcessed"] = len(self.rows) if self.state == "JobComplete" else 0
            body["isPkChunkingSupported"] = True
        body.update({"retries": 0, "totalProcessingTime": 5, "apiActiveProcessingTime": 3, "apexProcessingTime": 0})
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body

    def csv(self, header: list[str], rows: Sequence, cells: Callable | None = None) -> Iterator[bytes]:
        return csv_chunks(header, rows, cells, _DELIMITERS[self.delimiter], _LINE_ENDINGS[self.line_ending])


class JobRegistry:
    """The jobs of one Bulk API by id; beyond ``max_jobs`` the oldest are forgotten, as Salesforce
    forgets jobs after 7 days."""

    pod = "8d0"  # the pod part of the ids this API numbers

    def __init__(self, store: Store, compile_query, max_jobs: int = 200):
        self.store = store
        self.compile_query = compile_query  # (soql) -> CompiledQuery, raising RequestError
        self.jobs: dict = {}
        self.max_jobs = max_jobs
        self._counter = 0

    def _next_id(self, prefix: str) -> str:
        self._counter += 1
        return make_id(prefix, self._counter, pod=self.pod)

    def _retain(self, job_id: str, job) -> None:
        self.jobs[job_id] = job
        while len(self.jobs) > self.max_jobs:
            self.jobs.pop(next(iter(self.jobs)))


class BulkJobs(JobRegistry):
    def _new_job(self, kind: str, operation: str, obj: str, api_version: str, body: dict) -> Job:
        now = self.store.clock.now_wire()
        job = Job(self._next_id("750"), kind, operation, obj, now, api_version)
        job.line_ending = body.get("lineEnding") or "LF"
        job.delimiter = body.get("columnDelimiter") or "COMMA"
        if job.line_ending not in _LINE_ENDINGS:
            raise RequestError(400, "INVALIDJOB", f"Invalid lineEnding: {job.line_ending}")
        if job.delimiter not in _DELIMITERS:
            raise RequestError(400, "INVALIDJOB", f"Invalid columnDelimiter: {job.delimiter}")
        self._retain(job.id, job)
        return job

    def get(self, job_id: str, kind: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.kind != kind:
            raise RequestError(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    def delete(self, job_id: str, kind: str) -> None:
        self.get(job_id, kind)
        del self.jobs[job_id]

    def jobs_last_day(self, kind: str) -> int:
        return sum(1 for job in self.jobs.values() if job.kind == kind)

    # --- query ---------------------------------------------------------------------------------
    @_gc_paused()
    def create_query(self, body: dict, api_version: str) -> dict:
        operation = body.get("operation")
        if operation not in QUERY_OPERATIONS:
            raise RequestError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        soql = body.get("query")
        if not soql:
            raise RequestError(400, "INVALIDJOB", "Query is required for query jobs")
        compiled = self.compile_query(soql)
        if compiled.is_count or compiled.is_aggregate:
            raise RequestError(400, "INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0")
        if compiled.has_child_queries:  # CSV has no place for child lists
            raise RequestError(400, "FEATURENOTENABLED",
                               "Aggregate Relationships not supported in Bulk V2 Query with CSV content type")
        job = self._new_job("query", operation, compiled.sobject, api_version, body)
        lookup = self.store.lookup
        now = self.store.clock.now_datetime()  # TODAY etc. on the emulator clock
        matched = compiled.run(self.store.rows(compiled.sobject, operation == "queryAll"), lookup, now=now)
        job.header, job.rows, job.columns_of = query_rows(compiled, matched, lookup, api_version)
        job.state = "JobComplete"
        job.modstamp = self.store.clock.now_wire()
        return job.info()

    def query_results(self, job_id: str, locator: str | None, max_records: str | None) -> tuple[Iterator[bytes], dict]:
        job = self.get(job_id, "query")
        if job.state != "JobComplete":
            raise RequestError(400, "INVALIDJOBSTATE", "Job is not complete")
        start = _offset(locator) if locator and locator != "null" else 0
        try:
            size = int(max_records) if max_records else DEFAULT_MAX_RECORDS
        except ValueError:
            raise RequestError(400, "INVALIDJOB", f"maxRecords must be a number: {max_records}") from None
        if size < 1:
            raise RequestError(400, "INVALIDJOB", "maxRecords must be at least 1")
        chunk = job.rows[start : start + size]
        end = start + len(chunk)
        headers = {
            "Sforce-Locator": _locator(end) if end < len(job.rows) else "null",
            "Sforce-NumberOfRecords": str(len(chunk)),
        }
        return query_csv_chunks(job.header, chunk, job.columns_of, _DELIMITERS[job.delimiter],
                                _LINE_ENDINGS[job.line_ending]), headers

    # --- ingest --------------------------------------------------------------------------------
    def create_ingest(self, body: dict, api_version: str) -> dict:
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise RequestError(400, "INVALIDJOB", f"Invalid operation: {operation}")
        sdef = schema.sobject(body.get("object") or "")
        if sdef is None:
            raise RequestError(400, "INVALIDJOB", f"Object '{body.get('object')}' is not supported by Bulk API 2.0")
        external_id = body.get("externalIdFieldName")
        if operation == "upsert":
            field = sdef.fields_lower.get((external_id or "").lower())
            if field is None or not (field.external_id or field.name == "Id"):
                raise RequestError(400, "INVALIDJOB", f"External ID was blank or not an external ID field: {external_id}")
            external_id = field.name
        if (body.get("contentType") or "CSV") != "CSV":
            raise RequestError(400, "INVALIDJOB", "Only CSV is supported")
        job = self._new_job("ingest", operation, sdef.name, api_version, body)
        job.external_id_field = external_id if operation == "upsert" else None
        return job.info()

    def upload(self, job_id: str, data: bytes) -> None:
        job = self.get(job_id, "ingest")
        if job.state != "Open":
            raise RequestError(409, "INVALIDJOBSTATE", f"Job {job_id} is not open for uploads (state {job.state})")
        if not data:
            raise RequestError(400, "INVALIDJOB", "No data uploaded")
        job.uploads.append(data.decode("utf-8-sig"))

    def set_state(self, job_id: str, kind: str, state: str | None) -> dict:
        job = self.get(job_id, kind)
        if state == "Aborted":
            if job.state in ("JobComplete", "Failed"):
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job_id} is already {job.state}")
            job.state = "Aborted"
        elif state == "UploadComplete" and kind == "ingest":
            if job.state != "Open":
                raise RequestError(409, "INVALIDJOBSTATE", f"Job {job_id} is not open (state {job.state})")
            job.state = "UploadComplete"
            info = job.info()
            self._process(job)
            return info
        else:
            raise RequestError(400, "INVALIDJOBSTATE", f"Cannot change the job state to {state}")
        job.modstamp = self.store.clock.now_wire()
        return job.info()

    def results(self, job_id: str, which: str) -> Iterator[bytes]:
        job = self.get(job_id, "ingest")
        if which == "successfulResults":
            return job.csv(["sf__Id", "sf__Created", *job.columns], job.successful)
        if which == "failedResults":
            return job.csv(["sf__Id", "sf__Error", *job.columns], job.failed)
        return job.csv(job.columns, [])  # unprocessedrecords: everything ran

    @_gc_paused()
    def _process(self, job: Job) -> None:
        sdef = schema.OBJECTS[job.object]
        delimiter = _DELIMITERS[job.delimiter]
        parsed_rows: list[list[str]] = []
        header: list[str] | None = None
        for upload in job.uploads:
            reader = csv.reader(io.StringIO(upload, newline=""), delimiter=delimiter)
            part_header = next(reader, None)
            if part_header is None:
                continue
            if header is None:
                header = part_header
            elif [h.lower() for h in part_header] != [h.lower() for h in header]:
                return self._fail(job, "InvalidBatch : All uploads of a job must have the same header row")
            parsed_rows.extend(filter(None, reader))  # blank lines are no rows
        if header is None:
            return self._fail(job, "InvalidBatch : No data was uploaded")
        fields = []
        for name in header:
            field = sdef.fields_lower.get(name.strip().lower())
            if field is None:
                return self._fail(job, f"InvalidBatch : Field name not found : {name}")
            fields.append(field.name)
        if job.operation in ("delete", "hardDelete") and fields != ["Id"]:
            return self._fail(job, "InvalidBatch : The 'delete' batch must contain only an 'Id' column")
        if job.operation == "update" and "Id" not in fields:
            return self._fail(job, "InvalidBatch : Field name not found : Id")
        if job.operation == "upsert" and job.external_id_field not in fields:
            return self._fail(job, f"InvalidBatch : Field name not found : {job.external_id_field}")
        job.columns = header
        txn = Txn(self.store, schema.API_USER_ID, undoable=False)  # each row's write stays, whatever the next does
        apply = self._operation(txn, sdef, job, fields)
        width = len(fields)
        successful, failed = job.successful, job.failed
        for row in parsed_rows:
            if len(row) < width:
                row = row + [""] * (width - len(row))
            try:
                record_id, created = apply(row)
                successful.append([record_id, "true" if created else "false", *row])
            except RecordError as error:
                failed.append(["", error.as_bulk_error(), *row])
            except RequestError as error:
                failed.append(["", f"{error.error_code}:{error.message}:--", *row])
        txn.commit()
        job.processed = len(parsed_rows)
        job.state = "JobComplete"
        job.modstamp = self.store.clock.now_wire()

    def _operation(self, txn: Txn, sdef, job: Job, fields: list[str]) -> Callable[[list[str]], tuple[str, bool]]:
        """What writes one row (at least one cell per field) of the job in ``txn``: row -> (record id, created)."""
        store, operation = self.store, job.operation
        if operation in ("delete", "hardDelete"):  # the only column is Id
            hard = operation == "hardDelete"
            return lambda row: (store.delete(txn, sdef, row[0], hard=hard), False)
        if len(set(fields)) == len(fields):
            values_of = CsvRowValues(sdef, fields)
            upsert = store.upserter(txn, sdef, job.external_id_field, fields) if operation == "upsert" else None
            update = (store.updater(txn, sdef, [name for name in fields if name != "Id"]) if operation == "update"
                      else None)
        else:  # a field named twice: the general path settles which cell counts
            def values_of(row: list[str]) -> dict:
                return parse_values(sdef, csv_cells(dict(zip(fields, row))), strict_types=False)
            upsert = partial(store.upsert, txn, sdef, job.external_id_field)
            update = partial(store.update, txn, sdef)
        if operation == "insert":
            def insert(row: list[str]) -> tuple[str, bool]:
                values = values_of(row)
                values.pop("Id", None)
                return store.create(txn, sdef, values), True
            return insert
        if operation == "update":
            id_position = len(fields) - 1 - fields[::-1].index("Id")  # the Id cell the row's dict would hold

            def update_row(row: list[str]) -> tuple[str, bool]:
                values = values_of(row)
                values.pop("Id", None)  # the record's key, given apart (so Store.update need not copy the values)
                return update(row[id_position], values), False
            return update_row
        return lambda row: upsert(values_of(row))

    def _fail(self, job: Job, message: str) -> None:
        job.state = "Failed"
        job.error_message = message
        job.modstamp = self.store.clock.now_wire()
