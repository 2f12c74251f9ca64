"""The shared API budget (ledger rules) on a real PostgreSQL, and the pure Salesforce parsers.

The ledger tables come from the real migrations (``DeployteqHook.migrate``); rows are
back-dated with plain SQL to put requests at chosen places in the hour / day windows.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from deployteq_salesforce.core.budget import (
    ApiBudget,
    BudgetSettings,
    advisory_lock_key,
    endpoint_of,
    is_login_url,
)
from deployteq_salesforce.core.exceptions import BudgetExhausted, ConfigurationError, SalesforceRequestLimitExceeded
from deployteq_salesforce.core.salesforce_errors import (
    ApiUsage,
    first_error_message,
    is_invalid_session,
    is_request_limit_exceeded,
    parse_error_body,
    parse_limit_info,
)

KEY = "https://example.my.salesforce.com"


@pytest.fixture
def ledger(deployteq_conn_id, pg_url, pg_schema):
    """A callable opening connections to this test's migrated schema (like the hook does)."""
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    DeployteqHook(deployteq_conn_id).migrate()
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(pg_url, options=f"-c search_path={pg_schema},public")
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def sql(ledger):
    """Run SQL in the test schema (autocommit) and return all rows."""
    conn = ledger()
    conn.autocommit = True

    def run(query: str, params=None):
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None

    return run


def budget(ledger, **settings) -> ApiBudget:
    return ApiBudget(BudgetSettings(budget_key=settings.pop("budget_key", KEY), **settings), ledger)


def add_requests(sql, *minutes_ago: float, key: str = KEY) -> None:
    for minutes in minutes_ago:
        sql(
            "INSERT INTO api_ledger (budget_key, requested_at, method, endpoint, status_code) "
            "VALUES (%s, clock_timestamp() - %s, 'GET', 'query/', 200)",
            (key, timedelta(minutes=minutes)),
        )


def ledger_count(sql, key: str = KEY) -> int:
    return sql("SELECT count(*) FROM api_ledger WHERE budget_key = %s", (key,))[0][0]


# -- reservations ---------------------------------------------------------------------------


def test_reserve_writes_one_ledger_row_with_flow_method_and_endpoint(ledger, sql):
    request_id = budget(ledger).reserve(method="get", endpoint="query/", flow="lead_sync")

    rows = sql("SELECT api_request_id, budget_key, flow, method, endpoint, status_code FROM api_ledger")
    assert rows == [(request_id, KEY, "lead_sync", "GET", "query/", None)]


def test_record_response_stores_status_and_org_usage(ledger, sql):
    api = budget(ledger)
    request_id = api.reserve(method="GET", endpoint="limits/", flow=None)

    api.record_response(request_id, 200, ApiUsage(used=123, max=15000))

    assert sql("SELECT status_code FROM api_ledger")[0][0] == 200
    assert sql("SELECT daily_used, daily_max, observed_at IS NOT NULL FROM api_budget_state") == [(123, 15000, True)]


def test_hourly_budget_refuses_without_writing_a_row(ledger, sql):
    api = budget(ledger, hourly_budget=3)
    for _ in range(3):
        api.reserve(method="GET", endpoint="query/", flow=None)

    with pytest.raises(BudgetExhausted) as refused:
        api.reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.reason == "hourly"
    assert ledger_count(sql) == 3


def test_resume_at_is_when_the_oldest_counted_request_leaves_the_hour(ledger, sql):
    add_requests(sql, 50, 30, 10)
    oldest = sql("SELECT min(requested_at) FROM api_ledger")[0][0]

    with pytest.raises(BudgetExhausted) as refused:
        budget(ledger, hourly_budget=3).reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.resume_at == oldest + timedelta(hours=1)


def test_resume_at_after_lowering_the_budget_waits_for_enough_requests_to_leave(ledger, sql):
    # 5 requests in the hour, budget now 3: three of them must leave before one more fits.
    add_requests(sql, 50, 40, 30, 20, 10)
    third_oldest = sql("SELECT requested_at FROM api_ledger ORDER BY requested_at OFFSET 2 LIMIT 1")[0][0]

    with pytest.raises(BudgetExhausted) as refused:
        budget(ledger, hourly_budget=3).reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.resume_at == third_oldest + timedelta(hours=1)


def test_requests_older_than_an_hour_do_not_count_for_the_hourly_budget(ledger, sql):
    add_requests(sql, 61, 90, 120)

    budget(ledger, hourly_budget=1).reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 4


def test_rows_older_than_the_retention_are_pruned(ledger, sql):
    add_requests(sql, 8 * 24 * 60, 6 * 24 * 60)

    budget(ledger).reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 2  # the 6-day-old row and the new one


def test_other_budget_keys_do_not_count(ledger, sql):
    add_requests(sql, 5, 5, 5, key="https://other.my.salesforce.com")

    budget(ledger, hourly_budget=1).reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 1


def test_without_a_known_org_maximum_only_the_hourly_rule_applies(ledger, sql):
    add_requests(sql, *[120 + i for i in range(50)])  # 50 requests earlier today

    budget(ledger, hourly_budget=10, daily_share=0.01).reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 51


def test_daily_share_of_the_org_allocation_refuses_with_reason_daily(ledger, sql):
    sql(
        "INSERT INTO api_budget_state (budget_key, daily_used, daily_max, observed_at) "
        "VALUES (%s, 10, 100, clock_timestamp())",
        (KEY,),
    )
    add_requests(sql, 300, 200, 180, 120, 90)  # 5 in the last 24 h, none in the last hour
    oldest = sql("SELECT min(requested_at) FROM api_ledger")[0][0]

    with pytest.raises(BudgetExhausted) as refused:
        budget(ledger, hourly_budget=100, daily_share=0.05).reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.reason == "daily"
    assert refused.value.resume_at == oldest + timedelta(hours=24)
    assert ledger_count(sql) == 5


def test_daily_share_below_the_limit_allows(ledger, sql):
    sql(
        "INSERT INTO api_budget_state (budget_key, daily_used, daily_max, observed_at) "
        "VALUES (%s, 10, 100, clock_timestamp())",
        (KEY,),
    )
    add_requests(sql, 300, 200, 180, 120)

    budget(ledger, hourly_budget=100, daily_share=0.05).reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 5


def test_org_allocation_used_up_by_others_refuses_until_a_recheck(ledger, sql):
    api = budget(ledger, hourly_budget=100, daily_share=1.0)
    api.record_response(0, None, ApiUsage(used=5000, max=5000))
    observed = sql("SELECT observed_at FROM api_budget_state")[0][0]

    with pytest.raises(BudgetExhausted) as refused:
        api.reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.reason == "daily"
    assert refused.value.resume_at == observed + timedelta(hours=1)


def test_a_stale_used_up_observation_lets_one_request_check_again(ledger, sql):
    api = budget(ledger, hourly_budget=100, daily_share=1.0)
    api.record_response(0, None, ApiUsage(used=5000, max=5000))
    sql("UPDATE api_budget_state SET observed_at = observed_at - interval '61 minutes'")

    api.reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 1


def test_active_block_refuses_with_block_times(ledger, sql):
    api = budget(ledger, block_hours=4)
    since, until = api.record_block("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")

    with pytest.raises(SalesforceRequestLimitExceeded) as refused:
        api.reserve(method="GET", endpoint="query/", flow=None)

    assert refused.value.reason == "blocked"
    assert (refused.value.since, refused.value.resume_at) == (since, until)
    assert until - since == timedelta(hours=4)
    assert ledger_count(sql) == 0


def test_an_ended_block_no_longer_refuses(ledger, sql):
    api = budget(ledger)
    api.record_block("REQUEST_LIMIT_EXCEEDED")
    sql("UPDATE api_budget_state SET blocked_until = clock_timestamp() - interval '1 second'")

    api.reserve(method="GET", endpoint="query/", flow=None)

    assert api.status().blocked is False


def test_a_second_limit_answer_during_a_block_keeps_its_start(ledger, sql):
    api = budget(ledger)
    first_since, _ = api.record_block("REQUEST_LIMIT_EXCEEDED")

    second_since, _ = api.record_block("REQUEST_LIMIT_EXCEEDED")

    assert second_since == first_since


def test_status_reports_use_limits_and_org_usage(ledger, sql):
    add_requests(sql, 10, 20, 200)
    api = budget(ledger, hourly_budget=50, daily_share=0.5)
    api.record_response(0, None, ApiUsage(used=40, max=1000))

    status = api.status()

    assert (status.hourly_used, status.hourly_limit, status.hourly_remaining) == (2, 50, 48)
    assert (status.daily_used, status.daily_limit) == (3, 500)
    assert (status.org_daily_used, status.org_daily_max) == (40, 1000)
    assert status.blocked_until is None
    assert status.as_dict()["budget_key"] == KEY


def test_concurrent_clients_never_overshoot(ledger, sql):
    """Six threads with their own connections race for 25 requests: exactly 25 are granted."""
    granted: list[int] = []
    refused: list[BudgetExhausted] = []
    start = threading.Barrier(6)

    def worker() -> None:
        api = budget(ledger, hourly_budget=25)
        start.wait()
        while True:
            try:
                granted.append(api.reserve(method="GET", endpoint="query/", flow=None))
            except BudgetExhausted as exc:
                refused.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(granted) == 25
    assert len(refused) == 6
    assert ledger_count(sql) == 25


def test_reserve_survives_a_lost_database_connection(ledger, sql):
    api = budget(ledger)
    api.reserve(method="GET", endpoint="query/", flow=None)
    sql("SELECT pg_terminate_backend(%s)", (api._conn.info.backend_pid,))  # as a server restart would

    api.reserve(method="GET", endpoint="query/", flow=None)

    assert ledger_count(sql) == 2


# -- settings ---------------------------------------------------------------------------------


def test_a_ledger_lock_held_too_long_is_reported_with_the_budget_key_and_holder(ledger, monkeypatch):
    from deployteq_salesforce.core import budget as budget_module
    from deployteq_salesforce.core.exceptions import BudgetLedgerBusy

    monkeypatch.setattr(budget_module, "LEDGER_LOCK_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(budget_module, "LEDGER_LOCK_ATTEMPTS", 2)
    holder = ledger()  # a process stuck inside its ledger transaction
    holder.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(KEY),))
    holder_pid = holder.info.backend_pid

    with pytest.raises(BudgetLedgerBusy) as refused:
        budget(ledger).reserve(method="GET", endpoint="query/", flow="sync:Lead")

    message = str(refused.value)
    assert f"budget '{KEY}'" in message and f"pid {holder_pid}" in message and "not sent" in message
    holder.rollback()


def test_a_frozen_worker_inside_its_ledger_transaction_is_released_by_postgresql(ledger, sql, monkeypatch):
    from deployteq_salesforce.core import budget as budget_module

    monkeypatch.setattr(budget_module, "LEDGER_IDLE_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(budget_module, "LEDGER_LOCK_TIMEOUT_SECONDS", 5)
    frozen = budget(ledger)
    conn = frozen._connection()  # the frozen worker's ledger session, with the idle timeout set
    conn.execute("BEGIN")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(KEY),))  # ... and then it stops

    other = budget(ledger)
    other.reserve(method="GET", endpoint="query/", flow="sync:Contact")

    assert ledger_count(sql) == 1
    # the frozen worker's next request gets a new session and goes on
    frozen.reserve(method="GET", endpoint="query/", flow="sync:Lead")
    assert ledger_count(sql) == 2


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"hourly_budget": 0}, "hourly_budget"),
        ({"hourly_budget": 2.5}, "hourly_budget"),
        ({"daily_share": 0}, "daily_share"),
        ({"daily_share": 1.5}, "daily_share"),
        ({"block_hours": 0}, "block_hours"),
        ({"budget_key": ""}, "budget_key"),
    ],
)
def test_invalid_settings_name_the_field(settings, field):
    with pytest.raises(ConfigurationError, match=field):
        BudgetSettings(**{"budget_key": KEY, **settings})


def test_daily_limit_is_the_share_of_the_org_maximum():
    settings = BudgetSettings(budget_key=KEY, daily_share=0.5)

    assert settings.daily_limit(15000) == 7500
    assert settings.daily_limit(None) is None


def test_advisory_lock_key_is_stable_and_per_budget():
    assert advisory_lock_key(KEY) == advisory_lock_key(KEY)
    assert advisory_lock_key(KEY) != advisory_lock_key(KEY + "x")
    assert -(2**63) <= advisory_lock_key(KEY) < 2**63


def test_endpoint_keeps_the_path_after_the_api_version_without_query():
    assert endpoint_of("https://x.my.salesforce.com/services/data/v59.0/query/?q=SELECT+Id") == "query/"
    assert endpoint_of("https://localhost:8443/services/data/v59.0/jobs/ingest/750x/batches") == "jobs/ingest/750x/batches"


def test_login_urls_are_recognised():
    assert is_login_url("https://test.salesforce.com/services/Soap/u/59.0")
    assert is_login_url("https://login.salesforce.com/services/oauth2/token")
    assert not is_login_url("https://x.my.salesforce.com/services/data/v59.0/query/")


# -- Salesforce answers -------------------------------------------------------------------------


def test_parse_limit_info_reads_org_usage():
    assert parse_limit_info("api-usage=18/5000") == ApiUsage(used=18, max=5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)") == ApiUsage(25, 5000)
    assert parse_limit_info("api-usage=25/5000").remaining == 4975


@pytest.mark.parametrize("header", [None, "", "per-app-api-usage=17/250(appName=sample)", "garbage"])
def test_parse_limit_info_without_org_usage_is_none(header):
    assert parse_limit_info(header) is None


def test_parse_error_body_reads_salesforce_error_arrays():
    body = b'[{"message":"No such column","errorCode":"INVALID_FIELD","fields":["Foo__c"]}]'

    (item,) = parse_error_body(body)

    assert (item.error_code, item.message, item.fields) == ("INVALID_FIELD", "No such column", ("Foo__c",))
    assert first_error_message(body) == "INVALID_FIELD: No such column"


@pytest.mark.parametrize("body", [b"", b"<html>Bad gateway</html>", b"{}", b"[1, 2]", None])
def test_parse_error_body_of_anything_else_is_empty(body):
    assert parse_error_body(body) == []
    assert first_error_message(body) == ""


def test_request_limit_and_invalid_session_are_recognised_by_status_and_code():
    limit = '[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
    expired = '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]'

    assert is_request_limit_exceeded(403, limit)
    assert not is_request_limit_exceeded(403, '[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]')
    assert not is_request_limit_exceeded(400, limit)
    assert is_invalid_session(401, expired)
    assert not is_invalid_session(403, expired)
