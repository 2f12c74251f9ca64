"""Lets Airflow 3.3.2's Test button reach our connections, which have no port (apache/airflow#73298).

The connections list posts ``port: Number(connection.port)``, which is 0 for a connection stored
without a port, and ``POST /api/v2/connections/test`` then answers 400 ("The host or port to test
differs from the stored connection") because 0 is not "no port".  A Salesforce connection never has
a port, so its Test button could never run ``test_connection()``.  This root middleware of the plugin
turns port 0 into null in that one request, for our two connection types only: what Airflow itself
does once it carries the fix (harmless then; remove it when the pinned Airflow has it).
"""

from __future__ import annotations

import json
from typing import Any

from deployteq_salesforce.provider_info import DEPLOYTEQ_CONN_TYPE, SALESFORCE_CONN_TYPE

TEST_PATH = "/api/v2/connections/test"
CONN_TYPES = frozenset({SALESFORCE_CONN_TYPE, DEPLOYTEQ_CONN_TYPE})


def without_zero_port(body: bytes) -> bytes:
    """The request body with ``"port": 0`` as null when it tests one of our connection types; else unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("conn_type") not in CONN_TYPES:
        return body
    port = data.get("port")
    if port != 0 or isinstance(port, bool):
        return body
    return json.dumps({**data, "port": None}).encode()


class PortlessConnectionTestMiddleware:
    """ASGI middleware: applies ``without_zero_port`` to ``POST .../api/v2/connections/test``, nothing else."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(TEST_PATH):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to test
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = without_zero_port(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)
