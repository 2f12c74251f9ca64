"""The request log of the admin API: every API request with its time, endpoint and whether the session was blocked."""

from __future__ import annotations


def test_request_log_lists_every_api_request_in_order_with_its_endpoint_and_time(api, emulator):
    before = emulator.now()
    api("GET", "limits/")
    api("GET", "query/", params={"q": "SELECT Id FROM Lead"})
    emulator.counters()  # admin calls are not API requests
    log = emulator.request_log()
    assert [(r["number"], r["endpoint"]) for r in log] == [(1, "GET limits"), (2, "GET query")]
    assert all(r["blocked"] is False for r in log)
    assert log[0]["at"] <= log[1]["at"]
    assert abs(log[0]["at"] - _epoch(before)) < 60


def test_request_log_marks_requests_that_arrived_while_the_session_was_blocked(api, emulator):
    emulator.set_limits(hourly_limit=1, block_seconds=600)
    statuses = [api("GET", "limits/").status_code for _ in range(3)]
    assert statuses == [200, 403, 403]
    # the second request caused the block (it was not blocked when it arrived); the third arrived blocked
    assert [r["blocked"] for r in emulator.request_log()] == [False, False, True]


def test_request_log_after_returns_only_newer_requests_and_reset_clears_it(api, emulator):
    for _ in range(3):
        api("GET", "limits/")
    assert [r["number"] for r in emulator.request_log(after=2)] == [3]
    emulator.reset()
    assert emulator.request_log() == []


def _epoch(wire: str) -> float:
    from datetime import datetime

    return datetime.strptime(wire, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
