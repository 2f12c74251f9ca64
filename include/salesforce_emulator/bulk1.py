"""Bulk API 1.0 (``/services/async/NN.N/job...``): JSON jobs, as simple-salesforce's ``sf.bulk`` uses them, and
CSV jobs (XML ``jobInfo``/``batchInfo``, CSV batches and results), as salesforce-bulk uses them.

A batch runs when it is added: a DML batch writes its records in one transaction (per-record results in
request order), a query batch evaluates its SOQL once and keeps the records as its one result.
Job and batch information comes as JSON or XML, as the request's Content-Type asks (else in the job's format,
XML for CSV jobs and by default); records and results in the job's format (JSON, or CSV).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from . import jsonutil, schema
from .bulk import JobRegistry, csv_cells, csv_chunks, csv_text, query_csv_chunks, query_rows
from .store import RequestError, Txn, parse_values
from .values import RecordError, epoch_of

XML_NS = "http://www.force.com/2009/06/asyncapi/dataload"
JSON_TYPE, XML_TYPE, CSV_TYPE = "application/json", "application/xml", "text/csv"
CONTENT_TYPES = ("JSON", "CSV")
NO_RECORDS = "Records not found for this query"  # a CSV query result without rows (no header either)
# The element order of the XML Schema (the JSON answers are in alphabetical order)
_XML_SEQUENCE = {
    "jobInfo": ("id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
                "externalIdFieldName", "concurrencyMode", "contentType", "numberBatchesQueued",
                "numberBatchesInProgress", "numberBatchesCompleted", "numberBatchesFailed", "numberBatchesTotal",
                "numberRecordsProcessed", "numberRetries", "apiVersion", "numberRecordsFailed", "totalProcessingTime",
                "apiActiveProcessingTime", "apexProcessingTime"),
    "batchInfo": ("id", "jobId", "state", "stateMessage", "createdDate", "systemModstamp", "numberRecordsProcessed",
                  "numberRecordsFailed", "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"),
}
DML_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
# simple-salesforce sends the mode as 0 (parallel) / 1 (serial)
_CONCURRENCY_MODES = {"Parallel": "Parallel", "Serial": "Serial", 0: "Parallel", 1: "Serial"}
_NEXT_STATES = {"Closed": ("Open",), "Aborted": ("Open", "Closed")}  # target state: from which states
# The shared request pipeline (session, limits, faults) answers in REST's form; Bulk 1.0 has its own.
_FROM_REST = {
    "INVALID_SESSION_ID": (400, "InvalidSessionId", "Invalid session id"),
    "REQUEST_LIMIT_EXCEEDED": (403, "ExceededQuota", "TotalRequests Limit exceeded."),
}


class Bulk1Error(RequestError):
    """The whole Bulk 1.0 request fails: HTTP status + ``{"exceptionCode", "exceptionMessage"}``."""

    def body(self) -> dict:  # type: ignore[override]
        return {"exceptionCode": self.error_code, "exceptionMessage": self.message}


def from_rest_error(status: int, errors: list[dict]) -> Bulk1Error:
    """The Bulk 1.0 form of an error answered in REST's form (``[{"message", "errorCode"}]``)."""
    first = errors[0]
    return Bulk1Error(*_FROM_REST.get(first.get("errorCode"), (status, "Unknown", first.get("message", ""))))


def answers_in_json(job: Job | None, content_type: str) -> bool:
    """Whether job/batch information and errors are answered in JSON (else XML): as the request's Content-Type
    asks (salesforce-bulk creates even JSON jobs in XML), else in the format of the job, else in XML."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type in (JSON_TYPE, XML_TYPE, "text/xml"):
        return media_type == JSON_TYPE
    return job is not None and job.content_type == "JSON"


def rendered(root: str, body, as_json: bool) -> tuple[object, str]:
    """An answer's body and content type: JSON as is, or an XML document with ``root`` as its element."""
    if as_json:
        return body, JSON_TYPE
    if root == "result-list":  # JSON: the list of result ids; XML: one <result> per id
        body = {"result": body}
    return xml_document(root, body), XML_TYPE


def xml_document(root: str, fields: dict) -> bytes:
    children = _xml_children(root, fields)
    return f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{XML_NS}">{children}</{root}>'.encode()


def _xml_children(parent: str, fields: dict) -> str:
    sequence = _XML_SEQUENCE.get(parent)
    names = sorted(fields, key=sequence.index) if sequence else fields
    parts = []
    for name in names:
        value = fields[name]
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                parts.append(f"<{name}>{_xml_children(name, item)}</{name}>")
            elif item is not None:  # dates as Bulk 1.0 writes them in XML: 2024-01-01T00:00:00.000Z
                parts.append(f"<{name}>{escape(csv_text(item))}</{name}>")
    return "".join(parts)


def endpoint_name(method: str, parts: list[str]) -> str:
    """``POST async/job``, ``GET async/job/{id}/batch/{id}/result`` ... (ids elided) for the counters."""
    names = [part if position % 2 == 0 else "{id}" for position, part in enumerate(parts)]
    return f"{method} " + "/".join(["async", *names])


def _job_fields(raw: bytes) -> dict:
    """A jobInfo request body: an XML ``jobInfo`` in the asyncapi namespace, or a JSON object."""
    if raw.lstrip()[:1] != b"<":
        return _json_object(raw)
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as error:
        raise Bulk1Error(400, "InvalidXML", f"Unable to parse the XML request body: {error}") from None
    if root.tag != f"{{{XML_NS}}}jobInfo":
        raise Bulk1Error(400, "InvalidXML", f"Expected a jobInfo element in the namespace {XML_NS}")
    return {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in root}


def _csv_records(raw: bytes) -> list[dict] | None:
    """The rows of a CSV batch as records by header name (None without a header row)."""
    reader = csv.reader(io.StringIO(raw.decode("utf-8-sig", errors="replace"), newline=""))
    header = [name.strip() for name in next(reader, [])]
    if not header:
        return None
    return [dict(zip(header, row)) for row in reader if row]


def _json_object(raw: bytes) -> dict:
    try:
        body = jsonutil.loads(raw) if raw else None
    except (jsonutil.DecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise Bulk1Error(400, "InvalidJob", "Unable to parse the request body as a JSON object")
    return body


def _epoch_millis(value: str, field_type: str) -> int:
    return int(epoch_of(value if field_type == "datetime" else value + "T00:00:00Z")) * 1000


def bulk_json(record: dict) -> dict:
    """A REST-projected record as Bulk 1.0 JSON query results carry it: dates and datetimes in epoch milliseconds."""
    fields = schema.OBJECTS[record["attributes"]["type"]].fields
    out = {}
    for key, value in record.items():
        if key != "attributes" and isinstance(value, dict):  # a parent relationship
            value = bulk_json(value)
        elif value is not None and key in fields and fields[key].type in ("date", "datetime"):
            value = _epoch_millis(value, fields[key].type)
        out[key] = value
    return out


@dataclass
class Batch:
    id: str
    job_id: str
    created: str
    request: bytes  # as posted: a JSON array of records, or the SOQL text
    state: str = "Queued"
    state_message: str | None = None
    modstamp: str = ""
    processed: int = 0
    failed: int = 0
    results: list[dict] = field(default_factory=list)  # DML: one per record, in request order
    result_id: str | None = None  # query: its one result set ...
    records: list[dict] = field(default_factory=list)  # ... and the records in it (JSON jobs)
    table: tuple = ([], [], None)  # ... or its CSV header, rows and columns (CSV jobs, see ``bulk.query_rows``)

    def info(self) -> dict:
        body = {
            "apexProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "createdDate": self.created,
            "id": self.id,
            "jobId": self.job_id,
            "numberRecordsFailed": self.failed,
            "numberRecordsProcessed": self.processed,
            "state": self.state,
        }
        if self.state_message:
            body["stateMessage"] = self.state_message
        body.update(systemModstamp=self.modstamp or self.created, totalProcessingTime=0)
        return body


@dataclass
class Job:
    id: str
    operation: str
    object: str
    created: str
    api_version: str
    concurrency_mode: str
    content_type: str  # "JSON" | "CSV"
    external_id_field: str | None = None
    state: str = "Open"
    modstamp: str = ""
    batches: dict[str, Batch] = field(default_factory=dict)

    @property
    def is_query(self) -> bool:
        return self.operation in QUERY_OPERATIONS

    def info(self) -> dict:
        batches = list(self.batches.values())
        body = {
            "apexProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apiVersion": float(self.api_version),
            "concurrencyMode": self.concurrency_mode,
            "contentType": self.content_type,
            "createdById": schema.API_USER_ID,
            "createdDate": self.created,
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        body.update({
            "id": self.id,
            "numberBatchesCompleted": sum(1 for batch in batches if batch.state == "Completed"),
            "numberBatchesFailed": sum(1 for batch in batches if batch.state == "Failed"),
            "numberBatchesInProgress": 0,  # batches run when they are added
            "numberBatchesQueued": 0,
            "numberBatchesTotal": len(batches),
            "numberRecordsFailed": sum(batch.failed for batch in batches),
            "numberRecordsProcessed": sum(batch.processed for batch in batches),
            "numberRetries": 0,
            "object": self.object,
            "operation": self.operation,
            "state": self.state,
            "systemModstamp": self.modstamp or self.created,
            "totalProcessingTime": 0,
        })
        return body


def _csv_results(results: list[dict]) -> Iterator[bytes]:
    """DML results as a CSV batch gets them: ``"Id","Success","Created","Error"``."""
    rows = [[result["id"] or "", csv_text(result["success"]), csv_text(result["created"]),
             "".join(RecordError(e["statusCode"], e["message"], e["fields"]).as_bulk_error() for e in result["errors"])]
            for result in results]
    return csv_chunks(["Id", "Success", "Created", "Error"], rows)


class Bulk1Jobs(JobRegistry):
    pod = "8d1"  # Bulk 2.0 numbers its jobs from 1 too: another pod keeps the two kinds of job ids apart

    def retained_batches(self) -> int:
        return sum(len(job.batches) for job in self.jobs.values())

    # --- jobs ----------------------------------------------------------------------------------
    def create_job(self, raw: bytes, api_version: str, as_json: bool) -> tuple[object, str]:
        body = _job_fields(raw)
        operation = body.get("operation")
        if operation not in DML_OPERATIONS + QUERY_OPERATIONS:
            raise Bulk1Error(400, "InvalidJob", f"Invalid operation: {operation}")
        sdef = schema.sobject(body.get("object") or "")
        if sdef is None:
            raise Bulk1Error(400, "InvalidJob", f"Unable to find object: {body.get('object')}")
        content_type = body.get("contentType") or "XML"  # Salesforce's default
        if content_type not in CONTENT_TYPES:
            raise Bulk1Error(400, "InvalidJob", f"Unsupported content type: {content_type} "
                                                "(the emulator serves Bulk API 1.0 with JSON and CSV)")
        mode_value = body.get("concurrencyMode", "Parallel")
        # a JSON true/false is not a mode (bool is an int in Python)
        mode = _CONCURRENCY_MODES.get(mode_value) if isinstance(mode_value, (str, int)) and not isinstance(mode_value, bool) else None
        if mode is None:
            raise Bulk1Error(400, "InvalidJob", f"Invalid concurrencyMode: {mode_value}")
        external_id = self._external_id_field(sdef, body.get("externalIdFieldName")) if operation == "upsert" else None
        job = Job(self._next_id("750"), operation, sdef.name, self.store.clock.now_wire(), api_version, mode,
                  content_type, external_id)
        self._retain(job.id, job)
        return rendered("jobInfo", job.info(), as_json)

    @staticmethod
    def _external_id_field(sdef, name) -> str:
        found = sdef.fields_lower.get(name.lower()) if isinstance(name, str) else None
        if found is None or not (found.external_id or found.name == "Id"):
            raise Bulk1Error(400, "InvalidJob", f"External ID was blank or not an external ID field of "
                                                f"{sdef.name}: {name}")
        return found.name

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise Bulk1Error(400, "InvalidJob", f"Invalid job id: {job_id}")
        return job

    def job_info(self, job_id: str, as_json: bool) -> tuple[object, str]:
        job = self.job(job_id)
        return rendered("jobInfo", job.info(), as_json)

    def set_state(self, job_id: str, raw: bytes, as_json: bool) -> tuple[object, str]:
        job = self.job(job_id)
        state = _job_fields(raw).get("state")
        if state not in _NEXT_STATES:
            raise Bulk1Error(400, "InvalidJobState", f"Invalid job state: {state} (expected Closed or Aborted)")
        if job.state not in _NEXT_STATES[state]:
            raise Bulk1Error(400, "InvalidJobState", f"Job {job.id} is {job.state}: it cannot become {state}")
        job.state = state
        job.modstamp = self.store.clock.now_wire()
        return rendered("jobInfo", job.info(), as_json)

    # --- batches -------------------------------------------------------------------------------
    def add_batch(self, job_id: str, raw: bytes, as_json: bool) -> tuple[object, str]:
        job = self.job(job_id)
        if job.state != "Open":
            raise Bulk1Error(400, "InvalidJobState", f"Job {job.id} is {job.state}: no batches can be added")
        batch = Batch(self._next_id("751"), job.id, self.store.clock.now_wire(), raw)
        job.batches[batch.id] = batch
        if job.is_query:
            self._run_query(job, batch)
        else:
            self._run_dml(job, batch)
        batch.modstamp = self.store.clock.now_wire()
        return rendered("batchInfo", batch.info(), as_json)

    def batch(self, job_id: str, batch_id: str) -> tuple[Job, Batch]:
        job = self.job(job_id)
        batch = job.batches.get(batch_id)
        if batch is None:
            raise Bulk1Error(400, "InvalidBatch", f"Invalid batch id: {batch_id}")
        return job, batch

    def batch_infos(self, job_id: str, as_json: bool) -> tuple[object, str]:
        batches = self.job(job_id).batches.values()
        return rendered("batchInfoList", {"batchInfo": [batch.info() for batch in batches]}, as_json)

    def batch_info(self, job_id: str, batch_id: str, as_json: bool) -> tuple[object, str]:
        return rendered("batchInfo", self.batch(job_id, batch_id)[1].info(), as_json)

    def batch_request(self, job_id: str, batch_id: str) -> tuple[bytes, str]:
        job, batch = self.batch(job_id, batch_id)
        if job.is_query:
            return batch.request, "text/plain; charset=UTF-8"
        return batch.request, CSV_TYPE if job.content_type == "CSV" else JSON_TYPE

    def batch_result(self, job_id: str, batch_id: str, as_json: bool) -> tuple[object, str]:
        """DML: the per-record results; query: the ids of its result sets."""
        job, batch = self.batch(job_id, batch_id)
        if batch.state != "Completed":
            raise Bulk1Error(400, "InvalidBatch", f"Batch {batch.id} has no results (state {batch.state})")
        if job.is_query:
            return rendered("result-list", [batch.result_id], as_json)
        if job.content_type == "CSV":
            return _csv_results(batch.results), CSV_TYPE
        return batch.results, JSON_TYPE

    def query_result(self, job_id: str, batch_id: str, result_id: str) -> tuple[object, str]:
        job, batch = self.batch(job_id, batch_id)
        if not job.is_query or batch.result_id is None or result_id != batch.result_id:
            raise Bulk1Error(400, "InvalidBatch", f"Invalid result id: {result_id}")
        if job.content_type == "JSON":
            return batch.records, JSON_TYPE
        header, rows, columns_of = batch.table
        return (query_csv_chunks(header, rows, columns_of) if rows else NO_RECORDS), CSV_TYPE

    def _run_query(self, job: Job, batch: Batch) -> None:
        try:
            compiled = self.compile_query(batch.request.decode("utf-8-sig", errors="replace").strip())
        except RequestError as error:
            return self._fail(batch, f"InvalidBatch : Failed to process query: {error.error_code}: {error.message}")
        if compiled.is_count or compiled.is_aggregate:
            return self._fail(batch, "InvalidBatch : Failed to process query: Aggregate queries are not supported "
                                     "by Bulk API")
        if compiled.has_child_queries:  # Bulk API query does not support nested SOQL queries
            return self._fail(batch, "FeatureNotEnabled : Aggregate Relationships not supported in Bulk Query")
        if compiled.sobject != job.object:
            return self._fail(batch, f"InvalidBatch : Failed to process query: the query selects from "
                                     f"{compiled.sobject}, the job is for {job.object}")
        lookup = self.store.lookup
        now = self.store.clock.now_datetime()  # TODAY etc. on the emulator clock
        matched = compiled.run(self.store.rows(job.object, job.operation == "queryAll"), lookup, now=now)
        if job.content_type == "CSV":
            batch.table = query_rows(compiled, matched, lookup, job.api_version)
        else:
            batch.records = [bulk_json(compiled.project(record, lookup, job.api_version)) for record in matched]
        batch.result_id = self._next_id("752")[:15]  # result ids are 15 characters, e.g. 752x000000000F1
        batch.processed = len(matched)
        batch.state = "Completed"

    def _run_dml(self, job: Job, batch: Batch) -> None:
        sdef = schema.OBJECTS[job.object]
        is_csv = job.content_type == "CSV"
        if is_csv:
            records = _csv_records(batch.request)
            if records is None:
                return self._fail(batch, "InvalidBatch : Failed to parse the batch: no header row")
        else:
            try:
                records = jsonutil.loads(batch.request) if batch.request else None
            except (jsonutil.DecodeError, ValueError):
                records = None
            if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
                return self._fail(batch, "InvalidBatch : Failed to parse the batch: expected a JSON array of records")
        # Field names are checked for the whole batch before any record is written, as Salesforce does.
        names = {name for record in records for name in record if name != "attributes"}
        unknown = sorted(name for name in names if name.lower() not in sdef.fields_lower)
        if unknown:
            return self._fail(batch, f"InvalidBatch : Field name not found : {unknown[0]}")
        if job.operation in ("delete", "hardDelete") and {name.lower() for name in names} - {"id"}:
            return self._fail(batch, "InvalidBatch : The 'delete' batch must contain only ids")
        txn = Txn(self.store, schema.API_USER_ID)
        for raw in records:
            try:
                values = parse_values(sdef, csv_cells(raw) if is_csv else raw, strict_types=False)
                record_id, created = self._apply(txn, sdef, job, values)
                batch.results.append({"success": True, "created": created, "id": record_id, "errors": []})
            except RecordError as error:
                batch.results.append({"success": False, "created": False, "id": None,
                                      "errors": [error.as_result_error()]})
        txn.commit()
        batch.processed = len(records)
        batch.failed = sum(1 for result in batch.results if not result["success"])
        batch.state = "Completed"

    def _apply(self, txn: Txn, sdef, job: Job, values: dict) -> tuple[str, bool]:
        store, operation = self.store, job.operation
        if operation == "insert":
            if "Id" in values:
                raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", "Record ID: cannot specify Id in an insert call",
                                  ["Id"])
            return store.create(txn, sdef, values), True
        if operation == "update":
            if values.get("Id") is None:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
            return store.update(txn, sdef, values["Id"], values), False
        if operation == "upsert":
            return store.upsert(txn, sdef, job.external_id_field, values)
        return store.delete(txn, sdef, values.get("Id"), hard=operation == "hardDelete"), False

    def _fail(self, batch: Batch, message: str) -> None:
        batch.state = "Failed"
        batch.state_message = message
