"""limits/, Sforce-Limit-Info, the hourly block and the daily allocation."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceRefusedRequest

LIMIT_BODY = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]


def test_limits_report_daily_allocation_and_other_keys(sf, emulator):
    emulator.set_limits(daily_limit=15000)
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14999}
    assert {"DailyBulkV2QueryJobs", "DailyBulkApiBatches", "DataStorageMB"} <= set(limits)


def test_every_response_carries_sforce_limit_info(api):
    api("GET", "limits/")
    ok = api("GET", "sobjects/")
    refused = api("GET", "sobjects/", token="wrong")
    assert ok.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
    assert refused.status_code == 401 and refused.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_exceeding_the_hourly_limit_blocks_every_request(api, emulator):
    emulator.set_limits(hourly_limit=3, block_seconds=4 * 3600)
    assert [api("GET", "limits/").status_code for _ in range(3)] == [200, 200, 200]
    refused = api("GET", "limits/")
    assert (refused.status_code, refused.json()) == (403, LIMIT_BODY)
    emulator.advance_clock(3700)  # the hour has rolled, but the block lasts four hours
    assert api("GET", "sobjects/").status_code == 403
    assert emulator.limits_state()["blocked_until"] is not None


def test_the_block_lifts_when_its_time_is_over(api, emulator):
    emulator.set_limits(hourly_limit=2, block_seconds=600)
    for _ in range(3):
        api("GET", "limits/")
    emulator.advance_clock(601 + 3600)
    assert api("GET", "limits/").status_code == 200
    assert emulator.limits_state()["blocked_until"] is None


def test_blocked_requests_still_count_in_counters(api, emulator):
    emulator.set_limits(hourly_limit=1)
    api("GET", "limits/")
    api("GET", "limits/")
    assert emulator.counters()["total"] == 2
    assert emulator.limits_state()["hourly_used"] == 1


def test_daily_allocation_refuses_without_blocking(sf, emulator):
    emulator.set_limits(daily_limit=2)
    sf.limits()
    sf.limits()
    with pytest.raises(SalesforceRefusedRequest):
        sf.limits()
    assert emulator.limits_state()["blocked_until"] is None
    emulator.advance_clock(86401)
    assert sf.limits()["DailyApiRequests"]["Remaining"] == 1


def test_counters_name_endpoints(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}])
    sf.query("SELECT Id FROM Lead")
    sf.Lead.update(lead_id, {"Title": "x"})
    counters = emulator.counters()
    assert (counters["total"], counters["by_endpoint"]) == (2, {"GET query": 1, "PATCH sobjects/Lead/{id}": 1})
