"""The sync-flag reset (R3, R10 "use sync column"): records whose flag must go back to false in Salesforce.

Shared by the customer and object-link flows.  Salesforce has no compare-and-set, so a reset is a
blind write; this module keeps it from losing an edit a Salesforce user makes (and flags) after we
read the record:

* Ids are queued in the same transaction as the data read with them.  A run resets only after its
  whole read is stored, so a crash or a budget stop before the reset loses nothing: the flag is
  still true, and the next run reads the record again *before* it resets anything (``drop_unread``
  then forgets queued ids whose flag is no longer set).
* Every reset is followed by a read of the reset records, and what it finds is stored: an edit made
  between our read and the moment Salesforce applied the reset (while it was in flight, or while a
  Bulk job waited to be processed) therefore still arrives; an edit after the reset keeps its flag.
  The ids are marked ``reset_requested_at`` before the reset is sent, so a run that dies between
  the reset and the read leaves the read to the next run.  Composite resets (200 per request) are
  read again with sObject Collections (2,000 per request); a Bulk API 2.0 reset with one Bulk query
  of everything changed since the reset started, kept to the reset ids.
* The reset itself moves every reset record's SystemModstamp, so the read after it returns all of
  them; each id is queued with a hash of the record as first read (``read_again_hasher``), and a
  flow stores again only the records whose hash differs (``unchanged_since_queued``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

import msgspec
from psycopg import Connection

from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.core.incremental import prefetched, server_now
from deployteq_salesforce.core.params import text_array
from deployteq_salesforce.core.soql import format_datetime, validate_identifier
from deployteq_salesforce.core.writes import insert_new_rows

# Salesforce answers that will not change by trying again: stop resetting those records
PERMANENT_RESET_ERRORS = {
    "CANNOT_UPDATE_CONVERTED_LEAD",
    "ENTITY_IS_DELETED",
    "INVALID_CROSS_REFERENCE_KEY",
    "NOT_FOUND",
    "MALFORMED_ID",
    "INVALID_ID_FIELD",
}
COMPOSITE_LIMIT = 200
RETRIEVE_LIMIT = 2_000  # records per sObject Collections retrieve (POST composite/sobjects/{object})
FLAG_RESET_CHUNK = 100_000  # ids per read of the reset queue and per Bulk job: bounds memory (~25 MB at most)
BULK_RESET_MIN = 2_000  # from here one Bulk ingest job (~5 requests) beats composite (10+ requests)
READ_AGAIN_BATCH = 5_000  # records stored per transaction when a Bulk reset is read again
CLOCK_MARGIN_SALESFORCE = timedelta(seconds=2)  # Salesforce's Date header and SystemModstamp have whole seconds
CLOCK_MARGIN = timedelta(minutes=5)  # between our database's clock and Salesforce's

PrepareAgain = Callable[[list[dict]], Any]
StoreAgain = Callable[[Any], None]


_MSGPACK = msgspec.msgpack.Encoder()
_ENQUEUE_NEW = ("INSERT INTO flag_reset_queue (flow, sf_id, system_modstamp, record_hash) "
                "SELECT %s, q.* FROM unnest(%s::text[], %b::timestamptz[], %b::bytea[]) AS q")
_ENQUEUE_ANY = (_ENQUEUE_NEW + " ON CONFLICT (flow, sf_id) DO UPDATE SET system_modstamp = EXCLUDED.system_modstamp, "
                "record_hash = EXCLUDED.record_hash, failed_reason = NULL, reset_requested_at = NULL, queued_at = now()")


def _as_read(records: list[dict]) -> list[dict]:
    return records


def record_hasher(fields: Sequence[str], salt: bytes) -> Callable[[dict], bytes]:
    """``hash(record) -> bytes`` over the raw ``fields`` of a Salesforce record (Bulk or REST dict), before any
    mapping; ``salt`` identifies the mapping and field types, so a changed mapping changes every hash.
    Cheaper than mapping: what the read after a flag reset uses to drop the records it sends back unchanged.

    The values are written as MessagePack (msgspec: 0.4 us for a lead's twenty values, where repr() took 2.9);
    a value MessagePack has no form for is hashed by its repr().  The hash is only compared with hashes of the
    same code (queued by this run, or by the run before an interrupted reset): its form may change freely."""
    get = itemgetter(*fields) if len(fields) > 1 else (lambda record: (record[fields[0]],))
    salted = hashlib.blake2b(salt, digest_size=16)
    encode = _MSGPACK.encode

    def hash_record(record: dict) -> bytes:
        try:
            values = get(record)
        except KeyError:  # a field the record lacks hashes as None (as a mapping would read it)
            values = tuple(record.get(f) for f in fields)
        digest = salted.copy()
        try:
            digest.update(encode(values))
        except (TypeError, msgspec.EncodeError):
            digest.update(b"repr:" + repr(values).encode())
        return digest.digest()

    return hash_record


def read_again_hasher(fields: Sequence[str], *, flag_field: str, mapped: Collection[str], config: Any,
                      field_types: dict[str, str]) -> Callable[[dict], bytes]:
    """:func:`record_hasher` over a flow's read ``fields`` except what a flag reset itself changes (the flag and
    SystemModstamp, unless ``mapped``), salted with the flow's ``config`` (JSON-able) and the fields' types: a
    record read again after its reset hashes as it did when first read unless someone changed it."""
    volatile = {"SystemModstamp", flag_field} - set(mapped)
    hashed = [f for f in dict.fromkeys(["Id", *fields]) if f not in volatile]
    salt = json.dumps([config, [field_types.get(f) for f in hashed]], sort_keys=True).encode()
    return record_hasher(hashed, hashlib.blake2b(salt, digest_size=16).digest())


class FlagResetQueue:
    """Records whose sync flag must go back to false; see the module docstring for the guarantees.

    :param store: the DeployteqHook holding ``flag_reset_queue``.
    :param flow: the flow the queue belongs to (``sync:Lead``, ``link:campaign_members``, ...).
    :param sobject: the Salesforce object; :param flag_field: its Boolean sync flag.
    :param fields: the fields a flow reads, used when records are read again after a reset;
        :param field_types: their describe types (to read Bulk CSV values as REST returns them).
    :param store_again: writes records read again (like the flow's own batches, without queueing them), as
        :param prepare_again: made them ready to write: pure work (hashing, mapping) that runs in the background
        reader while the batch before is written (default: the records as read).
    """

    def __init__(self, store, flow: str, *, sobject: str, flag_field: str, fields: Sequence[str],
                 field_types: dict[str, str], store_again: StoreAgain, bulk_threshold: int,
                 prepare_again: PrepareAgain = _as_read) -> None:
        self.store = store
        self.flow = flow
        self.sobject = validate_identifier(sobject, "object")
        self.flag_field = validate_identifier(flag_field, "sync flag field")
        self.fields = list(dict.fromkeys(["Id", *fields]))
        self.field_types = field_types
        self.store_again = store_again
        self.prepare_again = prepare_again
        self.bulk_threshold = bulk_threshold
        self._failed: dict[str, Any] | None = None  # sf_id -> version whose reset failed for good

    # -- queueing, in the caller's transaction --------------------------------------------------------

    def enqueue(self, conn: Connection, records: Sequence[Any], record_hashes: Mapping[str, bytes] | None = None) -> None:
        """Queue ``records`` (with ``sf_id`` and ``modstamp``) whose data ``conn`` commits, with ``record_hashes``
        (sf_id -> :func:`read_again_hasher` hash of the record as read) for :meth:`unchanged_since_queued`."""
        if not records:
            return
        hashes = record_hashes or {}
        params = (self.flow, text_array([r.sf_id for r in records]), [r.modstamp for r in records],
                  [hashes.get(r.sf_id) for r in records])
        # nearly every id is new to the queue; one already queued (an earlier run's unreset or failed entry, a record
        # read twice) sends the batch through the upsert
        insert_new_rows(conn, _ENQUEUE_NEW, _ENQUEUE_ANY, params)

    def unchanged_since_queued(self, conn: Connection, hashes: dict[str, bytes]) -> set[str]:
        """Ids (of ``hashes``: sf_id -> :func:`read_again_hasher` hash of the record read again) whose record hashes
        as it did when it was queued: the row stored then is what storing it again would write."""
        if not hashes:
            return set()
        # the queue rows in the batch's Id range, one index range scan: a read-again batch comes in Id order (as
        # Salesforce and the emulator return Bulk results), so the range holds little more than the batch; were it
        # not, the range is wider but the answer the same
        rows = conn.execute(
            "SELECT sf_id, record_hash FROM flag_reset_queue "
            "WHERE flow = %s AND sf_id >= %s AND sf_id <= %s AND record_hash IS NOT NULL",
            (self.flow, min(hashes), max(hashes)),
        ).fetchall()
        return {sf_id for sf_id, stored in rows if bytes(stored) == hashes.get(sf_id)}

    def permanently_failed(self, conn: Connection, records: Sequence[Any]) -> set[str]:
        """Ids whose reset failed for good at exactly this version: do not process or reset them again.

        The failed entries are read once and kept until the next flush (only a flush adds them; one
        run of a flow at a time), not looked up record by record in every batch."""
        if not records:
            return set()
        if self._failed is None:
            self._failed = dict(conn.execute(
                "SELECT sf_id, system_modstamp FROM flag_reset_queue WHERE flow = %s AND failed_reason IS NOT NULL",
                (self.flow,),
            ).fetchall())
        failed = self._failed
        return {r.sf_id for r in records if r.sf_id in failed and failed[r.sf_id] == r.modstamp} if failed else set()

    # -- around the run's read ------------------------------------------------------------------------

    def read_again_after_reset(self, salesforce) -> int:
        """Records whose reset was requested but not followed by a read (a run died): read and store them."""
        with self.store.connect() as conn:
            pending, oldest = conn.execute(
                "SELECT count(*), min(reset_requested_at) FROM flag_reset_queue "
                "WHERE flow = %s AND failed_reason IS NULL AND reset_requested_at IS NOT NULL",
                (self.flow,),
            ).fetchone()
        if pending > RETRIEVE_LIMIT:
            # everything changed since the oldest reset, in one Bulk query (the margin covers clock skew
            # between our database and Salesforce)
            ids = self._ids("reset_requested_at IS NOT NULL", limit=None)
            self._read_again_since(salesforce, oldest - CLOCK_MARGIN, ids)
            return len(ids)
        done = 0
        while ids := self._ids("reset_requested_at IS NOT NULL", limit=RETRIEVE_LIMIT):
            self._read_again(salesforce, ids)
            done += len(ids)
        return done

    def read_started(self) -> datetime:
        """The database's clock before the read: ids queued earlier and not read again are done."""
        with self.store.connect() as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def drop_unread(self, read_started: datetime) -> int:
        """After a complete read: queued ids it did not meet have no flag set any more (reset, or unflagged
        or deleted in Salesforce), so there is nothing to reset; with the flag still set they are read next run."""
        with self.store.connect() as conn:
            return conn.execute(
                "DELETE FROM flag_reset_queue WHERE flow = %s AND queued_at < %s "
                "AND failed_reason IS NULL AND reset_requested_at IS NULL",
                (self.flow, read_started),
            ).rowcount

    # -- the reset ------------------------------------------------------------------------------------

    def flush(self, salesforce) -> int:
        """Reset every queued flag, a bounded chunk at a time so memory stays flat; returns how many."""
        done, after = 0, ""
        self._failed = None
        while ids := self._ids("reset_requested_at IS NULL", after=after, limit=FLAG_RESET_CHUNK):
            after = ids[-1]
            if len(ids) > min(self.bulk_threshold, BULK_RESET_MIN):
                done += self._reset_with_bulk(salesforce, ids)
            else:
                done += self._reset_with_composite(salesforce, ids)
            if len(ids) < FLAG_RESET_CHUNK:
                break
        return done

    def _ids(self, condition: str, *, after: str = "", limit: int | None) -> list[str]:
        """Queued ids in Id order (failed-for-good ones excluded) from ``after`` on, matching ``condition``."""
        with self.store.connect() as conn:
            rows = conn.execute(
                f"SELECT sf_id FROM flag_reset_queue WHERE flow = %s AND failed_reason IS NULL AND {condition} "
                "AND sf_id > %s ORDER BY sf_id LIMIT %s",
                (self.flow, after, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def _reset_with_bulk(self, salesforce, ids: list[str]) -> int:
        marked = self._mark_chunk_reset_requested(ids)
        # the reset's records carry a newer SystemModstamp than this (Salesforce's clock, whole seconds)
        started = server_now(salesforce) - CLOCK_MARGIN_SALESFORCE
        flag = self.flag_field
        result = Bulk2Client(salesforce.get_conn()).ingest(
            self.sobject, "update", ({"Id": i, flag: False} for i in ids), columns=["Id", flag], want_successful=False
        )
        failures = {row["sf__Id"] or "": row.get("sf__Error", "") for row in result.failed}
        self._settle(ids, failures, read_again=True)
        self._read_again_since(salesforce, started, [i for i in ids if i not in failures], marked=marked)
        return len(ids) - len(failures)

    def _read_again_since(self, salesforce, since: datetime, ids: list[str], *,
                          marked: tuple[str, str, datetime] | None = None) -> None:
        """Read everything changed since ``since`` in one Bulk query, store what belongs to ``ids``, forget those.

        ``marked`` (first id, last id, mark time from :meth:`_mark_chunk_reset_requested`): the ids are
        exactly the queue rows of that key range still carrying that mark (failures lost it in ``_settle``),
        so they are forgotten by range instead of by a list of up to 100,000 ids."""
        wanted = set(ids)
        soql = f"SELECT {', '.join(self.fields)} FROM {self.sobject} WHERE SystemModstamp >= {format_datetime(since)}"
        batches = Bulk2Client(salesforce.get_conn()).query_batches(
            self.sobject, soql, field_types=self.field_types, batch_size=READ_AGAIN_BATCH
        )
        # read, parsed and prepared ahead in a background thread while the batch before is stored
        mine = ([r for r in batch if r["Id"] in wanted] for batch in batches)
        for prepared in prefetched((self.prepare_again(records) for records in mine if records), timer=salesforce.phases):
            self.store_again(prepared)
        with self.store.connect() as conn:
            if marked is not None:
                first, last, marked_at = marked
                conn.execute(
                    "DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id >= %s AND sf_id <= %s "
                    "AND reset_requested_at = %s",
                    (self.flow, first, last, marked_at),
                )
            else:
                conn.execute(
                    "DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%b::text[]) AND reset_requested_at IS NOT NULL",
                    (self.flow, ids),
                )

    def _reset_with_composite(self, salesforce, ids: list[str]) -> int:
        done = 0
        for start in range(0, len(ids), COMPOSITE_LIMIT):
            chunk = ids[start : start + COMPOSITE_LIMIT]
            self._mark_reset_requested(chunk)
            records = [{"Id": i, self.flag_field: False} for i in chunk]
            results = salesforce.composite("PATCH", self.sobject, records)
            failures = {}
            for sf_id, result in zip(chunk, results):
                if not result.get("success"):
                    error = (result.get("errors") or [{}])[0]
                    failures[sf_id] = f"{error.get('statusCode', 'UNKNOWN')}:{error.get('message', '')}"
            self._settle(chunk, failures, read_again=True)  # settled per request: a budget stop keeps what was reset
            done += len(chunk) - len(failures)
        self.read_again_after_reset(salesforce)
        return done

    def _mark_chunk_reset_requested(self, ids: list[str]) -> tuple[str, str, datetime]:
        """Mark a whole chunk of :meth:`_ids` (``reset_requested_at IS NULL``, in Id order) by its key range.

        The chunk is every unmarked, not failed queue row from its first to its last id, so the range
        marks exactly these rows without sending (and matching) up to 100,000 ids; every row gets the
        same mark (the transaction's ``now()``), by which the read-again forgets them by range too.
        Should the range ever hold a different number of rows, the list is marked instead (same result).
        """
        with self.store.connect() as conn:
            marked_at = conn.execute("SELECT now()").fetchone()[0]
            marked = conn.execute(
                "UPDATE flag_reset_queue SET reset_requested_at = %s WHERE flow = %s AND sf_id >= %s AND sf_id <= %s "
                "AND failed_reason IS NULL AND reset_requested_at IS NULL",
                (marked_at, self.flow, ids[0], ids[-1]),
            ).rowcount
            if marked != len(ids):
                conn.rollback()
                marked_at = conn.execute("SELECT now()").fetchone()[0]
                conn.execute(
                    "UPDATE flag_reset_queue SET reset_requested_at = %s WHERE flow = %s AND sf_id = ANY(%b::text[])",
                    (marked_at, self.flow, ids),
                )
        return ids[0], ids[-1], marked_at

    def _mark_reset_requested(self, ids: list[str]) -> None:
        with self.store.connect() as conn:
            conn.execute(
                "UPDATE flag_reset_queue SET reset_requested_at = clock_timestamp() WHERE flow = %s AND sf_id = ANY(%b::text[])",
                (self.flow, ids),
            )

    def _read_again(self, salesforce, ids: list[str]) -> None:
        """Read records after their reset and store them (an edit made meanwhile arrives), then forget them."""
        answer = salesforce.get_conn().restful(
            f"composite/sobjects/{self.sobject}", method="POST", data=json.dumps({"ids": ids, "fields": self.fields})
        )
        records = [{k: v for k, v in record.items() if k != "attributes"} for record in answer or [] if record]
        if records:
            self.store_again(self.prepare_again(records))
        with self.store.connect() as conn:
            conn.execute(
                "DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%b::text[]) AND reset_requested_at IS NOT NULL",
                (self.flow, ids),
            )

    def _settle(self, ids: Sequence[str], failures: dict[str, str], *, read_again: bool = False) -> None:
        """Reset ids leave the queue (or wait for their read-again); failures are retried next run,
        permanent ones are marked so they are not retried each run."""
        permanent = {i: why for i, why in failures.items() if why.split(":", 1)[0] in PERMANENT_RESET_ERRORS}
        reset = [i for i in ids if i not in failures]
        with self.store.connect() as conn:
            if not read_again:
                conn.execute("DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%b::text[])", (self.flow, reset))
            conn.execute(
                "UPDATE flag_reset_queue SET reset_requested_at = NULL WHERE flow = %s AND sf_id = ANY(%s)",
                (self.flow, list(failures)),
            )
            for sf_id, why in permanent.items():
                conn.execute(
                    "UPDATE flag_reset_queue SET failed_reason = %s WHERE flow = %s AND sf_id = %s",
                    (why, self.flow, sf_id),
                )
