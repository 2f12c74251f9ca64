"""Seconds per phase (core/timing.py): exclusive per thread, background phases apart, and the GC freeze."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from deployteq_salesforce.core.timing import BACKGROUND_PREFIX, FLOW_SWITCH_INTERVAL, PhaseTimer, frozen_gc, quick_gil_handover


def test_a_nested_phase_pauses_the_enclosing_one():
    timer = PhaseTimer()
    with timer.phase("outer"):
        time.sleep(0.05)
        with timer.phase("inner"):
            time.sleep(0.1)
        time.sleep(0.05)
    seconds = timer.as_dict()
    assert seconds["inner"] == pytest.approx(0.1, abs=0.05)
    # the outer phase counts only its own 0.1 s, not the inner phase's
    assert seconds["outer"] == pytest.approx(0.1, abs=0.05)


def test_phases_and_other_add_up_to_the_elapsed_time():
    timer = PhaseTimer()
    started = time.perf_counter()
    with timer.phase("a"):
        time.sleep(0.02)
    time.sleep(0.03)  # in no phase: "other"
    with timer.phase("b"):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    seconds = timer.as_dict()
    assert seconds["other"] >= 0.03
    assert sum(seconds.values()) == pytest.approx(elapsed, abs=0.02)


def test_phases_of_another_thread_are_kept_apart_and_left_out_of_other():
    timer = PhaseTimer()

    def background() -> None:
        with timer.phase("parse"):
            time.sleep(0.1)

    thread = threading.Thread(target=background)
    with timer.phase("copy"):
        thread.start()
        thread.join()
    seconds = timer.as_dict()
    assert seconds[BACKGROUND_PREFIX + "parse"] == pytest.approx(0.1, abs=0.05)
    assert "parse" not in seconds
    # the flow thread spent its time in "copy" while the reader parsed; nothing is counted twice in "other"
    assert seconds["other"] < 0.05


def test_iterate_counts_the_time_spent_producing_each_item():
    timer = PhaseTimer()

    def slow_items():
        for n in range(3):
            time.sleep(0.02)
            yield n

    assert list(timer.iterate("read", slow_items())) == [0, 1, 2]
    assert timer.as_dict()["read"] == pytest.approx(0.06, abs=0.04)


def test_a_phase_is_counted_when_it_ends_with_an_exception():
    timer = PhaseTimer()
    with pytest.raises(ValueError):
        with timer.phase("write"):
            time.sleep(0.02)
            raise ValueError("boom")
    assert timer.as_dict()["write"] >= 0.02


def test_frozen_gc_freezes_for_the_run_and_gives_the_objects_back():
    assert gc.get_freeze_count() == 0
    with frozen_gc():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with frozen_gc():
            raise RuntimeError("the run failed")
    assert gc.get_freeze_count() == 0


def test_quick_gil_handover_shortens_the_switch_interval_for_the_run_and_restores_it():
    import sys

    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError):
        with quick_gil_handover():
            assert sys.getswitchinterval() == pytest.approx(min(before, FLOW_SWITCH_INTERVAL))
            raise RuntimeError("the run failed")
    assert sys.getswitchinterval() == before

