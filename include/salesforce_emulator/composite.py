"""Composite (``composite``) and Composite Batch (``composite/batch``): several REST calls in one request.

Salesforce counts the whole call as one API request.  Subrequests go through the same routes as
top-level requests.  In ``composite``, ``@{referenceId.field}`` (also ``@{ref.records[0].Id}``) in a
subrequest's URL or body is replaced by a value from an earlier subrequest's answer, and with
``allOrNone`` one failing subrequest rolls back all of them.  ``composite/batch`` runs independent
subrequests (URLs relative to ``/services/data/``), optionally halting on the first error.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import jsonutil
from .store import RequestError

if TYPE_CHECKING:
    from .app import EmulatorApp, Request, Response

MAX_SUBREQUESTS = 25
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")
_HALTED = {"errorCode": "PROCESSING_HALTED",
           "message": "The transaction was rolled back since another operation in the same transaction failed."}
_BATCH_HALTED = {"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}


class _UnresolvedReference(Exception):
    pass


def _subrequests(body: Any, key: str) -> list[dict]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise RequestError(400, "JSON_PARSER_ERROR", f"The request body must be an object with a non-empty '{key}' array")
    if len(items) > MAX_SUBREQUESTS:
        raise RequestError(400, "LIMIT_EXCEEDED", f"Exceeded max limit of subrequests allowed (limit is {MAX_SUBREQUESTS})")
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str) or not isinstance(item.get("url"), str):
            raise RequestError(400, "JSON_PARSER_ERROR", "Each subrequest needs a 'method' and a 'url'")
        if not isinstance(item.get("httpHeaders") or {}, dict):
            raise RequestError(400, "JSON_PARSER_ERROR", "A subrequest's 'httpHeaders' must be an object")
    for name in ("allOrNone", "haltOnError", "collateSubrequests"):
        if name in body and not isinstance(body[name], bool):
            raise RequestError(400, "JSON_PARSER_ERROR", f"'{name}' must be true or false")
    return items


def _lookup(answers: dict[str, Any], name: str, steps: str) -> Any:
    if name not in answers:
        raise _UnresolvedReference(name)
    value = answers[name]
    for field, index in _STEP.findall(steps):
        try:
            if field:
                # Salesforce resolves field names of a record case-insensitively
                value = value[field] if field in value else next(v for k, v in value.items() if k.lower() == field.lower())
            else:
                value = value[int(index)]
        except (KeyError, IndexError, TypeError, StopIteration, AttributeError):
            raise _UnresolvedReference(name + steps) from None
    return value


def _resolve(value: Any, answers: dict[str, Any]) -> Any:
    """Replace ``@{ref...}`` references in a URL or a JSON body; a whole-string reference keeps its type."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(answers, whole.group(1), whole.group(2))
        return _REFERENCE.sub(lambda m: str(_lookup(answers, m.group(1), m.group(2))), value)
    if isinstance(value, list):
        return [_resolve(item, answers) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item, answers) for key, item in value.items()}
    return value


def _answer_body(response: "Response") -> Any:
    """A subrequest's answer as JSON value: parsed bodies as they are, text as text, no body as null."""
    body = response.body.decode() if isinstance(response.body, bytes) else response.body
    return body if body != "" else None


def run_composite(app: "EmulatorApp", request: "Request") -> "Response":
    from .app import Response

    body = request.json()
    items = _subrequests(body, "compositeRequest")
    all_or_none = bool(body.get("allOrNone", False))
    answers: dict[str, Any] = {}
    results: list[dict] = []
    failed = False
    with app.shared_transaction(all_or_none) as transaction:
        for item in items:
            reference = str(item.get("referenceId") or "")
            if failed and all_or_none:
                results.append({"body": [dict(_HALTED)], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference})
                continue
            try:
                url = str(_resolve(item["url"], answers))  # a URL that is one whole reference may resolve to a number
                sub_body = _resolve(item.get("body"), answers)
            except _UnresolvedReference as missing:
                failed = True
                message = (f"Invalid reference specified. No value for {missing} found in an earlier subrequest "
                           "that succeeded.")
                results.append({"body": [{"errorCode": "PROCESSING_HALTED", "message": message}], "httpHeaders": {},
                                "httpStatusCode": 400, "referenceId": reference})
                continue
            response = app.subrequest(item["method"], url, sub_body, item.get("httpHeaders") or {})
            answer = _answer_body(response)
            if response.status < 400 and reference:
                answers[reference] = answer
            failed = failed or response.status >= 400
            headers = {"Location": f"{url.split('?')[0].rstrip('/')}/{answer['id']}"} if (
                response.status == 201 and isinstance(answer, dict) and "id" in answer) else {}
            results.append({"body": answer, "httpHeaders": headers, "httpStatusCode": response.status,
                            "referenceId": reference})
        if all_or_none and failed:
            transaction.rollback()
            results = [r if r["httpStatusCode"] >= 400 else {**r, "body": [dict(_HALTED)], "httpHeaders": {}, "httpStatusCode": 400}
                       for r in results]
    return Response(200, {"compositeResponse": results})


def run_batch(app: "EmulatorApp", request: "Request") -> "Response":
    from .app import Response

    body = request.json()
    items = _subrequests(body, "batchRequests")
    halt_on_error = bool(body.get("haltOnError", False))
    results: list[dict] = []
    has_errors = halted = False
    for item in items:
        if halted:
            results.append({"statusCode": 412, "result": [dict(_BATCH_HALTED)]})
            continue
        url = item["url"] if item["url"].startswith("/") else f"/services/data/{item['url']}"
        response = app.subrequest(item["method"], url, item.get("richInput"), {})
        if response.status >= 400:
            has_errors = True
            halted = halt_on_error
        results.append({"statusCode": response.status, "result": _answer_body(response)})
    return Response(200, {"hasErrors": has_errors, "results": results})


def encode_body(value: Any) -> bytes:
    return b"" if value is None else jsonutil.dumps(value)
