"""Pure parsing of what Salesforce says about errors and API usage.

No Airflow and no network here: the budgeted session and the tests feed it raw
status codes, bodies and headers.  Salesforce error bodies are JSON arrays
``[{"message": ..., "errorCode": ..., "fields": [...]}]``; the daily usage comes in
every response header ``Sforce-Limit-Info: api-usage=USED/MAX``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
INVALID_SESSION_ID = "INVALID_SESSION_ID"

_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(?P<used>\d+)/(?P<max>\d+)")


@dataclass(frozen=True)
class ApiUsage:
    """The org's rolling 24-hour API usage as reported by ``Sforce-Limit-Info``."""

    used: int
    max: int

    @property
    def remaining(self) -> int:
        return self.max - self.used


@dataclass(frozen=True)
class SalesforceErrorItem:
    """One entry of a Salesforce error body."""

    error_code: str
    message: str
    fields: tuple[str, ...] = field(default_factory=tuple)


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``"api-usage=25/5000; per-app-api-usage=17/250(appName=x)"`` -> ``ApiUsage(25, 5000)``.

    Returns None when the header is missing or carries no org-wide ``api-usage``
    (the per-app figure alone says nothing about the org's allocation).
    """
    if not header:
        return None
    match = _API_USAGE.search(header)
    if not match:
        return None
    return ApiUsage(used=int(match["used"]), max=int(match["max"]))


def parse_error_body(body: Any) -> list[SalesforceErrorItem]:
    """The error entries of a response body (text, bytes or already decoded JSON).

    Anything that is not Salesforce's error shape yields an empty list, never an exception:
    this runs on arbitrary answers, including HTML from a proxy.
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body) if body.strip() else None
        except ValueError:
            return []
    if isinstance(body, dict):  # some endpoints (OAuth, Bulk) answer a single object
        body = [body]
    if not isinstance(body, list):
        return []
    items = []
    for entry in body:
        if not isinstance(entry, dict):
            continue
        code = entry.get("errorCode") or entry.get("statusCode") or entry.get("error")
        if not code:
            continue
        message = entry.get("message") or entry.get("error_description") or ""
        fields = entry.get("fields") or ()
        items.append(
            SalesforceErrorItem(
                error_code=str(code),
                message=str(message),
                fields=tuple(str(f) for f in fields) if isinstance(fields, (list, tuple)) else (),
            )
        )
    return items


def error_codes(body: Any) -> set[str]:
    return {item.error_code for item in parse_error_body(body)}


def first_error_message(body: Any) -> str:
    """``"CODE: message"`` of the first error entry, or "" when the body has none."""
    items = parse_error_body(body)
    if not items:
        return ""
    return f"{items[0].error_code}: {items[0].message}" if items[0].message else items[0].error_code


def is_request_limit_exceeded(status_code: int, body: Any) -> bool:
    """Salesforce blocked the token for exceeding the org's request limit."""
    return status_code == 403 and REQUEST_LIMIT_EXCEEDED in error_codes(body)


def is_invalid_session(status_code: int, body: Any) -> bool:
    """The session id / access token is expired or was never valid."""
    return status_code == 401 and INVALID_SESSION_ID in error_codes(body)


def parse_bulk_error(text: str | None) -> tuple[str, str, tuple[str, ...]]:
    """An ingest result's ``sf__Error`` (``STATUS_CODE:message:field1,field2 --``) -> (statusCode, message, fields).

    The message may itself contain colons; only a trailing ``--`` marks the field list after the last one.
    """
    text = (text or "").strip()
    if not text:
        return "UNKNOWN_ERROR", "Salesforce gave no message", ()
    code, _, rest = text.partition(":")
    message, fields = rest, ()
    if rest.endswith("--"):
        body = rest[:-2].rstrip()
        message, sep, names = body.rpartition(":")
        if not sep:
            message, names = body, ""
        fields = tuple(n.strip() for n in names.split(",") if n.strip())
    return code.strip() or "UNKNOWN_ERROR", message.strip() or "Salesforce gave no message", fields
