"""The soak's end-state rules (include/soak/checks.py) on small hand-made states."""

from __future__ import annotations

from deployteq_salesforce.flows.customers.config import load_objects_config
from include.soak import checks

FLAG = "Sync_to_Deployteq__c"
OBJECTS = {o.sobject: o for o in load_objects_config({"objects": [
    {"sobject": "Lead", "unique_field": "email", "sync_flag_field": FLAG, "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"}]},
    {"sobject": "Contact", "unique_field": "email", "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"}]},
]}).objects}
STAMP = "2026-01-01T00:00:00.000+0000"


def lead(record_id, first="Anna", email=None, **fields):
    return {"Id": record_id, "Email": email or f"{record_id}@x.nl", "FirstName": first, "SystemModstamp": STAMP,
            "IsDeleted": False, "IsConverted": False, FLAG: False, **fields}


def customer(record_id, first="Anna", email=None, **fields):
    return {"sf_lead_id": record_id, "sf_contact_id": None, "email": email or f"{record_id}@x.nl",
            "email_key": (email or f"{record_id}@x.nl").lower(), "first_name": first, "sf_deleted": False, **fields}


def test_busiest_rolling_hour_counts_requests_within_any_sixty_minutes():
    times = [0, 100, 200, 3650, 3700, 3750, 3799]
    assert checks.max_requests_rolling_hour(times) == 5  # 200 .. 3799: the hour ending at 3799 s
    assert checks.max_requests_rolling_hour(times, until=3700) == 3


def test_requests_while_blocked_counts_only_those_that_arrived_blocked():
    log = [{"blocked": False}, {"blocked": False}, {"blocked": True}, {"blocked": True}]
    assert checks.requests_while_blocked(log) == 2


def test_customers_lost_stale_duplicated_deleted_and_flags_are_each_found():
    records = {"Lead": [lead("L1"), lead("L2", first="New"), lead("L3"), lead("L4", IsDeleted=True), lead("L5", **{FLAG: True}),
                        lead("L6", IsConverted=True)],
               "Contact": [{**lead("C1"), "IsConverted": None}]}
    customers = [customer("L2", first="Old"), customer("L3"), customer("L3", email="other@x.nl"), customer("L4"),
                 customer("L5"), {**customer(None, email="C1@x.nl"), "sf_contact_id": "C1"}]
    result = checks.check_customers(OBJECTS, records, customers)
    assert result.lost == ["Lead L1"]
    assert [s.split(":")[0] for s in result.stale] == ["Lead L2"]
    assert result.duplicated == ["Lead L3 in 2 customers"]
    assert result.not_marked_deleted == ["Lead L4"]
    assert result.flags_not_reset == ["Lead L5"]  # the converted L6 belongs to its contact now: not counted


def test_contact_moments_missing_stale_or_twice_in_salesforce():
    moments = [{"contact_moment_id": m, "open_count": 1, "click_count": 0, "sf_lead_id": "L1", "sf_contact_id": None}
               for m in (1, 2, 3)] + [{"contact_moment_id": 4, "open_count": 0, "click_count": 0, "sf_lead_id": None,
                                       "sf_contact_id": None}]
    salesforce = [{"Deployteq_Id__c": "1", "Open_Count__c": 1, "Click_Count__c": 0},
                  {"Deployteq_Id__c": "1", "Open_Count__c": 1, "Click_Count__c": 0},
                  {"Deployteq_Id__c": "2", "Open_Count__c": 0, "Click_Count__c": 0}]
    result = checks.check_contact_moments(moments, salesforce)
    assert result.sent_twice == ["contact moment 1: 2 Salesforce records"]
    assert [line.split(":")[0] for line in result.lost] == ["contact moment 2", "contact moment 3"]  # 4 has no id


def test_link_rows_must_match_live_records_and_leave_no_deleted_ones():
    records = [{"Id": "A1", "Name": "New"}, {"Id": "A2", "Name": "Same"}, {"Id": "A3", "Name": "Gone", "IsDeleted": True}]
    rows = {"A1": {"name": "Old"}, "A2": {"name": "Same"}, "A3": {"name": "Gone"}, "A4": {"name": "Hard-deleted"}}
    problems = checks.check_link_rows("Account", records, rows, {"Name": "name"})
    assert [p.split(":")[0] for p in problems] == ["Account A1", "Account A3", "Account A4"]

