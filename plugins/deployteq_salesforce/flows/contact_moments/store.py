"""The contact moments' SQL: which moments wait to be sent, and what became of each one sent.

``contact_moment`` (Deployteq's own table) is read oldest first in keyset chunks; ``contact_moment_sync``
(migration 0003) remembers per moment the version sent, its Salesforce record and failures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

import msgspec
from psycopg.rows import args_row
from psycopg.types.json import Jsonb

from deployteq_salesforce.core.incremental import prefetched
from deployteq_salesforce.core.store import RecordError
from deployteq_salesforce.core.timing import LOOKUP, PhaseTimer
from deployteq_salesforce.core.writes import insert_new_rows
from deployteq_salesforce.flows.contact_moments.logic import (
    CONTACT_OBJECT, FLOW, LEAD_OBJECT, MomentRow, Outgoing, SendResult, Target,
)
from deployteq_salesforce.hooks.deployteq import DeployteqHook

# New and changed moments (columns in MomentRow's order): never dealt with, or their row changed since (changed_at differs); oldest first,
# one keyset chunk at a time (contact_moment_changed_at_idx, kept by turning sorts off for the chunk's transaction:
# otherwise the planner sorted the whole table for every chunk, also with a filter on the target object).
# "Changed since" is an anti-join (NOT EXISTS) rather than a filter on the
# LEFT JOIN: the planner misjudged that filter's selectivity (1 row) and sorted the whole table for every chunk
# (Gather Merge + top-N sort, ~90 ms a chunk at 100,000 moments); the anti-join keeps the ordered index scan.
# The open error's retry flag is a scalar subquery (at most one row: sync_error_open_record_key is unique on
# (flow, record_id) of open errors, so the same value as the former LEFT JOIN): always a probe of that index per
# row.  As a LEFT JOIN without statistics the planner materialised all of the flow's open errors and compared every
# one with every row (20,000 open errors: 12.4 s for one chunk, before and after the anti-join; now 24 ms).
# ``{payload}`` is the moment's payload columns, or (slim) the same columns only for moments with a sync state.
_CANDIDATES_SQL = """
SELECT cm.contact_moment_id, cm.changed_at, cm.sent_at, {payload}, c.sf_lead_id, c.sf_contact_id,
       s.sf_object AS sent_object, s.sf_parent_id AS sent_parent_id, s.sent_hash, s.failed_hash,
       coalesce(s.attempts, 0) AS attempts,
       coalesce((SELECT e.retry_requested FROM sync_error e
                  WHERE e.flow = %(flow)s AND e.record_id = cm.contact_moment_id::text AND e.resolved_at IS NULL),
                false) AS retry_requested
  FROM contact_moment cm
  LEFT JOIN customer c ON c.customer_id = cm.customer_id AND NOT c.sf_deleted
  LEFT JOIN contact_moment_sync s ON s.contact_moment_id = cm.contact_moment_id
 WHERE NOT EXISTS (SELECT FROM contact_moment_sync d
                    WHERE d.contact_moment_id = cm.contact_moment_id AND d.synced_changed_at = cm.changed_at)
   {target}
   AND (cm.changed_at, cm.contact_moment_id) > (%(after_at)s, %(after_id)s)
   AND (cm.changed_at, cm.contact_moment_id) <= (%(upto_at)s, %(upto_id)s)
 ORDER BY cm.changed_at, cm.contact_moment_id
 LIMIT %(chunk)s
"""
_PAYLOAD_COLUMNS = ("mailing_name", "subject", "opened_first_at", "open_count", "clicked_first_at", "click_count",
                    "bounced_at", "bounce_type", "online_version_url", "mailing_id")
_FULL_PAYLOAD = ", ".join(f"cm.{column}" for column in _PAYLOAD_COLUMNS)
CANDIDATES_SQL = _CANDIDATES_SQL.format(payload=_FULL_PAYLOAD, target="")
# Only the moments ``route()`` sends to %(sobject)s (its rules in SQL: the object sent to before, when both it and
# the parent are non-empty; else the contact, else the lead); the caller still routes every row itself.
TARGET_CANDIDATES_SQL = _CANDIDATES_SQL.format(payload=_FULL_PAYLOAD, target="""AND CASE
       WHEN s.sf_object <> '' AND s.sf_parent_id <> '' THEN s.sf_object
       WHEN c.sf_contact_id <> '' THEN '""" + CONTACT_OBJECT + """'
       WHEN c.sf_lead_id <> '' THEN '""" + LEAD_OBJECT + """'
     END = %(sobject)s""")
# For counting and planning (triage): a moment never sent and never refused is sent whatever its payload holds, so its
# payload columns are not read (NULL); those of a moment with a sent or failed hash are (triage hashes its payload).
SLIM_CANDIDATES_SQL = _CANDIDATES_SQL.format(payload=", ".join(
    f"CASE WHEN s.sent_hash IS NOT NULL OR s.failed_hash IS NOT NULL THEN cm.{column} END" for column in _PAYLOAD_COLUMNS
), target="")
# Keyset bounds that include every row.
FIRST_KEY = (datetime(1, 1, 1, tzinfo=timezone.utc), -(2**63))
LAST_KEY = (datetime(9999, 12, 31, tzinfo=timezone.utc), 2**63 - 1)
READ_CHUNK = 5_000  # candidates per query: memory stays flat however large the backlog
# The journal's times as ISO 8601 text (what _journaled reads back), written by msgspec in C: isoformat() and json.dumps
# took 0.34 s per 50,000 moments, this 0.01 s
_JOURNAL_JSON = msgspec.json.Encoder()

# The sent moments are COPied into a temporary table (its rows formatted in C) instead of six unnest() arrays:
# psycopg builds array parameters element by element in Python (measured: ~0.3 s of a run's 100,000 moments).
# Binary: the values are the flow's own (ids and times read from the database, hashes and Salesforce ids as text),
# never the user's, so their types are known; 50,000 rows take 0.05 s instead of 0.24 s as text.
SENT_STAGE_SQL = """
CREATE TEMPORARY TABLE contact_moment_sent (id bigint, changed_at timestamptz, hash text, sobject text, parent_id text,
                                            record_id text) ON COMMIT DROP
"""
COPY_SENT_SQL = ("COPY pg_temp.contact_moment_sent (id, changed_at, hash, sobject, parent_id, record_id) FROM STDIN "
                 "(FORMAT BINARY)")
SENT_TYPES = ("bigint", "timestamptz", "text", "text", "text", "text")
# moments never sent nor refused before have no row yet: a plain INSERT first (insert_new_rows)
MARK_NEW_SENT_SQL = """
INSERT INTO contact_moment_sync AS s (contact_moment_id, synced_changed_at, sent_hash, sf_object, sf_parent_id,
                                      sf_record_id, sent_at, attempts, failed_hash, last_error, last_error_at, updated_at)
SELECT r.id, r.changed_at, r.hash, r.sobject, r.parent_id, r.record_id, clock_timestamp(), 0, NULL, NULL, NULL,
       clock_timestamp()
  FROM pg_temp.contact_moment_sent r
"""
MARK_SENT_SQL = MARK_NEW_SENT_SQL + """ON CONFLICT (contact_moment_id) DO UPDATE SET
    synced_changed_at = excluded.synced_changed_at, sent_hash = excluded.sent_hash, sf_object = excluded.sf_object,
    sf_parent_id = excluded.sf_parent_id, sf_record_id = coalesce(excluded.sf_record_id, s.sf_record_id),
    sent_at = excluded.sent_at, attempts = 0, failed_hash = NULL, last_error = NULL, last_error_at = NULL,
    updated_at = excluded.updated_at
"""

MARK_FAILED_SQL = """
INSERT INTO contact_moment_sync AS s (contact_moment_id, attempts, failed_hash, last_error, last_error_at, updated_at)
SELECT r.id, 1, r.hash, r.error, clock_timestamp(), clock_timestamp()
  FROM unnest(%b::bigint[], %b::text[], %b::text[]) AS r (id, hash, error)
ON CONFLICT (contact_moment_id) DO UPDATE SET
    attempts = CASE WHEN s.failed_hash = excluded.failed_hash THEN s.attempts + 1 ELSE 1 END,
    failed_hash = excluded.failed_hash, last_error = excluded.last_error, last_error_at = excluded.last_error_at,
    updated_at = excluded.updated_at
"""

# Looked at, payload as sent before: remember this row version so it is not read again.
MARK_UNCHANGED_SQL = """
UPDATE contact_moment_sync s SET synced_changed_at = r.changed_at, updated_at = clock_timestamp()
  FROM unnest(%b::bigint[], %b::timestamptz[]) AS r (id, changed_at)
 WHERE s.contact_moment_id = r.id
"""

OPEN_ERRORS_SQL = "SELECT EXISTS (SELECT 1 FROM sync_error WHERE flow = %s AND resolved_at IS NULL)"

FLOW_HOURLY_USE_SQL = """
SELECT count(*) FROM api_ledger
 WHERE budget_key = %s AND flow = %s AND requested_at > clock_timestamp() - interval '1 hour'
"""


class ContactMomentStore:
    """Reads and writes of one contact-moment run; each method is its own short transaction."""

    def __init__(self, store: DeployteqHook, *, phases: PhaseTimer | None = None) -> None:
        self.store = store
        self.phases = phases or PhaseTimer()

    def now(self) -> datetime:
        with self.store.connect() as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def candidates(self, upto: tuple[datetime, int] = LAST_KEY, *, slim: bool = False,
                   sobject: str | None = None) -> Iterator[MomentRow]:
        """New and changed moments oldest first, up to ``upto`` (changed_at, id), READ_CHUNK rows per query.

        Each chunk is its own short transaction: what the run commits in between (sent, unchanged) is
        behind the keyset and never read twice.  ``slim``: for :func:`triage` only (counting and planning);
        the payload columns of a moment with neither ``sent_hash`` nor ``failed_hash`` are None (not read),
        so such rows must not be used to build a payload.  ``sobject``: only the moments routed to that object.
        """
        if slim and sobject is not None:
            raise ValueError("slim candidates are for counting all moments; they are not read per object")
        statement = SLIM_CANDIDATES_SQL if slim else TARGET_CANDIDATES_SQL if sobject is not None else CANDIDATES_SQL
        # the next chunk is read while the caller works on this one (the database and Python take turns otherwise);
        # what the caller commits meanwhile concerns moments behind the keyset, which the next chunk does not hold
        for rows in prefetched(self._chunks(statement, upto, sobject), timer=self.phases, depth=1):
            yield from rows

    def _chunks(self, statement: str, upto: tuple[datetime, int], sobject: str | None) -> Iterator[list[MomentRow]]:
        after = FIRST_KEY
        while True:
            # rows in binary: a fifth less time to load them than from text (0.30 against 0.38 s per 50,000)
            with self.phases.phase(LOOKUP), self.store.connect() as conn, \
                    conn.cursor(row_factory=args_row(MomentRow), binary=True) as cur:
                # the chunk must come from the ordered index scan (keyset, LIMIT): without statistics (a freshly
                # loaded table, before autovacuum's ANALYZE) the planner hash-joined and sorted the whole table
                # for every chunk (~120 ms a chunk at 100,000 moments instead of ~20 ms); this transaction only
                cur.execute("SET LOCAL enable_sort = off")
                cur.execute(statement, {"flow": FLOW, "after_at": after[0], "after_id": after[1], "upto_at": upto[0],
                                        "upto_id": upto[1], "chunk": READ_CHUNK, "sobject": sobject})
                rows = cur.fetchall()
            yield rows
            if len(rows) < READ_CHUNK:
                return
            after = (rows[-1].changed_at, rows[-1].contact_moment_id)

    def mark_unchanged(self, rows: Sequence[MomentRow]) -> None:
        if rows:
            with self.store.connect() as conn:
                conn.execute(MARK_UNCHANGED_SQL, ([r.contact_moment_id for r in rows], [r.changed_at for r in rows]))

    def flow_hourly_use(self, budget_key: str) -> int:
        """Requests this flow spent from ``budget_key`` in the last hour (its share of the hourly budget)."""
        with self.store.connect() as conn:
            return conn.execute(FLOW_HOURLY_USE_SQL, (budget_key, FLOW)).fetchone()[0]

    # -- Bulk jobs in flight ---------------------------------------------------------------------------

    def journal_job(self, job_id: str, sobject: str, moments: Sequence[Outgoing]) -> None:
        """Remember a closed-to-be Bulk job and its moments, so a crashed run's job is not sent twice."""
        items = [[m.moment_id, m.row.changed_at, m.row.sent_at, m.row.failed_hash, m.row.attempts, m.target.parent_id,
                  m.payload_hash] for m in moments]
        with self.store.connect() as conn:
            conn.execute(
                "INSERT INTO bulk_job_journal (job_id, flow, sobject, items) VALUES (%s, %s, %s, %s)",
                (job_id, FLOW, sobject, Jsonb(items, dumps=_JOURNAL_JSON.encode)),
            )

    def journaled_jobs(self) -> list[tuple[str, str, list[Outgoing]]]:
        """Bulk jobs of an earlier run whose results were never recorded: (job id, object, its moments)."""
        with self.store.connect() as conn:
            rows = conn.execute(
                "SELECT job_id, sobject, items FROM bulk_job_journal WHERE flow = %s ORDER BY created_at", (FLOW,)
            ).fetchall()
        return [(job_id, sobject, [_journaled(sobject, item) for item in items]) for job_id, sobject, items in rows]

    def forget_job(self, job_id: str) -> None:
        with self.store.connect() as conn:
            conn.execute("DELETE FROM bulk_job_journal WHERE job_id = %s", (job_id,))

    # -- results ---------------------------------------------------------------------------------------

    def record(self, sent: Sequence[SendResult], failed: Sequence[SendResult], errors: Sequence[RecordError], *,
               progress: tuple[int, dict] | None = None, settled_job: str | None = None) -> None:
        """One transaction per batch: the sent moments, the failed ones and their ``sync_error`` rows,
        (``progress`` = run_log_id, counts) the run's counters as of this batch, and the end of the
        journal entry of the Bulk job (``settled_job``) whose results these are."""
        with self.store.connect() as conn:
            if settled_job is not None:
                conn.execute("DELETE FROM bulk_job_journal WHERE job_id = %s", (settled_job,))
            if progress is not None:
                self.store.record_progress(*progress, conn=conn)
            if sent:
                conn.execute(SENT_STAGE_SQL)
                with conn.cursor() as cur, cur.copy(COPY_SENT_SQL) as copy:
                    copy.set_types(SENT_TYPES)
                    for r in sent:
                        moment = r.moment
                        copy.write_row((moment.row.contact_moment_id, moment.row.changed_at, moment.payload_hash,
                                        moment.target.sobject, moment.target.parent_id, r.record_id))
                insert_new_rows(conn, MARK_NEW_SENT_SQL, MARK_SENT_SQL, (), probably_new=all(
                    r.moment.row.sent_hash is None and r.moment.row.failed_hash is None for r in sent))
                # resolve_errors() would skip the work itself, but only after its 50,000 ids went over as an array
                if conn.execute(OPEN_ERRORS_SQL, (FLOW,)).fetchone()[0]:
                    self.store.resolve_errors(FLOW, [str(r.moment.moment_id) for r in sent], conn=conn)
            if failed:
                conn.execute(MARK_FAILED_SQL, (
                    [r.moment.moment_id for r in failed], [r.moment.payload_hash for r in failed],
                    [r.reason for r in failed],
                ))
                self.store.record_errors(FLOW, errors, conn=conn)


def _journaled(sobject: str, item: list) -> Outgoing:
    """A journaled moment as ``Outgoing.slim()`` made it: enough to record its result."""
    moment_id, changed_at, sent_at, failed_hash, attempts, parent_id, payload_hash = item
    row = MomentRow(moment_id, datetime.fromisoformat(changed_at), datetime.fromisoformat(sent_at),
                    failed_hash=failed_hash, attempts=attempts)
    return Outgoing(row, Target(sobject, parent_id), payload_hash)
