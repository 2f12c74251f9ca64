"""BudgetTrigger: a deferred flow waits here, without a worker or pool slot, until the API budget has room.

It asks the shared ledger (the ``api_ledger`` / ``api_budget_state`` tables in the Deployteq
database) every ``poll_seconds`` whether the next request would be admitted, with the same rules the
budgeted client applies and the budget as configured *now* (Variable, connection extras: read again
at every poll).  So it fires as soon as room appears for any reason: requests left the rolling hour,
the hourly budget was raised, or someone cleared a Salesforce block.  It gives up at
``give_up_at``; the operator then ends the run as skipped and the next scheduled run continues.

Each poll is one short query; psycopg is synchronous here, so the query runs in a worker thread
(``sync_to_async``) and the triggerer's event loop never blocks.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from asgiref.sync import sync_to_async
from airflow.triggers.base import BaseTrigger, TriggerEvent

from deployteq_salesforce.core.budget import ApiBudget, BudgetSettings, BudgetStatus

BUDGET_AVAILABLE = "budget_available"
FIRST_CHECK_AFTER_SECONDS = 10.0
GAVE_UP = "gave_up"


class BudgetTrigger(BaseTrigger):
    """Fires ``{"status": "budget_available"}`` once the budget admits a request, or ``"gave_up"`` at ``give_up_at``.

    :param salesforce_conn_id: the Salesforce connection whose budget is waited for (its settings are
        read again at every poll, so a raised budget counts at once).
    :param deployteq_conn_id: the Deployteq connection holding the ledger.
    :param resume_at: when the budget is expected to have room (a poll is made then, besides the regular ones).
    :param give_up_at: when to stop waiting.
    :param poll_seconds: how often the ledger is asked in between.
    """

    def __init__(
        self,
        *,
        salesforce_conn_id: str,
        deployteq_conn_id: str,
        resume_at: datetime | str,
        give_up_at: datetime | str,
        poll_seconds: float = 30.0,
    ) -> None:
        super().__init__()
        self.salesforce_conn_id = salesforce_conn_id
        self.deployteq_conn_id = deployteq_conn_id
        self.resume_at = _utc(resume_at)
        self.give_up_at = _utc(give_up_at)
        self.poll_seconds = float(poll_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "salesforce_conn_id": self.salesforce_conn_id,
                "deployteq_conn_id": self.deployteq_conn_id,
                "resume_at": self.resume_at.isoformat(),
                "give_up_at": self.give_up_at.isoformat(),
                "poll_seconds": self.poll_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Not at once: Airflow's scheduler must first see the worker exit that deferred the task, or a
        # trigger firing within seconds can meet it first and the task is failed as "changed externally".
        await asyncio.sleep(min(FIRST_CHECK_AFTER_SECONDS, max(0.0, (self.give_up_at - datetime.now(timezone.utc)).total_seconds())))
        ledger = await sync_to_async(self._ledger)()
        try:
            polls = 0
            while True:
                status = await sync_to_async(self._status)(ledger)
                polls += 1
                refusal = status.refused_by()
                if refusal is None:
                    yield TriggerEvent({
                        "status": BUDGET_AVAILABLE,
                        "message": f"budget '{status.budget_key}' has room again ({status.hourly_used}/"
                                   f"{status.hourly_limit} requests in the last hour; {polls} ledger checks)",
                    })
                    return
                now = datetime.now(timezone.utc)
                if now >= self.give_up_at:
                    yield TriggerEvent({
                        "status": GAVE_UP,
                        "message": f"budget '{status.budget_key}' still refused ({refusal}) at "
                                   f"{self.give_up_at:%Y-%m-%d %H:%M UTC}, the end of the wait",
                    })
                    return
                self.log.info("Budget '%s' still refused (%s); next check in up to %.0f s",
                              status.budget_key, refusal, self.poll_seconds)
                await asyncio.sleep(self._seconds_to_next_check(now))
        finally:
            await sync_to_async(ledger.close)()

    def _settings(self) -> BudgetSettings:
        from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

        hook = BudgetedSalesforceHook(self.salesforce_conn_id, deployteq_conn_id=self.deployteq_conn_id)
        return hook.budget_settings  # the connection and the Variable as they are now; no Salesforce request

    def _ledger(self) -> ApiBudget:
        from deployteq_salesforce.hooks.deployteq import DeployteqHook

        return ApiBudget(self._settings(), DeployteqHook(self.deployteq_conn_id).get_conn)

    def _status(self, ledger: ApiBudget) -> BudgetStatus:
        ledger.settings = self._settings()  # a budget raised (or lowered) while waiting counts at once
        return ledger.status()

    def _seconds_to_next_check(self, now: datetime) -> float:
        """The next regular poll, or earlier when the expected resume time or the end of the wait comes first."""
        moments = [self.give_up_at] + ([self.resume_at] if self.resume_at > now else [])
        return max(0.5, min(self.poll_seconds, *((m - now).total_seconds() for m in moments)))


def _utc(moment: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if parsed.tzinfo is None:
        raise ValueError(f"BudgetTrigger needs aware datetimes, got {moment!r}")
    return parsed.astimezone(timezone.utc)
