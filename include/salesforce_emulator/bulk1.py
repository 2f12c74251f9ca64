"""Bulk API 1.0 with JSON content (``/services/async/NN.N/job...``), as simple-salesforce's ``sf.bulk`` uses it.

A batch runs when it is added: a DML batch writes its records in one transaction (per-record results in
request order), a query batch evaluates its SOQL once and keeps the records as its one result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import jsonutil, schema
from .bulk import JobRegistry
from .store import RequestError, Txn, parse_values
from .values import RecordError, epoch_of

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


def endpoint_name(method: str, parts: list[str]) -> str:
    """``POST async/job``, ``GET async/job/{id}/batch/{id}/result`` ... (ids elided) for the counters."""
    names = [part if position % 2 == 0 else "{id}" for position, part in enumerate(parts)]
    return f"{method} " + "/".join(["async", *names])


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
    records: list[dict] = field(default_factory=list)  # ... and the records in it

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
            "contentType": "JSON",
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


class Bulk1Jobs(JobRegistry):
    pod = "8d1"  # Bulk 2.0 numbers its jobs from 1 too: another pod keeps the two kinds of job ids apart

    def retained_batches(self) -> int:
        return sum(len(job.batches) for job in self.jobs.values())

    # --- jobs ----------------------------------------------------------------------------------
    def create_job(self, raw: bytes, api_version: str) -> dict:
        body = _json_object(raw)
        operation = body.get("operation")
        if operation not in DML_OPERATIONS + QUERY_OPERATIONS:
            raise Bulk1Error(400, "InvalidJob", f"Invalid operation: {operation}")
        sdef = schema.sobject(body.get("object") or "")
        if sdef is None:
            raise Bulk1Error(400, "InvalidJob", f"Unable to find object: {body.get('object')}")
        if body.get("contentType") != "JSON":
            raise Bulk1Error(400, "InvalidJob", f"Unsupported content type: {body.get('contentType')} "
                                                "(the emulator serves Bulk API 1.0 with JSON only)")
        mode_value = body.get("concurrencyMode", "Parallel")
        # a JSON true/false is not a mode (bool is an int in Python)
        mode = _CONCURRENCY_MODES.get(mode_value) if isinstance(mode_value, (str, int)) and not isinstance(mode_value, bool) else None
        if mode is None:
            raise Bulk1Error(400, "InvalidJob", f"Invalid concurrencyMode: {mode_value}")
        external_id = self._external_id_field(sdef, body.get("externalIdFieldName")) if operation == "upsert" else None
        job = Job(self._next_id("750"), operation, sdef.name, self.store.clock.now_wire(), api_version, mode,
                  external_id)
        self._retain(job.id, job)
        return job.info()

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

    def job_info(self, job_id: str) -> dict:
        return self.job(job_id).info()

    def set_state(self, job_id: str, raw: bytes) -> dict:
        job = self.job(job_id)
        state = _json_object(raw).get("state")
        if state not in _NEXT_STATES:
            raise Bulk1Error(400, "InvalidJobState", f"Invalid job state: {state} (expected Closed or Aborted)")
        if job.state not in _NEXT_STATES[state]:
            raise Bulk1Error(400, "InvalidJobState", f"Job {job.id} is {job.state}: it cannot become {state}")
        job.state = state
        job.modstamp = self.store.clock.now_wire()
        return job.info()

    # --- batches -------------------------------------------------------------------------------
    def add_batch(self, job_id: str, raw: bytes) -> dict:
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
        return batch.info()

    def batch(self, job_id: str, batch_id: str) -> tuple[Job, Batch]:
        job = self.job(job_id)
        batch = job.batches.get(batch_id)
        if batch is None:
            raise Bulk1Error(400, "InvalidBatch", f"Invalid batch id: {batch_id}")
        return job, batch

    def batch_infos(self, job_id: str) -> dict:
        return {"batchInfo": [batch.info() for batch in self.job(job_id).batches.values()]}

    def batch_info(self, job_id: str, batch_id: str) -> dict:
        return self.batch(job_id, batch_id)[1].info()

    def batch_request(self, job_id: str, batch_id: str) -> bytes:
        return self.batch(job_id, batch_id)[1].request

    def batch_result(self, job_id: str, batch_id: str) -> list:
        """DML: the per-record results; query: the ids of its result sets."""
        job, batch = self.batch(job_id, batch_id)
        if batch.state != "Completed":
            raise Bulk1Error(400, "InvalidBatch", f"Batch {batch.id} has no results (state {batch.state})")
        return [batch.result_id] if job.is_query else batch.results

    def query_result(self, job_id: str, batch_id: str, result_id: str) -> list[dict]:
        job, batch = self.batch(job_id, batch_id)
        if not job.is_query or batch.result_id is None or result_id != batch.result_id:
            raise Bulk1Error(400, "InvalidBatch", f"Invalid result id: {result_id}")
        return batch.records

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
        batch.records = [bulk_json(compiled.project(record, lookup, job.api_version)) for record in matched]
        batch.result_id = self._next_id("752")
        batch.processed = len(batch.records)
        batch.state = "Completed"

    def _run_dml(self, job: Job, batch: Batch) -> None:
        sdef = schema.OBJECTS[job.object]
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
                record_id, created = self._apply(txn, sdef, job, parse_values(sdef, raw, strict_types=False))
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
