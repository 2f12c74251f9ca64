"""BudgetTrigger against a real ledger: it fires when the budget has room, and only then."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest

from deployteq_salesforce.hooks.deployteq import DeployteqHook
from deployteq_salesforce.triggers.budget import BUDGET_AVAILABLE, GAVE_UP, BudgetTrigger

KEY = "https://example.my.salesforce.com"


@pytest.fixture(autouse=True)
def check_at_once(monkeypatch):
    """The trigger's first check waits for the scheduler in real deployments; here it need not."""
    from deployteq_salesforce.triggers import budget

    monkeypatch.setattr(budget, "FIRST_CHECK_AFTER_SECONDS", 0.0)


@pytest.fixture
def store(deployteq_conn_id) -> DeployteqHook:
    hook = DeployteqHook(deployteq_conn_id)
    hook.migrate()
    return hook


def spend(store: DeployteqHook, count: int, seconds_ago: float) -> None:
    """``count`` requests of KEY made ``seconds_ago``."""
    with store.connect() as conn:
        conn.execute(
            "INSERT INTO api_ledger (budget_key, requested_at, method, endpoint) "
            "SELECT %s, clock_timestamp() - %s, 'GET', 'query/' FROM generate_series(1, %s)",
            (KEY, timedelta(seconds=seconds_ago), count),
        )


def set_budget(monkeypatch, hourly: int) -> None:
    """Connection ``salesforce_default`` with our budget extras (the trigger reads them at every poll)."""
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps({
        "conn_type": "salesforce", "password": "session-id",
        "extra": {"instance_url": KEY, "budget_key": KEY, "hourly_budget": hourly},
    }))


def trigger(deployteq_conn_id: str, *, wait: float, resume_in: float = 3600, poll: float = 0.2) -> BudgetTrigger:
    now = datetime.now(timezone.utc)
    return BudgetTrigger(
        salesforce_conn_id="salesforce_default", deployteq_conn_id=deployteq_conn_id,
        resume_at=now + timedelta(seconds=resume_in), give_up_at=now + timedelta(seconds=wait), poll_seconds=poll,
    )


def first_event(budget_trigger: BudgetTrigger) -> tuple[dict, float]:
    async def wait():
        started = asyncio.get_running_loop().time()
        async for event in budget_trigger.run():
            return event.payload, asyncio.get_running_loop().time() - started

    return asyncio.run(wait())


def test_serialize_round_trips_through_the_class_path(deployteq_conn_id):
    original = trigger(deployteq_conn_id, wait=60)
    classpath, kwargs = original.serialize()

    assert classpath == "deployteq_salesforce.triggers.budget.BudgetTrigger"
    again = BudgetTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert (again.resume_at, again.give_up_at, again.salesforce_conn_id) == (
        original.resume_at, original.give_up_at, original.salesforce_conn_id)


def test_fires_as_soon_as_requests_leave_the_hour(store, deployteq_conn_id, monkeypatch):
    set_budget(monkeypatch, 3)
    spend(store, 3, seconds_ago=3600 - 2)  # the budget of 3 is full for two more seconds

    event, waited = first_event(trigger(deployteq_conn_id, wait=30))

    assert event["status"] == BUDGET_AVAILABLE and "0/3" in event["message"]
    assert 1.0 < waited < 10


def test_fires_early_when_a_salesforce_block_is_cleared(store, deployteq_conn_id, monkeypatch):
    set_budget(monkeypatch, 100)
    with store.connect() as conn:
        conn.execute(
            "INSERT INTO api_budget_state (budget_key, blocked_since, blocked_until, block_message) "
            "VALUES (%s, clock_timestamp(), clock_timestamp() + interval '4 hours', 'REQUEST_LIMIT_EXCEEDED')", (KEY,)
        )

    async def clear_after_a_second():
        await asyncio.sleep(1)
        await asyncio.to_thread(_clear_block, store)

    async def wait():
        clearing = asyncio.create_task(clear_after_a_second())
        async for event in trigger(deployteq_conn_id, wait=30, resume_in=4 * 3600).run():
            await clearing
            return event.payload

    assert asyncio.run(wait())["status"] == BUDGET_AVAILABLE


def _clear_block(store: DeployteqHook) -> None:
    with store.connect() as conn:  # what the README tells ops to run when they know the block was lifted
        conn.execute("UPDATE api_budget_state SET blocked_until = now() WHERE budget_key = %s", (KEY,))


def test_fires_when_the_hourly_budget_is_raised_while_it_waits(store, deployteq_conn_id, monkeypatch):
    set_budget(monkeypatch, 3)
    spend(store, 3, seconds_ago=60)  # full for another 59 minutes

    async def raise_after_a_second():
        await asyncio.sleep(1)
        set_budget(monkeypatch, 1000)  # ops raise the budget (README: what to do when runs wait every hour)

    async def wait():
        raising = asyncio.create_task(raise_after_a_second())
        async for event in trigger(deployteq_conn_id, wait=30).run():
            await raising
            return event.payload

    event = asyncio.run(wait())
    assert event["status"] == BUDGET_AVAILABLE and "3/1000" in event["message"]


def test_gives_up_at_the_end_of_the_wait(store, deployteq_conn_id, monkeypatch):
    set_budget(monkeypatch, 3)
    spend(store, 3, seconds_ago=60)  # full for another 59 minutes

    event, waited = first_event(trigger(deployteq_conn_id, wait=1.5))

    assert event["status"] == GAVE_UP and "hourly" in event["message"]
    assert waited < 10
