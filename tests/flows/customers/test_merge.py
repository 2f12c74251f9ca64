from datetime import datetime, timedelta, timezone

from deployteq_salesforce.flows.customers.merge import CustomerState, IncomingRecord, plan_customer_writes

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def lead(sf_id, email, minutes=0, **kw):
    values = {"email": email, "first_name": kw.pop("first_name", "Lead " + sf_id)}
    return IncomingRecord("Lead", sf_id, T0 + timedelta(minutes=minutes), email.strip().lower() if email else None, values, **kw)


def contact(sf_id, email, minutes=0, **kw):
    values = {"email": email, "first_name": kw.pop("first_name", "Contact " + sf_id)}
    return IncomingRecord("Contact", sf_id, T0 + timedelta(minutes=minutes), email.strip().lower() if email else None, values, **kw)


def written(plan):
    return [c for c in plan.to_write]


def test_id_mode_new_records_become_customers_with_status():
    plan = plan_customer_writes([lead("L1", "a@x.nl"), contact("C1", "a@x.nl")], [], unique_field="id")
    rows = written(plan)
    assert {(c.sf_lead_id, c.sf_contact_id, c.status) for c in rows} == {("L1", None, "Prospect"), (None, "C1", "Klant")}
    assert [o.action for o in plan.outcomes] == ["inserted", "inserted"]


def test_id_mode_older_version_is_skipped():
    existing = CustomerState(1, {"email": "a@x.nl", "first_name": "New"}, sf_lead_id="L1", sf_system_modstamp=T0 + timedelta(minutes=5), status="Prospect")
    plan = plan_customer_writes([lead("L1", "a@x.nl", minutes=1, first_name="Old")], [existing], unique_field="id")
    assert plan.outcomes[0].action == "skipped"
    assert existing.values["first_name"] == "New"
    assert not existing.touched


def test_id_mode_converted_lead_does_not_steal_contact_id():
    existing_contact = CustomerState(7, {"email": "a@x.nl"}, sf_contact_id="C1", status="Klant")
    plan = plan_customer_writes(
        [lead("L1", "a@x.nl", is_converted=True, converted_contact_id="C1")], [existing_contact], unique_field="id"
    )
    new = [c for c in plan.to_write if c.customer_id is None][0]
    assert new.sf_lead_id == "L1" and new.sf_contact_id is None


def test_email_mode_contact_overwrites_lead_customer_and_keeps_lead_id():
    existing = CustomerState(1, {"email": "A@x.nl", "first_name": "Lead name"}, sf_lead_id="L1", status="Prospect", sf_system_modstamp=T0)
    plan = plan_customer_writes([contact("C1", " a@X.nl ", minutes=3, first_name="Contact name")], [existing], unique_field="email")
    assert plan.outcomes[0].action == "merged"
    assert (existing.sf_lead_id, existing.sf_contact_id, existing.status) == ("L1", "C1", "Klant")
    assert existing.values["first_name"] == "Contact name"


def test_email_mode_converted_lead_after_its_contact_does_not_overwrite():
    existing = CustomerState(1, {"email": "a@x.nl", "first_name": "Contact name"}, sf_contact_id="C1", status="Klant", sf_system_modstamp=T0)
    converted = lead("L1", "a@x.nl", minutes=9, first_name="Stale lead", is_converted=True, converted_contact_id="C1")
    plan = plan_customer_writes([converted], [existing], unique_field="email")
    assert plan.outcomes[0].action == "merged"
    assert existing.values["first_name"] == "Contact name"
    assert (existing.sf_lead_id, existing.sf_contact_id, existing.status) == ("L1", "C1", "Klant")


def test_email_mode_converted_lead_before_its_contact_prelinks_contact_id():
    plan = plan_customer_writes(
        [lead("L1", "a@x.nl", is_converted=True, converted_contact_id="C1"), contact("C1", "b@x.nl", minutes=1)],
        [],
        unique_field="email",
    )
    rows = written(plan)
    assert len(rows) == 1, "the contact finds the lead's customer by the pre-linked contact id"
    assert (rows[0].sf_lead_id, rows[0].sf_contact_id, rows[0].status, rows[0].values["email"]) == ("L1", "C1", "Klant", "b@x.nl")


def test_email_mode_duplicate_addresses_in_one_batch_latest_wins_and_loser_recorded():
    plan = plan_customer_writes(
        [lead("L2", "dup@x.nl", minutes=5, first_name="Newest"), lead("L1", "DUP@x.nl", minutes=1, first_name="Oldest")],
        [],
        unique_field="email",
    )
    rows = written(plan)
    assert len(rows) == 1
    assert rows[0].sf_lead_id == "L2" and rows[0].values["first_name"] == "Newest"
    assert [(loser.sf_id, loser.winner_id) for loser in plan.losers] == [("L1", "L2")]


def test_email_mode_duplicate_tie_is_broken_by_id_whatever_the_input_order():
    a = lead("L1", "dup@x.nl", minutes=5, first_name="One")
    b = lead("L2", "dup@x.nl", minutes=5, first_name="Two")
    for batch in ([a, b], [b, a]):
        rows = written(plan_customer_writes(batch, [], unique_field="email"))
        assert rows[0].sf_lead_id == "L2"


def test_email_mode_record_without_email_is_an_error_and_batch_goes_on():
    plan = plan_customer_writes([lead("L1", None), lead("L2", "ok@x.nl")], [], unique_field="email")
    actions = {o.sf_id: o.action for o in plan.outcomes}
    assert actions == {"L1": "error", "L2": "inserted"}
    assert "e-mail" in [o for o in plan.outcomes if o.sf_id == "L1"][0].reason


def test_email_mode_lead_with_address_of_contact_leaves_contact_data_alone():
    existing = CustomerState(1, {"email": "a@x.nl", "first_name": "Contact"}, sf_contact_id="C1", status="Klant", sf_system_modstamp=T0)
    plan = plan_customer_writes([lead("L9", "a@x.nl", minutes=30, first_name="Lead")], [existing], unique_field="email")
    assert existing.values["first_name"] == "Contact" and existing.sf_lead_id == "L9"
    assert plan.outcomes[0].action == "merged"


def test_email_change_onto_anothers_address_is_refused_with_reason():
    one = CustomerState(1, {"email": "one@x.nl"}, sf_lead_id="L1", status="Prospect")
    two = CustomerState(2, {"email": "two@x.nl"}, sf_lead_id="L2", status="Prospect")
    plan = plan_customer_writes([lead("L1", "two@x.nl", minutes=1)], [one, two], unique_field="email")
    assert plan.outcomes[0].action == "error"
    assert "already belongs" in plan.outcomes[0].reason
    assert one.values["email"] == "one@x.nl"


def test_deleted_contact_marks_customer_and_merge_names_master():
    existing = CustomerState(1, {"email": "a@x.nl"}, sf_contact_id="C1", status="Klant")
    plan = plan_customer_writes(
        [contact("C1", "a@x.nl", minutes=1, is_deleted=True, master_record_id="C2")], [existing], unique_field="id"
    )
    assert plan.outcomes[0].action == "deleted"
    assert existing.sf_deleted and existing.sf_merged_into == "C2"


def test_deleted_lead_of_contact_owned_customer_keeps_customer_live():
    existing = CustomerState(1, {"email": "a@x.nl"}, sf_lead_id="L1", sf_contact_id="C1", status="Klant")
    plan = plan_customer_writes([lead("L1", "a@x.nl", is_deleted=True)], [existing], unique_field="email")
    assert plan.outcomes[0].action == "skipped"
    assert not existing.sf_deleted


def test_undeleted_record_comes_back_live():
    existing = CustomerState(1, {"email": "a@x.nl"}, sf_lead_id="L1", status="Prospect", sf_deleted=True, sf_system_modstamp=T0)
    plan_customer_writes([lead("L1", "a@x.nl", minutes=2)], [existing], unique_field="id")
    assert existing.sf_deleted is False
