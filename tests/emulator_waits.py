"""Waiting in tests for what the emulator has been asked (its own counters)."""

from __future__ import annotations

import time


def wait_for_request(emulator, endpoint: str, timeout: float = 30.0) -> None:
    """Until the emulator has received a request of ``endpoint`` (e.g. one held by a slow fault)."""
    deadline = time.monotonic() + timeout
    while emulator.counters()["by_endpoint"].get(endpoint, 0) == 0:
        assert time.monotonic() < deadline, f"no {endpoint} request within {timeout} s"
        time.sleep(0.05)
