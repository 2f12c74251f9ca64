"""Admin API under /__emulator__/ (JSON, no auth, never counted): test and demo control only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import jsonutil, schema
from .schema import SALES_USER_ID
from .store import RequestError, Txn

if TYPE_CHECKING:  # pragma: no cover
    from .app import Request, Response
    from .state import Emulator


def _body(request: Request) -> dict:
    if not request.body:
        return {}
    try:
        body = jsonutil.loads(request.body)
    except (jsonutil.DecodeError, ValueError) as error:
        raise RequestError(400, "JSON_PARSER_ERROR", f"Admin request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "JSON_PARSER_ERROR", "Admin request body must be a JSON object")
    return body


def _sobject(name) -> schema.SObjectDef:
    sdef = schema.sobject(name or "")
    if sdef is None:
        known = ", ".join(schema.OBJECTS)
        raise RequestError(400, "INVALID_TYPE", f"Unknown sobject {name!r}; known objects: {known}")
    return sdef


def _write(em: Emulator, action):
    txn = Txn(em.store, SALES_USER_ID)
    try:
        result = action(txn)
    except Exception:
        txn.rollback()
        raise
    txn.commit()
    return result


def _public(record: dict) -> dict:
    return dict(record)


def handle(em: Emulator, request: Request) -> Response:
    from .app import Response

    name = request.path[len("/__emulator__/"):].strip("/")
    handler = _ROUTES.get((request.method, name))
    if handler is None:
        return Response(404, {"error": f"No admin endpoint {request.method} /__emulator__/{name}",
                              "endpoints": sorted(f"{m} {p}" for m, p in _ROUTES)})
    try:
        return Response(200, handler(em, request, _body(request)))
    except RequestError as error:
        return Response(error.status, {"error": error.message, "errorCode": error.error_code})
    except (ValueError, TypeError, KeyError) as error:
        return Response(400, {"error": f"{type(error).__name__}: {error}"})


# --- handlers ----------------------------------------------------------------------------------

def _health(em, request, body):
    return {"ok": True, "now": em.clock.now_wire()}


def _reset(em, request, body):
    em.reset(body.get("hourly_limit"), body.get("daily_limit"), body.get("block_seconds"))
    return {"ok": True}


def _seed(em, request, body):
    sdef = _sobject(body.get("sobject"))
    records = body.get("records") or []
    if not isinstance(records, list):
        raise RequestError(400, "JSON_PARSER_ERROR", "records must be a list of objects")
    store = em.store
    return {"ids": _write(em, lambda txn: [store.seed_record(txn, sdef, raw) for raw in records])}


def _seed_demo(em, request, body):
    from .demo_data import seed_demo

    return {"counts": seed_demo(em)}


def _records(em, request, body):
    sdef = _sobject(request.query.get("sobject"))
    include_deleted = request.query.get("include_deleted", "false").lower() == "true"
    return {"records": [_public(r) for r in em.store.rows(sdef.name, include_deleted)]}


def _update(em, request, body):
    sdef = _sobject(body.get("sobject"))
    store = em.store
    return {"ids": _write(em, lambda txn: [store.edit(txn, sdef, raw) for raw in body.get("records") or []])}


def _convert_lead(em, request, body):
    return _write(em, lambda txn: em.store.convert_lead(txn, body["lead_id"], body.get("contact_id"),
                                                          body.get("account_id")))


def _each_id(action):
    def handler(em, request, body):
        ids = body.get("ids") or []
        _write(em, lambda txn: [action(em.store, txn, record_id) for record_id in ids])
        return {"ok": True, "count": len(ids)}

    return handler


def _merge(em, request, body):
    _write(em, lambda txn: em.store.merge(txn, body["master_id"], list(body.get("loser_ids") or [])))
    return {"ok": True}


def _advance_clock(em, request, body):
    em.clock.advance(float(body.get("seconds", 0)))
    return {"now": em.clock.now_wire()}


def _now(em, request, body):
    return {"now": em.clock.now_wire()}


def _set_limits(em, request, body):
    em.limits.configure(body.get("hourly_limit"), body.get("daily_limit"), body.get("block_seconds"))
    return em.limits.state()


def _limits_state(em, request, body):
    return em.limits.state()


def _inject_fault(em, request, body):
    fault = em.faults.add(body.get("kind"), body.get("at_request"), body.get("count", 1), body.get("path_contains"),
                          body.get("delay_seconds"))
    return {"fault": vars(fault), "pending": em.faults.describe()}


def _clear_faults(em, request, body):
    em.faults.clear()
    return {"pending": em.faults.describe()}


def _faults(em, request, body):
    return {"pending": em.faults.describe()}


def _add_validation_rule(em, request, body):
    sdef = _sobject(body.get("sobject"))
    field = sdef.fields_lower.get(str(body.get("field", "")).lower())
    if field is None:
        raise RequestError(400, "INVALID_FIELD", f"No field {body.get('field')!r} on {sdef.name}")
    rule = {"sobject": sdef.name, "field": field.name, "equals": body.get("equals"), "message": body["message"]}
    rules = [r for r in em.store.validation_rules if (r["sobject"], r["field"]) != (sdef.name, field.name)]
    rules.append(rule)
    em.store.validation_rules = rules
    em.db.set_meta("validation_rules", rules)
    return {"rules": rules}


def _counters(em, request, body):
    return em.counters()


def _request_log(em, request, body):
    after = int(request.query.get("after", 0))
    return {"requests": [{"number": number, "at": at, "endpoint": endpoint, "blocked": blocked}
                         for number, at, endpoint, blocked in em.request_log if number > after]}


_ROUTES = {
    ("GET", "health"): _health,
    ("POST", "reset"): _reset,
    ("POST", "seed"): _seed,
    ("POST", "seed-demo"): _seed_demo,
    ("GET", "records"): _records,
    ("POST", "update"): _update,
    ("POST", "convert-lead"): _convert_lead,
    ("POST", "delete"): _each_id(lambda store, txn, i: store.soft_delete(txn, i)),
    ("POST", "undelete"): _each_id(lambda store, txn, i: store.undelete(txn, i)),
    ("POST", "hard-delete"): _each_id(lambda store, txn, i: store.hard_delete(txn, i)),
    ("POST", "merge"): _merge,
    ("POST", "advance-clock"): _advance_clock,
    ("GET", "now"): _now,
    ("POST", "limits"): _set_limits,
    ("GET", "limits"): _limits_state,
    ("POST", "faults"): _inject_fault,
    ("GET", "faults"): _faults,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "validation-rules"): _add_validation_rule,
    ("GET", "counters"): _counters,
    ("GET", "request-log"): _request_log,
}
