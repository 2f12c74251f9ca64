"""getUpdated / getDeleted (sobjects/{T}/updated/ and deleted/) with Salesforce's windows."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest


def _now(emulator) -> datetime:
    return datetime.strptime(emulator.now(), "%Y-%m-%dT%H:%M:%S.000%z")


def test_updated_lists_records_changed_in_the_window(sf, emulator):
    now = _now(emulator)
    old, recent = emulator.seed("Lead", [
        {"LastName": "Old", "Company": "X", "SystemModstamp": (now - timedelta(days=3)).isoformat()},
        {"LastName": "Recent", "Company": "X", "SystemModstamp": (now - timedelta(hours=2)).isoformat()},
    ])
    result = sf.Lead.updated(now - timedelta(days=1), now + timedelta(minutes=5))
    assert result["ids"] == [recent]
    covered = result["latestDateCovered"]
    assert covered.endswith(":00.000+0000") and covered[:16] >= now.strftime("%Y-%m-%dT%H:%M")


def test_updated_refuses_a_start_more_than_30_days_back(sf, emulator):
    now = _now(emulator)
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.updated(now - timedelta(days=31), now)
    assert error.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_deleted_lists_soft_and_hard_deletes_with_dates(sf, emulator):
    now = _now(emulator)
    lead_id, kept = emulator.seed("Lead", [{"LastName": "Gone", "Company": "X"}, {"LastName": "Kept", "Company": "X"}])
    emulator.delete([lead_id])
    emulator.advance_clock(120)  # the current minute is not covered yet, as in Salesforce
    result = sf.Lead.deleted(now - timedelta(days=1), now + timedelta(minutes=5))
    assert [r["id"] for r in result["deletedRecords"]] == [lead_id]
    assert result["deletedRecords"][0]["deletedDate"].endswith(".000+0000")
    assert set(result) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}


def test_hard_deleted_campaign_members_appear_in_deleted(sf, emulator):
    now = _now(emulator)
    [campaign] = emulator.seed("Campaign", [{"Name": "Nieuwsbrief"}])
    [lead] = emulator.seed("Lead", [{"LastName": "A", "Company": "X"}])
    [member] = emulator.seed("CampaignMember", [{"CampaignId": campaign, "LeadId": lead}])
    sf.CampaignMember.delete(member)
    emulator.advance_clock(120)
    assert emulator.records("CampaignMember", include_deleted=True) == []
    result = sf.CampaignMember.deleted(now - timedelta(days=1), now + timedelta(minutes=5))
    assert [r["id"] for r in result["deletedRecords"]] == [member]


def test_the_current_minute_is_not_covered_yet(sf, emulator):
    emulator.advance_clock(61 - _now(emulator).second)  # early in a minute: it cannot end during the test
    now = _now(emulator)
    [lead_id] = emulator.seed("Lead", [{"LastName": "Gone", "Company": "X"}])
    emulator.delete([lead_id])
    result = sf.Lead.deleted(now - timedelta(days=1), now + timedelta(minutes=5))
    assert result["deletedRecords"] == []
    assert result["latestDateCovered"].endswith(":00.000+0000") and result["latestDateCovered"] <= emulator.now()


def test_deleted_refuses_a_start_more_than_15_days_back(sf, emulator):
    now = _now(emulator)
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.deleted(now - timedelta(days=16), now)
    assert error.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_undelete_removes_the_record_from_deleted(sf, emulator):
    now = _now(emulator)
    [lead_id] = emulator.seed("Lead", [{"LastName": "Back", "Company": "X"}])
    emulator.delete([lead_id])
    emulator.undelete([lead_id])
    assert sf.Lead.deleted(now - timedelta(days=1), now + timedelta(minutes=5))["deletedRecords"] == []
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 1
