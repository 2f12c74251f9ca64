"""In-memory records with Salesforce's write rules, written through to SQLite.

Records are never changed in place: every write stores a new dict, so an open query cursor keeps
the snapshot it was computed from.  Writes happen inside a ``Txn`` that can be rolled back
(composite ``allOrNone``) and is persisted on commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from .db import StateDB
from .ids import MalformedId, make_id, to_18
from .limits import Clock
from .schema import API_USER_ID, BY_PREFIX, OBJECTS, SALES_USER_ID, USER, SObjectDef, compound_name
from .values import (BadValue, RecordError, check_semantics, coerce, has_value_rules, length_limit,
                     normalise_reference)

_COMPOUND_NAME_OBJECTS = {"Lead", "Contact", "User"}
# every field of a new record: null, or its default
_BLANK_RECORDS = {name: {**dict.fromkeys(sdef.field_names), **sdef.defaults, "IsDeleted": False}
                  for name, sdef in OBJECTS.items()}
# per object, the fields whose written values _check_record looks at: references, and those check_semantics has a
# rule for (the others, such as booleans, numbers and datetimes, it skips without a look)
_CHECKED_FIELDS = {name: frozenset(f.name for f in sdef.fields.values() if f.type == "reference" or has_value_rules(f))
                   for name, sdef in OBJECTS.items()}
# per object, the length of each text field whose only value rule is its length (see _check_fields)
_LENGTH_LIMITS = {name: {f.name: limit for f in sdef.fields.values() if (limit := length_limit(f))}
                  for name, sdef in OBJECTS.items()}
# types whose non-empty string values coerce stores as they are (ids are checked later, against the store)
PLAIN_TEXT_TYPES = frozenset({"string", "email", "phone", "url", "textarea", "picklist", "reference", "id"})
_NOT_WRITABLE_MESSAGE = (
    "Unable to create/update fields: {fields}. Please check the security settings of this field and "
    "verify that it is read/write for your profile or permission set."
)


class RequestError(Exception):
    """The whole request fails (HTTP status + Salesforce error body)."""

    def __init__(self, status: int, error_code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict]:
        error = {"message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            error["fields"] = self.fields
        return [error]


def parse_values(sdef: SObjectDef, raw: dict, *, strict_types: bool = True) -> dict:
    """Canonical field names and wire values of a JSON record body (``attributes`` ignored).

    Unknown fields and undeserialisable values fail the whole request, as in Salesforce.
    """
    values = {}
    fields, fields_lower = sdef.fields, sdef.fields_lower
    for key, value in raw.items():
        if key == "attributes":
            continue
        field = fields.get(key) or (fields_lower.get(key.lower()) if isinstance(key, str) else None)
        if field is None:
            raise RequestError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {sdef.name}")
        if value.__class__ is str and value and field.type in PLAIN_TEXT_TYPES:  # the common case, kept fast
            values[field.name] = value
            continue
        try:
            values[field.name] = coerce(field, value)
        except BadValue as bad:
            if not strict_types:
                raise RecordError(
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{field.display_label}: value not of required type: {value}",
                    [field.name],
                ) from None
            raise RequestError(
                400, "JSON_PARSER_ERROR", f"{bad} or request may be missing a required field at [line:1, column:1]"
            ) from None
    return values


def record_id_of(text: object) -> str:
    try:
        return to_18(text)  # type: ignore[arg-type]
    except MalformedId:
        raise RecordError("MALFORMED_ID", f"malformed id {text}", []) from None


class Txn:
    """Changes of one request: undo log for rollback, change set for persistence.

    ``undoable=False`` (a Bulk job, which keeps every row it wrote): no rollback, so no log at all when the database
    keeps no records either (a memory-only org: 0.06 s of CPU per 100,000 records written)."""

    def __init__(self, store: Store, user_id: str, *, undoable: bool = True):
        self.store = store
        self.user_id = user_id
        self.now = store.clock.now_wire()
        self._undo: dict[str, tuple[str, dict | None]] = {}
        self._tomb_undo: dict[str, tuple[str, str] | None] = {}
        self._logged = undoable or store.db.keeps_records

    def put(self, sobject: str, record: dict, indexes: list | None = None) -> None:
        """Store ``record``; ``indexes``: the unique indexes whose key it may change (default: all of its object's)."""
        if self._logged:
            record_id = record["Id"]
            if record_id not in self._undo:
                self._undo[record_id] = (sobject, self.store.records[sobject].get(record_id))
        self.store._put(sobject, record, indexes)

    def remove(self, sobject: str, record_id: str) -> None:
        if self._logged and record_id not in self._undo:
            self._undo[record_id] = (sobject, self.store.records[sobject].get(record_id))
        self.store._remove(sobject, record_id)

    def tombstone(self, record_id: str, sobject: str | None) -> None:
        if self._logged and record_id not in self._tomb_undo:
            self._tomb_undo[record_id] = self.store.tombstones.get(record_id)
        if sobject is None:
            self.store.tombstones.pop(record_id, None)
        else:
            self.store.tombstones[record_id] = (sobject, self.now)

    def mark_savepoint(self) -> tuple[dict, dict]:
        return dict(self._undo), dict(self._tomb_undo)

    def rollback(self) -> None:
        store = self.store
        for record_id, (sobject, previous) in self._undo.items():
            if previous is None:
                store._remove(sobject, record_id)
            else:
                store._put(sobject, previous)
        for record_id, previous in self._tomb_undo.items():
            if previous is None:
                store.tombstones.pop(record_id, None)
            else:
                store.tombstones[record_id] = previous
        self._undo.clear()
        self._tomb_undo.clear()

    def commit(self) -> None:
        store = self.store
        if store.db.keeps_records:
            self._save()
        store.db.set_meta("id_counter", store.id_counter)
        self._undo.clear()
        self._tomb_undo.clear()

    def _save(self) -> None:
        """Save the records and deletions changed to the database."""
        store = self.store
        saved, removed = [], []
        for record_id, (sobject, _previous) in self._undo.items():
            current = store.records[sobject].get(record_id)
            if current is None:
                removed.append(record_id)
            else:
                saved.append((sobject, current))
        if saved:
            store.db.save_records(saved)
        if removed:
            store.db.delete_records(removed)
        tomb_saved = [(i, *store.tombstones[i]) for i in self._tomb_undo if i in store.tombstones]
        tomb_removed = [i for i in self._tomb_undo if i not in store.tombstones]
        if tomb_saved:
            store.db.save_tombstones(tomb_saved)
        if tomb_removed:
            store.db.delete_tombstones(tomb_removed)


class Store:
    def __init__(self, db: StateDB, clock: Clock):
        self.db = db
        self.clock = clock
        self.records: dict[str, dict[str, dict]] = {name: {} for name in OBJECTS}
        self.tombstones: dict[str, tuple[str, str]] = {}
        self._unique: dict[str, list[tuple[tuple[str, ...], str, dict]]] = {}
        self.validation_rules: list[dict] = []
        self._load()

    # --- loading and indexes -------------------------------------------------------------------
    def _reset_indexes(self) -> None:
        self._unique = {}
        for sdef in OBJECTS.values():
            indexes = [((name,), "external_id", {}) for name in sdef.external_ids]
            indexes += [(fields, message, {}) for fields, message in sdef.unique_together]
            self._unique[sdef.name] = indexes

    def _load(self) -> None:
        self._reset_indexes()
        self.id_counter = int(self.db.get_meta("id_counter", 1000))
        self.validation_rules = self.db.get_meta("validation_rules", [])
        for sobject, record in self.db.load_records():
            self._put(sobject, record)
        self.tombstones = {i: (s, d) for i, s, d in self.db.load_tombstones()}
        if not self.records["User"]:
            self._create_users()

    def _create_users(self) -> None:
        txn = Txn(self, API_USER_ID)
        for user_id, first, last in ((API_USER_ID, "Integration", "User"), (SALES_USER_ID, "Sanne", "de Vries")):
            username = f"{first}.{last}".lower().replace(" ", "") + "@example.com"
            self.seed_record(txn, USER, {"Id": user_id, "FirstName": first, "LastName": last,
                                         "Username": username, "Email": username})
        txn.commit()

    def wipe(self) -> None:
        self.records = {name: {} for name in OBJECTS}
        self.tombstones = {}
        self.validation_rules = []
        self._reset_indexes()
        self._create_users()

    @staticmethod
    def _unique_key(record: dict, fields: tuple[str, ...]):
        key = []
        for name in fields:
            value = record.get(name)
            if value is None:
                return None
            key.append(value.lower() if isinstance(value, str) else value)
        return tuple(key)

    def _put(self, sobject: str, record: dict, indexes: list | None = None) -> None:
        table = self.records[sobject]
        record_id = record["Id"]
        if indexes is None:
            indexes = self._unique.get(sobject)
        if indexes:
            previous = table.get(record_id)
            live = not record.get("IsDeleted")
            for fields, _message, index in indexes:
                key = self._unique_key(record, fields) if live else None
                if previous is not None:  # its entry goes, unless the record keeps it (as an update mostly does)
                    old_key = self._unique_key(previous, fields)
                    if old_key is not None and old_key != key and index.get(old_key) == record_id:
                        del index[old_key]
                if key is not None:
                    index[key] = record_id
        table[record_id] = record

    def _unindex(self, indexes, record: dict) -> None:
        for fields, _message, index in indexes:
            key = self._unique_key(record, fields)
            if key is not None and index.get(key) == record["Id"]:
                del index[key]

    def _remove(self, sobject: str, record_id: str) -> None:
        previous = self.records[sobject].pop(record_id, None)
        if previous is not None and self._unique.get(sobject):
            self._unindex(self._unique[sobject], previous)

    # --- reading -------------------------------------------------------------------------------
    def lookup(self, sobject: str, record_id: str) -> dict | None:
        table = self.records.get(sobject)
        return table.get(record_id) if table is not None and record_id else None

    def find(self, record_id: str) -> tuple[SObjectDef, dict] | None:
        sdef = BY_PREFIX.get(record_id[:3]) if isinstance(record_id, str) else None
        if sdef is None:
            return None
        record = self.records[sdef.name].get(record_id)
        return (sdef, record) if record is not None else None

    def rows(self, sobject: str, include_deleted: bool) -> list[dict]:
        table = self.records[sobject].values()
        return list(table) if include_deleted else [r for r in table if not r["IsDeleted"]]

    def find_by_external_id(self, sdef: SObjectDef, field: str, value) -> str | None:
        if field == "Id":
            record = self.records[sdef.name].get(value)
            return value if record is not None and not record["IsDeleted"] else None
        for fields, _message, index in self._unique[sdef.name]:
            if fields == (field,):
                return index.get((value.lower() if isinstance(value, str) else value,))
        return None

    def new_id(self, sdef: SObjectDef) -> str:
        self.id_counter += 1
        return make_id(sdef.key_prefix, self.id_counter)

    # --- rules ---------------------------------------------------------------------------------
    def _check_record(self, sdef: SObjectDef, record: dict, changed: Iterable[str]) -> None:
        """Required fields, value rules, references, uniqueness and validation rules of one record."""
        checked = filter(_CHECKED_FIELDS[sdef.name].__contains__, changed)
        self._check_fields(sdef, record, checked, self._unique.get(sdef.name, ()))

    def _check_fields(self, sdef: SObjectDef, record: dict, checked: Iterable[str], unique_indexes,
                      unowned: list | None = None) -> None:
        """``_check_record`` given the changed fields that have value rules or are references (in the order they
        were written) and the unique indexes the record may clash with. ``unowned`` (if given) gets the (index, key)
        of each of the record's keys that no record holds in its index."""
        missing = []  # a loop: a comprehension is a function call of its own (Python 3.11), per record written
        for name in sdef.required_fields:
            if record.get(name) in (None, ""):
                missing.append(name)
        if sdef.name == "CampaignMember" and not record.get("LeadId") and not record.get("ContactId"):
            missing.append("LeadId")
        if missing:
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                              missing)
        fields, limits = sdef.fields, _LENGTH_LIMITS[sdef.name]
        for name in checked:
            value = record[name]
            if value.__class__ is str and len(value) <= limits.get(name, -1):
                continue  # text within the length that is its only rule: check_semantics would pass it
            field = fields[name]
            if field.type == "reference":
                if value is not None:
                    record[name] = self._check_reference(field, value)
            elif isinstance(value, str):  # check_semantics checks text only: skip the call for other values
                check_semantics(field, value)
        for unique_fields, message, index in unique_indexes:
            key = self._unique_key(record, unique_fields)
            if key is None:
                continue
            owner = index.get(key)
            if owner is None:
                if unowned is not None:
                    unowned.append((index, key))
            elif owner != record["Id"]:
                if message == "external_id":
                    field_name = unique_fields[0]
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {field_name} duplicates value on record with id: {owner}",
                        [field_name],
                    )
                raise RecordError("DUPLICATE_VALUE", message, [])
        for rule in self.validation_rules:
            if rule["sobject"] == sdef.name and record.get(rule["field"]) == rule["equals"]:
                raise RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule["message"], [rule["field"]])

    def _check_reference(self, field, value: str) -> str:
        target = OBJECTS[field.reference_to]
        table = self.records[target.name]
        # Fast path: an id exactly as stored (18 characters, right checksum) is already normal, so one lookup
        # settles it; anything else (15 characters, another checksum case, unknown) takes the full checks.
        related = table.get(value) if value.__class__ is str and value[:3] == target.key_prefix else None
        if related is None:
            value = normalise_reference(field, value)
            if value[:3] != target.key_prefix:
                raise RecordError("FIELD_INTEGRITY_EXCEPTION",
                                  f"{field.display_label}: id value of incorrect type: {value}", [field.name])
            related = table.get(value)
        if related is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [field.name])
        if related.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [field.name])
        return value

    @staticmethod
    def _derive(sdef: SObjectDef, record: dict, now: str) -> None:
        if sdef.name in _COMPOUND_NAME_OBJECTS:
            record["Name"] = compound_name(record)
        elif sdef.name == "CampaignMember":
            responded = record.get("Status") == "Responded"
            record["HasResponded"] = responded
            if responded and not record.get("FirstRespondedDate"):
                record["FirstRespondedDate"] = now[:10]

    def _template(self, sdef: SObjectDef, user_id: str, now: str) -> dict:
        record = _BLANK_RECORDS[sdef.name].copy()
        record["CreatedDate"] = record["LastModifiedDate"] = record["SystemModstamp"] = now
        record["CreatedById"] = record["LastModifiedById"] = user_id
        if "OwnerId" in record:
            record["OwnerId"] = user_id
        return record

    # --- API writes (each raises RecordError for a per-record failure) ----------------------------
    def create(self, txn: Txn, sdef: SObjectDef, values: dict) -> str:
        if not sdef.createable:
            raise RecordError("INVALID_TYPE", f"Cannot create records of type {sdef.name}", [])
        not_createable = sdef.not_createable
        if not not_createable.isdisjoint(values):
            blocked = [name for name in values if name in not_createable]
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", _NOT_WRITABLE_MESSAGE.format(fields=", ".join(blocked)),
                              blocked)
        record = self._template(sdef, txn.user_id, txn.now)
        record.update(values)
        record["Id"] = self.new_id(sdef)
        self._derive(sdef, record, txn.now)
        self._check_record(sdef, record, values)
        txn.put(sdef.name, record)
        return record["Id"]

    def existing(self, sdef: SObjectDef | None, record_id: object) -> tuple[SObjectDef, dict]:
        """The live record for an id (of ``sdef`` if given), or the per-record error Salesforce gives."""
        # an id exactly as stored is already normal: look it up before normalising (the common case, kept fast)
        found = self.find(record_id) if record_id.__class__ is str and len(record_id) == 18 else None
        if found is None:
            record_id = record_id_of(record_id)
            found = self.find(record_id)
        if found is None or (sdef is not None and found[0].name != sdef.name):
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        found_def, record = found
        if record["IsDeleted"]:
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        return found_def, record

    def update(self, txn: Txn, sdef: SObjectDef | None, record_id: object, values: dict) -> str:
        sdef, current = self.existing(sdef, record_id)
        if sdef.name == "Lead" and current.get("IsConverted"):
            raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])
        if "Id" in values:  # the record's key, not a change (the caller's dict stays as it is)
            values = dict(values)
            del values["Id"]
        not_updateable = sdef.not_updateable
        if not not_updateable.isdisjoint(values):
            blocked = [name for name in values if name in not_updateable]
            raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", _NOT_WRITABLE_MESSAGE.format(fields=", ".join(blocked)),
                              blocked)
        record = dict(current)
        record.update(values)
        record["LastModifiedDate"] = record["SystemModstamp"] = txn.now
        record["LastModifiedById"] = txn.user_id
        self._derive(sdef, record, txn.now)
        self._check_record(sdef, record, values)
        txn.put(sdef.name, record)
        return record["Id"]

    def updater(self, txn: Txn, sdef: SObjectDef, names: list[str]) -> Callable[[object, dict], str]:
        """What ``update(txn, sdef, record_id, values)`` does, for the values of many rows written with the same fields
        (a Bulk update job's columns but Id, ``names``, without duplicates): what depends only on the fields is settled
        once here.

        A row whose id is a live record's exactly as stored and whose values hold every name, in that order, takes the
        per-job plan: the same steps as ``update`` in the same order, so the same record and first error. Any other row
        (an id to normalise, unknown or deleted, a converted lead, an empty cell) and every row of a job writing a
        field ``update`` refuses take ``update`` itself.
        """
        general = partial(self.update, txn, sdef)
        if "Id" in names or not sdef.not_updateable.isdisjoint(names):
            return general
        checked = [name for name in names if name in _CHECKED_FIELDS[sdef.name]]
        unique_indexes = self._unique.get(sdef.name, [])
        # An index on none of the job's fields keeps each record's key (no field _derive sets is in an index): _put
        # leaves it alone, and a key no record holds is claimed as _put would (see ``unowned``).
        changed_indexes = [entry for entry in unique_indexes if not set(entry[0]).isdisjoint(names)]
        table, width, now, user_id, sobject = self.records[sdef.name], len(names), txn.now, txn.user_id, sdef.name
        updates_converted_leads = sobject == "Lead"  # refused (CANNOT_UPDATE_CONVERTED_LEAD), by ``update``

        def update(record_id: object, values: dict) -> str:
            current = table.get(record_id)  # the one lookup: an id as stored (``update`` normalises any other)
            if (current is None or current["IsDeleted"] or len(values) != width
                    or (updates_converted_leads and current["IsConverted"])):
                return general(record_id, values)
            record = current.copy()
            record.update(values)
            record["LastModifiedDate"] = record["SystemModstamp"] = now
            record["LastModifiedById"] = user_id
            self._derive(sdef, record, now)
            unowned = []
            self._check_fields(sdef, record, checked, unique_indexes, unowned)
            txn.put(sobject, record, changed_indexes)
            for index, key in unowned:
                index[key] = record_id
            return record_id
        return update

    def upsert(self, txn: Txn, sdef: SObjectDef, id_field: str, values: dict) -> tuple[str, bool]:
        """Create or update by external id; the key value is taken from ``values``."""
        key_value = values.get(id_field)
        if key_value in (None, ""):
            raise RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{id_field}]", [id_field])
        if id_field == "Id":
            key_value = record_id_of(key_value)
        existing_id = self.find_by_external_id(sdef, id_field, key_value)
        if existing_id is None:
            if id_field == "Id":
                raise RecordError("NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {key_value}", [])
            return self.create(txn, sdef, values), True
        update_values = {k: v for k, v in values.items() if k != id_field}
        return self.update(txn, sdef, existing_id, update_values), False

    def upserter(self, txn: Txn, sdef: SObjectDef, id_field: str, names: list[str]) -> Callable[[dict], tuple[str, bool]]:
        """What ``upsert(txn, sdef, id_field, values)`` does, for the values of many rows written with the same fields
        (a Bulk job's columns, ``names``, without duplicates): what depends only on the fields is settled once here.

        A row whose values hold every name, in that order, takes the per-job plan: the same steps as ``upsert``
        (through ``create`` or ``update``) in the same order, so the same record, id and first error. Any other row,
        and every row of a job the plan does not cover (upsert by Id, a column create or update refuses, an Id
        column, another text type of key), takes ``upsert`` itself.
        """
        general = partial(self.upsert, txn, sdef, id_field)
        key_field = sdef.fields[id_field]
        changes = [name for name in names if name != id_field]  # what an update writes: the key stays as stored
        if (id_field == "Id" or "Id" in names or key_field.type != "string" or not sdef.createable
                or not sdef.not_createable.isdisjoint(names) or not sdef.not_updateable.isdisjoint(changes)):
            return general
        checked = _CHECKED_FIELDS[sdef.name]
        create_checked = [name for name in names if name in checked]
        update_checked = [name for name in changes if name in checked]
        # The key's own index cannot clash: a new record's key was just looked up and not found, an updated record
        # keeps the key the index has for it. Other unique indexes are checked.
        key_index = next(index for fields, _message, index in self._unique[sdef.name] if fields == (id_field,))
        other_indexes = [entry for entry in self._unique[sdef.name] if entry[0] != (id_field,)]
        table, width, now, user_id = self.records[sdef.name], len(names), txn.now, txn.user_id
        template = self._template(sdef, user_id, now)
        updates_converted_leads = sdef.name == "Lead"  # refused (CANNOT_UPDATE_CONVERTED_LEAD), by ``update``

        def upsert(values: dict) -> tuple[str, bool]:
            key_value = values.get(id_field)
            if len(values) != width or key_value.__class__ is not str or not key_value:  # (no key: upsert's error)
                return general(values)
            existing_id = key_index.get((key_value.lower(),))
            if existing_id is None:  # as ``create``
                record = template.copy()
                record.update(values)
                record["Id"] = self.new_id(sdef)
                checked_names = create_checked
            else:  # as ``update``
                current = table[existing_id]
                if updates_converted_leads and current.get("IsConverted"):
                    return general(values)
                record = current.copy()
                record.update(values)
                record[id_field] = current[id_field]
                record["LastModifiedDate"] = record["SystemModstamp"] = now
                record["LastModifiedById"] = user_id
                checked_names = update_checked
            self._derive(sdef, record, now)
            self._check_fields(sdef, record, checked_names, other_indexes)
            txn.put(sdef.name, record)
            return record["Id"], existing_id is None
        return upsert

    def delete(self, txn: Txn, sdef: SObjectDef | None, record_id: object, *, hard: bool = False) -> str:
        """Delete through the API; ``hard`` (Bulk ``hardDelete``) skips the recycle bin."""
        sdef, current = self.existing(sdef, record_id)
        if hard or sdef.name == "CampaignMember":  # not kept in the recycle bin
            txn.remove(sdef.name, current["Id"])
        else:
            record = dict(current)
            record["IsDeleted"] = True
            record["LastModifiedDate"] = record["SystemModstamp"] = txn.now
            record["LastModifiedById"] = txn.user_id
            txn.put(sdef.name, record)
        txn.tombstone(current["Id"], sdef.name)
        return current["Id"]

    # --- admin writes (no API rules, as if done in the UI or by a data load) -----------------------
    def seed_record(self, txn: Txn, sdef: SObjectDef, raw: dict) -> str:
        values = parse_values(sdef, raw)
        record = self._template(sdef, SALES_USER_ID, txn.now)
        record.update(values)
        if values.get("Id"):
            record["Id"] = to_18(values["Id"])
        else:
            record["Id"] = self.new_id(sdef)
        if "CreatedDate" in values and "LastModifiedDate" not in values:
            record["LastModifiedDate"] = values["CreatedDate"]
        if "SystemModstamp" not in values:
            record["SystemModstamp"] = max(record["LastModifiedDate"], record["CreatedDate"])
        self._derive(sdef, record, txn.now)
        txn.put(sdef.name, record)
        if record["IsDeleted"]:
            txn.tombstone(record["Id"], sdef.name)
        return record["Id"]

    def edit(self, txn: Txn, sdef: SObjectDef, raw: dict) -> str:
        """A user's edit: any field may change; stamps move to now unless given."""
        values = parse_values(sdef, raw)
        record_id = record_id_of(values.pop("Id", None))
        current = self.records[sdef.name].get(record_id)
        if current is None:
            raise RequestError(404, "NOT_FOUND", f"No {sdef.name} with id {record_id}")
        record = dict(current)
        record["LastModifiedDate"] = record["SystemModstamp"] = txn.now
        record["LastModifiedById"] = SALES_USER_ID
        record.update(values)
        self._derive(sdef, record, txn.now)
        txn.put(sdef.name, record)
        return record_id

    def soft_delete(self, txn: Txn, record_id: str, master_id: str | None = None) -> None:
        sdef, current = self._admin_find(record_id)
        if sdef.name == "CampaignMember":
            txn.remove(sdef.name, current["Id"])
        else:
            record = dict(current, IsDeleted=True, LastModifiedDate=txn.now, SystemModstamp=txn.now)
            if master_id is not None:
                record["MasterRecordId"] = master_id
            txn.put(sdef.name, record)
        txn.tombstone(current["Id"], sdef.name)

    def undelete(self, txn: Txn, record_id: str) -> None:
        sdef, current = self._admin_find(record_id)
        record = dict(current, IsDeleted=False, LastModifiedDate=txn.now, SystemModstamp=txn.now)
        if "MasterRecordId" in record:
            record["MasterRecordId"] = None
        txn.put(sdef.name, record)
        txn.tombstone(current["Id"], None)

    def hard_delete(self, txn: Txn, record_id: str) -> None:
        sdef, current = self._admin_find(record_id)
        txn.remove(sdef.name, current["Id"])
        txn.tombstone(current["Id"], sdef.name)

    def merge(self, txn: Txn, master_id: str, loser_ids: list[str]) -> None:
        sdef, master = self._admin_find(master_id)
        losers = set()
        for loser_id in loser_ids:
            loser_def, loser = self._admin_find(loser_id)
            if loser_def.name != sdef.name:
                raise RequestError(400, "INVALID_TYPE", f"Cannot merge a {loser_def.name} into a {sdef.name}")
            losers.add(loser["Id"])
        # Related records follow the master, as Salesforce reparents them.
        for child in OBJECTS.values():
            ref_fields = [f.name for f in child.fields.values()
                          if f.reference_to == sdef.name and f.name != "MasterRecordId"]
            if not ref_fields:
                continue
            for record in list(self.records[child.name].values()):
                moved = {name: master["Id"] for name in ref_fields if record.get(name) in losers}
                if moved:
                    txn.put(child.name, dict(record, **moved, LastModifiedDate=txn.now, SystemModstamp=txn.now))
        for loser_id in losers:
            self.soft_delete(txn, loser_id, master_id=master["Id"])
        txn.put(sdef.name, dict(self.records[sdef.name][master["Id"]], LastModifiedDate=txn.now,
                                SystemModstamp=txn.now))

    def convert_lead(self, txn: Txn, lead_id: str, contact_id: str | None, account_id: str | None) -> dict:
        lead_def, lead = self._admin_find(lead_id)
        if lead_def.name != "Lead":
            raise RequestError(400, "INVALID_TYPE", f"{lead_id} is not a lead")
        if lead["IsConverted"] or lead["IsDeleted"]:
            raise RequestError(400, "CANNOT_UPDATE_CONVERTED_LEAD" if lead["IsConverted"] else "ENTITY_IS_DELETED",
                               f"Lead {lead['Id']} is already converted or deleted")
        account_def, contact_def = OBJECTS["Account"], OBJECTS["Contact"]
        if account_id:
            account_id = self._admin_find(account_id)[1]["Id"]
        else:
            account = self._template(account_def, SALES_USER_ID, txn.now)
            account.update(
                Id=self.new_id(account_def), Name=lead["Company"] or compound_name(lead), Industry=lead["Industry"],
                AnnualRevenue=lead["AnnualRevenue"], NumberOfEmployees=lead["NumberOfEmployees"],
                BillingCity=lead["City"], BillingCountry=lead["Country"], OwnerId=lead["OwnerId"],
            )
            txn.put("Account", account)
            account_id = account["Id"]
        if contact_id:
            current = self._admin_find(contact_id)[1]
            contact = dict(current, LastModifiedDate=txn.now, SystemModstamp=txn.now)
            contact["AccountId"] = contact["AccountId"] or account_id
        else:
            contact = self._template(contact_def, SALES_USER_ID, txn.now)
            contact.update({name: lead[name] for name in (
                "FirstName", "LastName", "Salutation", "Email", "Phone", "MobilePhone", "Title", "LeadSource",
                "HasOptedOutOfEmail", "OwnerId", "Sync_to_Deployteq__c", "SyncWithClang__c", "Email_Opt_In__c",
                "Newsletter__c")})
            contact.update(Id=self.new_id(contact_def), AccountId=account_id, MailingStreet=lead["Street"],
                           MailingPostalCode=lead["PostalCode"], MailingCity=lead["City"],
                           MailingCountry=lead["Country"])
            self._derive(contact_def, contact, txn.now)
        txn.put("Contact", contact)
        today = self.clock.now_datetime().date().isoformat()
        txn.put("Lead", dict(lead, IsConverted=True, Status="Closed - Converted", ConvertedContactId=contact["Id"],
                             ConvertedAccountId=account_id, ConvertedDate=today, LastModifiedDate=txn.now,
                             SystemModstamp=txn.now, LastModifiedById=SALES_USER_ID))
        for member in list(self.records["CampaignMember"].values()):
            if member["LeadId"] == lead["Id"] and not member["ContactId"]:
                txn.put("CampaignMember", dict(member, ContactId=contact["Id"], LastModifiedDate=txn.now,
                                               SystemModstamp=txn.now))
        return {"contact_id": contact["Id"], "account_id": account_id}

    def _admin_find(self, record_id: object) -> tuple[SObjectDef, dict]:
        try:
            normalised = to_18(record_id)  # type: ignore[arg-type]
        except MalformedId:
            raise RequestError(400, "MALFORMED_ID", f"malformed id {record_id}") from None
        found = self.find(normalised)
        if found is None:
            raise RequestError(404, "NOT_FOUND", f"No record with id {record_id}")
        return found
