"""Datamodel tables in the Deployteq schema (R10): create/migrate them, write rows, relate them to customers.

Uses a ``DeployteqHook`` (its connections have ``search_path`` = our schema, and its ``copy_upsert``
writes the rows); the table shapes come from ``datamodel.py``.  Methods that write take the
connection of the caller's transaction, so data, relations, errors and watermarks commit together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from deployteq_salesforce.core.timing import LOOKUP, UPSERT, PhaseTimer
from deployteq_salesforce.flows.object_links.datamodel import TableChange, constraint_name, plan_table, table_definition
from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.object_links.config import CUSTOMER_COLUMN, DEPLOYTEQ_ID_COLUMN, Webhook

log = logging.getLogger(__name__)

DDL_LOCK = "deployteq_salesforce.datamodel:"
RECONCILE_STAGE = "reconcile_salesforce_ids"
# customer_field -> how a customer row is matched (lead/contact ids are unique in customer)
CUSTOMER_MATCH = {
    "sf_lead_id": "c.sf_lead_id = {value}",
    "sf_contact_id": "c.sf_contact_id = {value}",
    # "<> ''" matches the partial index on email_key (without it every lookup scans customer);
    # a blank address relates to no customer
    "email": "c.email_key = lower(btrim({value})) AND c.email_key <> ''",
}


@dataclass(frozen=True)
class RowsWritten:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    not_inserted: int = 0  # new rows left out because the link does not allow inserts


def sql_type(column: dict) -> sql.Composable:
    kind = column["type"]
    if kind == "text":
        return sql.SQL("varchar({})").format(sql.Literal(column["max_length"])) if column.get("max_length") else sql.SQL("text")
    return sql.SQL({"integer": "bigint", "decimal": "numeric", "boolean": "boolean", "date": "date", "datetime": "timestamptz"}[kind])


def ddl(table: str, change: TableChange, definition: dict) -> sql.Composed:
    """The statement of one planned change to ``table`` (``definition``: the new table definition)."""
    t = sql.Identifier(table)
    relation = sql.SQL("{} bigint REFERENCES customer (customer_id) ON DELETE SET NULL").format(sql.Identifier(CUSTOMER_COLUMN))
    if change.kind == "create_table":
        parts = [
            sql.SQL("{} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY").format(sql.Identifier(DEPLOYTEQ_ID_COLUMN)),
            *(sql.SQL("{} {}").format(sql.Identifier(c["name"]), sql_type(c)) for c in definition["columns"]),
            *([relation] if definition["relation"] else []),
            sql.SQL("created_at timestamptz NOT NULL DEFAULT now()"),
            sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"),
            sql.SQL("CONSTRAINT {} UNIQUE ({})").format(
                sql.Identifier(constraint_name(table, "dedup_key")), sql.SQL(", ").join(map(sql.Identifier, definition["key"]))
            ),
            sql.SQL("CONSTRAINT {} CHECK ({})").format(
                sql.Identifier(constraint_name(table, "key_present")),
                sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(k)) for k in definition["key"]),
            ),
        ]
        return sql.SQL("CREATE TABLE {} ({})").format(t, sql.SQL(", ").join(parts))
    if change.kind == "touch_trigger":
        return sql.SQL(
            "CREATE TRIGGER {} BEFORE UPDATE ON {} FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) "
            "EXECUTE FUNCTION touch_datamodel_updated_at()"
        ).format(sql.Identifier(constraint_name(table, "touch")), t)
    if change.kind == "relation_index":
        return sql.SQL("CREATE INDEX {} ON {} ({})").format(
            sql.Identifier(constraint_name(table, "customer_idx")), t, sql.Identifier(CUSTOMER_COLUMN)
        )
    if change.kind == "add_column":
        return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(t, sql.Identifier(change.column["name"]), sql_type(change.column))
    if change.kind == "widen_column":
        return sql.SQL("ALTER TABLE {t} ALTER COLUMN {c} TYPE {type} USING {c}::{type}").format(
            t=t, c=sql.Identifier(change.column["name"]), type=sql_type(change.column)
        )
    if change.kind == "add_relation":
        return sql.SQL("ALTER TABLE {} ADD COLUMN {}").format(t, relation)
    raise ValueError(f"unknown table change {change.kind!r}")


class DatamodelStore:
    def __init__(self, store) -> None:
        self.store = store  # DeployteqHook
        self._ensured: dict[str, str] = {}  # table -> definition JSON this process already checked

    # -- tables ---------------------------------------------------------------------------------------

    def ensure_table(self, webhook: Webhook) -> list[str]:
        """Create or migrate the webhook's table to its definition; returns what was changed.

        Raises ``DestructiveChange`` (nothing applied) when the change would lose data.  Serialised
        per table with an advisory lock, so a DAG and a webhook push never migrate it at once.
        """
        definition = table_definition(webhook)
        wanted = json.dumps(definition, sort_keys=True)
        if self._ensured.get(webhook.datamodel) == wanted:
            return []
        table = webhook.datamodel
        with self.store.connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (DDL_LOCK + self.store.schema_name + "." + table,))
            row = conn.execute("SELECT definition FROM datamodel_table WHERE table_name = %s", (table,)).fetchone()
            applied = row[0] if row else None
            if applied is None and self.store.table_columns(table, conn=conn):
                raise ConfigurationError(
                    f"Table {table!r} already exists in schema {self.store.schema_name!r} but was not created from a "
                    "webhook definition; rename that table or choose another datamodel name."
                )
            steps = plan_table(table, applied, definition)
            for step in steps:
                conn.execute(ddl(table, step, definition))
                log.info("Datamodel %s: %s", table, step.description)
            if steps or applied is None:
                conn.execute(
                    "INSERT INTO datamodel_table (table_name, webhook, definition) VALUES (%s, %s, %s::jsonb) "
                    "ON CONFLICT (table_name) DO UPDATE SET webhook = excluded.webhook, definition = excluded.definition, "
                    "updated_at = now()",
                    (table, webhook.name, wanted),
                )
        self._ensured[table] = wanted
        return [s.description for s in steps]

    # -- rows -----------------------------------------------------------------------------------------

    def _keys_source(self, webhook: Webhook, key_rows: Sequence[Sequence[Any]]) -> tuple[sql.Composed, list]:
        """``unnest(...) AS k (key columns)`` for the given key tuples, with parameters."""
        keys = webhook.key_columns
        arrays = [sql.SQL("%s::{}[]").format(sql_type(_column(webhook, k))) for k in keys]
        source = sql.SQL("unnest({}) AS k ({})").format(sql.SQL(", ").join(arrays), sql.SQL(", ").join(map(sql.Identifier, keys)))
        params = [[row[i] for row in key_rows] for i in range(len(keys))]
        return source, params

    def _key_match(self, webhook: Webhook, alias: str) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = k.{}").format(sql.Identifier(alias), sql.Identifier(k), sql.Identifier(k)) for k in webhook.key_columns
        )

    def _rows_of_keys(self, webhook: Webhook, key_rows: Sequence[Sequence[Any]], select: sql.Composable) -> tuple[sql.Composed, list]:
        """``SELECT <select over alias d> FROM`` the table rows with the given keys, one index lookup per key.

        A plain join of the keys with the table lets the planner read the WHOLE table (merge or hash
        join) once it is a few times bigger than the batch, which makes every batch cost O(table).  The
        LATERAL subquery with ``LIMIT 1`` (a no-op: the key is unique) is never flattened into a join,
        so each key is one lookup in the unique index of the de-duplication key.
        """
        source, params = self._keys_source(webhook, key_rows)
        statement = sql.SQL("SELECT {select} FROM {source} CROSS JOIN LATERAL (SELECT * FROM {t} AS d WHERE {match} LIMIT 1) AS d").format(
            select=select, source=source, t=sql.Identifier(webhook.datamodel), match=self._key_match(webhook, "d"),
        )
        return statement, params

    def _key_rows(self, webhook: Webhook, rows: Sequence[Sequence[Any]]) -> list[tuple]:
        positions = [webhook.columns.index(k) for k in webhook.key_columns]
        return [tuple(row[p] for p in positions) for row in rows]

    def _key_columns_of(self, webhook: Webhook, alias: str) -> sql.Composed:
        return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(k)) for k in webhook.key_columns)

    def existing_keys(self, conn: psycopg.Connection, webhook: Webhook, rows: Sequence[Sequence[Any]]) -> set[tuple]:
        if not rows:
            return set()
        statement, params = self._rows_of_keys(webhook, sorted(set(self._key_rows(webhook, rows)), key=repr), self._key_columns_of(webhook, "d"))
        return {tuple(r) for r in conn.execute(statement, params).fetchall()}

    def write_rows(
        self, conn: psycopg.Connection, webhook: Webhook, rows: Sequence[Sequence[Any]], *, allow_inserts: bool = True,
        phases: PhaseTimer | None = None,
    ) -> RowsWritten:
        """Upsert rows (``webhook.columns`` order) on the de-duplication key; the last of a repeated key wins.

        With ``allow_inserts=False`` only rows whose key is already in the table are written.
        """
        not_inserted = 0
        if not allow_inserts and rows:
            known = self.existing_keys(conn, webhook, rows)
            keys = self._key_rows(webhook, rows)
            kept = [row for row, key in zip(rows, keys) if key in known]
            not_inserted = len(rows) - len(kept)
            rows = kept
        if not rows:
            return RowsWritten(not_inserted=not_inserted)
        columns, update_columns = webhook.columns, None
        if webhook.customer_relation:
            # New rows get their customer on insert (no second write of every new row).  Existing rows:
            # customer_id is not an update column, so what counts as changed/unchanged stays the webhook's
            # columns only; _relate_rows gives them their customer afterwards.
            with (phases or PhaseTimer()).phase(LOOKUP):
                customers = self.customer_ids(conn, webhook, rows)
            rows = [(*row, customer) for row, customer in zip(rows, customers)]
            update_columns = [c for c in webhook.columns if c not in webhook.key_columns]
            columns = [*webhook.columns, CUSTOMER_COLUMN]
        counts = self.store.copy_upsert(webhook.datamodel, columns, rows, webhook.key_columns, update_columns, conn=conn,
                                        phases=phases)
        if webhook.customer_relation and (counts.updated or counts.unchanged):
            # rows that were already there kept their customer on upsert: give them the one just looked up
            with (phases or PhaseTimer()).phase(UPSERT):
                self._relate_rows(conn, webhook, self._key_rows(webhook, rows), customers)
        return RowsWritten(counts.inserted, counts.updated, counts.unchanged, not_inserted)

    def _relate_rows(self, conn: psycopg.Connection, webhook: Webhook, keys: Sequence[tuple], customers: Sequence[int | None]) -> int:
        """Set customer_id of the stored rows with ``keys`` to ``customers`` (looked up by :meth:`customer_ids`
        for the rows just written; the last of a repeated key wins, as in the upsert) where it differs.

        Without looking every row's customer up again: the customers of the batch's distinct relation values
        were already found for the upsert."""
        wanted = dict(zip(keys, customers))  # the last of a repeated key wins
        if not wanted:
            return 0
        key_names = webhook.key_columns
        arrays = [sql.SQL("%s::{}[]").format(sql_type(_column(webhook, k))) for k in key_names]
        source = sql.SQL("unnest({}, %s::bigint[]) AS k ({}, resolved)").format(
            sql.SQL(", ").join(arrays), sql.SQL(", ").join(map(sql.Identifier, key_names))
        )
        params = [[key[i] for key in wanted] for i in range(len(key_names))] + [list(wanted.values())]
        # each key one lookup in the unique index (LATERAL ... LIMIT 1, see _rows_of_keys); only rows whose
        # customer changes are updated, each found through the primary key
        statement = sql.SQL(
            "WITH changed AS MATERIALIZED (SELECT d.{id} AS row_id, k.resolved FROM {source} "
            "CROSS JOIN LATERAL (SELECT * FROM {t} AS d WHERE {match} LIMIT 1) AS d "
            "WHERE d.{cid} IS DISTINCT FROM k.resolved) "
            "UPDATE {t} AS target SET {cid} = changed.resolved FROM changed "
            "WHERE target.{id} = ANY(ARRAY(SELECT row_id FROM changed)) AND target.{id} = changed.row_id "
            "AND target.{cid} IS DISTINCT FROM changed.resolved"
        ).format(
            t=sql.Identifier(webhook.datamodel), cid=sql.Identifier(CUSTOMER_COLUMN), id=sql.Identifier(DEPLOYTEQ_ID_COLUMN),
            source=source, match=self._key_match(webhook, "d"),
        )
        return conn.execute(statement, params).rowcount

    def customer_ids(self, conn: psycopg.Connection, webhook: Webhook, rows: Sequence[Sequence[Any]]) -> list[int | None]:
        """The customer each row relates to (first relation that matches wins), as ``resolve_relations`` decides."""
        found: list[dict[str, int | None]] = []
        for relation in webhook.customer_relation:
            position = webhook.columns.index(relation.column)
            values = sorted({row[position] for row in rows if row[position] is not None})
            statement = sql.SQL(
                "SELECT u.v, (SELECT c.customer_id FROM customer AS c WHERE {} ORDER BY c.sf_deleted, c.customer_id LIMIT 1) "
                "FROM unnest(%b::text[]) AS u (v)"
            ).format(sql.SQL(CUSTOMER_MATCH[relation.customer_field]).format(value=sql.SQL("u.v")))
            found.append(dict(conn.execute(statement, (values,)).fetchall()) if values else {})
        positions = [webhook.columns.index(r.column) for r in webhook.customer_relation]
        return [
            next((customers[row[p]] for p, customers in zip(positions, found) if customers.get(row[p]) is not None), None)
            for row in rows
        ]

    def ids_for(self, conn: psycopg.Connection, webhook: Webhook, rows: Sequence[Sequence[Any]]) -> list[tuple[int | None, int | None]]:
        """(deployteq_id, customer_id) per row, in the order of ``rows``."""
        keys = self._key_rows(webhook, rows)
        if not keys:
            return []
        customer = sql.SQL("d.{}").format(sql.Identifier(CUSTOMER_COLUMN)) if webhook.customer_relation else sql.SQL("NULL::bigint")
        select = sql.SQL("{cols}, d.{id}, {customer}").format(
            cols=self._key_columns_of(webhook, "d"), id=sql.Identifier(DEPLOYTEQ_ID_COLUMN), customer=customer,
        )
        statement, params = self._rows_of_keys(webhook, sorted(set(keys), key=repr), select)
        found = {tuple(r[:-2]): (r[-2], r[-1]) for r in conn.execute(statement, params).fetchall()}
        return [found.get(key, (None, None)) for key in keys]

    def delete_ids(self, conn: psycopg.Connection, webhook: Webhook, salesforce_ids: Iterable[str]) -> int:
        ids = [i for i in salesforce_ids if i]
        if not ids or webhook.id_column is None:
            return 0
        statement = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(sql.Identifier(webhook.datamodel), sql.Identifier(webhook.id_column))
        return conn.execute(statement, (ids,)).rowcount

    # -- customer relation ----------------------------------------------------------------------------

    def resolve_relations(self, conn: psycopg.Connection, webhook: Webhook) -> int:
        """Set customer_id from the relation columns of every unresolved row (its customer arrived later than
        it; :meth:`write_rows` relates the rows it writes itself).

        The first relation column that matches a customer wins; returns how many rows changed.
        """
        if not webhook.customer_relation:
            return 0
        candidates = [
            sql.SQL("(SELECT c.customer_id FROM customer AS c WHERE {} ORDER BY c.sf_deleted, c.customer_id LIMIT 1)").format(
                sql.SQL(CUSTOMER_MATCH[r.customer_field]).format(value=sql.SQL("d.{}").format(sql.Identifier(r.column)))
            )
            for r in webhook.customer_relation
        ]
        resolved = sql.SQL("coalesce({})").format(sql.SQL(", ").join(candidates)) if len(candidates) > 1 else candidates[0]
        select = sql.SQL("d.{id} AS row_id, d.{cid} AS current_id, {resolved} AS resolved").format(
            id=sql.Identifier(DEPLOYTEQ_ID_COLUMN), cid=sql.Identifier(CUSTOMER_COLUMN), resolved=resolved,
        )
        candidates_query = sql.SQL("SELECT {select} FROM {t} AS d WHERE d.{cid} IS NULL AND ({refs})").format(
            select=select, t=sql.Identifier(webhook.datamodel), cid=sql.Identifier(CUSTOMER_COLUMN),
            refs=self._has_reference(webhook, "d"),
        )
        # Materialised: each row's customer is looked up once, and only the rows that change are updated,
        # each found through the primary key (the ANY keeps the planner from scanning the whole table).
        statement = sql.SQL(
            "WITH r AS MATERIALIZED ({candidates}), "
            "changed AS MATERIALIZED (SELECT row_id, resolved FROM r WHERE current_id IS DISTINCT FROM resolved) "
            "UPDATE {t} AS target SET {cid} = changed.resolved FROM changed "
            "WHERE target.{id} = ANY(ARRAY(SELECT row_id FROM changed)) AND target.{id} = changed.row_id "
            "AND target.{cid} IS DISTINCT FROM changed.resolved"
        ).format(
            t=sql.Identifier(webhook.datamodel), cid=sql.Identifier(CUSTOMER_COLUMN), id=sql.Identifier(DEPLOYTEQ_ID_COLUMN),
            candidates=candidates_query,
        )
        return conn.execute(statement).rowcount

    def _has_reference(self, webhook: Webhook, alias: str) -> sql.Composed:
        return sql.SQL(" OR ").join(
            sql.SQL("{}.{} IS NOT NULL").format(sql.Identifier(alias), sql.Identifier(r.column)) for r in webhook.customer_relation
        )

    def unresolved_count(self, conn: psycopg.Connection, webhook: Webhook) -> int:
        """Rows that refer to a customer (a relation column is filled) that is not in the customer table yet."""
        if not webhook.customer_relation:
            return 0
        statement = sql.SQL("SELECT count(*) FROM {t} AS d WHERE d.{cid} IS NULL AND ({refs})").format(
            t=sql.Identifier(webhook.datamodel), cid=sql.Identifier(CUSTOMER_COLUMN), refs=self._has_reference(webhook, "d"),
        )
        return conn.execute(statement).fetchone()[0]

    # -- reconciliation -------------------------------------------------------------------------------

    def start_reconciliation(self, conn: psycopg.Connection) -> datetime:
        """Stage table for the Ids Salesforce has; returns the database time rows must be older than to go."""
        conn.execute(sql.SQL("CREATE TEMP TABLE {} (sf_id text PRIMARY KEY) ON COMMIT DROP").format(sql.Identifier(RECONCILE_STAGE)))
        return conn.execute("SELECT now()").fetchone()[0]

    def stage_salesforce_ids(self, conn: psycopg.Connection, ids: Iterable[str]) -> int:
        return self.store.copy_rows(RECONCILE_STAGE, ["sf_id"], ((i,) for i in ids), conn=conn)

    def delete_missing(self, conn: psycopg.Connection, webhook: Webhook, started: datetime) -> int:
        """Delete rows whose Salesforce Id was not staged; rows created after ``started`` stay."""
        statement = sql.SQL(
            "DELETE FROM {t} AS d WHERE d.{idc} IS NOT NULL AND d.created_at < %s "
            "AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE s.sf_id = d.{idc})"
        ).format(t=sql.Identifier(webhook.datamodel), idc=sql.Identifier(webhook.id_column), stage=sql.Identifier(RECONCILE_STAGE))
        return conn.execute(statement, (started,)).rowcount

    def count_rows(self, conn: psycopg.Connection, webhook: Webhook) -> int:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(webhook.datamodel))).fetchone()[0]


def _column(webhook: Webhook, column: str) -> dict:
    f = webhook.field_for(column)
    return {"type": f.type, "max_length": f.max_length}
