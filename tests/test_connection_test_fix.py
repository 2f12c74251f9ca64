"""The plugin's root middleware that lets Airflow 3.3.2's Test button reach connections without a port."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from deployteq_salesforce.connection_test_fix import PortlessConnectionTestMiddleware, without_zero_port

# what the connections list posts for a connection stored without host and port
UI_BODY = {"connection_id": "salesforce_default", "conn_type": "deployteq_salesforce", "host": "", "port": 0,
           "login": "", "password": "***", "schema": "", "description": "", "extra": "{}"}


@pytest.mark.parametrize("conn_type", ["deployteq_salesforce", "deployteq"])
def test_port_zero_of_our_connection_types_becomes_no_port(conn_type):
    fixed = json.loads(without_zero_port(json.dumps({**UI_BODY, "conn_type": conn_type}).encode()))

    assert fixed == {**UI_BODY, "conn_type": conn_type, "port": None}


@pytest.mark.parametrize(
    "body",
    [
        {**UI_BODY, "conn_type": "salesforce"},  # not ours: Airflow's behaviour stays Airflow's
        {**UI_BODY, "port": 5432},
        {**UI_BODY, "port": None},
        {**UI_BODY, "port": False},
        [UI_BODY],
    ],
)
def test_every_other_body_is_left_byte_for_byte(body):
    raw = json.dumps(body).encode()
    assert without_zero_port(raw) is raw
    assert without_zero_port(b"not json") == b"not json"


def echo_app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"body": (await request.body()).decode(), "length": request.headers.get("content-length")})

    app = Starlette(routes=[Route("/api/v2/connections/test", echo, methods=["POST"]),
                            Route("/api/v2/connections", echo, methods=["POST"])])
    app.add_middleware(PortlessConnectionTestMiddleware)
    return app


def test_the_middleware_rewrites_only_the_connection_test_request():
    client = TestClient(echo_app())

    tested = client.post("/api/v2/connections/test", content=json.dumps(UI_BODY)).json()
    created = client.post("/api/v2/connections", content=json.dumps(UI_BODY)).json()

    assert json.loads(tested["body"])["port"] is None
    assert int(tested["length"]) == len(tested["body"].encode())
    assert json.loads(created["body"])["port"] == 0
