"""What every Salesforce flow operator does around its own work: hooks, run log, budget stops."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, Sequence

from airflow.sdk import BaseOperator

from deployteq_salesforce.core.exceptions import BudgetExhausted
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from deployteq_salesforce.core.incremental import SyncCounts


def check_names(owner: str, **names: Any) -> None:
    """Connection ids and flow names must be non-empty strings; say which one is not, early (at DAG parse time)."""
    for name, value in names.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{owner}: {name} must be a non-empty string, got {value!r}")


class FlowRun(Protocol):
    counts: SyncCounts

    def run(self) -> SyncCounts: ...


class DeployteqSalesforceOperator(BaseOperator):
    """Base of every operator of the provider: the two connections, checked when the DAG is parsed.

    :param salesforce_conn_id: the Salesforce connection (``deployteq_salesforce`` or stock ``salesforce`` type).
    :param deployteq_conn_id: the Deployteq PostgreSQL connection (also holds the shared API ledger).
    """

    template_fields: Sequence[str] = ("salesforce_conn_id", "deployteq_conn_id")

    def __init__(
        self,
        *,
        salesforce_conn_id: str = "salesforce_default",
        deployteq_conn_id: str = "deployteq_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_names(type(self).__name__, salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id)
        self.salesforce_conn_id = salesforce_conn_id
        self.deployteq_conn_id = deployteq_conn_id


class SalesforceFlowOperator(DeployteqSalesforceOperator):
    """Base of the sync operators: one run-log row per run, a readable summary, budget handling.

    A run stopped by the API budget keeps what it committed, is logged as ``limited`` and defers
    on a trigger until budget is free (if that is within ``max_budget_wait``; else it ends as
    skipped and the next scheduled run continues).  Subclasses give ``flow`` and ``build_run``.
    """

    ui_color = "#e8f4fb"

    def __init__(self, *, max_budget_wait: timedelta = timedelta(hours=1), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_budget_wait = max_budget_wait

    @property
    def flow(self) -> str:
        raise NotImplementedError

    def build_run(self, store: DeployteqHook, salesforce: BudgetedSalesforceHook) -> FlowRun:
        raise NotImplementedError

    def execute(self, context: Any) -> dict:
        store = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        store.migrate()
        salesforce = BudgetedSalesforceHook(
            salesforce_conn_id=self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow=self.flow
        )
        flow_run = self.build_run(store, salesforce)
        dag_run = context.get("dag_run") if context else None
        run_log_id = store.start_run(self.flow, dag_id=getattr(dag_run, "dag_id", None), run_id=getattr(dag_run, "run_id", None))
        try:
            counts = flow_run.run()
        except BudgetExhausted as exc:
            self._finish(store, run_log_id, salesforce, flow_run.counts, "limited", str(exc))
            self.log.warning(
                "%s stopped by the Salesforce API budget after %s records: %s. Everything fetched so far is "
                "committed; the flow continues from there at %s.",
                self.flow, flow_run.counts.fetched, exc, exc.resume_at.isoformat(),
            )
            defer_or_skip_for_budget(self, exc, self.max_budget_wait)
            raise
        except Exception as exc:
            self._finish(store, run_log_id, salesforce, flow_run.counts, "failed", f"{type(exc).__name__}: {exc}")
            raise
        outcome = "partial" if counts.errors else "success"
        self._finish(store, run_log_id, salesforce, counts, outcome, None)
        summary = {"flow": self.flow, "outcome": outcome, **counts.as_log_counts(), "api_requests": salesforce.requests_sent}
        self.log.info(
            "%s %s: %s",
            self.flow,
            outcome,
            ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in summary.items() if isinstance(value, int)),
        )
        return summary

    def execute_complete(self, context: Any, event: Any = None) -> dict:
        """Budget is free again: run once more; it continues from the committed watermark."""
        return self.execute(context)

    @staticmethod
    def _finish(store, run_log_id: int, salesforce, counts: SyncCounts, outcome: str, message: str | None) -> None:
        store.finish_run(
            run_log_id, outcome=outcome, counts=counts.as_log_counts(), message=message, api_requests=salesforce.requests_sent
        )


def defer_or_skip_for_budget(operator, exc: BudgetExhausted, max_wait: timedelta) -> None:
    """Free the worker slot: wait on a trigger when budget returns soon, else end this run as skipped."""
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    wait = exc.resume_at - datetime.now(timezone.utc)
    if wait <= max_wait:
        operator.log.info("Waiting for Salesforce API budget until %s (deferred, no worker slot held)", exc.resume_at.isoformat())
        operator.defer(trigger=DateTimeTrigger(moment=exc.resume_at), method_name="execute_complete")
    raise AirflowSkipException(
        f"Salesforce API budget exhausted ({exc.reason}) until {exc.resume_at.isoformat()}; "
        "this run ends here with its progress committed and the next run continues."
    )
