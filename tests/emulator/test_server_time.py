"""Server-side seconds in the counters: from a request's arrival to the last byte of its answer, per endpoint."""

from __future__ import annotations

import pytest

from include.salesforce_emulator.process import start_emulator
from tests.emulator.conftest import salesforce_client


def test_every_counted_endpoint_reports_its_server_seconds(api, emulator):
    api("GET", "limits/")
    api("GET", "query/", params={"q": "SELECT Id FROM Lead"})
    api("GET", "limits/", token="wrong")  # refused requests took the emulator time too

    counters = emulator.counters()

    timing = counters["server_seconds"]
    assert set(timing["by_endpoint"]) == set(counters["by_endpoint"]) == {"GET limits", "GET query"}
    assert all(seconds > 0 for seconds in timing["by_endpoint"].values())
    assert timing["total"] == pytest.approx(sum(timing["by_endpoint"].values()), abs=1e-5)


def test_server_seconds_run_until_the_answer_is_written(api, emulator):
    emulator.inject_fault("slow", delay_seconds=0.5)
    api("GET", "limits/")

    # answered after the delay (the event loop's timer may fire a fraction of a millisecond early: 0.4999 s seen)
    assert emulator.counters()["server_seconds"]["by_endpoint"]["GET limits"] >= 0.49


def test_admin_calls_take_no_server_seconds(emulator):
    emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}])
    emulator.records("Lead")

    assert emulator.counters()["server_seconds"] == {"total": 0, "by_endpoint": {}}


def test_reset_clears_server_seconds(api, emulator):
    api("GET", "limits/")
    emulator.reset()

    assert emulator.counters()["server_seconds"] == {"total": 0, "by_endpoint": {}}


def test_server_seconds_survive_a_restart(tmp_path):
    with start_emulator(tmp_path) as first:
        salesforce_client(first.info).limits()
        before = first.client.counters()["server_seconds"]
    with start_emulator(tmp_path) as second:
        assert second.client.counters()["server_seconds"] == before
