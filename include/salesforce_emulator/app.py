"""The ASGI application: Salesforce REST + Bulk API 2.0 under /services/data/vXX.X/, Bulk API 1.0 under
/services/async/XX.X/, admin under /__emulator__/.

A plain ASGI callable (no framework) so every byte on the wire is under control.  Handlers are
synchronous and run on the event loop: the state is single-threaded by construction.
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timezone
from urllib.parse import parse_qs, quote, unquote

from . import admin, bulk1, composite, jsonutil, schema, sosl
from .faults import Fault
from .ids import is_id, to_18
from .queries import batch_size_from
from .schema import API_USER_ID, METADATA_LAST_MODIFIED, SObjectDef
from .state import Emulator
from .store import RequestError, Txn, parse_values
from .values import RecordError, epoch_of, format_epoch, parse_datetime

log = logging.getLogger(__name__)

_INGEST_RESULTS = {name.lower(): name for name in ("successfulResults", "failedResults", "unprocessedrecords")}
_PRINTABLE_ASCII = "".join(map(chr, range(33, 127)))
_FIELD_LIST = re.compile(r"\s*[A-Za-z0-9_.]+(\s*,\s*[A-Za-z0-9_.]+)*\s*")
_API_PATH = re.compile(r"^/services/data/v(\d+\.\d)/?(.*)$")
_BULK1_PATH = re.compile(r"^/services/async/v?(\d+\.\d)/?(.*)$")  # simple-salesforce sends the version bare
JSON = "application/json;charset=UTF-8"
CSV = "text/csv"
_NO_BODY_STATUSES = (204, 304)  # HTTP: no body, and so neither Content-Type nor Content-Length
MAX_COLLECTION = 200
UPDATED_DAYS_BACK = 30
DELETED_DAYS_BACK = 15
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
_NOT_FOUND = RequestError(404, "NOT_FOUND", "The requested resource does not exist")
_LIMIT_EXCEEDED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
_INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
_RESET_WHILE_WAITING = [{"message": "The emulated org was reset while this request waited.", "errorCode": "SERVER_UNAVAILABLE"}]


class Request:
    def __init__(self, scope: dict, body: bytes):
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1"),
                                                     keep_blank_values=True).items()}
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.body = body
        self.endpoint: str | None = None  # the counter it was counted under, and the org's generation then
        self.generation: int | None = None

    def json(self):
        if not self.body:
            raise RequestError(400, "JSON_PARSER_ERROR",
                               "The HTTP entity body is required, but this request has no entity body.")
        try:
            return jsonutil.loads(self.body)
        except (jsonutil.DecodeError, ValueError):
            raise RequestError(400, "JSON_PARSER_ERROR", json_syntax_message(self.body)) from None

    def not_modified_since(self, modified_epoch: float) -> bool:
        """True when an ``If-Modified-Since`` header is at or after ``modified_epoch`` (304 Not Modified)."""
        header = self.headers.get("if-modified-since")
        if not header:
            return False
        try:
            since = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return False  # an unreadable date is ignored, as HTTP caches do
        if since.tzinfo is None:  # "-0000": UTC, not the server's local time
            since = since.replace(tzinfo=timezone.utc)
        return since.timestamp() >= int(modified_epoch)


# Salesforce parses JSON with Jackson: its messages name the character and where it was found
_JACKSON_EXPECTATIONS = {
    "Expecting property name enclosed in double quotes": ": was expecting double-quote to start field name",
    "Expecting ':' delimiter": ": was expecting a colon to separate field name and value",
}


def json_syntax_message(body: bytes) -> str:
    """Jackson's wording for a body that is not JSON, e.g. ``Unexpected character ('n' (code 110)): was
    expecting double-quote to start field name at [line:1, column:3]``."""
    text = body.decode("utf-8", "replace")
    try:
        json.loads(text)
        return "Malformed JSON in the request body"  # only the fast parser refused it (NaN, huge numbers ...)
    except json.JSONDecodeError as error:
        column = error.colno + 1  # Jackson reports the position after the offending character
        where = f"at [line:{error.lineno}, column:{column}]"
        if error.pos >= len(text):
            return f"Unexpected end-of-input {where}"
        char = text[error.pos]
        expectation = _JACKSON_EXPECTATIONS.get(error.msg, "")
        return f"Unexpected character ('{char}' (code {ord(char)})){expectation} {where}"


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int = 200, body=None, content_type: str = JSON, headers: dict | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or {}

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return jsonutil.dumps(self.body)


def error_response(error: RequestError) -> Response:
    return Response(error.status, error.body())


def method_not_allowed(method: str, allowed: str) -> RequestError:
    return RequestError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


# --- endpoint names for the request counters ---------------------------------------------------

def endpoint_name(method: str, parts: list[str]) -> str:
    """``GET query``, ``POST composite/sobjects``, ``PATCH sobjects/Lead/{id}`` ... (ids/values elided)."""
    if not parts:
        return f"{method} versions"
    head = parts[0]
    if head in ("query", "queryAll", "limits"):
        return f"{method} {head}"
    if head == "sobjects":
        if len(parts) <= 2 or parts[2] in ("describe", "updated", "deleted"):
            return f"{method} {'/'.join(parts[:3])}"
        if len(parts) == 3:
            return f"{method} sobjects/{parts[1]}/{{id}}"
        return f"{method} sobjects/{parts[1]}/{parts[2]}/{{value}}"
    if head == "composite":
        return f"{method} {'/'.join(parts[:4])}"
    if head == "jobs" and len(parts) >= 2:
        tail = "/".join(parts[3:])
        return f"{method} jobs/{parts[1]}" + ("/{id}" if len(parts) >= 3 else "") + (f"/{tail}" if tail else "")
    return f"{method} {'/'.join(parts)}"


# --- the application ---------------------------------------------------------------------------

class EmulatorApp:
    def __init__(self, emulator: Emulator):
        self.em = emulator
        self._shared_txn: Txn | None = None  # set while an allOrNone composite request runs

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        arrived = time.perf_counter()
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        request = Request(scope, b"".join(chunks))
        if request.path.startswith("/__emulator__/"):
            await self._send(send, admin.handle(self.em, request))
            freeze_heap()  # seeds bring records by the hundred thousand
            return
        response = await self.handle_api(request, send)
        if response is not None:
            await self._send(send, response)
        if request.endpoint is not None and request.generation == self.em.generation:
            self.em.add_server_time(request.endpoint, time.perf_counter() - arrived)

    @staticmethod
    async def _send(send, response: Response) -> None:
        """The answer; a body that is an iterator of byte chunks is streamed (Transfer-Encoding: chunked)."""
        streamed = isinstance(response.body, Iterator)
        payload = b"" if streamed else response.encoded()
        # names in Salesforce's spelling: the server writes them as given (see server.py)
        headers = []
        if response.status not in _NO_BODY_STATUSES:
            headers.append((b"Content-Type", response.content_type.encode()))
            if not streamed:
                headers.append((b"Content-Length", str(len(payload)).encode()))
        headers += [(k.encode(), str(v).encode()) for k, v in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if streamed:
            for chunk in response.body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": payload})

    async def handle_api(self, request: Request, send) -> Response | None:
        if request.path.rstrip("/") == "/services/data":
            return Response(200, [{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}])
        bulk1_match = _BULK1_PATH.match(request.path)
        if bulk1_match is None:
            return await self._answer(request, send, _API_PATH.match(request.path), bulk1_route=False)
        response = await self._answer(request, send, bulk1_match, bulk1_route=True)
        if response is None or response.status < 400:
            return response
        return _in_bulk1_form(response, self._bulk1_json(request, _path_parts(bulk1_match)))

    async def _answer(self, request: Request, send, match: re.Match | None, bulk1_route: bool) -> Response | None:
        """Count, fault, session check, limits, handler: the same order for every API request."""
        em = self.em
        parts = _path_parts(match) if match else []
        if bulk1_route:
            endpoint = bulk1.endpoint_name(request.method, parts)
        else:
            endpoint = endpoint_name(request.method, parts) if match else f"{request.method} {request.path}"
        number = em.count_request(endpoint)
        generation = request.generation = em.generation
        request.endpoint = endpoint
        fault = em.faults.take(number, request.path)
        if fault is not None:
            response = await self._fault(fault, send)
            if response is not None or fault.kind == "drop":
                return self._with_usage(response) if response is not None else None
            if em.generation != generation:  # the org was reset while this request waited
                return self._with_usage(Response(503, _RESET_WHILE_WAITING))
        if not self._authorised(request, bulk1_route):
            return self._with_usage(Response(401, _INVALID_SESSION))
        if not em.limits.admit():
            return self._with_usage(Response(403, _LIMIT_EXCEEDED))
        if not match:
            return self._with_usage(error_response(_NOT_FOUND))
        api_version = match.group(1)
        try:
            if bulk1_route:
                response = self.dispatch_bulk1(request, parts, api_version)
            else:
                response = self.dispatch(request, parts, api_version)
        except RequestError as error:
            response = error_response(error)
        except Exception:  # a bug in the emulator: answer like Salesforce's unknown error, log it
            log.exception("Emulator failure on %s %s", request.method, request.path)
            response = Response(500, [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}])
        return self._with_usage(response)

    def _with_usage(self, response: Response) -> Response:
        response.headers["Sforce-Limit-Info"] = self.em.limits.usage_header()
        # Salesforce's clock is the emulator clock: clients bound their sync windows by it
        response.headers["Date"] = email.utils.formatdate(self.em.clock.now(), usegmt=True)
        return response

    def _authorised(self, request: Request, bulk1_route: bool = False) -> bool:
        if bulk1_route and request.headers.get("x-sfdc-session", "").strip() == self.em.session_id:
            return True  # Bulk API 1.0 takes the session id in its own header (a Bearer token works too)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("bearer", "oauth") and token.strip() == self.em.session_id

    async def _fault(self, fault: Fault, send) -> Response | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay_seconds if fault.delay_seconds is not None else 5.0)
            return None
        if fault.kind == "drop":
            cycle = getattr(send, "__self__", None)  # uvicorn's RequestResponseCycle
            transport = getattr(cycle, "transport", None)
            if transport is not None:
                transport.abort()
                await asyncio.sleep(0.05)  # let the server notice the disconnect before we return
            return None
        if fault.kind == "500":
            return Response(500, [{"message": "An unexpected error occurred. Please include this ErrorId if you "
                                              "contact support: 1234567890-12345 (-1234567890)",
                                   "errorCode": "UNKNOWN_EXCEPTION"}])
        if fault.kind == "503":
            return Response(503, [{"message": "Server is temporarily unavailable. Please try again later.",
                                   "errorCode": "SERVER_UNAVAILABLE"}], headers={"Retry-After": "5"})
        if fault.kind == "invalid_session":
            return Response(401, _INVALID_SESSION)
        return Response(403, _LIMIT_EXCEEDED)  # "limit"

    # --- routing ---------------------------------------------------------------------------------
    def dispatch(self, request: Request, parts: list[str], api_version: str) -> Response:
        if request.method == "HEAD":  # Salesforce answers HEAD wherever it answers GET; the server drops the body
            request.method = "GET"
        if not parts:
            if request.method != "GET":
                raise _NOT_FOUND
            # the version's resource directory, as Salesforce lists it (only what the emulator serves)
            return Response(200, {name: f"/services/data/v{api_version}/{name}" for name in
                                  ("sobjects", "query", "queryAll", "search", "limits", "composite", "jobs")})
        head, method = parts[0], request.method
        if head in ("query", "queryAll") and method == "GET":
            return self.query(request, parts, api_version)
        if head == "limits" and method == "GET" and len(parts) == 1:
            return Response(200, self.limits_body())
        if head == "search" and method == "GET" and len(parts) == 1:
            return Response(200, sosl.search(request.query.get("q"), self.em.queries, self.em.store, api_version))
        if head == "sobjects":
            return self.sobjects(request, parts, api_version)
        if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
            return self.composite(request, parts[2:], api_version)
        if head == "composite" and len(parts) == 1 and method == "POST":
            return composite.run_composite(self, request)
        if head == "composite" and len(parts) == 2 and parts[1] == "batch" and method == "POST":
            return composite.run_batch(self, request)
        if head == "jobs" and len(parts) >= 2 and parts[1] in ("query", "ingest"):
            return self.jobs(request, parts[1], parts[2:], api_version)
        raise _NOT_FOUND

    # --- query -----------------------------------------------------------------------------------
    def query(self, request: Request, parts: list[str], api_version: str) -> Response:
        endpoint = parts[0]
        batch_size = batch_size_from(request.headers.get("sforce-query-options"))
        queries = self.em.queries
        if len(parts) == 1:
            soql = request.query.get("q")
            if not soql:
                raise RequestError(400, "MALFORMED_QUERY", "A query string has to be specified")
            page = queries.start(soql, include_deleted=endpoint == "queryAll", batch_size=batch_size,
                                 api_version=api_version, endpoint=endpoint)
        elif len(parts) == 2:
            page = queries.more(parts[1], batch_size=batch_size, api_version=api_version, endpoint=endpoint)
        else:
            raise _NOT_FOUND
        return Response(200, page)

    def limits_body(self) -> dict:
        em = self.em
        limits = em.limits.settings
        daily_used = em.limits.daily_used()
        records = sum(len(table) for table in em.store.records.values())
        storage_max = 1024
        storage_used = records * 2 // 1024  # Salesforce counts 2 KB per record
        query_jobs = em.bulk.jobs_last_day("query")
        ingest_jobs = em.bulk.jobs_last_day("ingest") + em.bulk1.retained_batches()
        return {
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "DailyApiRequests": {"Max": limits.daily_limit, "Remaining": max(0, limits.daily_limit - daily_used)},
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000 - ingest_jobs},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - query_jobs},
            "DailyStreamingApiEvents": {"Max": 1000000, "Remaining": 1000000},
            "DataStorageMB": {"Max": storage_max, "Remaining": max(0, storage_max - storage_used)},
            "FileStorageMB": {"Max": 20480, "Remaining": 20480},
            "HourlyTimeBasedWorkflow": {"Max": 1000, "Remaining": 1000},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
        }

    # --- sobjects --------------------------------------------------------------------------------
    @staticmethod
    def _sobject(name: str) -> SObjectDef:
        sdef = schema.sobject(name)
        if sdef is None:
            raise _NOT_FOUND
        return sdef

    def sobjects(self, request: Request, parts: list[str], api_version: str) -> Response:
        method = request.method
        if len(parts) == 1:
            if method != "GET":
                raise method_not_allowed(method, "HEAD,GET")
            return self._describe(request, lambda: schema.global_describe(api_version))
        sdef = self._sobject(parts[1])
        rest = parts[2:]
        if not rest:
            if method == "GET":
                return Response(200, {"objectDescribe": sdef.summary(api_version), "recentItems": []})
            if method == "POST":
                return self.create_one(request, sdef)
            raise method_not_allowed(method, "HEAD,GET,POST")
        if len(rest) == 1 and rest[0] in ("describe", "updated", "deleted"):
            if method != "GET":
                raise method_not_allowed(method, "HEAD,GET")
            if rest[0] == "describe":
                return self._describe(request, lambda: sdef.describe(api_version))
            return Response(200, self.updated(sdef, request) if rest[0] == "updated" else self.deleted(sdef, request))
        if len(rest) == 1:
            return self.one_record(request, sdef, rest[0], api_version)
        if len(rest) == 2 and method == "GET" and is_id(rest[0]) and rest[0][:3] == sdef.key_prefix:
            return self.related(request, sdef, rest[0], rest[1], api_version)
        if len(rest) == 2:
            return self.by_external_id(request, sdef, rest[0], rest[1], api_version)
        raise _NOT_FOUND

    @staticmethod
    def _describe(request: Request, build: Callable[[], dict]) -> Response:
        """Describe answers, or 304 when the metadata has not changed since ``If-Modified-Since``."""
        if request.not_modified_since(epoch_of(METADATA_LAST_MODIFIED)):
            return Response(304)
        return Response(200, build())

    def related(self, request: Request, sdef: SObjectDef, record_id: str, name: str, api_version: str) -> Response:
        """``sobjects/Account/{id}/Contacts`` (child records, like a query) or ``sobjects/Contact/{id}/Account``."""
        record = self._live(sdef, record_id)
        parent = sdef.relationships.get(name.lower())
        if parent is not None:
            foreign_key, parent_object = parent
            parent_id = record.get(foreign_key)
            if not parent_id:
                raise _NOT_FOUND
            return self.one_record(request, schema.OBJECTS[parent_object], parent_id, api_version)
        child = self.em.queries.schema.child_relationship(sdef.name, name)
        if child is None:
            raise RequestError(404, "NOT_FOUND", f"The requested resource does not exist: no relationship {name} "
                                                 f"on {sdef.name}")
        child_object, foreign_key = child
        fields = request.query.get("fields") or ", ".join(schema.OBJECTS[child_object].field_names)
        if not _FIELD_LIST.fullmatch(fields):
            raise RequestError(400, "INVALID_FIELD", f"fields must be a comma-separated list of field names: {fields}")
        soql = f"SELECT {fields} FROM {child_object} WHERE {foreign_key} = '{record['Id']}' ORDER BY Id"
        return Response(200, self.em.queries.start(soql, include_deleted=False, batch_size=None,
                                                   api_version=api_version, endpoint="query"))

    def _txn(self) -> Txn:
        if self._shared_txn is not None:
            return _JoinedTxn(self._shared_txn)
        return Txn(self.em.store, API_USER_ID)

    @contextmanager
    def shared_transaction(self, enabled: bool) -> Iterator[Txn | None]:
        """With ``enabled``, every write until the end of the block joins one transaction (composite
        ``allOrNone``): committed at the end unless the block rolled it back.  Otherwise yields None."""
        if not enabled:
            yield None
            return
        outer = Txn(self.em.store, API_USER_ID)
        self._shared_txn = outer
        try:
            yield outer
        except BaseException:
            outer.rollback()
            raise
        else:
            outer.commit()  # after a rollback the undo log is empty: nothing left to commit
        finally:
            self._shared_txn = None

    def subrequest(self, method: str, url: str, body, headers: dict) -> Response:
        """One subrequest of a composite call, through the normal routes (not counted on its own)."""
        path, _, query = url.partition("?")
        match = _API_PATH.match(path)
        if not match or method.upper() not in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            return error_response(_NOT_FOUND)
        parts = _path_parts(match)
        if parts[:1] == ["composite"] and parts[1:2] != ["sobjects"]:
            return error_response(RequestError(400, "INVALID_API_INPUT", "A composite request cannot contain another one"))
        if parts[:1] == ["jobs"]:  # Bulk jobs run outside any composite transaction
            return error_response(RequestError(400, "INVALID_API_INPUT", "Bulk API jobs are not supported in a composite request"))
        # percent-escape what is not printable ASCII, as an HTTP client would, so UTF-8 text survives
        scope = {"method": method.upper(), "path": path, "query_string": quote(query, safe=_PRINTABLE_ASCII).encode(),
                 "headers": [(k.lower().encode("utf-8"), str(v).encode("utf-8")) for k, v in headers.items()]}
        try:
            return self.dispatch(Request(scope, composite.encode_body(body)), parts, match.group(1))
        except RequestError as error:
            return error_response(error)

    @staticmethod
    def _single_error(error: RecordError) -> RequestError:
        if error.status_code in ("INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND") and not error.fields:
            return _NOT_FOUND
        status = 404 if error.status_code == "ENTITY_IS_DELETED" and not error.fields else 400
        return RequestError(status, error.status_code, error.message, error.fields)

    def _write_one(self, action: Callable[[Txn], object]):
        txn = self._txn()
        try:
            result = action(txn)
        except RecordError as error:
            txn.rollback()
            raise self._single_error(error) from None
        txn.commit()
        return result

    def create_one(self, request: Request, sdef: SObjectDef) -> Response:
        values = parse_values(sdef, self._object_body(request))
        _refuse_in_body(values, "Id")
        record_id = self._write_one(lambda txn: self.em.store.create(txn, sdef, values))
        return Response(201, {"id": record_id, "success": True, "errors": []})

    @staticmethod
    def _object_body(request: Request) -> dict:
        body = request.json()
        if not isinstance(body, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of SObject from START_ARRAY value")
        return body

    def record_json(self, sdef: SObjectDef, record: dict, api_version: str, fields: str | None) -> dict:
        names = sdef.field_names
        if fields:
            names = []
            for name in fields.split(","):
                field = sdef.fields_lower.get(name.strip().lower())
                if field is None:
                    raise RequestError(400, "INVALID_FIELD", f"No such column '{name.strip()}' on entity '{sdef.name}'. "
                                       "If you are attempting to use a custom field, be sure to append the '__c' after "
                                       "the custom field name. Please reference your WSDL or the describe call for the "
                                       "appropriate names.")
                names.append(field.name)
        body = {"attributes": {"type": sdef.name, "url": f"/services/data/v{api_version}/sobjects/{sdef.name}/{record['Id']}"}}
        for name in names:
            body[name] = record.get(name)
        return body

    def _live(self, sdef: SObjectDef, record_id: str) -> dict:
        record = self.em.store.lookup(sdef.name, to_18(record_id))
        if record is None:
            raise _NOT_FOUND
        if record["IsDeleted"]:
            raise RequestError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def one_record(self, request: Request, sdef: SObjectDef, segment: str, api_version: str) -> Response:
        if not is_id(segment):
            raise RequestError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {segment}")
        method = request.method
        if method == "GET":
            record = self._live(sdef, segment)
            if request.not_modified_since(epoch_of(record["LastModifiedDate"])):
                return Response(304)
            return Response(200, self.record_json(sdef, record, api_version, request.query.get("fields")))
        if method == "PATCH":
            values = parse_values(sdef, self._object_body(request))
            _refuse_in_body(values, "Id")  # the id is the URL's
            self._write_one(lambda txn: self.em.store.update(txn, sdef, segment, values))
            return Response(204)
        if method == "DELETE":
            self._write_one(lambda txn: self.em.store.delete(txn, sdef, segment))
            return Response(204)
        raise method_not_allowed(method, "HEAD,GET,PATCH,DELETE")

    def _external_field(self, sdef: SObjectDef, name: str) -> str:
        field = sdef.fields_lower.get(name.lower())
        if field is None or not (field.external_id or field.name == "Id"):
            raise RequestError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
        return field.name

    def by_external_id(self, request: Request, sdef: SObjectDef, field_name: str, value: str, api_version: str) -> Response:
        id_field = self._external_field(sdef, field_name)
        method, store = request.method, self.em.store
        if method == "PATCH":
            values = parse_values(sdef, self._object_body(request))
            _refuse_in_body(values, "Id", id_field)  # the key is the URL's
            values.update(parse_values(sdef, {id_field: value}))
            record_id, created = self._write_one(lambda txn: store.upsert(txn, sdef, id_field, values))
            return _upsert_response(record_id, created, api_version)
        key = to_18(value) if id_field == "Id" and is_id(value) else parse_values(sdef, {id_field: value})[id_field]
        record_id = store.find_by_external_id(sdef, id_field, key)
        if record_id is None:
            raise _NOT_FOUND
        if method == "GET":
            return Response(200, self.record_json(sdef, store.lookup(sdef.name, record_id), api_version,
                                                  request.query.get("fields")))
        if method == "DELETE":
            self._write_one(lambda txn: store.delete(txn, sdef, record_id))
            return Response(204)
        raise method_not_allowed(method, "HEAD,GET,PATCH,DELETE")

    # --- replication ------------------------------------------------------------------------------
    def _window(self, request: Request, days_back: int) -> tuple[float, float, float]:
        def moment(name: str) -> float:
            text = request.query.get(name)
            if not text:
                raise RequestError(400, "MISSING_ARGUMENT", f"Missing required parameter: {name}")
            try:  # a literal "+" in the query string arrives as a space
                return parse_datetime(text.replace(" ", "+")).timestamp()
            except ValueError:
                raise RequestError(400, "INVALID_REPLICATION_DATE", f"Invalid {name} date: {text}") from None

        start, end = moment("start"), moment("end")
        now = self.em.clock.now()
        start, end = start - start % 60, end - end % 60  # Salesforce works in whole minutes here
        if start < now - days_back * 86400:
            raise RequestError(400, "INVALID_REPLICATION_DATE",
                               f"startDate cannot be more than {days_back} days ago")
        if end - start < 60:  # the message is Salesforce's, start and end swapped (sic)
            raise RequestError(400, "INVALID_REPLICATION_DATE",
                               "startDate must be at least one minute greater than endDate")
        covered = min(end, now - now % 60)
        return start, end, covered

    def updated(self, sdef: SObjectDef, request: Request) -> dict:
        start, end, covered = self._window(request, UPDATED_DAYS_BACK)
        low, high = format_epoch(start), format_epoch(min(end, covered))
        ids = [r["Id"] for r in self.em.store.records[sdef.name].values()
               if not r["IsDeleted"] and low <= r["SystemModstamp"] < high]
        return {"ids": ids, "latestDateCovered": format_epoch(covered)}

    def deleted(self, sdef: SObjectDef, request: Request) -> dict:
        start, end, covered = self._window(request, DELETED_DAYS_BACK)
        low, high = format_epoch(start), format_epoch(min(end, covered))
        found = sorted(
            (deleted_date, record_id)
            for record_id, (sobject, deleted_date) in self.em.store.tombstones.items()
            if sobject == sdef.name and low <= deleted_date < high
        )
        now = self.em.clock.now()
        earliest = now - DELETED_DAYS_BACK * 86400
        return {
            "deletedRecords": [{"id": record_id, "deletedDate": deleted_date} for deleted_date, record_id in found],
            "earliestDateAvailable": format_epoch(earliest - earliest % 60),
            "latestDateCovered": format_epoch(covered),
        }

    # --- composite/sobjects -----------------------------------------------------------------------
    def composite(self, request: Request, rest: list[str], api_version: str) -> Response:
        method = request.method
        if not rest and method in ("POST", "PATCH"):
            return self.composite_write(request, method, None)
        if not rest and method == "DELETE":
            return self.composite_delete(request)
        if len(rest) == 1 and method in ("GET", "POST"):
            return self.composite_retrieve(request, self._sobject(rest[0]), api_version)
        if len(rest) == 2 and method == "PATCH":
            sdef = self._sobject(rest[0])
            id_field = sdef.fields_lower.get(rest[1].lower())
            if id_field is None or not (id_field.external_id or id_field.name == "Id"):
                raise RequestError(400, "INVALID_FIELD", f"Field name provided, {rest[1]} is not an External ID or "
                                   f"indexed field for {sdef.name}")
            return self.composite_write(request, method, (sdef, id_field.name))
        raise _NOT_FOUND

    @staticmethod
    def _collection_body(request: Request) -> tuple[list, bool]:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RequestError(400, "JSON_PARSER_ERROR", "The request body must be an object with a 'records' array")
        records = body["records"]
        if len(records) > MAX_COLLECTION:
            raise RequestError(400, "EXCEEDED_ID_LIMIT",
                               f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call")
        return records, bool(body.get("allOrNone", False))

    def composite_write(self, request: Request, method: str, upsert: tuple[SObjectDef, str] | None) -> Response:
        raw_records, all_or_none = self._collection_body(request)
        parsed = []
        for raw in raw_records:
            if not isinstance(raw, dict):
                raise RequestError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
            type_name = (raw.get("attributes") or {}).get("type") if isinstance(raw.get("attributes"), dict) else None
            if upsert is not None:
                sdef = upsert[0]
                if type_name and schema.sobject(type_name) is not sdef:
                    raise RequestError(400, "INVALID_TYPE", f"Record type {type_name} does not match {sdef.name}")
            else:
                if not type_name:
                    raise RequestError(400, "INVALID_TYPE", "No SObject Type defined in record")
                sdef = schema.sobject(type_name)
                if sdef is None:
                    raise RequestError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
            parsed.append((sdef, parse_values(sdef, raw)))
        store = self.em.store
        txn = self._txn()
        results, failed = [], False
        for sdef, values in parsed:
            given_id = values.get("Id")
            try:
                if upsert is not None:
                    record_id, created = store.upsert(txn, sdef, upsert[1], values)
                    results.append({"id": record_id, "success": True, "errors": [], "created": created})
                elif method == "POST":
                    if given_id is not None:
                        raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                          "Record ID: cannot specify Id in an insert call", ["Id"])
                    results.append({"id": store.create(txn, sdef, values), "success": True, "errors": []})
                else:
                    if given_id is None:
                        raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call", [])
                    results.append({"id": store.update(txn, sdef, given_id, values), "success": True, "errors": []})
            except RecordError as error:
                failed = True
                result = {"success": False, "errors": [error.as_result_error()]}
                if method == "PATCH" and given_id is not None:
                    result = {"id": given_id, **result}
                if upsert is not None:
                    result["created"] = False
                results.append(result)
        if all_or_none and failed:
            txn.rollback()
            results = [self._rolled_back(result, method == "PATCH") for result in results]
        else:
            txn.commit()
        return Response(200, results)

    @staticmethod
    def _rolled_back(result: dict, keep_id: bool) -> dict:
        if not result["success"]:
            return result
        rolled = {"id": result["id"]} if keep_id else {}
        rolled.update(success=False, errors=[dict(_ROLLED_BACK)])
        if "created" in result:
            rolled["created"] = False
        return rolled

    def composite_delete(self, request: Request) -> Response:
        ids = [i for i in request.query.get("ids", "").split(",") if i]
        if not ids:
            raise RequestError(400, "MISSING_ARGUMENT", "Missing required parameter: ids")
        if len(ids) > MAX_COLLECTION:
            raise RequestError(400, "EXCEEDED_ID_LIMIT", f"Cannot delete more than {MAX_COLLECTION} records at once")
        all_or_none = request.query.get("allOrNone", "false").lower() == "true"
        store, txn = self.em.store, self._txn()
        results, failed = [], False
        for record_id in ids:
            try:
                results.append({"id": store.delete(txn, None, record_id), "success": True, "errors": []})
            except RecordError as error:
                failed = True
                results.append({"id": record_id, "success": False, "errors": [error.as_result_error()]})
        if all_or_none and failed:
            txn.rollback()
            results = [self._rolled_back(result, True) for result in results]
        else:
            txn.commit()
        return Response(200, results)

    def composite_retrieve(self, request: Request, sdef: SObjectDef, api_version: str) -> Response:
        if request.method == "POST":
            body = request.json()
            ids, fields = body.get("ids") or [], ",".join(body.get("fields") or [])
        else:
            ids = [i for i in request.query.get("ids", "").split(",") if i]
            fields = request.query.get("fields")
        if not fields:
            raise RequestError(400, "MISSING_ARGUMENT", "Missing required parameter: fields")
        results = []
        for record_id in ids:
            record = self.em.store.lookup(sdef.name, to_18(record_id)) if is_id(record_id) else None
            results.append(self.record_json(sdef, record, api_version, fields)
                           if record is not None and not record["IsDeleted"] else None)
        return Response(200, results)

    # --- Bulk API 2.0 -----------------------------------------------------------------------------
    def jobs(self, request: Request, kind: str, rest: list[str], api_version: str) -> Response:
        bulk, method = self.em.bulk, request.method
        if not rest:
            if method == "POST":
                body = self._object_body(request)
                create = bulk.create_query if kind == "query" else bulk.create_ingest
                return Response(200, create(body, api_version))
            if method == "GET":
                records = [job.info() for job in bulk.jobs.values() if job.kind == kind]
                return Response(200, {"done": True, "records": records, "nextRecordsUrl": None})
            raise _NOT_FOUND
        job_id = rest[0]
        if len(rest) == 1:
            if method == "GET":
                return Response(200, bulk.get(job_id, kind).info())
            if method == "PATCH":
                return Response(200, bulk.set_state(job_id, kind, self._object_body(request).get("state")))
            if method == "DELETE":
                bulk.delete(job_id, kind)
                return Response(204)
            raise _NOT_FOUND
        if len(rest) == 2:
            action = rest[1]
            if kind == "query" and action == "results" and method == "GET":
                text, headers = bulk.query_results(job_id, request.query.get("locator"), request.query.get("maxRecords"))
                return Response(200, text, CSV + "; charset=UTF-8", headers)
            if kind == "ingest" and action == "batches" and method == "PUT":
                bulk.upload(job_id, request.body)
                return Response(201)
            # documented as unprocessedrecords; clients such as simple-salesforce write unprocessedRecords
            result_kind = _INGEST_RESULTS.get(action.lower())
            if kind == "ingest" and result_kind is not None and method == "GET":
                return Response(200, bulk.results(job_id, result_kind), CSV + "; charset=UTF-8")
        raise _NOT_FOUND

    # --- Bulk API 1.0 -----------------------------------------------------------------------------
    def _bulk1_json(self, request: Request, parts: list[str]) -> bool:
        """Whether this request's job/batch information and errors are answered in JSON (else XML)."""
        job = self.em.bulk1.jobs.get(parts[1]) if parts[:1] == ["job"] and len(parts) > 1 else None
        return bulk1.answers_in_json(job, request.headers.get("content-type", ""))

    def dispatch_bulk1(self, request: Request, parts: list[str], api_version: str) -> Response:
        jobs, method = self.em.bulk1, request.method
        if parts[:1] != ["job"]:
            raise bulk1.Bulk1Error(404, "InvalidUrl", f"Unknown resource: {method} {'/'.join(parts)}")
        rest, as_json = parts[1:], self._bulk1_json(request, parts)
        # each answer: (body, content type)
        if not rest and method == "POST":
            return Response(201, *jobs.create_job(request.body, api_version, as_json))
        if len(rest) == 1 and method == "GET":
            return Response(200, *jobs.job_info(rest[0], as_json))
        if len(rest) == 1 and method == "POST":
            return Response(200, *jobs.set_state(rest[0], request.body, as_json))
        if rest[1:2] == ["batch"]:
            job_id, batch_path = rest[0], rest[2:]
            if not batch_path and method == "POST":
                return Response(201, *jobs.add_batch(job_id, request.body, as_json))
            if not batch_path and method == "GET":
                return Response(200, *jobs.batch_infos(job_id, as_json))
            if len(batch_path) == 1 and method == "GET":
                return Response(200, *jobs.batch_info(job_id, batch_path[0], as_json))
            if batch_path[1:] == ["request"] and method == "GET":
                return Response(200, *jobs.batch_request(job_id, batch_path[0]))
            if batch_path[1:] == ["result"] and method == "GET":
                return Response(200, *jobs.batch_result(job_id, batch_path[0], as_json))
            if len(batch_path) == 3 and batch_path[1] == "result" and method == "GET":
                return Response(200, *jobs.query_result(job_id, batch_path[0], batch_path[2]))
        raise bulk1.Bulk1Error(404, "InvalidUrl", f"Unknown resource: {method} {'/'.join(parts)}")


def freeze_heap() -> None:
    """Exempt what is alive now (the records, above all) from the cyclic garbage collector, which would otherwise
    walk every stored record at each full collection (seconds per million records seeded). Records form no
    reference cycles: reference counting still frees them."""
    gc.collect()
    gc.freeze()


def _path_parts(match: re.Match) -> list[str]:
    """The decoded segments after the API version of a matched API path."""
    return [unquote(part) for part in match.group(2).split("/") if part]


def _refuse_in_body(values: dict, *key_fields: str) -> None:
    """Single-record writes take the record's key from the URL, never from the body."""
    for name in key_fields:
        if name in values:
            raise RequestError(400, "INVALID_FIELD", f"The {name} field should not be specified in the sobject data.")


# API 46.0 added ``created`` to upsert answers and the 200 (with a body) for updates; before, an update was 204
_UPSERT_CREATED_SINCE = (46, 0)


def _upsert_response(record_id: str, created: bool, api_version: str) -> Response:
    if tuple(int(part) for part in api_version.split(".")) < _UPSERT_CREATED_SINCE:
        return Response(201, {"id": record_id, "success": True, "errors": []}) if created else Response(204)
    return Response(201 if created else 200, {"id": record_id, "success": True, "errors": [], "created": created})


def _in_bulk1_form(response: Response, as_json: bool) -> Response:
    """An error in Bulk 1.0's form, JSON or XML; those of the shared pipeline (session, limits, faults,
    emulator failures) come in REST's form."""
    body = response.body
    if isinstance(body, list) and body:
        error = bulk1.from_rest_error(response.status, body)
        response.status, body = error.status, error.body()
    response.body, response.content_type = bulk1.rendered("error", body, as_json)
    return response


class _JoinedTxn(Txn):
    """One subrequest's writes inside the shared composite transaction.

    Its own undo log lets the subrequest roll back alone (e.g. a collection with ``allOrNone``);
    the outer transaction, which sees every write too, commits or rolls back the whole composite.
    """

    def __init__(self, outer: Txn):
        super().__init__(outer.store, outer.user_id)
        self.now = outer.now
        self._outer = outer

    def put(self, sobject: str, record: dict, indexes: list | None = None) -> None:
        self._undo.setdefault(record["Id"], (sobject, self.store.records[sobject].get(record["Id"])))
        self._outer.put(sobject, record, indexes)

    def remove(self, sobject: str, record_id: str) -> None:
        self._undo.setdefault(record_id, (sobject, self.store.records[sobject].get(record_id)))
        self._outer.remove(sobject, record_id)

    def tombstone(self, record_id: str, sobject: str | None) -> None:
        self._tomb_undo.setdefault(record_id, self.store.tombstones.get(record_id))
        self._outer.tombstone(record_id, sobject)

    def commit(self) -> None:  # the composite commits
        self._undo.clear()
        self._tomb_undo.clear()
