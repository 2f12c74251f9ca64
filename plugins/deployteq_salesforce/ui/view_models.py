"""Pure view-model logic of the Salesforce pages: bucketing, table rows, labels (no Airflow here)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from deployteq_salesforce.flows.customers.config import ConfigProblem, ConfiguredObject
from deployteq_salesforce.ui.charts import Series

RUN_COUNT_COLUMNS = ("fetched", "inserted", "updated", "merged", "skipped", "errors", "deleted")


# ----------------------------------------------------------------------------------- API budget


def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def hourly_budget_series(
    rows: Iterable[tuple[datetime, str | None, int]], *, now: datetime, hours: int = 24
) -> tuple[list[str], list[Series]]:
    """Requests per clock hour for the last ``hours`` hours (oldest first), one series per flow.

    ``rows`` are ``(requested_at or hour start, flow, count)``; rows outside the window are ignored,
    hours without requests are 0, flows are ordered by total use (largest first).
    """
    last = hour_floor(now)
    starts = [last - timedelta(hours=hours - 1 - i) for i in range(hours)]
    index = {start: i for i, start in enumerate(starts)}
    per_flow: dict[str, list[float]] = {}
    for moment, flow, count in rows:
        slot = index.get(hour_floor(moment))
        if slot is None:
            continue
        values = per_flow.setdefault(flow or "(no flow)", [0.0] * hours)
        values[slot] += count
    ordered = sorted(per_flow.items(), key=lambda item: (-sum(item[1]), item[0]))
    labels = [start.strftime("%H:00") for start in starts]
    return labels, [Series(name, values) for name, values in ordered]


def records_per_run_series(runs: Sequence[Mapping[str, Any]], *, limit: int = 30) -> tuple[list[str], list[Series]]:
    """Records per run (oldest first) split into inserted / updated / merged / deleted / errors."""
    chosen = list(reversed(list(runs)[:limit]))
    labels = [_short_time(run.get("started_at")) for run in chosen]
    names = ("inserted", "updated", "merged", "deleted", "errors")
    return labels, [Series(name, [float(run.get(name) or 0) for run in chosen]) for name in names]


def _short_time(moment: Any) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc).strftime("%d %H:%M")
    return str(moment or "")


# ----------------------------------------------------------------------------------- formatting


def format_duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return format_seconds((end - start).total_seconds())


def format_seconds(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_moment(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def salesforce_environment(*, domain: str | None, instance_url: str | None) -> str:
    """``sandbox``, ``production`` or ``custom instance (host)`` from the connection's login domain / URL."""
    host = (urlsplit(instance_url).hostname or "") if instance_url else ""
    if (domain or "").strip().lower() == "test" or ".sandbox." in host or "--" in host.split(".")[0]:
        return "sandbox"
    if not host or host.endswith(".salesforce.com") or host.endswith(".force.com"):
        return "production"
    return f"custom instance ({host})"


# ------------------------------------------------------------------------------- mapping tables


@dataclass(frozen=True)
class MappingRow:
    number: int
    salesforce_field: str
    deployteq_type: str
    deployteq_field: str
    unique_key: bool
    translations: list[tuple[str, str | None]]
    translate_default: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def mapping_rows(obj: ConfiguredObject, problems: Sequence[ConfigProblem] = ()) -> list[MappingRow]:
    """One row per mapping row of ``obj``, with the problems found for that row."""
    rows = []
    for number, mapping in enumerate(obj.mappings, start=1):
        mine = [p for p in problems if p.row == number]
        rows.append(
            MappingRow(
                number=number,
                salesforce_field=mapping.salesforce_field,
                deployteq_type=mapping.deployteq_type,
                deployteq_field=mapping.deployteq_field,
                unique_key=mapping.unique_key,
                translations=list(mapping.translations.items()),
                translate_default=mapping.translate_default,
                problems=[p.message for p in mine if p.is_error],
                warnings=[p.message for p in mine if not p.is_error],
            )
        )
    return rows


def object_level_problems(problems: Sequence[ConfigProblem]) -> list[ConfigProblem]:
    return [p for p in problems if p.row is None]


@dataclass(frozen=True)
class ValidityVerdict:
    state: str  # "valid", "invalid", "unchecked"
    text: str


def validity(problems: Sequence[ConfigProblem] | None, unchecked_reason: str | None = None) -> ValidityVerdict:
    if problems is None:
        return ValidityVerdict("unchecked", f"not checked against the describe: {unchecked_reason or 'unknown'}")
    errors = [p for p in problems if p.is_error]
    if errors:
        return ValidityVerdict("invalid", f"{len(errors)} problem(s) against the Salesforce describe")
    warnings = len(problems) - len(errors)
    return ValidityVerdict("valid", "valid against the Salesforce describe" + (f" ({warnings} warning(s))" if warnings else ""))
