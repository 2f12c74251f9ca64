"""Admin operations (conversion, merge, edits, demo data) and state that survives a restart."""

from __future__ import annotations

from include.salesforce_emulator.demo_data import build_demo_data
from include.salesforce_emulator.process import start_emulator
from tests.emulator.conftest import salesforce_client


def test_convert_lead_creates_contact_and_account(sf, emulator):
    [lead_id] = emulator.seed("Lead", [{"FirstName": "Femke", "LastName": "Bakker", "Company": "Molen BV",
                                         "Email": "femke@example.nl", "City": "Utrecht", "Newsletter__c": True}])
    result = emulator.convert_lead(lead_id)
    lead = sf.query(f"SELECT IsConverted, ConvertedContactId, ConvertedAccountId, ConvertedDate, Status, "
                    f"ConvertedContact.Email FROM Lead WHERE Id = '{lead_id}'")["records"][0]
    assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
    assert (lead["ConvertedContactId"], lead["ConvertedAccountId"]) == (result["contact_id"], result["account_id"])
    assert lead["ConvertedDate"] == emulator.now()[:10]
    assert lead["ConvertedContact"]["Email"] == "femke@example.nl"
    contact = sf.Contact.get(result["contact_id"])
    assert (contact["Name"], contact["MailingCity"], contact["Newsletter__c"]) == ("Femke Bakker", "Utrecht", True)
    assert sf.Account.get(result["account_id"])["Name"] == "Molen BV"


def test_convert_lead_into_an_existing_contact(sf, emulator):
    [account_id] = emulator.seed("Account", [{"Name": "Bestaand BV"}])
    [contact_id] = emulator.seed("Contact", [{"LastName": "Smit", "AccountId": account_id}])
    [lead_id] = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}])
    result = emulator.convert_lead(lead_id, contact_id=contact_id, account_id=account_id)
    assert result == {"contact_id": contact_id, "account_id": account_id}
    assert len(emulator.records("Contact")) == 1


def test_conversion_links_campaign_members_to_the_contact(emulator):
    [campaign] = emulator.seed("Campaign", [{"Name": "Webinar"}])
    [lead_id] = emulator.seed("Lead", [{"LastName": "Smit", "Company": "X"}])
    emulator.seed("CampaignMember", [{"CampaignId": campaign, "LeadId": lead_id}])
    contact_id = emulator.convert_lead(lead_id)["contact_id"]
    assert emulator.records("CampaignMember")[0]["ContactId"] == contact_id


def test_merge_soft_deletes_losers_with_master_record_id_and_moves_children(sf, emulator):
    master, loser = emulator.seed("Contact", [{"LastName": "Master"}, {"LastName": "Loser"}])
    emulator.seed("ClangContactContactMoment__c", [{"Deployteq_Id__c": "m1", "Contact__c": loser}])
    emulator.merge(master, [loser])
    rows = {r["Id"]: r for r in sf.query_all("SELECT Id, IsDeleted, MasterRecordId FROM Contact",
                                             include_deleted=True)["records"]}
    assert (rows[loser]["IsDeleted"], rows[loser]["MasterRecordId"]) == (True, master)
    assert emulator.records("ClangContactContactMoment__c")[0]["Contact__c"] == master


def test_admin_update_is_not_counted_and_bumps_stamps(emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "A", "Company": "X", "SystemModstamp": "2024-01-01T00:00:00Z"}])
    emulator.advance_clock(60)
    before = emulator.now()
    emulator.update("Lead", [{"Id": lead_id, "Sync_to_Deployteq__c": True}])
    record = emulator.records("Lead")[0]
    # whole seconds: the update may fall in the second after ``before``
    assert record["Sync_to_Deployteq__c"] is True and before <= record["SystemModstamp"] <= emulator.now()
    assert emulator.counters()["total"] == 0


def test_clock_moves_timestamps_of_new_records(sf, emulator):
    before = emulator.now()
    emulator.advance_clock(7 * 86400)
    created = sf.Lead.create({"LastName": "Later", "Company": "X"})
    assert sf.Lead.get(created["id"])["CreatedDate"][:10] > before[:10]


def test_demo_data_is_deterministic_and_realistic():
    first, second = build_demo_data(), build_demo_data()
    assert [r["Email"] for r in first["Lead"]] == [r["Email"] for r in second["Lead"]]
    assert len(first["Lead"]) >= 300 and len(first["Contact"]) >= 200
    lead_emails = {r["Email"] for r in first["Lead"] if not r.get("IsConverted")}
    assert lead_emails & {r["Email"] for r in first["Contact"]}  # some people are both lead and contact
    assert any(r.get("IsConverted") for r in first["Lead"])
    assert any(r["Sync_to_Deployteq__c"] for r in first["Lead"]) and any(r["SyncWithClang__c"] for r in first["Contact"])


def test_seed_demo_loads_every_object(sf, emulator):
    counts = emulator.seed_demo()
    assert counts["Lead"] == sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    converted = sf.query("SELECT ConvertedContact.LastName FROM Lead WHERE IsConverted = true")["records"]
    assert converted and all(r["ConvertedContact"]["LastName"] for r in converted)


def test_state_survives_a_restart(tmp_path):
    with start_emulator(tmp_path, hourly_limit=50) as first:
        lead_id = salesforce_client(first.info).Lead.create({"LastName": "Blijft", "Company": "X"})["id"]
        first.client.advance_clock(3600)
        clock_before = first.client.now()
    with start_emulator(tmp_path) as second:
        assert second.client.counters()["total"] == 1
        assert second.client.limits_state()["hourly_limit"] == 50
        assert second.client.now() >= clock_before
        assert second.info["session_id"] == first.info["session_id"]
        assert salesforce_client(second.info).Lead.get(lead_id)["LastName"] == "Blijft"


def test_a_memory_only_org_serves_as_usual_writes_no_records_and_restarts_empty(tmp_path):
    with start_emulator(tmp_path, memory_only=True) as first:
        sf = salesforce_client(first.info)
        lead_id = sf.Lead.create({"LastName": "Vluchtig", "Company": "X"})["id"]
        sf.Lead.update(lead_id, {"LastName": "Nog steeds"})
        assert sf.Lead.get(lead_id)["LastName"] == "Nog steeds"
        assert first.client.counters()["total"] == 3
    assert not (tmp_path / "state.sqlite3").exists()
    with start_emulator(tmp_path, memory_only=True) as second:
        assert second.client.counters()["total"] == 0
        assert salesforce_client(second.info).query("SELECT Id FROM Lead")["totalSize"] == 0
