"""Kill a flow's worker process at a chosen point, for real, and look at what reached Salesforce.

The flow's operator runs in a forked child process (a real separate worker process); a kill point
installed in the child sends it SIGKILL:

- ``("request", k, "before")``: just before the k-th Salesforce request leaves (it never arrives);
- ``("request", k, "after")``: right after the k-th request's answer arrived (Salesforce acted on it,
  the worker never learned the outcome);
- ``("commit", j)``: right after the j-th commit of a Deployteq transaction (between a store commit and
  whatever follows it: the flag reset, the watermark, the next batch);
- ``("budget", n)``: the hourly budget allows ``n`` requests, the run stops on it and is killed the moment
  it asks to be deferred (the worker dies "while deferred"); a flow that does not defer just ends.

Each try of a request counts (retries are requests too), as in the shared ledger.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

# Writes that, repeated, make Salesforce do the same work twice (a batch, or one Bulk job's data), by the
# emulator's counter names.  ``POST composite/sobjects/{T}`` is a read (SObject Collections retrieve).
WRITE_ENDPOINTS = ("POST composite/sobjects", "PATCH composite/sobjects", "DELETE composite/sobjects",
                   "PUT jobs/ingest/{id}/batches")
UPSERT_PREFIX = "PATCH composite/sobjects/"  # + {T}/{external id field}


@dataclass(frozen=True)
class KillPoint:
    kind: str  # "request", "commit", "budget"
    number: int
    when: str = ""  # "before" / "after" for requests

    @property
    def id(self) -> str:
        return f"{self.kind}{self.number}{'-' + self.when if self.when else ''}"


def request_points(count: int) -> list[KillPoint]:
    return [KillPoint("request", k, when) for k in range(1, count + 1) for when in ("before", "after")]


def commit_points(count: int) -> list[KillPoint]:
    return [KillPoint("commit", j) for j in range(1, count + 1)]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: KillPoint) -> None:
    """In the child: arrange for SIGKILL at ``point``."""
    from airflow.sdk import BaseOperator
    import psycopg

    from deployteq_salesforce.core.budget import BudgetedSession

    seen = {"request": 0, "commit": 0}
    if point.kind == "request":
        send_once = BudgetedSession._send_once

        def counted_send(self, method, url, kwargs):
            seen["request"] += 1
            hit = seen["request"] == point.number
            if hit and point.when == "before":
                _die()
            response = send_once(self, method, url, kwargs)
            if hit:
                response.content  # the whole answer arrived before the worker dies
                _die()
            return response

        BudgetedSession._send_once = counted_send
    elif point.kind == "commit":
        commit = psycopg.Connection.commit

        def counted_commit(self):
            commit(self)
            seen["commit"] += 1
            if seen["commit"] == point.number:
                _die()

        psycopg.Connection.commit = counted_commit
    elif point.kind == "budget":
        def dying_defer(self, **kwargs):
            _die()

        BaseOperator.defer = dying_defer
        connection = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
        # a budget of its own, so the ledger rows of earlier runs do not count against it
        connection["extra"] = {**connection.get("extra", {}), "hourly_budget": point.number, "budget_key": "crash-budget"}
        os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(connection)


def _child(run: Callable[[], object], point: KillPoint) -> None:
    try:
        install(point)
        run()
    except BaseException as error:  # noqa: BLE001 - a run that fails is reported by the exit code
        print(f"crash-point child: {type(error).__name__}: {error}", flush=True)
        os._exit(3)
    os._exit(0)


def run_killed(run: Callable[[], object], point: KillPoint, timeout: float = 120.0) -> int:
    """Run ``run`` in a forked worker process with ``point`` installed; its exit code (-9: killed there)."""
    process = multiprocessing.get_context("fork").Process(target=_child, args=(run, point), daemon=True)
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"the worker process did not finish within {timeout:.0f} s at {point.id}")
    return process.exitcode


def writes(counters: dict) -> int:
    """Salesforce requests that carried data to write (composite batches, Bulk ingest uploads)."""
    return sum(n for endpoint, n in counters["by_endpoint"].items()
               if endpoint in WRITE_ENDPOINTS or endpoint.startswith(UPSERT_PREFIX))
