"""record_hasher and read_again_hasher: what the read after a flag reset compares before mapping (core/flag_reset.py)."""

from deployteq_salesforce.core.flag_reset import read_again_hasher, record_hasher

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


READ = ["Email", "FirstName", "IsDeleted", "SystemModstamp", "Sync_to_Deployteq__c"]
TYPES = {"Email": "email", "FirstName": "string", "IsDeleted": "boolean", "SystemModstamp": "datetime",
         "Sync_to_Deployteq__c": "boolean"}


def _read_again_hasher(*, mapped=(), config=None, field_types=TYPES):
    return read_again_hasher(READ, flag_field="Sync_to_Deployteq__c", mapped=mapped,
                             config=config or {"mapping": "v1"}, field_types=field_types)


def test_read_again_hasher_ignores_what_the_flag_reset_changes():
    hash_record = _read_again_hasher()
    reset = {**RECORD, "SystemModstamp": "2026-12-05T10:00:05.000+0000", "Sync_to_Deployteq__c": False}
    assert hash_record(reset) == hash_record(RECORD)
    assert hash_record({**RECORD, "Email": "b@example.nl"}) != hash_record(RECORD)


def test_read_again_hasher_keeps_a_mapped_flag_or_modstamp_and_follows_config_and_types():
    reset = {**RECORD, "SystemModstamp": "2026-12-05T10:00:05.000+0000"}
    assert _read_again_hasher(mapped={"SystemModstamp"})(reset) != _read_again_hasher(mapped={"SystemModstamp"})(RECORD)
    assert _read_again_hasher(config={"mapping": "v2"})(RECORD) != _read_again_hasher()(RECORD)
    assert _read_again_hasher(field_types={**TYPES, "FirstName": "picklist"})(RECORD) != _read_again_hasher()(RECORD)


def test_a_value_messagepack_cannot_write_is_hashed_by_its_repr():
    hash_record = record_hasher(FIELDS, b"mapping")
    odd = {**RECORD, "FirstName": complex(1, 2)}  # no MessagePack form
    assert hash_record(odd) == hash_record(dict(odd)) != hash_record({**odd, "FirstName": complex(2, 1)})
    assert hash_record({**RECORD, "FirstName": 1}) != hash_record({**RECORD, "FirstName": "1"})
