"""The sync-flag reset (R3, R10 "use sync column"): records whose flag must go back to false in Salesforce.

Shared by the customer and object-link flows.  Ids are queued in the same transaction as the data
read with them; the queue is flushed in chunks (composite 200 per request, Bulk API 2.0 ingest when
that is cheaper).
"""

from __future__ import annotations

from typing import Any, Sequence

from psycopg import Connection

from deployteq_salesforce.core.bulk import Bulk2Client

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
FLAG_RESET_CHUNK = 50_000  # ids per read of the reset queue (and per Bulk job): bounds memory
BULK_RESET_MIN = 2_000  # from here one Bulk ingest job (~5 requests) beats composite (10+ requests)


class FlagResetQueue:
    """Records whose sync flag must go back to false, queued in the same transaction as their data.

    A crash or budget stop between the commit and the reset loses nothing: the flag is still true,
    so the next run reads the record again, and the queue is flushed first.
    """

    def __init__(self, store, flow: str):
        self.store = store
        self.flow = flow

    def enqueue(self, conn: Connection, records: Sequence[Any]) -> None:
        if not records:
            return
        conn.execute(
            "INSERT INTO flag_reset_queue (flow, sf_id, system_modstamp) "
            "SELECT %s, unnest(%s::text[]), unnest(%s::timestamptz[]) "
            "ON CONFLICT (flow, sf_id) DO UPDATE SET system_modstamp = EXCLUDED.system_modstamp, "
            "failed_reason = NULL, queued_at = now()",
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

    def pending(self, *, after: str = "", limit: int | None = None) -> list[str]:
        """Queued ids (failed-for-good ones excluded) in Id order, from ``after`` on."""
        with self.store.connect() as conn:
            rows = conn.execute(
                "SELECT sf_id FROM flag_reset_queue WHERE flow = %s AND failed_reason IS NULL AND sf_id > %s "
                "ORDER BY sf_id LIMIT %s",
                (self.flow, after, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def flush(self, salesforce, obj) -> int:
        """Reset every queued flag, a bounded chunk at a time so memory stays flat.

        Per chunk: composite (200 per request) for a few ids, one Bulk API 2.0 ingest job (about five
        requests whatever the size) once that is cheaper.  Returns how many flags were reset.
        """
        done, after = 0, ""
        while ids := self.pending(after=after, limit=FLAG_RESET_CHUNK):
            after = ids[-1]
            if len(ids) > min(obj.bulk_threshold, BULK_RESET_MIN):
                done += self._reset_with_bulk(salesforce, obj, ids)
            else:
                done += self._reset_with_composite(salesforce, obj, ids)
            if len(ids) < FLAG_RESET_CHUNK:
                break
        return done

    def _reset_with_bulk(self, salesforce, obj, ids: list[str]) -> int:
        flag = obj.sync_flag_field
        result = Bulk2Client(salesforce.get_conn()).ingest(
            obj.sobject, "update", ({"Id": i, flag: False} for i in ids), columns=["Id", flag], want_successful=False
        )
        failures = {row["sf__Id"] or "": row.get("sf__Error", "") for row in result.failed}
        self._settle(ids, failures)
        return len(ids) - len(failures)

    def _reset_with_composite(self, salesforce, obj, ids: list[str]) -> int:
        done = 0
        for start in range(0, len(ids), COMPOSITE_LIMIT):
            chunk = ids[start : start + COMPOSITE_LIMIT]
            records = [{"attributes": {"type": obj.sobject}, "Id": i, obj.sync_flag_field: False} for i in chunk]
            results = salesforce.composite("PATCH", obj.sobject, records)
            failures = {}
            for sf_id, result in zip(chunk, results):
                if not result.get("success"):
                    error = (result.get("errors") or [{}])[0]
                    failures[sf_id] = f"{error.get('statusCode', 'UNKNOWN')}:{error.get('message', '')}"
            self._settle(chunk, failures)  # settled per request: a budget stop keeps what was reset
            done += len(chunk) - len(failures)
        return done

    def _settle(self, ids: Sequence[str], failures: dict[str, str]) -> None:
        """Drop reset ids from the queue; keep permanent failures marked so they are not retried each run."""
        permanent = {i: why for i, why in failures.items() if why.split(":", 1)[0] in PERMANENT_RESET_ERRORS}
        with self.store.connect() as conn:
            conn.execute(
                "DELETE FROM flag_reset_queue WHERE flow = %s AND sf_id = ANY(%s)",
                (self.flow, [i for i in ids if i not in failures]),
            )
            for sf_id, why in permanent.items():
                conn.execute(
                    "UPDATE flag_reset_queue SET failed_reason = %s WHERE flow = %s AND sf_id = %s",
                    (why, self.flow, sf_id),
                )
