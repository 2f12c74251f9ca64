"""Where a run's time goes: seconds per phase, for the run log and the benchmarks (no Airflow here);
and ``frozen_gc``, which keeps Python's garbage collector from spending it.

Phases are exclusive per thread: entering a phase inside another pauses the outer one, so on the
thread that runs the flow the phases add up to its wall time (what is left is ``other``).  A
background thread (the reader that fetches the next Bulk result page while a batch is written)
keeps its own phases under its own names, ``read:<phase>``, which overlap the flow thread's; the
flow thread's ``read_wait`` is the time it had nothing to do but wait for that reader.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# names used by every flow, so run logs and benchmark lines compare across flows
SALESFORCE_HTTP = "salesforce_http"  # inside Salesforce requests, streamed response bodies included
LEDGER = "ledger"  # the shared API budget's bookkeeping around each request
PARSE = "parse"  # CSV / JSON into Python values
MAP = "map"  # mapping, translations, type conversion
LOOKUP = "lookup"  # finding the stored rows a batch touches (index probes)
MERGE = "merge"  # deciding in Python what each record does to the table (customers: the R6 plan)
COPY = "copy"  # COPY into staging tables
UPSERT = "upsert"  # the set-based statements that write the target table
FLAG_RESET = "flag_reset"  # resetting sync flags in Salesforce (its requests count as salesforce_http)
BOOKKEEPING = "bookkeeping"  # errors, watermarks, queues, outcomes, run log
READ_WAIT = "read_wait"  # the flow thread waiting for the background reader
BACKGROUND_PREFIX = "read:"
# reported even when a run never entered them (0.0), so runs and benchmark lines always compare
FLOW_PHASES = (SALESFORCE_HTTP, LEDGER, MAP, LOOKUP, MERGE, COPY, UPSERT, FLAG_RESET, BOOKKEEPING)


class PhaseTimer:
    """Accumulates exclusive seconds per phase; thread-safe, cheap enough to wrap every batch."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._started = time.perf_counter()
        self._owner = threading.get_ident()  # the flow thread; other threads are background readers

    def _stack(self) -> list[list]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _add(self, name: str, seconds: float) -> None:
        if threading.get_ident() != self._owner:
            name = BACKGROUND_PREFIX + name
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def phase(self, name: str) -> "_Phase":
        """``with timer.phase("copy"): ...`` counts the block's time as ``copy`` (minus phases nested in it)."""
        return _Phase(self, name)

    def _enter(self, name: str) -> None:
        stack = self._stack()
        now = time.perf_counter()
        if stack:  # pause the enclosing phase
            self._add(stack[-1][0], now - stack[-1][1])
        stack.append([name, now])

    def _exit(self) -> None:
        stack = self._stack()
        end = time.perf_counter()
        name, started = stack.pop()
        self._add(name, end - started)
        if stack:
            stack[-1][1] = end

    def iterate(self, name: str, items: Iterable[T]) -> Iterator[T]:
        """``items``, with the time spent producing each item counted as ``name``."""
        iterator = iter(items)
        while True:
            with self.phase(name):
                try:
                    item = next(iterator)
                except StopIteration:
                    return
            yield item

    def as_dict(self) -> dict[str, float]:
        """Seconds per phase (rounded), with ``other`` = the flow thread's time in no phase."""
        with self._lock:
            seconds = {**dict.fromkeys(FLOW_PHASES, 0.0), **self._seconds}
        elapsed = time.perf_counter() - self._started
        measured = sum(s for name, s in seconds.items() if not name.startswith(BACKGROUND_PREFIX))
        seconds["other"] = max(0.0, elapsed - measured)
        return {name: round(s, 3) for name, s in sorted(seconds.items())}


@contextmanager
def frozen_gc() -> Iterator[None]:
    """Run a large flow without the collector walking everything that existed before it.

    A task process holds Airflow and its imports (hundreds of thousands of objects); every full
    collection, triggered again and again by the many short-lived objects of each batch, walks all of
    them.  Measured on the lead sync: 40% of the mapping and planning time.  ``gc.freeze()`` moves
    them out of the collector's sight for the run; ``gc.unfreeze()`` gives them back afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms)
FLOW_SWITCH_INTERVAL = 0.0005


@contextmanager
def quick_gil_handover() -> Iterator[None]:
    """Hand the GIL over within 0.5 ms instead of 5 ms while a flow runs.

    A flow's thread waits on PostgreSQL about fifteen times per batch while the background reader parses
    and maps the next batch, holding the GIL.  Every answer that arrives then waits up to the switch
    interval before the flow's thread may read it: measured on the lead sync, about 5 ms for a statement
    PostgreSQL answers in 0.05 ms, a fifth of the run.  Process-wide, so restored when the run ends.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, FLOW_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class _Phase:
    """The context manager of ``PhaseTimer.phase`` (a class: cheaper than a generator-based one)."""

    __slots__ = ("timer", "name")

    def __init__(self, timer: PhaseTimer, name: str) -> None:
        self.timer = timer
        self.name = name

    def __enter__(self) -> None:
        self.timer._enter(self.name)

    def __exit__(self, *exc_info) -> None:
        self.timer._exit()
