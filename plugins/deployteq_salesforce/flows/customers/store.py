"""Write a batch of Salesforce leads/contacts into the customer table in one transaction.

Loads every customer the batch can touch, lets ``customer_merge`` plan the result, then writes
it set-based: existing customers by COPY into a temporary table and one UPDATE (only rows that
really change), new ones by COPY straight into the table.  Lead and Contact syncs share one advisory lock so two
flows cannot both create a customer for the same new address.  Lists of Salesforce ids go to PostgreSQL as one
array literal (``core.params.text_array``), other lists as binary array parameters (``%b``): psycopg renders a
text array in Python, value by value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from psycopg import Connection, sql

from deployteq_salesforce.core.timing import COPY, LOOKUP, MERGE, UPSERT, PhaseTimer
from deployteq_salesforce.core.params import text_array
from deployteq_salesforce.core.writes import insert_new_rows
from deployteq_salesforce.flows.customers.merge import CustomerPlan, CustomerState, IncomingRecord, plan_customer_writes

# the columns the sync itself maintains next to the mapped Deployteq fields; a written row carries the
# ones after "email" in this order after its value columns (see write_plan)
ROW_SYSTEM_COLUMNS = ("status", "sf_lead_id", "sf_contact_id", "sf_system_modstamp", "sf_deleted", "sf_deleted_at",
                      "sf_merged_into")
SYSTEM_COLUMNS = ("email", *ROW_SYSTEM_COLUMNS)
CUSTOMER_SYNC_LOCK = "deployteq_salesforce.customer_sync"


@dataclass(frozen=True)
class WriteCounts:
    inserted: int
    updated: int
    unchanged: int


def lock_customer_sync(conn: Connection) -> None:
    """Serialise customer writes of all Lead/Contact flows until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s || current_schema()))", (CUSTOMER_SYNC_LOCK,))


def load_candidates(conn: Connection, records: Sequence[IncomingRecord], columns: Sequence[str]) -> list[CustomerState]:
    """Customers a batch can touch: by its lead ids, contact ids (incl. converted-to) and e-mail keys."""
    lead_ids = [r.sf_id for r in records if r.sobject == "Lead"]
    contact_ids = [r.sf_id for r in records if r.sobject == "Contact"]
    contact_ids += [r.converted_contact_id for r in records if r.converted_contact_id]
    emails = [r.email_key for r in records if r.email_key]
    value_columns = [c for c in columns if c not in SYSTEM_COLUMNS or c == "email"]
    query = sql.SQL(
        "SELECT customer_id, sf_lead_id, sf_contact_id, sf_system_modstamp, status, sf_deleted, sf_merged_into, {cols} "
        "FROM customer WHERE customer_id IN ("
        # three index lookups; one WHERE with ORs would scan the whole table for every batch
        " SELECT customer_id FROM customer WHERE sf_lead_id = ANY(%(leads)s::text[])"
        " UNION SELECT customer_id FROM customer WHERE sf_contact_id = ANY(%(contacts)s::text[])"
        " UNION SELECT customer_id FROM customer WHERE email_key = ANY(%(emails)b) AND email_key <> ''"
        ") ORDER BY customer_id"
    ).format(cols=sql.SQL(", ").join(map(sql.Identifier, value_columns)))
    customers = []
    with conn.cursor() as cur:
        # The planner prefers one scan of the whole table to thousands of index probes until the table is
        # several times larger than the batch: every batch would cost O(table).  Probes it is, always.
        previous = cur.execute(
            "SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)"
        ).fetchone()[0]
        cur.execute(query, {"leads": text_array(lead_ids), "contacts": text_array(contact_ids), "emails": emails})
        rows = cur.fetchall()
        cur.execute("SELECT set_config('enable_seqscan', %s, true)", (previous,))
        for row in rows:
            customer_id, lead_id, contact_id, stamp, status, deleted, merged_into, *values = row
            customers.append(
                CustomerState(
                    customer_id=customer_id,
                    values=dict(zip(value_columns, values)),
                    sf_lead_id=lead_id,
                    sf_contact_id=contact_id,
                    sf_system_modstamp=stamp,
                    status=status,
                    sf_deleted=deleted,
                    sf_merged_into=merged_into,
                )
            )
    return customers


def written_value_columns(columns: Sequence[str]) -> list[str]:
    """The value columns :func:`write_plan` writes for mapped ``columns``: the e-mail is always written, mapped or
    not; the system columns (``ROW_SYSTEM_COLUMNS``) follow them and come from the plan's own fields."""
    return [c for c in dict.fromkeys([*columns, "email"]) if c not in ROW_SYSTEM_COLUMNS]


def written_row(customer: CustomerState, value_columns: Sequence[str]) -> list:
    """What :func:`write_plan` writes for ``customer``: ``value_columns`` then ``ROW_SYSTEM_COLUMNS``, in order."""
    values = customer.values
    return [*[values.get(c) for c in value_columns], customer.status, customer.sf_lead_id, customer.sf_contact_id,
            customer.sf_system_modstamp, customer.sf_deleted,
            customer.sf_system_modstamp if customer.sf_deleted else None, customer.sf_merged_into]


# Binary COPY of new customers takes a fifth of the client's time of text COPY (0.08 against 0.4 s per 100,000 rows),
# but PostgreSQL then reads each value in the column's own binary form, where in text it parses whatever it is given.
# It is used only where every written column has a type whose Python values the mapping is known to produce:
# (Deployteq type -> the column types it may be written to in binary, by psycopg's name for the type).
_BINARY_TYPE_NAMES = {"text": "text", "character varying": "varchar", "smallint": "int2", "integer": "int4",
                      "bigint": "int8", "numeric": "numeric", "boolean": "bool", "date": "date",
                      "timestamp with time zone": "timestamptz"}
_BINARY_COLUMNS_FOR = {
    "text": {"text", "character varying"},  # str
    "email": {"text", "character varying"},  # str
    # int, in the mapping's range (bigint's); a smaller column's overflow stays PostgreSQL's error naming the column,
    # and numeric takes Decimals in psycopg's binary form
    "integer": {"bigint"},
    "decimal": {"numeric"},  # Decimal
    "boolean": {"boolean"},  # bool
    "optin": {"boolean"},  # bool
    "date": {"date"},  # date
    "datetime": {"timestamp with time zone"},  # aware datetime
}
_SYSTEM_COLUMN_TYPES = {"status": "text", "sf_lead_id": "text", "sf_contact_id": "text",
                        "sf_system_modstamp": "timestamp with time zone", "sf_deleted": "boolean",
                        "sf_deleted_at": "timestamp with time zone", "sf_merged_into": "text"}


def binary_copy_types(columns: Sequence[str], mapped_types: Sequence[tuple[str, str]],
                      table_types: dict[str, str]) -> list[str] | None:
    """The types for a binary COPY of :func:`write_plan`'s new customers, or None where text COPY must stay.

    ``columns``: the mapped columns, ``mapped_types``: (Deployteq field, Deployteq type) of every mapping row,
    ``table_types``: the customer table's column -> type (``DeployteqHook.table_columns``)."""
    kinds: dict[str, set[str]] = {}
    for column, kind in mapped_types:
        kinds.setdefault(column, set()).add(kind)
    names = []
    for column in [*written_value_columns(columns), *ROW_SYSTEM_COLUMNS]:
        table_type = table_types.get(column)
        if column in _SYSTEM_COLUMN_TYPES:
            safe = table_type == _SYSTEM_COLUMN_TYPES[column]
        elif column in kinds:
            safe = all(table_type in _BINARY_COLUMNS_FOR[kind] for kind in kinds[column])
        else:  # the e-mail column where no mapping row fills it: always null
            safe = table_type in _BINARY_TYPE_NAMES
        if not safe:
            return None
        names.append(_BINARY_TYPE_NAMES[table_type])
    return names


def write_plan(conn: Connection, plan: CustomerPlan, columns: Sequence[str], *, phases: PhaseTimer | None = None,
               copy_types: Sequence[str] | None = None) -> WriteCounts:
    """Write every touched customer of ``plan``; ``columns`` = mapped columns (system ones are added);
    ``copy_types``: :func:`binary_copy_types` of the mapping, for a binary COPY of the new customers."""
    phases = phases or PhaseTimer()
    touched = plan.to_write
    if not touched:
        return WriteCounts(0, 0, 0)
    value_columns = written_value_columns(columns)
    write_columns = [*value_columns, *ROW_SYSTEM_COLUMNS]
    ident = sql.SQL(", ").join(map(sql.Identifier, write_columns))

    def row(customer: CustomerState) -> list:
        return written_row(customer, value_columns)

    existing = [c for c in touched if c.customer_id is not None]
    new = [c for c in touched if c.customer_id is None]
    # ids may move between customers inside one batch (conversion, lost duplicates)
    conn.execute("SET CONSTRAINTS ALL DEFERRED")
    updated = 0
    if existing:
        with phases.phase(COPY):
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE customer_stage ON COMMIT DROP AS "
                    "SELECT customer_id, {cols} FROM customer WITH NO DATA"
                ).format(cols=ident)
            )
            with conn.cursor() as cur, cur.copy(
                sql.SQL("COPY customer_stage (customer_id, {cols}) FROM STDIN").format(cols=ident)
            ) as copy:
                for customer in existing:
                    copy.write_row([customer.customer_id, *row(customer)])
        with phases.phase(UPSERT), conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE customer c SET ({cols}) = ROW({stage_cols}), updated_at = now() "
                    "FROM customer_stage s WHERE s.customer_id = c.customer_id "
                    "AND ROW({target_cols}) IS DISTINCT FROM ROW({stage_cols})"
                ).format(
                    cols=ident,
                    stage_cols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in write_columns),
                    target_cols=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in write_columns),
                )
            )
            updated = cur.rowcount
            cur.execute("DROP TABLE customer_stage")
    if new:
        # new customers need no staging: COPY straight into the table (half the work of stage + INSERT ... SELECT)
        with phases.phase(COPY), conn.cursor() as cur, cur.copy(
            sql.SQL("COPY customer ({cols}) FROM STDIN" + (" (FORMAT BINARY)" if copy_types else "")).format(cols=ident)
        ) as copy:
            if copy_types:
                copy.set_types(copy_types)
            for customer in new:
                copy.write_row(row(customer))
    return WriteCounts(inserted=len(new), updated=updated, unchanged=len(existing) - updated)


def apply_batch(
    conn: Connection, records: Sequence[IncomingRecord], columns: Sequence[str], *, unique_field: str,
    phases: PhaseTimer | None = None, copy_types: Sequence[str] | None = None,
) -> tuple[CustomerPlan, WriteCounts]:
    """Plan and write one batch inside the caller's transaction (which must stay open until commit)."""
    phases = phases or PhaseTimer()
    with phases.phase(LOOKUP):
        lock_customer_sync(conn)
    plan = plan_batch(conn, records, columns, unique_field=unique_field, phases=phases)
    return plan, write_plan(conn, plan, columns, phases=phases, copy_types=copy_types)


def plan_batch(
    conn: Connection, records: Sequence[IncomingRecord], columns: Sequence[str], *, unique_field: str,
    phases: PhaseTimer | None = None,
) -> CustomerPlan:
    """What one batch would do to the customer table, without writing: the customers it can touch are read
    (``columns`` must exist in the table) and ``plan_customer_writes`` plans their final state.

    :func:`apply_batch` writes this plan (after taking the customer-sync lock); the mapping preview
    (``flows/customers/preview.py``) only looks at it, in a read-only transaction it rolls back."""
    phases = phases or PhaseTimer()
    with phases.phase(LOOKUP):
        existing = load_candidates(conn, records, columns)
    with phases.phase(MERGE):
        return plan_customer_writes(records, existing, unique_field=unique_field)  # type: ignore[arg-type]


# -- what Salesforce last sent (migration 0007) --------------------------------------------------------------


def values_hash(record: IncomingRecord, columns: Sequence[str]) -> bytes:
    """Identifies what a record says about its customer: the values of ``columns`` (the mapping's, in its order:
    a changed mapping changes every hash), deletion, conversion.  Not SystemModstamp: a flag reset moves it
    without changing anything we store."""
    values = record.values
    what = (record.sobject, [values.get(c) for c in columns], record.email_key, record.is_deleted,
            record.is_converted, record.converted_contact_id, record.master_record_id)
    return hashlib.blake2b(repr(what).encode(), digest_size=16).digest()


def stored_values_hashes(conn: Connection, sf_ids: Sequence[str]) -> dict[str, bytes]:
    """What ``source_record`` remembers (:func:`values_hash`) of those of ``sf_ids`` that were stored before."""
    if not sf_ids:
        return {}
    # one primary-key probe per id: for "sf_id = ANY(<5,000 ids>)" the planner reads the whole table up to
    # hundreds of thousands of rows (25 against 15 ms per 5,000 ids at 100,000 rows, and growing with the table)
    rows = conn.execute(
        "SELECT s.sf_id, s.values_hash FROM unnest(%s::text[]) AS u (sf_id) "
        "CROSS JOIN LATERAL (SELECT sf_id, values_hash FROM source_record WHERE sf_id = u.sf_id LIMIT 1) AS s",
        (text_array(sf_ids),),
    ).fetchall()
    return {sf_id: bytes(stored) for sf_id, stored in rows}


_REMEMBER_NEW = "INSERT INTO source_record (sf_id, values_hash) SELECT * FROM unnest(%s::text[], %b::bytea[])"
_REMEMBER_ANY = (_REMEMBER_NEW + " ON CONFLICT (sf_id) DO UPDATE SET values_hash = excluded.values_hash, "
                 "stored_at = clock_timestamp()")


def remember_sources(conn: Connection, hashes: dict[str, bytes], *, probably_new: bool = False) -> None:
    """Remember what these records (sf_id -> ``values_hash``) said, in the transaction that stores them;
    ``probably_new``: none of them was stored before as far as the caller knows (a plain INSERT first)."""
    if hashes:
        insert_new_rows(conn, _REMEMBER_NEW, _REMEMBER_ANY, (text_array(list(hashes)), list(hashes.values())),
                        probably_new=probably_new)
