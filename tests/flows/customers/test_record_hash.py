"""record_hasher: what the read after a flag reset compares before mapping (flows/customers/store.py)."""

from deployteq_salesforce.flows.customers.store import record_hasher

FIELDS = ["Id", "Email", "FirstName", "IsDeleted"]
RECORD = {"Id": "00Q000000000001AAA", "Email": "a@example.nl", "FirstName": "Sanne", "IsDeleted": False,
          "SystemModstamp": "2026-12-05T10:00:00.000+0000", "Sync_to_Deployteq__c": True}


def test_fields_left_out_of_the_hash_do_not_change_it():
    hash_record = record_hasher(FIELDS, b"mapping")
    reset = {**RECORD, "SystemModstamp": "2026-12-05T10:00:05.000+0000", "Sync_to_Deployteq__c": False}
    assert hash_record(reset) == hash_record(RECORD)


def test_a_changed_value_a_missing_field_or_another_mapping_changes_it():
    hash_record = record_hasher(FIELDS, b"mapping")
    assert hash_record({**RECORD, "FirstName": "Daan"}) != hash_record(RECORD)
    assert hash_record({**RECORD, "FirstName": None}) != hash_record(RECORD)
    missing = {k: v for k, v in RECORD.items() if k != "FirstName"}
    assert hash_record(missing) == hash_record({**RECORD, "FirstName": None})  # read as null, like the mapping
    assert record_hasher(FIELDS, b"another mapping")(RECORD) != hash_record(RECORD)
    assert record_hasher(["Id"], b"mapping")(RECORD) != hash_record(RECORD)
