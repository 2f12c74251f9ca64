"""Health check: are both connections usable, is the Deployteq schema current, how much API is left?"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException

from deployteq_salesforce.core.operator import DeployteqSalesforceOperator, check_names


class DeployteqHealthCheckOperator(DeployteqSalesforceOperator):
    """Test the Salesforce and Deployteq connections and report the state of both.

    In order: tests the Deployteq (PostgreSQL) connection, creates/migrates the Deployteq schema,
    tests the Salesforce connection (one ``limits/`` request through the budgeted client, whose
    answer also tells the org's daily API usage) and returns a small JSON-able report.  The run is recorded in ``run_log``
    under ``flow``.  A connection that does not work fails the task with the connection test's
    own plain message.

    :param salesforce_conn_id: Salesforce connection (budgeted client).
    :param deployteq_conn_id: Deployteq PostgreSQL connection (also holds the API ledger).
    :param flow: name under which requests and the run are recorded.
    """

    ui_color = "#e8f4fd"

    def __init__(self, *, flow: str = "health_check", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_names(type(self).__name__, flow=flow)
        self.flow = flow

    def execute(self, context: Any) -> dict:
        from deployteq_salesforce.hooks.deployteq import DeployteqHook
        from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

        deployteq = DeployteqHook(deployteq_conn_id=self.deployteq_conn_id)
        ok, message = deployteq.test_connection()
        if not ok:
            raise AirflowException(f"Deployteq connection {self.deployteq_conn_id!r} does not work: {message}")
        self.log.info("Deployteq: %s", message)

        applied = deployteq.migrate()
        version = deployteq.migration_version()
        if applied:
            message = deployteq.test_connection()[1]  # describe the schema as it is now
        self.log.info(
            "Deployteq schema %s at migration version %s (%s)",
            deployteq.schema_name,
            version,
            f"applied now: {applied}" if applied else "already current",
        )

        ti = context.get("ti") if hasattr(context, "get") else None
        run_log_id = deployteq.start_run(
            self.flow, dag_id=getattr(ti, "dag_id", None), run_id=getattr(ti, "run_id", None)
        )
        salesforce = BudgetedSalesforceHook(
            salesforce_conn_id=self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id, flow=self.flow
        )
        try:
            sf_ok, sf_message = salesforce.test_connection()
            if not sf_ok:
                raise AirflowException(f"Salesforce connection {self.salesforce_conn_id!r} does not work: {sf_message}")
            self.log.info("Salesforce: %s", sf_message)
            # The connection test's one request is a limits/ call; its Sforce-Limit-Info header
            # (kept by the budgeted client) is the org's daily usage, so no second request is needed.
            status = salesforce.budget_status()
            org_daily = org_daily_usage(status)
            budget = jsonable(status)
        except Exception as error:
            deployteq.finish_run(
                run_log_id, outcome="failed", counts={}, message=str(error), api_requests=salesforce.requests_sent
            )
            raise

        if org_daily:
            self.log.info(
                "Org daily API usage: %s of %s requests (%s remaining)",
                org_daily["used"], org_daily["max"], org_daily["remaining"],
            )
        self.log.info(
            "Our hourly budget: %s of %s requests used in the last hour (budget key %s)%s",
            budget.get("hourly_used"), budget.get("hourly_limit"), budget.get("budget_key"),
            f"; BLOCKED until {budget['blocked_until']}" if budget.get("blocked_until") else "",
        )
        report = {
            "deployteq": {
                "connection": message,
                "schema": deployteq.schema_name,
                "migration_version": version,
                "migrations_applied_now": list(applied),
            },
            "salesforce": {"connection": sf_message, "org_daily_api": org_daily},
            "budget": budget,
            "api_requests": salesforce.requests_sent,
        }
        deployteq.finish_run(
            run_log_id, outcome="success", counts={}, message="connections OK", api_requests=salesforce.requests_sent
        )
        return report


def org_daily_usage(status: Any) -> dict | None:
    """``{"used", "max", "remaining"}`` of the org's rolling 24-hour API allocation, as last seen."""
    used, maximum = getattr(status, "org_daily_used", None), getattr(status, "org_daily_max", None)
    if used is None or maximum is None:
        return None
    return {"used": used, "max": maximum, "remaining": max(0, maximum - used)}


def jsonable(value: Any) -> Any:
    """Dataclasses, named tuples and datetimes as plain JSON values (for XCom and the log)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
