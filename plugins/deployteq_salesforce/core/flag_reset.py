"""The sync-flag reset (R3, R10 "use sync column"): records whose flag must go back to false in Salesforce.

Shared by the customer and object-link flows.  Salesforce has no compare-and-set, so a reset is a
blind write; this module keeps it from losing an edit a Salesforce user makes (and flags) after we
read the record:

* Ids are queued in the same transaction as the data read with them, with the ``SystemModstamp``
  read.  A run resets only after its whole read is stored, so a crash or a budget stop before the
  reset loses nothing: the flag is still true, and the next run reads the record again *before* it
  resets anything (``drop_unread`` then forgets queued ids whose flag is no longer set).
* Composite resets (small volumes, 200 per request): the ids are marked ``reset_requested_at``
  before the request is sent, and after the reset they are read again (sObject Collections, 2,000
  per request) and stored once more, also by the next run if this one dies.  An edit made while
  the reset was in flight therefore still arrives: no window remains.
* Bulk API 2.0 resets (large volumes): right before the job, one query finds the flagged records
  changed since the run's window ended; those keep their flag and are read by the next run.  What
  remains is the time Salesforce takes to process the job: an edit made then can be cleared.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import Connection

from deployteq_salesforce.core.bulk import Bulk2Client
from deployteq_salesforce.core.incremental import rest_pages
from deployteq_salesforce.core.salesforce_values import parse_salesforce_datetime
from deployteq_salesforce.core.soql import format_datetime, validate_identifier

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
FLAG_RESET_CHUNK = 50_000  # ids per read of the reset queue (and per Bulk job): bounds memory
BULK_RESET_MIN = 2_000  # from here one Bulk ingest job (~5 requests) beats composite (10+ requests)

StoreAgain = Callable[[list[dict]], None]


class FlagResetQueue:
    """Records whose sync flag must go back to false; see the module docstring for the guarantees.

    :param store: the DeployteqHook holding ``flag_reset_queue``.
    :param flow: the flow the queue belongs to (``sync:Lead``, ``link:campaign_members``, ...).
    :param sobject: the Salesforce object; :param flag_field: its Boolean sync flag.
    :param fields: the fields a flow reads, used when records are read again after a reset.
    :param store_again: writes records read again (like the flow's own batches, without queueing them).
    """

    def __init__(self, store, flow: str, *, sobject: str, flag_field: str, fields: Sequence[str],
                 store_again: StoreAgain, bulk_threshold: int) -> None:
        self.store = store
        self.flow = flow
        self.sobject = validate_identifier(sobject, "object")
        self.flag_field = validate_identifier(flag_field, "sync flag field")
        self.fields = list(dict.fromkeys(["Id", *fields]))
        self.store_again = store_again
        self.bulk_threshold = bulk_threshold

    # -- queueing, in the caller's transaction --------------------------------------------------------

    def enqueue(self, conn: Connection, records: Sequence[Any]) -> None:
        """Queue ``records`` (with ``sf_id`` and ``modstamp``) whose data ``conn`` commits."""
        if not records:
            return
        conn.execute(
            "INSERT INTO flag_reset_queue (flow, sf_id, system_modstamp) "
            "SELECT %s, unnest(%s::text[]), unnest(%s::timestamptz[]) "
            "ON CONFLICT (flow, sf_id) DO UPDATE SET system_modstamp = EXCLUDED.system_modstamp, "
            "failed_reason = NULL, reset_requested_at = NULL, queued_at = now()",
            (self.flow, [r.sf_id for r in records], [r.modstamp for r in records]),
        )

    def permanently_failed(self, conn: Connection, records: Sequence[Any]) -> set[str]:
        """Ids whose reset failed for good at exactly this version: do not process or reset them again."""
        if not records:
            return set()
        stamps = {r.sf_id: r.modstamp for r in records}
        rows = conn.execute(
            "SELECT sf_id, system_modstamp FROM flag_reset_queue "
            "WHERE flow = %s AND failed_reason IS NOT NULL AND sf_id = ANY(%s)",
            (self.flow, list(stamps)),
        ).fetchall()
        return {sf_id for sf_id, stamp in rows if stamps.get(sf_id) == stamp}

    # -- around the run's read ------------------------------------------------------------------------

    def read_again_after_reset(self, salesforce) -> int:
        """Records whose reset was requested but not followed by a read (this run died): read and store them."""
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

    def flush(self, salesforce, *, changed_since: datetime) -> int:
        """Reset every queued flag, a bounded chunk at a time so memory stays flat; returns how many.

        ``changed_since``: the end of the run's read window; a flagged record with a newer
        ``SystemModstamp`` than the one queued changed after it was read and keeps its flag.
        """
        done, after = 0, ""
        while ids := self._ids("reset_requested_at IS NULL", after=after, limit=FLAG_RESET_CHUNK):
            after = ids[-1]
            if len(ids) > min(self.bulk_threshold, BULK_RESET_MIN):
                done += self._reset_with_bulk(salesforce, self._unchanged_since_read(salesforce, ids, changed_since))
            else:
                done += self._reset_with_composite(salesforce, ids)
            if len(ids) < FLAG_RESET_CHUNK:
                break
        return done

    def _ids(self, condition: str, *, after: str = "", limit: int) -> list[str]:
        """Queued ids in Id order (failed-for-good ones excluded) from ``after`` on, matching ``condition``."""
        with self.store.connect() as conn:
            rows = conn.execute(
                f"SELECT sf_id FROM flag_reset_queue WHERE flow = %s AND failed_reason IS NULL AND {condition} "
                "AND sf_id > %s ORDER BY sf_id LIMIT %s",
                (self.flow, after, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def _unchanged_since_read(self, salesforce, ids: list[str], changed_since: datetime) -> list[str]:
        """Drop (from the chunk and the queue) flagged records changed since they were read: they keep their flag."""
        soql = (
            f"SELECT Id, SystemModstamp FROM {self.sobject} "
            f"WHERE {self.flag_field} = true AND SystemModstamp >= {format_datetime(changed_since)}"
        )
        current = {
            record["Id"]: record["SystemModstamp"]
            for _, page in rest_pages(salesforce.get_conn(), soql, include_deleted=False)
            for record in page
        }
        if not current:
            return ids
        with self.store.connect() as conn:
            queued = dict(conn.execute(
                "SELECT sf_id, system_modstamp FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%s)",
                (self.flow, [i for i in ids if i in current]),
            ).fetchall())
            changed = [i for i, stamp in queued.items() if parse_salesforce_datetime(current[i]) != stamp]
            conn.execute("DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%s)", (self.flow, changed))
        changed_set = set(changed)
        return [i for i in ids if i not in changed_set]

    def _reset_with_bulk(self, salesforce, ids: list[str]) -> int:
        if not ids:
            return 0
        flag = self.flag_field
        result = Bulk2Client(salesforce.get_conn()).ingest(
            self.sobject, "update", ({"Id": i, flag: False} for i in ids), columns=["Id", flag], want_successful=False
        )
        failures = {row["sf__Id"] or "": row.get("sf__Error", "") for row in result.failed}
        self._settle(ids, failures)
        return len(ids) - len(failures)

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

    def _mark_reset_requested(self, ids: list[str]) -> None:
        with self.store.connect() as conn:
            conn.execute(
                "UPDATE flag_reset_queue SET reset_requested_at = clock_timestamp() WHERE flow = %s AND sf_id = ANY(%s)",
                (self.flow, ids),
            )

    def _read_again(self, salesforce, ids: list[str]) -> None:
        """Read records after their reset and store them (an edit made meanwhile arrives), then forget them."""
        answer = salesforce.get_conn().restful(
            f"composite/sobjects/{self.sobject}", method="POST", data=json.dumps({"ids": ids, "fields": self.fields})
        )
        records = [{k: v for k, v in record.items() if k != "attributes"} for record in answer or [] if record]
        if records:
            self.store_again(records)
        with self.store.connect() as conn:
            conn.execute(
                "DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%s) AND reset_requested_at IS NOT NULL",
                (self.flow, ids),
            )

    def _settle(self, ids: Sequence[str], failures: dict[str, str], *, read_again: bool = False) -> None:
        """Reset ids leave the queue (or wait for their read-again); failures are retried next run,
        permanent ones are marked so they are not retried each run."""
        permanent = {i: why for i, why in failures.items() if why.split(":", 1)[0] in PERMANENT_RESET_ERRORS}
        reset = [i for i in ids if i not in failures]
        with self.store.connect() as conn:
            if not read_again:
                conn.execute("DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%s)", (self.flow, reset))
            conn.execute(
                "UPDATE flag_reset_queue SET reset_requested_at = NULL WHERE flow = %s AND sf_id = ANY(%s)",
                (self.flow, list(failures)),
            )
            for sf_id, why in permanent.items():
                conn.execute(
                    "UPDATE flag_reset_queue SET failed_reason = %s WHERE flow = %s AND sf_id = %s",
                    (why, self.flow, sf_id),
                )
