"""The short report `make demo` prints: DAG outcomes, per-flow records and API use, errors, timings.

Figures come from our own tables (``run_log``, ``api_ledger``, ``sync_error`` in the Deployteq
schema, rows since the demo started) and from the emulator's request counters.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

RUN_COUNT_COLUMNS = ("fetched", "inserted", "updated", "merged", "skipped", "deleted", "errors", "api_requests")


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(indent + "  ".join(
            value.ljust(width) if i == 0 or not value.replace(".", "").isdigit() else value.rjust(width)
            for i, (value, width) in enumerate(zip(row, widths))
        ).rstrip())
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def read_store(database_url: str, schema: str, since: datetime) -> dict[str, Any]:
    """Run log rows, API ledger counts and open errors since ``since`` (empty when not migrated yet)."""
    found: dict[str, Any] = {"runs": [], "ledger": {}, "open_errors": {}, "problem": None}
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
            found["runs"] = conn.execute(
                sql.SQL("SELECT flow, outcome, {}, message FROM run_log WHERE started_at >= %s ORDER BY run_log_id").format(
                    sql.SQL(", ").join(map(sql.Identifier, RUN_COUNT_COLUMNS))),
                (since,),
            ).fetchall()
            found["ledger"] = dict(conn.execute(
                "SELECT coalesce(flow, '?'), count(*) FROM api_ledger WHERE requested_at >= %s GROUP BY 1 ORDER BY 1",
                (since,),
            ).fetchall())
            found["open_errors"] = dict(conn.execute(
                "SELECT flow, count(*) FROM sync_error WHERE resolved_at IS NULL GROUP BY flow ORDER BY flow"
            ).fetchall())
    except psycopg.errors.UndefinedTable:
        found["problem"] = f"schema {schema!r} has no run log yet (the health check migrates it)"
    except psycopg.Error as error:
        found["problem"] = f"could not read the run log: {str(error).strip().splitlines()[0]}"
    return found


def read_asset_events(since: datetime) -> list[tuple[str, str, str]]:
    """The Asset events Airflow recorded since ``since``: (DAG, asset URI, counts) in order.

    Needs Airflow's metadata DB configured in this process (the demo does that before its runs)."""
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.source_dag_id, AssetModel.uri, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.timestamp >= since)
            .order_by(AssetEvent.id)
        ).all()
    counts = ("inserted", "updated", "merged", "deleted")
    return [
        (dag_id or "?", uri, ", ".join(f"{key} {extra[key]}" for key in counts if (extra or {}).get(key)) or "-")
        for dag_id, uri, extra in rows
    ]


def read_lineage_events(path: Path, since: datetime) -> list[tuple[str, str, str, str, int]] | None:
    """The OpenLineage COMPLETE/FAIL events of our flows in the file transport's file since ``since``:
    (job, event type, inputs, outputs, columns with column lineage).  None when the file is missing."""
    if not path.exists():
        return None
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("eventType") not in ("COMPLETE", "FAIL") or not (event.get("inputs") or event.get("outputs")):
            continue
        if datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")) < since:
            continue
        outputs = event.get("outputs") or []
        columns = sum(len(((o.get("facets") or {}).get("columnLineage") or {}).get("fields") or {}) for o in outputs)
        found.append((
            event["job"]["name"], event["eventType"],
            ", ".join(d["name"].rsplit(".", 1)[-1] for d in event.get("inputs") or []),
            ", ".join(d["name"].rsplit(".", 1)[-1] for d in outputs), columns,
        ))
    return found


def build_report(*, results, import_errors: dict[str, str], store: dict[str, Any], schema: str, since: datetime,
                 emulator_limits: dict | None, timings: list[tuple[str, float]], total_seconds: float,
                 asset_events: list[tuple[str, str, str]] | None = None,
                 lineage_events: list[tuple[str, str, str, str, int]] | None = None,
                 preview_lines: list[str] | None = None) -> str:
    """``store`` comes from :func:`read_store`, ``emulator_limits`` from the emulator's admin API,
    ``asset_events`` from :func:`read_asset_events`."""
    out = [f"Report (since {since:%Y-%m-%d %H:%M:%S} UTC)"]

    out.append("\nDAG runs (dag.test):")
    out.append(table(
        ["dag", "state", "seconds", "Salesforce requests"],
        [[r.dag_id, r.state, f"{r.seconds:.1f}", "?" if r.api_requests is None else r.api_requests] for r in results],
    ) if results else "  no DAG is tagged deployteq-demo")

    health = health_lines(results)
    if health:
        out.append("\nHealth check:")
        out.extend(health)

    out.append(f"\nFlows (run_log in schema {schema}, this run):")
    if store["problem"]:
        out.append(f"  {store['problem']}")
    elif store["runs"]:
        out.append(table(["flow", "outcome", *RUN_COUNT_COLUMNS], [list(row[:-1]) for row in store["runs"]]))
    else:
        out.append("  no runs recorded")

    if asset_events is not None:
        out.append("\nAsset events (what DAGs scheduled on these assets would be triggered by):")
        out.append(table(["dag", "asset", "counts"], [list(event) for event in asset_events])
                   if asset_events else "  none (no run changed data)")

    if lineage_events is not None:
        out.append("\nOpenLineage events (file transport, .state/demo/airflow/openlineage-events.jsonl):")
        out.append(table(["job", "event", "inputs", "outputs", "columns with lineage"], [list(e) for e in lineage_events])
                   if lineage_events else "  none with datasets")

    if preview_lines:
        out.append("\nMapping preview (the Salesforce page's Preview button; nothing written):")
        out.extend(f"  {line}" for line in preview_lines)

    emulator_total = sum(r.api_requests or 0 for r in results)
    ledger_total = sum(store["ledger"].values())
    per_flow = ", ".join(f"{flow} {n}" for flow, n in store["ledger"].items()) or "none"
    out.append(f"\nSalesforce API requests: {emulator_total} seen by the emulator during the DAG runs; "
               f"{ledger_total} in our budget ledger ({per_flow})")
    if emulator_limits:
        out.append(f"  emulator's own counters now: {_limits_line(emulator_limits)}")

    errors = []
    for r in results:
        if r.state != "success":
            tasks = f" (tasks: {', '.join(r.failed_tasks)})" if r.failed_tasks else ""
            errors.append(f"  {r.dag_id}: {r.state}{tasks}; log: {r.log_file}")
            errors.extend(f"      {line[:200]}" for line in r.error_lines)
    for row in store["runs"]:
        if row[1] not in ("success", "running") and row[-1]:
            errors.append(f"  flow {row[0]} ({row[1]}): {row[-1][:200]}")
    for path, message in import_errors.items():
        errors.append(f"  import error in {path}: {message.strip().splitlines()[-1][:200]}")
    for flow, n in store["open_errors"].items():
        errors.append(f"  flow {flow}: {n} record(s) with open sync errors (table sync_error)")
    out.append("\nErrors:" if errors else "\nErrors: none")
    out.extend(errors)

    slowest = max(timings, key=lambda step: step[1], default=None)
    out.append(f"\nTotal {total_seconds:.1f} s" + (f" (slowest step: {slowest[0]}, {slowest[1]:.1f} s)" if slowest else ""))
    return "\n".join(out)


def _limits_line(limits: dict) -> str:
    parts = [
        f"{period} {limits[f'{period}_used']}/{limits[f'{period}_limit']}"
        for period in ("hourly", "daily")
        if f"{period}_used" in limits and f"{period}_limit" in limits
    ]
    if limits.get("blocked_until"):
        parts.append(f"BLOCKED until {limits['blocked_until']}")
    return ", ".join(parts) or json.dumps(limits)


def health_lines(results) -> list[str]:
    """The health check's own report (connection messages, schema version, API usage), if it ran."""
    for r in results:
        for value in r.returns.values():
            if isinstance(value, dict) and {"deployteq", "salesforce"} <= set(value):
                deployteq, salesforce = value["deployteq"], value["salesforce"]
                return [f"  Deployteq:  {deployteq.get('connection')}", f"  Salesforce: {salesforce.get('connection')}"]
    return []
