"""Injected faults: each kind, at the N-th request or the next matching one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)


def test_500_on_the_next_request_only(sf, emulator):
    emulator.inject_fault("500")
    with pytest.raises(SalesforceGeneralError) as error:
        sf.limits()
    assert error.value.status == 500
    assert sf.limits()["DailyApiRequests"]["Max"] == 100000


def test_503_server_unavailable(api, emulator):
    emulator.inject_fault("503")
    response = api("GET", "limits/")
    assert response.status_code == 503 and response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_fault_at_a_given_request_number(api, emulator):
    emulator.inject_fault("500", at_request=3)
    assert [api("GET", "limits/").status_code for _ in range(4)] == [200, 200, 500, 200]


def test_fault_only_on_matching_paths_with_count(api, emulator):
    emulator.inject_fault("503", path_contains="/query", count=2)
    statuses = [api("GET", "limits/").status_code, api("GET", "query/", params={"q": "SELECT Id FROM Lead"}).status_code,
                api("GET", "query/", params={"q": "SELECT Id FROM Lead"}).status_code,
                api("GET", "query/", params={"q": "SELECT Id FROM Lead"}).status_code]
    assert statuses == [200, 503, 503, 200]


def test_drop_closes_the_connection_without_an_answer(api, emulator):
    emulator.inject_fault("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        api("GET", "limits/")
    assert api("GET", "limits/").status_code == 200


def test_slow_answers_normally_after_the_delay(api, emulator):
    emulator.inject_fault("slow", delay_seconds=0.6)
    started = time.monotonic()
    response = api("GET", "limits/")
    assert response.status_code == 200 and time.monotonic() - started >= 0.6


def test_a_slow_request_outliving_a_reset_leaves_the_fresh_org_untouched(api, emulator):
    emulator.inject_fault("slow", delay_seconds=1.5)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(api, "GET", "limits/")
        deadline = time.monotonic() + 5
        while emulator.counters()["total"] == 0 and time.monotonic() < deadline:  # the request is waiting now
            time.sleep(0.02)
        emulator.reset()
        assert waiting.result().status_code == 503
    assert emulator.limits_state()["daily_used"] == 0


def test_invalid_session_fault(sf, emulator):
    emulator.inject_fault("invalid_session")
    with pytest.raises(SalesforceExpiredSession) as error:
        sf.limits()
    assert error.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


def test_limit_fault_answers_request_limit_exceeded_without_blocking(sf, emulator):
    emulator.inject_fault("limit")
    with pytest.raises(SalesforceRefusedRequest) as error:
        sf.limits()
    assert error.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert emulator.limits_state()["blocked_until"] is None and sf.limits()


def test_unknown_fault_kind_is_refused(emulator):
    from include.salesforce_emulator.client import EmulatorAdminError

    with pytest.raises(EmulatorAdminError, match="unknown fault kind"):
        emulator.inject_fault("explode")
