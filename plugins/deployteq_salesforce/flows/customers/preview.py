"""Dry run of a changed Lead/Contact mapping ("preview", issue 13): what it would do, writing nothing.

Given a candidate object config (one entry of the Variable ``deployteq_salesforce_objects``):

1. structure: ``load_objects_config`` (no network);
2. Salesforce: one describe; the candidate is checked with ``validate_against_salesforce`` like the
   editor and the DAGs do.  A Deployteq field that is not a column of the customer table is not an
   error here: it is listed as a new column a migration would add (saving still needs that migration);
3. a sample: the N most recently modified records, ONE REST query
   (``ORDER BY SystemModstamp DESC, Id DESC LIMIT N``, N at most 2000 = one page);
4. the sync's own mapping (``build_incoming_records``) and merge plan (``store.plan_batch``) on the
   sample, against the customer table read in a READ ONLY transaction that is rolled back;
5. one ``SELECT COUNT()`` of what the next full run (the initial load, which brings a changed mapping
   to every customer) would read, for an estimate of its requests and time.

Salesforce cost: describe + sample + count = 3 requests (``PREVIEW_REQUESTS``), sent through the
budgeted hook, so they count in the shared API budget (its ledger is the only thing written).

The comparison (:func:`compare_plan`) and the estimate (:func:`estimate_full_run`) are pure; only
:func:`run_preview` talks to Salesforce and PostgreSQL.  No Airflow import at module level.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from psycopg import Connection, sql

from deployteq_salesforce.core.soql import count_query, select_list, validate_identifier
from deployteq_salesforce.flows.customers.config import (
    ConfigProblem,
    ConfiguredObject,
    InvalidConfiguration,
    load_objects_config,
    validate_against_salesforce,
)
from deployteq_salesforce.flows.customers.mapping import RecordProblem, build_incoming_records
from deployteq_salesforce.flows.customers.merge import CustomerPlan
from deployteq_salesforce.flows.customers.store import (
    ROW_SYSTEM_COLUMNS,
    plan_batch,
    written_row,
    written_value_columns,
)

if TYPE_CHECKING:
    from deployteq_salesforce.hooks.deployteq import DeployteqHook
    from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

SAMPLE_DEFAULT = 200
SAMPLE_MAX = 2000  # one REST page
# describe + the sample query + the count query
PREVIEW_REQUESTS = 3
# The time estimate's rate: a full load (initial_load) of 1,000,000 leads ran at 15,800 records/s on the
# 2-core dev machine (README, Performance); rounded down.
FULL_RUN_RECORDS_PER_SECOND = 15_000
# Bulk API 2.0 result page size of the sync's reader (core/bulk.py QUERY_PAGE_RECORDS)
BULK_RESULT_PAGE = 250_000

# The PostgreSQL type a migration would give a new column of each Deployteq type
MIGRATION_COLUMN_TYPES = {
    "text": "text",
    "email": "text",
    "integer": "bigint",
    "decimal": "numeric",
    "boolean": "boolean",
    "date": "date",
    "datetime": "timestamp with time zone",
    "optin": "boolean",
}
_MISSING_COLUMN = "does not exist in the customer table"

Outcome = str  # insert | update | merge | unchanged | skipped | delete | rejected


class InvalidCandidate(InvalidConfiguration):
    """The candidate config is refused; ``problems`` name the row/setting and the reason."""


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class NewColumn:
    """A Deployteq field of the candidate that the customer table does not have yet."""

    name: str
    deployteq_type: str
    column_type: str
    salesforce_field: str

    @property
    def ddl(self) -> str:
        return f'ALTER TABLE customer ADD COLUMN "{self.name}" {self.column_type};'


@dataclass
class PreviewRecord:
    """One sampled record: what the candidate mapping would do to its customer."""

    sf_id: str | None
    outcome: Outcome
    reason: str | None = None
    customer_id: int | None = None
    before: dict[str, Any] | None = None  # the customer row now (written columns), None for a new customer
    after: dict[str, Any] | None = None  # the row after the change, None when nothing would be written
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunEstimate:
    """The next full run (initial load) with the candidate mapping."""

    records: int
    requests: int
    seconds: float
    api: str
    records_per_second: int = FULL_RUN_RECORDS_PER_SECOND
    soql: str = ""

    @property
    def basis(self) -> str:
        return (
            "SELECT COUNT() of every record a full load reads; requests = describe + "
            + ("REST pages" if self.api == "REST" else "first REST page + Bulk API 2.0 job, status and result pages")
            + f"; time at {self.records_per_second:,} records/s (README, Performance: initial_load)"
        )


@dataclass
class MappingPreview:
    sobject: str
    sample_size: int
    records: list[PreviewRecord]
    new_columns: list[NewColumn]
    warnings: list[ConfigProblem]
    estimate: RunEstimate | None
    salesforce_requests: int  # requests this preview sent (counted in the API budget)
    columns: list[str]  # the written columns compared, in order
    written: bool = False  # always False: a preview writes nothing

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.records if r.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        names = ("insert", "update", "merge", "unchanged", "skipped", "delete", "rejected")
        return {name: self.count(name) for name in names}

    @property
    def rejected(self) -> list[PreviewRecord]:
        return [r for r in self.records if r.outcome == "rejected"]

    @property
    def changed_columns(self) -> list[str]:
        """Columns that change in at least one sampled customer, in table order."""
        seen = {c for r in self.records for c in r.changed}
        return [c for c in self.columns if c in seen]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sobject": self.sobject,
            "sample_size": self.sample_size,
            "sampled": len(self.records),
            "written": self.written,
            "counts": self.counts,
            "changed_columns": self.changed_columns,
            "new_columns": [{**asdict(c), "ddl": c.ddl} for c in self.new_columns],
            "warnings": [str(w) for w in self.warnings],
            "salesforce_requests": self.salesforce_requests,
            "salesforce_cost": "describe + sample query + count query",
            "estimate": None if self.estimate is None else {**asdict(self.estimate), "basis": self.estimate.basis},
            "records": [
                {
                    "sf_id": r.sf_id, "outcome": r.outcome, "reason": r.reason, "customer_id": r.customer_id,
                    "changed": r.changed, "before": _jsonable(r.before), "after": _jsonable(r.after),
                }
                for r in self.records
            ],
        }


def _jsonable(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: display_value(v, json_safe=True) for k, v in row.items()}


def display_value(value: Any, *, json_safe: bool = False) -> Any:
    """A stored value as the preview shows it: date-times ISO, dates and decimals as text (JSON keeps the rest)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, Decimal)):
        return str(value)
    if json_safe and not (value is None or isinstance(value, (bool, int, float, str))):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------- candidate


def parse_candidate(raw: str | bytes | Mapping[str, Any], sobject: str) -> ConfiguredObject:
    """The candidate object config (one Variable entry, or a whole ``{"objects": [...]}`` document),
    validated with the DAGs' model; raises :class:`InvalidCandidate` naming row/setting and reason."""
    if isinstance(raw, (str, bytes)):
        try:
            data: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidCandidate(
                [ConfigProblem("configuration", None, None, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")],
                source="the candidate config",
            ) from None
    else:
        data = dict(raw)
    document = data if isinstance(data, dict) and "objects" in data else {"objects": [data]}
    try:
        config = load_objects_config(document)
    except InvalidConfiguration as exc:
        raise InvalidCandidate(exc.problems, source="the candidate config") from None
    obj = config.get(sobject)
    if obj is None:
        found = ", ".join(o.sobject for o in config.objects) or "none"
        raise InvalidCandidate(
            [ConfigProblem("configuration", None, "sobject", f"the candidate config has no {sobject} object (found: {found})")],
            source="the candidate config",
        )
    return obj


def new_columns_of(obj: ConfiguredObject, customer_columns: Mapping[str, str]) -> list[NewColumn]:
    """The candidate's Deployteq fields the customer table lacks, typed as a migration would add them."""
    return [
        NewColumn(m.deployteq_field, m.deployteq_type, MIGRATION_COLUMN_TYPES[m.deployteq_type], m.salesforce_field)
        for m in obj.value_mappings
        if m.deployteq_field not in customer_columns
    ]


def check_candidate(
    obj: ConfiguredObject, describe: Mapping[str, Any], customer_columns: Mapping[str, str]
) -> tuple[list[ConfigProblem], list[ConfigProblem], list[NewColumn]]:
    """``validate_against_salesforce`` (the editor's and the DAGs' check), except that a missing customer
    column becomes a :class:`NewColumn`: (errors, warnings, new columns)."""
    new = new_columns_of(obj, customer_columns)
    # the table as it would be after the migration: the new columns in the type a migration gives them
    widened = {**customer_columns, **{c.name: c.column_type for c in new}}
    problems = validate_against_salesforce(obj, dict(describe), widened)
    errors = [p for p in problems if p.is_error and _MISSING_COLUMN not in p.message]
    return errors, [p for p in problems if not p.is_error], new


# ---------------------------------------------------------------------------------------------- SOQL


def sample_query(obj: ConfiguredObject, describe_fields: Sequence[str], size: int) -> str:
    """``SELECT <what a sync reads> FROM T ORDER BY SystemModstamp DESC, Id DESC LIMIT size``."""
    check_sample_size(size)
    known = set(describe_fields)
    wanted = [f for f in [*obj.query_fields(), "IsDeleted"] if f in known or not known]
    columns = select_list(wanted, required=["SystemModstamp", "Id"])
    return (
        f"SELECT {', '.join(columns)} FROM {validate_identifier(obj.sobject, 'object')} "
        f"ORDER BY SystemModstamp DESC, Id DESC LIMIT {size}"
    )


def check_sample_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= SAMPLE_MAX:
        raise ValueError(f"the sample size must be a whole number from 1 to {SAMPLE_MAX}, not {size!r}")
    return size


def estimate_full_run(obj: ConfiguredObject, records: int, *, soql: str = "") -> RunEstimate:
    """Requests and time of a full load reading ``records`` records with ``obj``'s settings (as the reader
    does it: REST pages up to ``bulk_threshold`` records, one Bulk API 2.0 job above)."""
    if records <= obj.bulk_threshold:
        requests = 1 + max(1, math.ceil(records / obj.page_size))
        api = "REST"
    else:
        # describe, the first REST page (which tells the size), create job, status, result pages
        requests = 1 + 1 + 1 + 1 + math.ceil(records / BULK_RESULT_PAGE)
        api = "Bulk API 2.0"
    return RunEstimate(records, requests, round(records / FULL_RUN_RECORDS_PER_SECOND, 1), api, soql=soql)


# ----------------------------------------------------------------------------------------- comparing


def compare_plan(
    obj: ConfiguredObject,
    plan: CustomerPlan,
    problems: Sequence[RecordProblem],
    current_rows: Mapping[int, Mapping[str, Any]],
    new_columns: Sequence[NewColumn] = (),
) -> tuple[list[PreviewRecord], list[str]]:
    """Per record: the customer row now (``current_rows``: customer_id -> written columns as stored) and after
    the plan, the columns that differ and the outcome; refused records with their reasons.

    An update or merge whose row would not differ is ``unchanged`` (the real write's UPDATE leaves such rows
    alone: ``IS DISTINCT FROM``).  Returns the records and the compared columns in write order."""
    mapped = list(dict.fromkeys(m.deployteq_field for m in obj.value_mappings))
    value_columns = written_value_columns(mapped)
    columns = [*value_columns, *ROW_SYSTEM_COLUMNS]
    new = {c.name for c in new_columns}
    by_ref = {c.ref: c for c in plan.customers}

    def rows(ref: int | None) -> tuple[int | None, dict | None, dict | None, list[str]]:
        customer = by_ref.get(ref) if ref is not None else None
        if customer is None:
            return None, None, None, []
        before = dict(current_rows[customer.customer_id]) if customer.customer_id in current_rows else None
        after = dict(zip(columns, written_row(customer, value_columns))) if customer.touched else None
        if after is None:
            return customer.customer_id, before, None, []
        if before is None:
            changed = [c for c in columns if after[c] is not None]
        else:
            changed = [c for c in columns if (c in new and after[c] is not None) or (c not in new and before.get(c) != after[c])]
        return customer.customer_id, before, after, changed

    records: list[PreviewRecord] = [PreviewRecord(p.record_id, "rejected", p.reason) for p in problems]
    for outcome in [*plan.outcomes, *plan.losers]:
        customer_id, before, after, changed = rows(outcome.customer_ref)
        action = outcome.action
        if action == "error":
            records.append(PreviewRecord(outcome.sf_id, "rejected", outcome.reason, customer_id, before))
            continue
        kind = {"inserted": "insert", "updated": "update", "merged": "merge", "skipped": "skipped", "deleted": "delete"}[action]
        if kind in ("update", "merge") and after is not None and not changed:
            kind = "unchanged"
        if kind in ("skipped",) or (kind == "merge" and outcome in plan.losers):
            after, changed = None, []
        records.append(PreviewRecord(outcome.sf_id, kind, outcome.reason, customer_id, before, after, changed))
    return records, columns


# ------------------------------------------------------------------------------------------ database


def read_current_rows(conn: Connection, customer_ids: Sequence[int], columns: Sequence[str]) -> dict[int, dict[str, Any]]:
    """customer_id -> ``columns`` (those the table has) as stored."""
    if not customer_ids or not columns:
        return {}
    cur = conn.execute(
        sql.SQL("SELECT customer_id, {cols} FROM customer WHERE customer_id = ANY(%s)").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, columns))
        ),
        (list(customer_ids),),
    )
    return {row[0]: dict(zip(columns, row[1:])) for row in cur.fetchall()}


def plan_sample(
    conn: Connection,
    obj: ConfiguredObject,
    sample: Sequence[dict[str, Any]],
    customer_columns: Mapping[str, str],
    new_columns: Sequence[NewColumn] = (),
) -> tuple[list[PreviewRecord], list[str]]:
    """The sync's mapping and merge plan on ``sample``, compared with the stored customers (reads only)."""
    incoming, problems = build_incoming_records(obj, list(sample))
    mapped = list(dict.fromkeys(m.deployteq_field for m in obj.value_mappings))
    plan = plan_batch(conn, incoming, [c for c in mapped if c in customer_columns], unique_field=obj.unique_field)
    columns = [*written_value_columns(mapped), *ROW_SYSTEM_COLUMNS]
    stored = [c for c in columns if c in customer_columns]
    current = read_current_rows(conn, [c.customer_id for c in plan.customers if c.customer_id is not None], stored)
    return compare_plan(obj, plan, problems, current, new_columns)


def run_preview(
    obj: ConfiguredObject,
    *,
    salesforce: BudgetedSalesforceHook,
    store: DeployteqHook,
    sample_size: int = SAMPLE_DEFAULT,
) -> MappingPreview:
    """Describe, sample, count (3 Salesforce requests) and the plan of the sample; writes nothing to the
    customer store or Salesforce.  Raises :class:`InvalidCandidate` when the candidate fails the describe check."""
    check_sample_size(sample_size)
    started = salesforce.requests_sent
    conn = store.get_conn()
    try:
        conn.read_only = True  # every transaction of this connection is READ ONLY
        customer_columns = store.table_columns("customer", conn=conn)
        if conn.execute("SELECT current_setting('transaction_read_only')").fetchone()[0] != "on":
            raise RuntimeError("the preview's transaction is not read-only")
        if not customer_columns:  # before any request is spent
            raise RuntimeError(
                f"schema {store.schema_name!r} has no customer table yet; run deployteq_health_check (it migrates) first"
            )
        sf = salesforce.get_conn()
        describe = getattr(sf, obj.sobject).describe()
        errors, warnings, new_columns = check_candidate(obj, describe, customer_columns)
        if errors:
            raise InvalidCandidate(errors, source="the candidate config")
        described = [f["name"] for f in describe.get("fields", [])]
        sample = next(salesforce.query_pages(sample_query(obj, described, sample_size), batch_size=SAMPLE_MAX), [])
        until = (salesforce.server_time or datetime.now().astimezone()).replace(microsecond=0) + timedelta(seconds=1)
        soql = count_query(obj.sobject, since=None, until=until)
        total = sf.query(soql).get("totalSize", 0)
        records, columns = plan_sample(conn, obj, sample[:sample_size], customer_columns, new_columns)
    finally:
        conn.rollback()
        conn.close()
    return MappingPreview(
        sobject=obj.sobject,
        sample_size=sample_size,
        records=records,
        new_columns=new_columns,
        warnings=warnings,
        estimate=estimate_full_run(obj, total, soql=soql),
        salesforce_requests=salesforce.requests_sent - started,
        columns=columns,
    )


def preview_on_connections(
    obj: ConfiguredObject, *, salesforce_conn_id: str = "salesforce_default", deployteq_conn_id: str = "deployteq_default",
    sample_size: int = SAMPLE_DEFAULT, hourly_budget: int | None = None,
) -> MappingPreview:
    """:func:`run_preview` through the two connections: the Salesforce requests count in the shared API budget
    as flow ``preview:<object>``; the Salesforce session is closed afterwards."""
    from deployteq_salesforce.hooks.deployteq import DeployteqHook
    from deployteq_salesforce.hooks.salesforce import BudgetedSalesforceHook

    salesforce = BudgetedSalesforceHook(salesforce_conn_id, deployteq_conn_id=deployteq_conn_id,
                                        flow=f"preview:{obj.sobject}", hourly_budget=hourly_budget)
    try:
        return run_preview(obj, salesforce=salesforce, store=DeployteqHook(deployteq_conn_id), sample_size=sample_size)
    finally:
        salesforce.close()


# ------------------------------------------------------------------------------------------- as text


def format_text(preview: MappingPreview, *, max_records: int | None = 50) -> str:
    """The human-readable report: summary, cost, new columns, rejected records, changed records."""
    counts = preview.counts
    lines = [
        f"Preview of the {preview.sobject} mapping on the {len(preview.records)} most recently modified records "
        f"(sample of at most {preview.sample_size}); nothing was written.",
        "Would: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n) if preview.records else "Would: nothing (no records)",
        f"Salesforce requests: {preview.salesforce_requests} (describe + sample query + count query), counted in the API budget.",
    ]
    if preview.estimate is not None:
        e = preview.estimate
        lines.append(
            f"Next full run (initial load): {e.records:,} records, about {e.requests} requests ({e.api}), "
            f"{duration_text(e.seconds)} at {e.records_per_second:,} records/s."
        )
    for warning in preview.warnings:
        lines.append(f"Warning: {warning}")
    if preview.new_columns:
        lines.append("New columns a migration would add (saving needs them first):")
        lines += [f"  {c.name} {c.column_type}  <- {c.salesforce_field} ({c.deployteq_type})" for c in preview.new_columns]
    if preview.rejected:
        lines.append("Rejected records:")
        lines += [f"  {r.sf_id or '(no Id)'}: {r.reason}" for r in preview.rejected]
    changed = [r for r in preview.records if r.changed and r.outcome != "rejected"]
    if changed:
        lines.append("Changed records (column: now -> after):")
        header = ("Salesforce Id", "outcome", "customer", "changes")
        table = [
            (
                r.sf_id or "",
                r.outcome,
                "new" if r.customer_id is None else str(r.customer_id),
                "; ".join(_change_text(r, c, preview) for c in r.changed),
            )
            for r in changed[: max_records or None]
        ]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(3)]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[3])
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[3] for row in table]
        if max_records and len(changed) > max_records:
            lines.append(f"  ... and {len(changed) - max_records} more (--json lists every record)")
    return "\n".join(lines)


def duration_text(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def _change_text(record: PreviewRecord, column: str, preview: MappingPreview) -> str:
    new = column in {c.name for c in preview.new_columns}
    before = "(new column)" if new else ("(new customer)" if record.before is None else _show(record.before.get(column)))
    return f"{column}: {before} -> {_show((record.after or {}).get(column))}"


def _show(value: Any) -> str:
    return "null" if value is None else str(display_value(value))
