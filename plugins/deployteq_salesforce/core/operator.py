"""What every Salesforce flow operator does around its own work: hooks, run log, budget stops."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, Sequence

from airflow.sdk import Asset, BaseOperator

from deployteq_salesforce.assets import alias_for
from deployteq_salesforce.core.datasets import DEPLOYTEQ, Written
from deployteq_salesforce.core.exceptions import BudgetExhausted
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.incremental import SyncCounts
from deployteq_salesforce.core.timing import PhaseTimer, frozen_gc, quick_gil_handover


def check_names(owner: str, **names: Any) -> None:
    """Connection ids and flow names must be non-empty strings; say which one is not, early (at DAG parse time)."""
    for name, value in names.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{owner}: {name} must be a non-empty string, got {value!r}")


@contextmanager
def running_flow(store: DeployteqHook) -> Iterator[None]:
    """What a flow's work runs inside: the collector kept off the task's imports (``frozen_gc``), the GIL handed
    over quickly between the flow thread and its reader (``quick_gil_handover``) and one PostgreSQL connection
    kept per thread (``reusing_connections``)."""
    with frozen_gc(), quick_gil_handover(), store.reusing_connections():
        yield


class FlowRun(Protocol):
    """The work of one run of a flow; ``counts`` stays readable when the run stops early."""

    counts: SyncCounts
    run_log_id: int | None  # set before run(); each committed batch updates that run_log row

    def run(self, resume: dict | None = None) -> SyncCounts: ...

    def resume_state(self) -> dict:
        """What a deferred run needs to continue without redoing its setup (JSON-able)."""
        ...

    def written(self) -> list[Written]:
        """What the run changed so far, per table or Salesforce object (for Asset events and lineage)."""
        ...


class DeployteqSalesforceOperator(BaseOperator):
    """Base of every operator of the provider: the two connections, checked when the DAG is parsed.

    :param salesforce_conn_id: the Salesforce connection (``deployteq_salesforce`` or stock ``salesforce`` type).
    :param deployteq_conn_id: the Deployteq PostgreSQL connection (also holds the shared API ledger).
    """

    template_fields: Sequence[str] = ("salesforce_conn_id", "deployteq_conn_id")
    # the asset aliases (deployteq_salesforce.assets) this operator announces its changes through
    asset_aliases: Sequence = ()

    def __init__(
        self,
        *,
        salesforce_conn_id: str = "salesforce_default",
        deployteq_conn_id: str = "deployteq_default",
        **kwargs: Any,
    ) -> None:
        outlets = kwargs.pop("outlets", None) or []
        outlets = list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
        kwargs["outlets"] = [*outlets, *(alias for alias in self.asset_aliases if alias not in outlets)]
        super().__init__(**kwargs)
        check_names(type(self).__name__, salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id)
        self.salesforce_conn_id = salesforce_conn_id
        self.deployteq_conn_id = deployteq_conn_id

    def announce_changes(self, context: Any, written: Sequence[Written], *, store: DeployteqHook,
                         salesforce: BudgetedSalesforceHook, extra: dict) -> list[str]:
        """One Asset event per table or Salesforce object this run changed, with its counts in ``extra``;
        none for what it left unchanged (no empty downstream runs).  Returns the asset URIs."""
        changed = [w for w in written if w.changed]
        events = context.get("outlet_events") if context else None
        if not changed or events is None:
            return []
        org = salesforce.org()
        uris = []
        for item in changed:
            if item.system == DEPLOYTEQ:
                name = store.deployteq_database().table(item.name)
            elif org is not None:
                name = org.sobject(item.name)
            else:  # not reached in practice: writing to Salesforce means it was logged in to
                self.log.warning("No Asset event for Salesforce %s: the instance is unknown", item.name)
                continue
            events[alias_for(item)].add(Asset(uri=name.uri), extra={**extra, **item.event_extra()})
            uris.append(name.uri)
            self.log.info("Asset event %s: %s", name.uri,
                          ", ".join(f"{key} {value}" for key, value in item.counts.items() if value))
        return uris

    # -- OpenLineage ------------------------------------------------------------------------------
    # apache-airflow-providers-openlineage (optional, extra [openlineage]) calls the two methods below
    # after the task, in the worker, on this operator object: what they need is remembered during the
    # run (``_remember_for_lineage``), so they make no request and read no connection.

    def lineage_of(self, work: Any):
        """The flow's ``core.lineage.FlowLineage`` for the run ``work`` built; each flow gives its own."""
        return None

    def _remember_for_lineage(self, **state: Any) -> None:
        if not isinstance(self.__dict__.get("_lineage_state"), dict):
            self._lineage_state = {}
        self._lineage_state.update(state)

    def get_openlineage_facets_on_complete(self, task_instance: Any):
        """Inputs and outputs with schema and column lineage, rows written, and an ``errorMessage``
        when some records failed or the API budget stopped the run (see README, "OpenLineage")."""
        return self._openlineage(failed=False)

    def get_openlineage_facets_on_failure(self, task_instance: Any):
        """The same datasets (and what was committed before the failure); the listener adds the error."""
        return self._openlineage(failed=True)

    def _openlineage(self, *, failed: bool):
        from airflow.providers.openlineage.extractors import OperatorLineage

        from deployteq_salesforce.core import lineage

        state = self.__dict__.get("_lineage_state") or {}
        work, store, salesforce = state.get("work"), state.get("store"), state.get("salesforce")
        flow = self.lineage_of(work) if work is not None else None
        if flow is None or store is None:
            return OperatorLineage()  # the run never got as far as its configuration
        places = lineage.Places(store.deployteq_database(), salesforce.org() if salesforce is not None else None)
        written = state.get("written")
        if written is None and callable(getattr(work, "written", None)):
            written = work.written()  # a failed run: what it committed before the failure
        problem = None if failed else lineage.problem_summary(state.get("outcome"), state.get("counts") or {},
                                                              state.get("message"))
        inputs, outputs, run_facets = lineage.to_openlineage(flow, places, written or (), problem=problem)
        return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)


class SalesforceFlowOperator(DeployteqSalesforceOperator):
    """Base of the sync operators: one run-log row per run, a readable summary, budget handling.

    A run stopped by the API budget keeps what it committed, is logged as ``limited`` and defers
    on ``BudgetTrigger`` until budget is free (if that is within ``max_budget_wait``; else it ends as
    skipped and the next scheduled run continues); then ``execute_complete`` continues the same run.
    Subclasses give ``flow`` and ``build_run``.

    :param max_budget_wait: the longest a run waits deferred for budget.
    :param short_budget_wait: budget that frees up within this is waited for in the worker (no deferral).
    :param budget_poll_seconds: how often the deferred run's trigger asks the ledger.
    """

    ui_color = "#e8f4fb"
    # False: a budget stop ends the run as "limited" and the rest waits for the next scheduled run
    defer_when_limited = True

    def __init__(
        self,
        *,
        max_budget_wait: timedelta = timedelta(hours=1),
        short_budget_wait: timedelta = timedelta(seconds=60),
        budget_poll_seconds: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if budget_poll_seconds <= 0:
            raise ValueError(f"budget_poll_seconds must be > 0, got {budget_poll_seconds!r}")
        self.max_budget_wait = max_budget_wait
        self.short_budget_wait = short_budget_wait
        self.budget_poll_seconds = budget_poll_seconds

    @property
    def flow(self) -> str:
        raise NotImplementedError

    def build_run(self, store: DeployteqHook, salesforce: BudgetedSalesforceHook) -> FlowRun:
        raise NotImplementedError

    def execute(self, context: Any) -> dict:
        return self._execute(context, resume=None)

    def execute_complete(self, context: Any, event: dict | None = None, resume: dict | None = None) -> dict:
        """Back from ``BudgetTrigger``: continue the same run from its committed progress (no migrations,
        same run-log row, the describe it already made), or end as skipped when the wait ran out."""
        from airflow.sdk.exceptions import AirflowSkipException

        from deployteq_salesforce.triggers.budget import BUDGET_AVAILABLE

        if not event or event.get("status") != BUDGET_AVAILABLE:
            raise AirflowSkipException(
                f"{self.flow}: gave up waiting for Salesforce API budget ({(event or {}).get('message', 'no event')}); "
                "its progress is committed and the next run continues."
            )
        self.log.info("%s: %s; continuing from the committed progress", self.flow, event.get("message"))
        return self._execute(context, resume=resume)

    def _execute(self, context: Any, resume: dict | None) -> dict:
        store = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        if resume is None:
            store.migrate()
        salesforce = BudgetedSalesforceHook(
            salesforce_conn_id=self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow=self.flow
        )
        self._remember_for_lineage(store=store, salesforce=salesforce, work=None, written=None, outcome=None, counts=None,
                                   message=None)
        dag_run = context.get("dag_run") if context else None
        if resume is None:
            # recorded before the run is built, so a configuration error also leaves a failed row
            run_log_id = store.start_run(self.flow, dag_id=getattr(dag_run, "dag_id", None),
                                         run_id=getattr(dag_run, "run_id", None))
        else:
            run_log_id = store.reopen_run(resume["run_log_id"])
        earlier_requests = resume["api_requests"] if resume else 0
        flow_run: FlowRun | None = None
        try:
            flow_run = self.build_run(store, salesforce)
            flow_run.run_log_id = run_log_id
            self._remember_for_lineage(work=flow_run)
            with running_flow(store):
                counts = self._run_waiting_briefly(flow_run, resume)
        except BudgetExhausted as exc:
            counts = flow_run.counts
            requests = earlier_requests + salesforce.requests_sent
            self._finish(store, run_log_id, requests, counts, "limited", str(exc), salesforce.phases)
            self.log.warning(
                "%s stopped by the Salesforce API budget after %s records: %s. Everything read so far is "
                "committed; the flow continues from there once budget is free (about %s).",
                self.flow, counts.fetched, exc, exc.resume_at.isoformat(),
            )
            if not self.defer_when_limited:
                self._announce(context, flow_run, "limited", store, salesforce, run_log_id)
                return self._summary("limited", counts, requests)
            self._defer_for_budget(exc, resume={
                "run_log_id": run_log_id, "api_requests": requests, "counts": counts.as_resume(),
                **flow_run.resume_state(),
            })
            raise  # not reached: deferring or skipping raises
        except Exception as exc:
            counts = flow_run.counts if flow_run is not None else SyncCounts()
            self._finish(store, run_log_id, earlier_requests + salesforce.requests_sent, counts, "failed",
                         f"{type(exc).__name__}: {exc}", salesforce.phases)
            raise
        outcome = "partial" if counts.errors else "success"
        requests = earlier_requests + salesforce.requests_sent
        self._finish(store, run_log_id, requests, counts, outcome, None, salesforce.phases)
        self._announce(context, flow_run, outcome, store, salesforce, run_log_id)
        return self._summary(outcome, counts, requests)

    def _announce(self, context: Any, flow_run: FlowRun, outcome: str, store: DeployteqHook,
                  salesforce: BudgetedSalesforceHook, run_log_id: int) -> None:
        self.last_written = flow_run.written()
        self._remember_for_lineage(written=self.last_written, outcome=outcome, counts=flow_run.counts.as_log_counts())
        self.announce_changes(context, self.last_written, store=store, salesforce=salesforce,
                              extra={"flow": self.flow, "outcome": outcome, "run_log_id": run_log_id})

    def _run_waiting_briefly(self, flow_run: FlowRun, resume: dict | None) -> SyncCounts:
        """Run; when the budget frees up within ``short_budget_wait``, wait in the worker and go on.

        A deferral costs a round trip through the scheduler and the triggerer, and a trigger that fires
        within seconds of the deferral can meet Airflow's scheduler before it has seen the worker exit
        (the task would be failed as "changed externally"); a short wait is cheaper and safe.
        """
        while True:
            try:
                return flow_run.run(resume)
            except BudgetExhausted as exc:
                wait = (exc.resume_at - datetime.now(timezone.utc)).total_seconds()
                if not self.defer_when_limited or wait > self.short_budget_wait.total_seconds():
                    raise
                self.log.info("%s: Salesforce API budget used up; it frees up in %.0f s, waiting in the worker (%s)",
                              self.flow, max(wait, 0), exc)
                time.sleep(max(wait, 0) + 1)
                resume = {"counts": flow_run.counts.as_resume(), **flow_run.resume_state()}

    def _summary(self, outcome: str, counts: SyncCounts, requests: int) -> dict:
        summary = {"flow": self.flow, "outcome": outcome, **counts.as_log_counts(), "api_requests": requests}
        self.log.info(
            "%s %s: %s",
            self.flow,
            outcome,
            ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in summary.items() if isinstance(value, int)),
        )
        return summary

    def _defer_for_budget(self, exc: BudgetExhausted, *, resume: dict) -> None:
        """Free the worker and pool slot: wait on ``BudgetTrigger`` when budget returns within
        ``max_budget_wait``, else end this run as skipped (the next scheduled run continues)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from deployteq_salesforce.triggers.budget import BudgetTrigger

        now = datetime.now(timezone.utc)
        if exc.resume_at - now > self.max_budget_wait:
            raise AirflowSkipException(
                f"Salesforce API budget exhausted ({exc.reason}) until {exc.resume_at.isoformat()}, longer than "
                f"max_budget_wait ({self.max_budget_wait}); this run ends here with its progress committed and the "
                "next run continues."
            )
        give_up_at = now + self.max_budget_wait
        self.log.info(
            "Waiting for Salesforce API budget (expected at %s, at the latest until %s): deferred, no worker or pool "
            "slot held", exc.resume_at.isoformat(), give_up_at.isoformat(),
        )
        self.defer(
            trigger=BudgetTrigger(
                salesforce_conn_id=self.salesforce_conn_id,
                deployteq_conn_id=self.deployteq_conn_id,
                resume_at=exc.resume_at, give_up_at=give_up_at, poll_seconds=self.budget_poll_seconds,
            ),
            method_name="execute_complete",
            kwargs={"resume": resume},
        )

    @staticmethod
    def _finish(store, run_log_id: int, requests: int, counts: SyncCounts, outcome: str, message: str | None,
                phases: PhaseTimer) -> None:
        counts.details["phase_seconds"] = phases.as_dict()  # of this attempt (a resumed run starts them anew)
        store.finish_run(run_log_id, outcome=outcome, counts=counts.as_log_counts(), message=message, api_requests=requests)
