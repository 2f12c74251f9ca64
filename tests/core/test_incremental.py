"""Batches and read-ahead (core/incremental.py): nothing read is lost, nothing is left running."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from deployteq_salesforce.core.exceptions import BudgetExhausted
from deployteq_salesforce.core.incremental import batched, one_ahead, prefetched
from deployteq_salesforce.core.timing import READ_WAIT, PhaseTimer

RESUME_AT = datetime(2030, 1, 1, tzinfo=timezone.utc)


def records_then_budget_stop(count: int):
    for n in range(count):
        yield {"Id": n}
    raise BudgetExhausted("hourly budget used up", resume_at=RESUME_AT, reason="hourly")


def endless(*, on_close):
    """0, 1, 2, ... until closed; ``on_close()`` runs in the thread that closes it."""
    try:
        n = 0
        while True:
            yield n
            n += 1
    finally:
        on_close()


def test_batched_gives_what_was_read_before_a_budget_stop_as_a_last_batch():
    batches = batched(records_then_budget_stop(7), 3)
    assert [len(next(batches)) for _ in range(2)] == [3, 3]
    assert next(batches) == [{"Id": 6}]  # read before the stop: not thrown away
    with pytest.raises(BudgetExhausted):
        next(batches)


def test_prefetched_keeps_the_order_and_reads_ahead_in_another_thread():
    producers = []

    def items():
        for n in range(5):
            producers.append(threading.current_thread().name)
            yield n

    assert list(prefetched(items(), timer=PhaseTimer())) == [0, 1, 2, 3, 4]
    assert set(producers) == {"deployteq-prefetch"}


@pytest.mark.parametrize("ahead", [prefetched, one_ahead])
def test_the_producers_error_is_raised_after_the_items_before_it(ahead):
    received = []
    with pytest.raises(BudgetExhausted):
        for batch in ahead(batched(records_then_budget_stop(5), 2), timer=PhaseTimer()):
            received.append(batch)
    assert [len(b) for b in received] == [2, 2, 1]


def test_prefetched_stops_and_closes_the_producer_when_the_consumer_stops_early():
    closed = threading.Event()
    items = prefetched(endless(on_close=closed.set), timer=PhaseTimer(), depth=1)
    assert next(items) == 0
    items.close()  # e.g. an exception while writing the batch
    assert closed.wait(5), "the producer generator was not closed"
    assert not any(t.name == "deployteq-prefetch" and t.is_alive() for t in threading.enumerate())


def test_prefetched_counts_the_consumers_wait_as_read_wait():
    def slow():
        time.sleep(0.1)
        yield 1

    timer = PhaseTimer()
    assert list(prefetched(slow(), timer=timer)) == [1]
    assert timer.as_dict()[READ_WAIT] >= 0.05


def test_one_ahead_makes_the_next_item_while_the_caller_handles_one_and_never_more():
    started: list[int] = []
    threads: set[str] = set()

    def jobs():
        for n in range(4):
            started.append(n)
            threads.add(threading.current_thread().name)
            yield n

    received = []
    for item in one_ahead(jobs(), timer=PhaseTimer()):
        deadline = time.monotonic() + 5
        while len(started) < min(item + 2, 4) and time.monotonic() < deadline:
            time.sleep(0.01)  # the next item is made meanwhile ...
        time.sleep(0.05)
        assert started == list(range(min(item + 2, 4)))  # ... but not the one after it
        received.append(item)
    assert received == [0, 1, 2, 3]
    assert len(threads) == 1 and threading.current_thread().name not in threads


def test_one_ahead_closes_the_generator_in_its_own_thread_when_the_caller_stops_early():
    closed_in: list[str] = []
    items = one_ahead(endless(on_close=lambda: closed_in.append(threading.current_thread().name)), timer=PhaseTimer())
    assert next(items) == 0
    items.close()  # e.g. an exception while sending the job
    assert len(closed_in) == 1 and closed_in[0].startswith("deployteq-ahead")
    assert not any(t.name.startswith("deployteq-ahead") and t.is_alive() for t in threading.enumerate())
