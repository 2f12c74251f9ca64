"""The pure part of the contact-moment flow: routing, payloads, change detection, retries, budget planning."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from deployteq_salesforce.flows.contact_moments.logic import (
    BULK_JOB_REQUESTS,
    CONTACT_OBJECT,
    DEFAULT_MAX_ATTEMPTS,
    GIVEN_UP,
    LEAD_OBJECT,
    NO_SALESFORCE_ID,
    UNCHANGED,
    MomentRow,
    Outgoing,
    SendPlanner,
    Sendable,
    Target,
    backlog_figures,
    build_payload,
    bulk_results,
    composite_results,
    decide,
    format_age,
    payload_hash,
    plan_sends,
    requests_allowed,
    route,
    target_cost,
    triage,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
LEAD = "00Q8d0000000001AAA"
CONTACT = "0038d0000000001AAA"


def row(n: int = 1, **fields) -> MomentRow:
    values = dict(contact_moment_id=n, changed_at=T0 + timedelta(seconds=n), sent_at=T0, mailing_name="Nieuwsbrief maart",
                  subject="Nieuws", sf_lead_id=LEAD)
    values.update(fields)
    return MomentRow(**values)


def sent(moment: MomentRow) -> MomentRow:
    """The same row as it looks after Salesforce accepted it."""
    target = route(moment)
    return replace(moment, sent_object=target.sobject, sent_parent_id=target.parent_id,
                   sent_hash=payload_hash(target, build_payload(moment, target)))


# -- routing ----------------------------------------------------------------------------------------


def test_contact_id_wins_over_lead_id():
    assert route(row(sf_contact_id=CONTACT)) == Target(CONTACT_OBJECT, CONTACT)


def test_lead_id_alone_routes_to_the_lead_object():
    assert route(row()) == Target(LEAD_OBJECT, LEAD)


def test_no_salesforce_id_is_not_sent_with_that_reason():
    decision = decide(row(sf_lead_id=None))
    assert decision.reason == NO_SALESFORCE_ID


def test_a_sent_moment_keeps_its_object_after_the_lead_converted():
    converted = replace(sent(row()), sf_contact_id=CONTACT)
    assert route(converted) == Target(LEAD_OBJECT, LEAD)
    assert route(replace(row(2), sf_contact_id=CONTACT)) == Target(CONTACT_OBJECT, CONTACT)


# -- payload ----------------------------------------------------------------------------------------


def test_payload_has_lookup_external_id_and_behaviour():
    payload = build_payload(
        row(7, open_count=2, opened_first_at=T0 + timedelta(hours=1), bounced_at=T0, bounce_type="hard"),
        Target(LEAD_OBJECT, LEAD),
    )
    assert payload["Lead__c"] == LEAD and "Contact__c" not in payload
    assert payload["Deployteq_Id__c"] == "7"
    assert payload["Sent_Date__c"] == "2024-03-01T09:00:00.000+0000"
    assert payload["Opened__c"] is True and payload["Open_Count__c"] == 2
    assert payload["First_Opened_Date__c"] == "2024-03-01T10:00:00.000+0000"
    assert payload["Clicked__c"] is False and payload["First_Clicked_Date__c"] is None
    assert payload["Bounced__c"] is True and payload["Bounce_Type__c"] == "hard"


def test_name_is_cut_to_80_characters_with_the_send_date():
    payload = build_payload(row(mailing_name="x" * 200), Target(LEAD_OBJECT, LEAD))
    assert len(payload["Name"]) == 80 and payload["Name"].endswith(" (2024-03-01)")


def test_naive_datetimes_are_refused_clearly():
    with pytest.raises(ValueError, match="time zone"):
        build_payload(row(sent_at=datetime(2024, 1, 1)), Target(LEAD_OBJECT, LEAD))


# -- change detection and retries -------------------------------------------------------------------------


def test_unchanged_payload_is_not_sent_again():
    assert decide(sent(row())).reason == UNCHANGED


def test_a_new_open_changes_the_hash_and_is_sent():
    moment = replace(sent(row()), open_count=1)
    assert isinstance(decide(moment), Outgoing)


def test_a_field_that_is_not_sent_does_not_count_as_a_change():
    assert decide(replace(sent(row()), mailing_id=99)).reason == UNCHANGED


@pytest.mark.parametrize("subject", [
    "Nieuws", "Café \u2028 ☕ 😀", "tab\there \"quoted\" back\\slash", "control \x01\x1f and DEL \x7f", "",
])
def test_payload_hash_is_the_sha256_of_the_sorted_compact_json_stored_hashes_were_made_of(subject):
    import hashlib
    import json

    target = Target(LEAD_OBJECT, LEAD)
    payload = build_payload(row(subject=subject, open_count=3, opened_first_at=T0), target)
    for value in (payload, {**payload, "Subject__c": T0}):  # a type the fast encoder would write differently
        canonical = json.dumps([LEAD_OBJECT, value], sort_keys=True, separators=(",", ":"), default=str)
        assert payload_hash(target, value) == hashlib.sha256(canonical.encode()).hexdigest()[:32]


def test_failed_payload_is_retried_until_the_limit():
    moment = row()
    digest = decide(moment).payload_hash
    assert isinstance(decide(replace(moment, failed_hash=digest, attempts=2), max_attempts=3), Outgoing)
    assert decide(replace(moment, failed_hash=digest, attempts=3), max_attempts=3).reason == GIVEN_UP


def test_retry_request_or_changed_data_starts_a_given_up_moment_over():
    moment = row()
    digest = decide(moment).payload_hash
    given_up = replace(moment, failed_hash=digest, attempts=9)
    assert isinstance(decide(replace(given_up, retry_requested=True)), Outgoing)
    assert isinstance(decide(replace(given_up, subject="Anders")), Outgoing)


# -- budget -----------------------------------------------------------------------------------------


def allowed(**overrides):
    values = dict(hourly_limit=3600, hourly_used=0, flow_hourly_used=0, hourly_share=1.0, daily_limit=None, daily_used=0)
    values.update(overrides)
    return requests_allowed(**values)


def test_allowance_is_the_hourly_budget_left():
    assert allowed(hourly_used=3590).requests == 10


def test_allowance_keeps_to_the_flows_share_of_the_hour():
    result = allowed(hourly_share=0.5, flow_hourly_used=1700)
    assert result.requests == 100 and "share" in result.limited_by


def test_allowance_keeps_to_the_daily_share_and_the_orgs_allocation():
    assert allowed(daily_limit=500, daily_used=480).requests == 20
    assert allowed(org_daily_max=15_000, org_daily_used=14_995).requests == 5


def test_allowance_is_zero_when_over_or_blocked():
    assert allowed(hourly_used=4000).requests == 0
    blocked = allowed(blocked=True)
    assert blocked.requests == 0 and blocked.blocked


def outgoing(count: int, sobject: str = LEAD_OBJECT, start: int = 1) -> list[Outgoing]:
    return [Outgoing(row(n), Target(sobject, LEAD if sobject == LEAD_OBJECT else CONTACT), f"h{n}")
            for n in range(start, start + count)]


def test_composite_below_the_threshold_and_bulk_when_cheaper():
    assert target_cost(200, bulk_threshold=2000, bulk_job_size=100_000) == (1, "composite")
    assert target_cost(201, bulk_threshold=2000, bulk_job_size=100_000) == (2, "composite")
    assert target_cost(100_000, bulk_threshold=2000, bulk_job_size=100_000) == (BULK_JOB_REQUESTS, "bulk")
    assert target_cost(250_000, bulk_threshold=2000, bulk_job_size=100_000) == (3 * BULK_JOB_REQUESTS, "bulk")


def test_plan_sends_the_oldest_that_fit_and_leaves_the_rest():
    moments = outgoing(1000)
    plan = plan_sends(moments, 3, bulk_threshold=10_000)
    assert plan.planned_moments == 600 and plan.planned_requests == 3
    assert [m.moment_id for m in plan.left] == list(range(601, 1001))
    assert all(b.mode == "composite" and len(b.moments) == 200 for b in plan.batches)


def test_plan_splits_by_object_and_counts_both():
    moments = outgoing(150, LEAD_OBJECT) + outgoing(150, CONTACT_OBJECT, start=151)
    plan = plan_sends(moments, 2)
    assert plan.planned_moments == 300 and plan.planned_requests == 2
    assert {b.sobject for b in plan.batches} == {LEAD_OBJECT, CONTACT_OBJECT}


def test_plan_finds_the_bulk_job_beyond_what_composite_could_fit():
    plan = plan_sends(outgoing(100_000), 10, bulk_threshold=2000)
    assert plan.planned_moments == 100_000 and not plan.left
    assert [b.mode for b in plan.batches] == ["bulk"] and plan.planned_requests == BULK_JOB_REQUESTS


def test_planner_counts_alone_keep_the_plan_and_never_exceed_the_allowance():
    moments = outgoing(700, LEAD_OBJECT) + outgoing(500, CONTACT_OBJECT, start=701)
    for available in (0, 1, 3, 5, 7):
        planner = SendPlanner(available, bulk_threshold=10_000)
        for moment in moments:
            planner.add(moment)
        plan = plan_sends(moments, available, bulk_threshold=10_000)
        assert planner.best_n == plan.planned_moments and planner.best_cost == plan.planned_requests <= available
        if plan.left:
            assert planner.best_n == 0 or planner.last_key[1] == moments[planner.best_n - 1].moment_id
            assert planner.first_left_changed_at == plan.left[0].row.changed_at


def test_plan_with_no_budget_sends_nothing():
    plan = plan_sends(outgoing(5), 0)
    assert plan.batches == [] and len(plan.left) == 5


# -- results ------------------------------------------------------------------------------------------


def test_composite_errors_keep_status_code_and_message():
    moments = outgoing(2)
    results = composite_results(moments, [
        {"id": "a0X1", "success": True, "created": True, "errors": []},
        {"success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": ["Lead__c"]}]},
    ])
    assert results[0].success and results[0].created and results[0].record_id == "a0X1"
    assert results[1].reason == "ENTITY_IS_DELETED: entity is deleted" and results[1].fields == ("Lead__c",)


def test_bulk_results_are_matched_on_the_external_id():
    moments = outgoing(3)
    results = bulk_results(
        moments,
        successful=[{"sf__Id": "a0X3", "sf__Created": "false", "Deployteq_Id__c": "3"}],
        failed=[{"sf__Id": "", "sf__Error": "STRING_TOO_LONG:too long:Name --", "Deployteq_Id__c": "1"}],
    )
    assert [r.success for r in results] == [False, True, True]
    assert results[0].status_code == "STRING_TOO_LONG"
    assert results[2].record_id == "a0X3" and results[2].created is False
    assert results[1].record_id is None  # not in either list: processed, id unknown


# -- backlog figures ------------------------------------------------------------------------------------


def test_backlog_figures_give_size_split_and_oldest_age():
    moments = outgoing(2) + outgoing(1, CONTACT_OBJECT, start=3)
    figures = backlog_figures(moments, T0 + timedelta(hours=2))
    assert (figures["size"], figures["to_leads"], figures["to_contacts"]) == (3, 2, 1)
    assert figures["oldest_age_seconds"] == 7199
    assert backlog_figures([], T0)["oldest_age_seconds"] is None


def test_format_age_reads_naturally():
    assert format_age(None) == "-"
    assert format_age(42) == "42 s"
    assert format_age(750) == "12 min 30 s"
    assert format_age(3 * 3600 + 300) == "3 h 05 min"
    assert format_age(90_000) == "1 d 01 h"


def test_triage_agrees_with_decide_without_hashing_what_was_never_sent():
    fresh = row()
    already_sent = sent(row())
    changed_since_sent = replace(sent(row()), open_count=7)
    refused = replace(row(), failed_hash=decide(row()).payload_hash, attempts=DEFAULT_MAX_ATTEMPTS)
    for moment in (fresh, already_sent, changed_since_sent, refused, row(sf_lead_id=None)):
        decided, triaged = decide(moment), triage(moment)
        if isinstance(decided, Outgoing):
            assert triaged == Sendable(moment, decided.target)
        else:
            assert triaged == decided
