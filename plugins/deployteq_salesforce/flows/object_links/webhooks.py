"""The webhook receivers as a real HTTP endpoint, served by the Airflow API server (R10).

``POST /deployteq-webhooks/<webhook name>`` with one JSON object or an array of them, and
``Authorization: Bearer <token>``; the token is the password of the Airflow Connection
``deployteq_webhook``.  The webhook's definition (Variable ``deployteq_salesforce_object_links``)
is applied in ONE transaction: the datamodel table is created/migrated if needed, every object is
upserted on the de-duplication key and related to its customer.  The answer names the Deployteq id
of each stored object, in request order.  Salesforce Flows or outbound calls can push changes this
way without spending API budget.

- wrong or missing token -> 401; unknown webhook -> 404;
- malformed JSON, or a value that does not fit -> 400 naming the object index and field, nothing written;
- a definition change that would lose data -> 409, nothing written.

The app needs no Airflow login (it checks its own token) and opens no connection at import time:
Airflow, the hooks and the configuration are loaded per request.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

URL_PREFIX = "/deployteq-webhooks"
TOKEN_CONN_ID = "deployteq_webhook"
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_OBJECTS = 10_000


class HttpProblem(Exception):
    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _variable_config() -> str | None:
    from airflow.sdk import Variable

    from deployteq_salesforce.flows.object_links.config import VARIABLE_NAME

    return Variable.get(VARIABLE_NAME, default=None)


def _connection_token(conn_id: str) -> str | None:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).password


def parse_objects(body: bytes) -> list[Any]:
    """The request body as a list of objects, or HttpProblem 400 saying what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HttpProblem(400, f"malformed JSON: {exc}") from None
    objects = payload if isinstance(payload, list) else [payload]
    if len(objects) > MAX_OBJECTS:
        raise HttpProblem(413, f"{len(objects)} objects in one request; send at most {MAX_OBJECTS}")
    errors = [
        {"index": i, "field": None, "message": f"expected a JSON object, got a JSON {type(o).__name__}"}
        for i, o in enumerate(objects) if not isinstance(o, dict)
    ]
    if errors:
        raise HttpProblem(400, "the body must be one JSON object or an array of objects; nothing was stored", errors)
    return objects


class WebhookReceiver:
    """What one push does, without HTTP: authenticate, convert, store in one transaction."""

    def __init__(self, *, deployteq_conn_id: str, token_conn_id: str,
                 config_loader: Callable[[], Any], token_loader: Callable[[str], str | None]):
        self.deployteq_conn_id = deployteq_conn_id
        self.token_conn_id = token_conn_id
        self.config_loader = config_loader
        self.token_loader = token_loader

    def authenticate(self, authorization: str | None) -> None:
        unauthorized = HttpProblem(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise unauthorized
        try:
            expected = self.token_loader(self.token_conn_id)
        except Exception as exc:  # noqa: BLE001 - a missing Connection is a set-up problem, not the caller's
            log.error("Webhook receiver: Connection %r cannot be read (%s)", self.token_conn_id, type(exc).__name__)
            raise HttpProblem(503, f"the receiver is not configured: Airflow Connection {self.token_conn_id!r} is missing") from None
        if not expected:
            raise HttpProblem(503, f"the receiver is not configured: Connection {self.token_conn_id!r} has no password (the token)")
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise unauthorized

    def webhook(self, name: str):
        from deployteq_salesforce.core.exceptions import ConfigurationError
        from deployteq_salesforce.flows.object_links.config import load_object_links

        try:
            config = load_object_links(self.config_loader())
        except ConfigurationError as exc:
            log.error("Webhook receiver: %s", exc)
            raise HttpProblem(503, "the webhook configuration is invalid; see the API server log") from None
        webhook = config.webhook(name)
        if webhook is None:
            raise HttpProblem(404, f"no webhook named {name!r}")
        return webhook

    def store(self, webhook, objects: list[dict]) -> dict:
        from deployteq_salesforce.flows.object_links.datamodel import DestructiveChange, convert_record
        from deployteq_salesforce.flows.object_links.store import DatamodelStore
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        rows, errors = [], []
        for index, obj in enumerate(objects):
            converted = convert_record(webhook, obj)
            if isinstance(converted, list):
                errors += [{"index": index, "field": p.field, "message": p.message} for p in converted]
            else:
                rows.append(converted)
        if errors:
            raise HttpProblem(400, f"{len({e['index'] for e in errors})} object(s) do not fit webhook {webhook.name!r}; nothing was stored", errors)
        hook = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        hook.migrate()
        datamodel = DatamodelStore(hook)
        try:
            datamodel.ensure_table(webhook)
        except DestructiveChange as exc:
            raise HttpProblem(409, str(exc)) from None
        run_log_id = hook.start_run(f"webhook:{webhook.name}")
        try:
            with hook.connect() as conn:
                written = datamodel.write_rows(conn, webhook, rows)  # relates the rows to their customers too
                ids = datamodel.ids_for(conn, webhook, rows) if rows else []
        except Exception as exc:
            log.exception("Webhook %s: storing %s object(s) failed; nothing was stored", webhook.name, len(rows))
            hook.finish_run(run_log_id, outcome="failed", counts={"fetched": len(rows)}, message=f"{type(exc).__name__}: {exc}")
            raise HttpProblem(500, "storing failed and was rolled back; see the API server log") from None
        counts = {"fetched": len(rows), "inserted": written.inserted, "updated": written.updated, "skipped": written.unchanged}
        hook.finish_run(run_log_id, outcome="success", counts=counts)
        stored = []
        for index, (deployteq_id, customer_id) in enumerate(ids):
            entry = {"index": index, "deployteq_id": deployteq_id}
            if webhook.customer_relation:
                entry["customer_id"] = customer_id
            stored.append(entry)
        return {"webhook": webhook.name, "datamodel": webhook.datamodel, "received": len(rows),
                "inserted": written.inserted, "updated": written.updated, "unchanged": written.unchanged, "stored": stored}


def create_app(
    *,
    deployteq_conn_id: str = "deployteq_default",
    token_conn_id: str = TOKEN_CONN_ID,
    config_loader: Callable[[], Any] = _variable_config,
    token_loader: Callable[[str], str | None] = _connection_token,
) -> FastAPI:
    """The receiver app; the defaults read Airflow's Variable and Connections at request time."""
    receiver = WebhookReceiver(deployteq_conn_id=deployteq_conn_id, token_conn_id=token_conn_id,
                               config_loader=config_loader, token_loader=token_loader)
    app = FastAPI(title="Deployteq webhook receivers", description=__doc__.split("\n\n")[0], docs_url=None, redoc_url=None)
    app.state.receiver = receiver

    @app.post("/{webhook_name}")
    async def receive(webhook_name: str, request: Request) -> JSONResponse:
        try:
            receiver.authenticate(request.headers.get("authorization"))
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB")
            objects = parse_objects(body)
            webhook = await run_in_threadpool(receiver.webhook, webhook_name)
            result = await run_in_threadpool(receiver.store, webhook, objects)
        except HttpProblem as problem:
            if problem.status >= 500:
                log.warning("Webhook %s: %s", webhook_name, problem.detail)
            return problem.response()
        log.info("Webhook %s: %s object(s) stored in %s", webhook_name, result["received"], result["datamodel"])
        return JSONResponse(result)

    return app


app = create_app()
