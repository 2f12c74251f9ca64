"""BudgetedSalesforceHook against the Salesforce emulator and a real PostgreSQL ledger.

Request counts are read from the emulator's own counters, so "not sent" means the
emulator never saw the request.  Only the login host is mocked (the emulator cannot be
login.salesforce.com): ``simple_salesforce.api.SalesforceLogin``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import types
from datetime import timedelta

import psycopg
import pytest
import requests
import simple_salesforce.api
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest

from deployteq_salesforce.core.budget import RetryPolicy
from deployteq_salesforce.core.exceptions import (
    BudgetExhausted,
    ConfigurationError,
    SalesforceRequestLimitExceeded,
    SalesforceSessionExpired,
)
from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook
from include.local_services import salesforce_emulator_connection

FAST_RETRY = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.05, jitter=0.01)
LOGIN = "etl@example.com"
PASSWORD = "pw-Secret-123"
SECURITY_TOKEN = "tok-Secret-456"


@pytest.fixture
def make_hook(salesforce_conn_id, deployteq_conn_id):
    hooks: list[BudgetedSalesforceHook] = []

    def make(**kwargs) -> BudgetedSalesforceHook:
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("flow", "test_flow")
        hook = BudgetedSalesforceHook(salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, **kwargs)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def sql(pg_url, pg_schema, deployteq_conn_id):
    """Run SQL in this test's Deployteq schema; the ledger tables exist once a hook has connected."""
    conn = psycopg.connect(pg_url, autocommit=True, options=f"-c search_path={pg_schema},public")

    def run(query: str, params=None):
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None

    yield run
    conn.close()


@pytest.fixture
def emulator_info(emulator_process) -> dict:
    return emulator_process.info


def set_salesforce_connection(monkeypatch, connection: dict) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(connection))


def emulator_connection_with(emulator_process, **extra) -> dict:
    return salesforce_emulator_connection(emulator_process.connection_json, **extra)


def total_requests(emulator) -> int:
    return emulator.counters()["total"]


def fake_login(emulator_info, calls: list, tokens: list[str] | None = None):
    """Stand-in for simple-salesforce's login host: hands out the emulator's session."""
    host = emulator_info["instance_url"].split("://", 1)[1]
    pending = list(tokens or [])

    def login(**kwargs):
        calls.append(kwargs)
        return (pending.pop(0) if pending else emulator_info["session_id"]), host

    return login


# -- the ledger ---------------------------------------------------------------------------------


def test_every_request_gets_a_ledger_row_with_its_status(make_hook, emulator, sql):
    hook = make_hook()

    hook.limits()
    list(hook.query_pages("SELECT Id FROM Lead"))

    rows = sql("SELECT flow, method, endpoint, status_code FROM api_ledger ORDER BY api_request_id")
    assert rows == [("test_flow", "GET", "limits/", 200), ("test_flow", "GET", "query/", 200)]
    assert total_requests(emulator) == 2 == hook.requests_sent


def test_sforce_limit_info_is_stored_as_org_daily_usage(make_hook, emulator, sql):
    emulator.set_limits(daily_limit=15000)
    hook = make_hook()

    hook.limits()

    assert sql("SELECT daily_used, daily_max FROM api_budget_state") == [(1, 15000)]
    status = hook.budget_status()
    assert (status.org_daily_used, status.org_daily_max, status.daily_limit) == (1, 15000, 7500)


def test_exhausted_hourly_budget_raises_and_sends_nothing(make_hook, emulator):
    hook = make_hook(hourly_budget=2)
    hook.limits()
    hook.limits()

    with pytest.raises(BudgetExhausted) as refused:
        hook.limits()

    assert refused.value.reason == "hourly"
    assert total_requests(emulator) == 2


def test_resume_at_is_an_hour_after_the_oldest_request_of_the_window(make_hook, emulator, sql):
    hook = make_hook(hourly_budget=2)
    hook.limits()
    hook.limits()
    oldest = sql("SELECT min(requested_at) FROM api_ledger")[0][0]

    with pytest.raises(BudgetExhausted) as refused:
        hook.limits()

    assert refused.value.resume_at == oldest + timedelta(hours=1)


def test_hooks_of_one_connection_share_one_budget(make_hook, emulator):
    make_hook(hourly_budget=3).limits()
    make_hook(hourly_budget=3, flow="other").limits()
    make_hook(hourly_budget=3).limits()

    with pytest.raises(BudgetExhausted):
        make_hook(hourly_budget=3).limits()
    assert total_requests(emulator) == 3


def _hammer(salesforce_conn_id: str, deployteq_conn_id: str, hourly_budget: int, results) -> None:
    hook = BudgetedSalesforceHook(
        salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, flow="hammer", hourly_budget=hourly_budget
    )
    sent = 0
    try:
        while True:
            hook.limits()
            sent += 1
    except BudgetExhausted:
        results.put(sent)
    except Exception as exc:  # noqa: BLE001 - reported to the parent test
        results.put(repr(exc))
    finally:
        hook.close()


def test_two_processes_hammering_a_small_budget_never_overshoot(
    make_hook, salesforce_conn_id, deployteq_conn_id, emulator, sql
):
    make_hook().budget_status()  # migrate once up front, so both processes start on equal terms
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [
        context.Process(target=_hammer, args=(salesforce_conn_id, deployteq_conn_id, 30, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    sent = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    assert all(isinstance(n, int) for n in sent), sent
    assert sum(sent) == 30
    assert total_requests(emulator) == 30
    assert sql("SELECT count(*) FROM api_ledger")[0][0] == 30


def test_daily_share_of_the_org_allocation_is_respected(make_hook, emulator):
    emulator.set_limits(daily_limit=40)
    hook = make_hook(hourly_budget=1000, daily_share=0.25)
    sent = 0

    with pytest.raises(BudgetExhausted) as refused:
        while True:
            hook.limits()
            sent += 1

    assert refused.value.reason == "daily"
    assert sent == 10
    assert total_requests(emulator) == 10


def test_org_allocation_used_up_by_another_budget_stops_this_one(make_hook, emulator):
    emulator.set_limits(daily_limit=4)
    others = make_hook(budget_key="another integration", daily_share=1.0)
    for _ in range(3):
        others.limits()
    hook = make_hook(budget_key="ours", daily_share=1.0)
    hook.limits()  # the org's last request: usage 4/4

    with pytest.raises(BudgetExhausted) as refused:
        hook.limits()

    assert refused.value.reason == "daily"
    assert total_requests(emulator) == 4


# -- Salesforce's own limit: 403 REQUEST_LIMIT_EXCEEDED ----------------------------------------------


def test_request_limit_exceeded_records_the_block_and_logs_one_clear_line(make_hook, emulator, sql, caplog):
    hook = make_hook(block_hours=4)
    emulator.inject_fault("limit")

    with caplog.at_level(logging.INFO), pytest.raises(SalesforceRequestLimitExceeded) as blocked:
        hook.limits()

    since, until = sql("SELECT blocked_since, blocked_until FROM api_budget_state")[0]
    assert (blocked.value.since, blocked.value.resume_at) == (since, until)
    assert until - since == timedelta(hours=4)
    lines = [r.getMessage() for r in caplog.records if "REQUEST_LIMIT_EXCEEDED" in r.getMessage()]
    assert len(lines) == 1
    assert "Nothing is lost; runs resume automatically after" in lines[0]
    assert "lower hourly_budget if this recurs" in lines[0]
    assert until.strftime("%Y-%m-%d %H:%M UTC") in lines[0]


def test_after_a_block_later_requests_are_refused_without_sending(make_hook, emulator):
    emulator.inject_fault("limit")
    with pytest.raises(SalesforceRequestLimitExceeded):
        make_hook().limits()

    with pytest.raises(SalesforceRequestLimitExceeded) as refused:
        make_hook(flow="another_worker").limits()

    assert refused.value.reason == "blocked"
    assert total_requests(emulator) == 1


# -- retries ------------------------------------------------------------------------------------


def test_503_is_retried_as_a_new_budgeted_request(make_hook, emulator, sql):
    emulator.inject_fault("503")
    hook = make_hook()

    limits = hook.limits()

    assert "DailyApiRequests" in limits
    assert sql("SELECT status_code FROM api_ledger ORDER BY api_request_id") == [(503,), (200,)]
    assert total_requests(emulator) == 2 == hook.requests_sent


def test_dropped_connection_is_retried(make_hook, emulator, sql):
    emulator.inject_fault("drop")
    hook = make_hook()

    hook.limits()

    assert sql("SELECT status_code FROM api_ledger ORDER BY api_request_id") == [(None,), (200,)]
    assert hook.requests_sent == 2


def test_a_create_whose_answer_was_lost_is_not_repeated(make_hook, emulator):
    emulator.inject_fault("drop")
    hook = make_hook()

    with pytest.raises(requests.exceptions.ConnectionError):
        hook.composite("POST", "Lead", [{"LastName": "Once", "Company": "Acme"}])

    assert hook.requests_sent == 1  # a second try might have created the lead twice


def test_a_create_answered_503_is_retried(make_hook, emulator):
    emulator.inject_fault("503")
    hook = make_hook()

    (result,) = hook.composite("POST", "Lead", [{"LastName": "Once", "Company": "Acme"}])

    assert result["success"]
    assert hook.requests_sent == 2
    assert [r["LastName"] for r in emulator.records("Lead")] == ["Once"]


def test_creating_a_bulk_ingest_job_is_retried_after_a_server_error(make_hook, emulator):
    from deployteq_salesforce.core.bulk import Bulk2Client

    lead_id = emulator.seed("Lead", [{"LastName": "Once", "Company": "Acme"}])[0]
    emulator.inject_fault("500", path_contains="jobs/ingest")  # the job-creating POST fails once
    hook = make_hook()

    result = Bulk2Client(hook.get_conn(), poll_initial=0.05).ingest(
        "Lead", "update", [{"Id": lead_id, "LastName": "Twice"}], columns=["Id", "LastName"], want_successful=False
    )

    assert result.failed == []
    assert [r["LastName"] for r in emulator.records("Lead")] == ["Twice"]


def test_a_lost_answer_to_a_bulk_ingest_job_creation_is_retried(make_hook, emulator):
    from deployteq_salesforce.core.bulk import Bulk2Client

    lead_id = emulator.seed("Lead", [{"LastName": "Once", "Company": "Acme"}])[0]
    emulator.inject_fault("drop", path_contains="jobs/ingest")
    hook = make_hook()

    Bulk2Client(hook.get_conn(), poll_initial=0.05).ingest(
        "Lead", "update", [{"Id": lead_id, "LastName": "Twice"}], columns=["Id", "LastName"], want_successful=False
    )

    assert [r["LastName"] for r in emulator.records("Lead")] == ["Twice"]


def test_sobject_collections_retrieve_is_retried(make_hook, emulator):
    lead_id = emulator.seed("Lead", [{"LastName": "Read", "Company": "Acme"}])[0]
    emulator.inject_fault("drop", path_contains="composite/sobjects/Lead")
    hook = make_hook()

    (record,) = hook.get_conn().restful(
        "composite/sobjects/Lead", method="POST", data=json.dumps({"ids": [lead_id], "fields": ["LastName"]})
    )

    assert record["LastName"] == "Read" and hook.requests_sent == 2


def test_read_timeout_is_retried(make_hook, emulator, emulator_process, monkeypatch):
    # a timeout well above a loaded machine's local round trip, and a delay well above the timeout
    set_salesforce_connection(monkeypatch, emulator_connection_with(emulator_process, request_timeout=1.5))
    emulator.inject_fault("slow", delay_seconds=4)
    hook = make_hook()

    hook.limits()

    assert hook.requests_sent == 2


def test_5xx_gives_up_after_the_configured_attempts(make_hook, emulator, sql):
    emulator.inject_fault("500", count=10)
    hook = make_hook()

    with pytest.raises(SalesforceGeneralError):
        hook.limits()

    assert sql("SELECT status_code FROM api_ledger") == [(500,)] * FAST_RETRY.attempts
    assert total_requests(emulator) == FAST_RETRY.attempts


def test_4xx_is_not_retried(make_hook, emulator):
    hook = make_hook()

    with pytest.raises(SalesforceMalformedRequest):
        list(hook.query_pages("SELECT NoSuchField__c FROM Lead"))

    assert total_requests(emulator) == 1


# -- sessions and authentication ----------------------------------------------------------------


def test_expired_direct_session_raises_a_clear_error_without_the_session_id(make_hook, emulator, emulator_info):
    emulator.inject_fault("invalid_session")
    hook = make_hook()

    with pytest.raises(SalesforceSessionExpired) as expired:
        hook.limits()

    message = str(expired.value)
    assert "salesforce_default" in message and "paste a new session id" in message
    assert emulator_info["session_id"] not in message
    assert total_requests(emulator) == 1


def test_direct_session_from_password_field_and_ca_file(make_hook, emulator, emulator_info):
    hook = make_hook()

    sf = hook.get_conn()

    assert sf.auth_type == "direct"
    assert sf.session_id == emulator_info["session_id"]
    assert sf.session is hook.budgeted_session
    assert sf.session.verify == emulator_info["ca_file"]
    assert hook.budget_settings.budget_key == emulator_info["instance_url"]


def test_session_id_extra_is_accepted_too(make_hook, emulator, emulator_process, emulator_info, monkeypatch):
    connection = emulator_connection_with(emulator_process)
    connection.pop("password")
    connection["extra"]["session_id"] = emulator_info["session_id"]
    set_salesforce_connection(monkeypatch, connection)

    assert "DailyApiRequests" in make_hook().limits()


@pytest.mark.parametrize(("domain", "expected_domain"), [("test", "test"), (None, "login")])
def test_password_login_passes_credentials_and_sandbox_domain(
    make_hook, emulator, emulator_info, monkeypatch, domain, expected_domain, caplog
):
    calls: list[dict] = []
    monkeypatch.setattr(simple_salesforce.api, "SalesforceLogin", fake_login(emulator_info, calls))
    extra = {"security_token": SECURITY_TOKEN, "ca_file": emulator_info["ca_file"]}
    if domain:
        extra["domain"] = domain
    set_salesforce_connection(
        monkeypatch, {"conn_type": "salesforce", "login": LOGIN, "password": PASSWORD, "extra": extra}
    )
    hook = make_hook()

    with caplog.at_level(logging.DEBUG):
        hook.limits()

    (call,) = calls
    assert (call["username"], call["password"], call["security_token"]) == (LOGIN, PASSWORD, SECURITY_TOKEN)
    assert call["domain"] == expected_domain
    assert call["session"] is hook.budgeted_session
    assert hook.get_conn().auth_type == "password"
    assert hook.budget_settings.budget_key == f"{LOGIN}@{expected_domain}"
    assert total_requests(emulator) == 1  # the login itself is not an API request
    assert PASSWORD not in caplog.text and SECURITY_TOKEN not in caplog.text


def test_password_mode_logs_in_again_once_on_invalid_session(make_hook, emulator, emulator_info, monkeypatch, sql):
    calls: list[dict] = []
    monkeypatch.setattr(
        simple_salesforce.api, "SalesforceLogin", fake_login(emulator_info, calls, tokens=["an-expired-token"])
    )
    set_salesforce_connection(
        monkeypatch,
        {
            "conn_type": "salesforce",
            "login": LOGIN,
            "password": PASSWORD,
            "extra": {"security_token": SECURITY_TOKEN, "ca_file": emulator_info["ca_file"]},
        },
    )
    hook = make_hook()

    assert "DailyApiRequests" in hook.limits()

    assert len(calls) == 2
    assert sql("SELECT status_code FROM api_ledger ORDER BY api_request_id") == [(401,), (200,)]


def test_no_secret_reaches_the_logs_or_the_errors(make_hook, emulator, emulator_info, caplog, capfd):
    session_id = emulator_info["session_id"]
    hook = make_hook()
    emulator.inject_fault("503")
    emulator.inject_fault("invalid_session", at_request=3)

    with caplog.at_level(logging.DEBUG):
        hook.limits()  # 503, then 200
        with pytest.raises(SalesforceSessionExpired) as expired:
            hook.limits()
        ok, message = hook.test_connection()

    assert ok, message
    printed = capfd.readouterr()
    assert "retry 1 of" in caplog.text  # the logs were captured
    assert session_id not in caplog.text
    assert session_id not in printed.out + printed.err
    assert session_id not in str(expired.value)
    assert session_id not in message
    assert "Authorization" not in caplog.text


# -- test_connection ----------------------------------------------------------------------------


def test_test_connection_reports_instance_and_usage(make_hook, emulator, emulator_info):
    ok, message = make_hook().test_connection()

    assert ok
    assert message.startswith("Connection OK: " + emulator_info["instance_url"])
    assert "org daily API usage 1/" in message


def test_test_connection_with_a_wrong_session_says_what_to_do(make_hook, emulator, emulator_process, monkeypatch):
    connection = emulator_connection_with(emulator_process)
    connection["password"] = "not-a-valid-session-id"
    set_salesforce_connection(monkeypatch, connection)

    ok, message = make_hook().test_connection()

    assert not ok
    assert "paste a new session id" in message
    assert "not-a-valid-session-id" not in message


@pytest.mark.parametrize("conn_type", ["deployteq_salesforce", "salesforce"])
def test_connections_of_our_type_and_the_stock_type_both_work(make_hook, emulator, emulator_process, monkeypatch, conn_type):
    set_salesforce_connection(monkeypatch, {**emulator_connection_with(emulator_process), "conn_type": conn_type})

    ok, message = make_hook().test_connection()

    assert ok, message
    assert total_requests(emulator) == 1


def test_test_connection_names_the_deployteq_connection_that_holds_the_ledger(make_hook, emulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DEPLOYTEQ_DEFAULT",
        json.dumps({"conn_type": "deployteq", "host": "127.0.0.1", "port": 1, "login": "x", "password": "pg-Secret-789"}),
    )

    ok, message = make_hook().test_connection()

    assert not ok
    assert message.startswith("Salesforce not tested: its API budget is kept in Deployteq connection 'deployteq_default'")
    assert message.endswith("create or fix that connection first")
    assert "pg-Secret-789" not in message
    assert total_requests(emulator) == 0


def test_test_connection_of_a_missing_connection_says_so(deployteq_conn_id):
    ok, message = BudgetedSalesforceHook("no_such_connection", deployteq_conn_id=deployteq_conn_id).test_connection()

    assert not ok
    assert "no_such_connection" in message


def test_the_test_button_runs_our_test_for_our_connection_type(emulator, emulator_process, deployteq_conn_id, monkeypatch):
    """What POST /api/v2/connections/test (the Test button) does: the form's connection as an AIRFLOW_CONN_*
    URI, then Connection.test_connection(), which picks the hook by conn_type."""
    from airflow.models.connection import Connection

    info = emulator_connection_with(emulator_process)
    connection = Connection(conn_id="sf_form", conn_type="deployteq_salesforce", password=info["password"],
                            extra=json.dumps(info["extra"]))
    monkeypatch.setenv("AIRFLOW_CONN_SF_FORM", connection.get_uri())

    ok, message = connection.test_connection()

    assert ok, message
    assert message.startswith("Connection OK: ") and "budget '" in message


# -- settings -----------------------------------------------------------------------------------


def test_budget_settings_come_from_extras(make_hook, emulator_process, monkeypatch):
    set_salesforce_connection(
        monkeypatch,
        emulator_connection_with(emulator_process, hourly_budget="120", daily_share="0.2", block_hours=6, budget_key="org-1"),
    )

    settings = make_hook().budget_settings

    assert (settings.hourly_budget, settings.daily_share, settings.block_hours, settings.budget_key) == (
        120, 0.2, 6.0, "org-1",
    )


def test_defaults_without_extras(make_hook, emulator_process):
    settings = make_hook().budget_settings

    assert (settings.hourly_budget, settings.daily_share, settings.block_hours) == (3600, 0.5, 4.0)


def test_variable_overrides_the_extra_and_the_argument_overrides_both(make_hook, emulator_process, monkeypatch):
    set_salesforce_connection(monkeypatch, emulator_connection_with(emulator_process, hourly_budget=120))
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_HOURLY_BUDGET", "90")

    assert make_hook().budget_settings.hourly_budget == 90
    assert make_hook(hourly_budget=30).budget_settings.hourly_budget == 30


def test_invalid_extra_names_the_field_and_connection(make_hook, emulator_process, monkeypatch):
    set_salesforce_connection(monkeypatch, emulator_connection_with(emulator_process, hourly_budget="lots"))

    with pytest.raises(ConfigurationError, match="hourly_budget.*salesforce_default"):
        make_hook().budget_settings  # noqa: B018


def test_a_custom_session_is_refused(salesforce_conn_id):
    with pytest.raises(TypeError, match="session"):
        BudgetedSalesforceHook(salesforce_conn_id, session=requests.Session())


# -- query_pages ----------------------------------------------------------------------------------


def seed_leads(emulator, count: int, prefix: str = "Lead") -> list[str]:
    return emulator.seed(
        "Lead", [{"LastName": f"{prefix}{i:04d}", "Company": "Acme", "Email": f"l{i}@example.com"} for i in range(count)]
    )


def test_query_pages_streams_one_request_per_page(make_hook, emulator):
    seed_leads(emulator, 450)
    hook = make_hook()

    pages = hook.query_pages("SELECT Id, LastName FROM Lead ORDER BY LastName", batch_size=200)

    assert isinstance(pages, types.GeneratorType)
    assert total_requests(emulator) == 0
    first = next(pages)
    assert total_requests(emulator) == 1
    rest = list(pages)
    assert [len(first)] + [len(page) for page in rest] == [200, 200, 50]
    assert total_requests(emulator) == 3
    assert first[0] == {"Id": first[0]["Id"], "LastName": "Lead0000"}
    assert rest[-1][-1]["LastName"] == "Lead0449"


def test_query_pages_include_deleted(make_hook, emulator):
    ids = seed_leads(emulator, 3)
    emulator.delete(ids[:1])
    hook = make_hook()

    live = [r for page in hook.query_pages("SELECT Id FROM Lead") for r in page]
    everything = [r for page in hook.query_pages("SELECT Id, IsDeleted FROM Lead", include_deleted=True) for r in page]

    assert len(live) == 2
    assert sorted((r["Id"], r["IsDeleted"]) for r in everything) == sorted([(ids[0], True), (ids[1], False), (ids[2], False)])


def test_query_pages_rejects_a_batch_size_salesforce_does_not_allow(make_hook, emulator):
    with pytest.raises(ValueError, match="batch_size"):
        next(make_hook().query_pages("SELECT Id FROM Lead", batch_size=50))


# -- composite --------------------------------------------------------------------------------------


def test_composite_create_chunks_by_200_and_keeps_input_order(make_hook, emulator):
    emulator.add_validation_rule("Lead", "Company", "Forbidden", "Company may not be Forbidden")
    records = [{"LastName": f"New{i:04d}", "Company": "Forbidden" if i in (5, 305) else "Acme"} for i in range(450)]
    hook = make_hook()

    results = hook.composite("POST", "Lead", records)

    assert emulator.counters()["by_endpoint"].get("POST composite/sobjects") == 3
    assert total_requests(emulator) == 3
    assert len(results) == 450
    failed = [i for i, result in enumerate(results) if not result["success"]]
    assert failed == [5, 305]
    assert results[5]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    names_by_id = {r["Id"]: r["LastName"] for r in emulator.records("Lead")}
    assert all(names_by_id[results[i]["id"]] == f"New{i:04d}" for i in range(450) if i not in (5, 305))


def test_composite_update_and_delete(make_hook, emulator):
    ids = seed_leads(emulator, 3)
    hook = make_hook()

    updated = hook.composite("PATCH", "Lead", [{"Id": ids[0], "City": "Utrecht"}, {"Id": ids[1], "City": "Gouda"}])
    deleted = hook.composite("DELETE", "Lead", [ids[2]])

    assert [r["success"] for r in updated + deleted] == [True, True, True]
    cities = {r["Id"]: r.get("City") for r in emulator.records("Lead")}
    assert (cities[ids[0]], cities[ids[1]]) == ("Utrecht", "Gouda")
    assert ids[2] not in cities


def test_composite_upsert_by_external_id_reports_created(make_hook, emulator):
    (lead_id,) = seed_leads(emulator, 1)
    moment = {"Deployteq_Id__c": "mail-1", "Lead__c": lead_id, "Name": "Welcome", "Opened__c": False}
    hook = make_hook()

    first = hook.composite("PATCH", "ClangLeadContactMoment__c", [moment], external_id_field="Deployteq_Id__c")
    again = hook.composite(
        "PATCH", "ClangLeadContactMoment__c", [{**moment, "Opened__c": True}], external_id_field="Deployteq_Id__c"
    )

    assert (first[0]["created"], again[0]["created"]) == (True, False)
    assert first[0]["id"] == again[0]["id"]
    (stored,) = emulator.records("ClangLeadContactMoment__c")
    assert stored["Opened__c"] is True
    assert emulator.counters()["by_endpoint"] == {"PATCH composite/sobjects/ClangLeadContactMoment__c/Deployteq_Id__c": 2}


def test_composite_stopped_by_the_budget_carries_the_results_so_far(make_hook, emulator):
    records = [{"LastName": f"New{i:04d}", "Company": "Acme"} for i in range(450)]
    hook = make_hook(hourly_budget=2)

    with pytest.raises(BudgetExhausted) as refused:
        hook.composite("POST", "Lead", records)

    assert len(refused.value.completed_results) == 400
    assert all(result["success"] for result in refused.value.completed_results)
    assert len(emulator.records("Lead")) == 400


def test_composite_update_without_id_names_the_record(make_hook, emulator):
    with pytest.raises(ValueError, match="#1 .*Id"):
        make_hook().composite("PATCH", "Lead", [{"Id": "00Q000000000001AAA", "City": "x"}, {"City": "y"}])
    assert total_requests(emulator) == 0
