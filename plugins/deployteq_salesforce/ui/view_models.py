"""Pure view-model logic of the Salesforce pages: bucketing, table rows, labels (no Airflow here)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from deployteq_salesforce.flows.customers.config import ConfigProblem, ConfiguredObject
from deployteq_salesforce.ui.charts import MAX_SERIES, Series

RUN_COUNT_COLUMNS = ("fetched", "inserted", "updated", "merged", "skipped", "errors", "deleted")
RECORD_KINDS = ("inserted", "updated", "merged", "deleted", "skipped", "errors")
OTHER_FLOWS = "other flows"


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
    if len(ordered) > MAX_SERIES:  # one colour per flow: the smallest share one
        rest = ordered[MAX_SERIES - 1:]
        ordered = [*ordered[:MAX_SERIES - 1], (OTHER_FLOWS, [sum(v) for v in zip(*(values for _, values in rest))])]
    labels = [start.strftime("%H:00") for start in starts]
    return labels, [Series(name, values) for name, values in ordered]


def run_records(run: Mapping[str, Any]) -> int:
    """Records a run dealt with: what it fetched, or (outbound flows) what it wrote, skipped or failed."""
    return max(int(run.get("fetched") or 0), sum(int(run.get(kind) or 0) for kind in RECORD_KINDS))


def records_per_run_by_flow(runs: Sequence[Mapping[str, Any]], *, limit: int = 30) -> tuple[list[str], list[Series], list[str]]:
    """The latest runs (oldest first) as bars coloured by flow: labels, one series per flow, a tooltip per bar.

    One colour per flow: beyond ``MAX_SERIES`` flows the least frequent ones share "other flows".
    """
    chosen = list(reversed(list(runs)[:limit]))
    by_frequency = sorted(dict.fromkeys(run["flow"] for run in chosen), key=lambda f: -sum(r["flow"] == f for r in chosen))
    shown = set(by_frequency if len(by_frequency) <= MAX_SERIES else by_frequency[:MAX_SERIES - 1])

    def colour_of(run: Mapping[str, Any]) -> str:
        return run["flow"] if run["flow"] in shown else OTHER_FLOWS

    names = list(dict.fromkeys(colour_of(run) for run in chosen))
    series = [Series(name, [float(run_records(run)) if colour_of(run) == name else 0.0 for run in chosen]) for name in names]
    labels = [_short_time(run.get("started_at")) for run in chosen]
    return labels, series, [run_tooltip(run) for run in chosen]


def records_per_run_series(runs: Sequence[Mapping[str, Any]], *, limit: int = 30) -> tuple[list[str], list[Series], list[str]]:
    """The latest runs (oldest first) split into inserted / updated / merged / deleted / skipped / errors."""
    chosen = list(reversed(list(runs)[:limit]))
    labels = [_short_time(run.get("started_at")) for run in chosen]
    series = [Series(kind, [float(run.get(kind) or 0) for run in chosen]) for kind in RECORD_KINDS]
    return labels, [s for s in series if any(s.values)], [run_tooltip(run) for run in chosen]


def run_tooltip(run: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{name} {run.get(name) or 0}" for name in RUN_COUNT_COLUMNS if run.get(name))
    took = format_duration(run.get("started_at"), run.get("finished_at"))
    return (
        f"{run.get('flow')} {format_moment(run.get('started_at'))}: {run.get('outcome')}, "
        f"{counts or 'no records'}" + (f", took {took}" if took else "")
    )


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
    """``0.4 s``, ``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``."""
    if seconds is None:
        return ""
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{math.floor(seconds * 10) / 10:.1f} s"  # short runs are the usual case: keep the tenths
    seconds = int(round(seconds))
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


def format_short_moment(moment: datetime | None) -> str:
    """``2024-05-01 14:25`` (UTC): short enough to stay on one line in a table."""
    if moment is None:
        return ""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def format_ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``3 min ago`` / ``in 12 min``."""
    if moment is None:
        return ""
    seconds = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    if abs(seconds) < 60:
        return "just now"
    text = format_seconds(abs(seconds)).split(" ")
    text = " ".join(text[:2])  # "3 min", "2 h": the largest unit is enough here
    return f"{text} ago" if seconds > 0 else f"in {text}"


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


_REQUIREMENT = re.compile(r"^R\d+(?:-R\d+)?: |\s*\(R\d+(?:[-–,] ?R?\d+)*\)")


def plain_words(text: Any) -> str:
    """A message without the specification's requirement numbers ("R15: ...", "... (R15)")."""
    return _REQUIREMENT.sub("", str(text or ""))


def salesforce_environment(*, domain: str | None, instance_url: str | None) -> str:
    """``sandbox``, ``production`` or ``custom instance (host)`` from the connection's login domain / URL."""
    host = (urlsplit(instance_url).hostname or "") if instance_url else ""
    if (domain or "").strip().lower() == "test" or ".sandbox." in host or "--" in host.split(".")[0]:
        return "sandbox"
    if not host or host.endswith(".salesforce.com") or host.endswith(".force.com"):
        return "production"
    return f"custom instance ({host})"


# ----------------------------------------------------------------------------------- Airflow links


# How the DAG factory names the DAGs and the operators name their flows in the run log (a test keeps
# these in step with ``dag_factory`` and the operators).


def object_dag_id(sobject: str) -> str:
    """The incremental DAG of a configured object."""
    return f"salesforce_{sobject.lower()}_to_deployteq"


def object_flow(sobject: str) -> str:
    return f"sync:{sobject}"


def link_dag_id(name: str) -> str:
    """The DAG of an object link."""
    return f"salesforce_link_{name}"


def link_flow(name: str) -> str:
    return f"link:{name}"


def airflow_run_url(root: str, dag_id: str | None, run_id: str | None) -> str | None:
    if not dag_id or not run_id:
        return None
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def airflow_task_log_url(root: str, dag_id: str | None, run_id: str | None, task_id: str | None) -> str | None:
    run = airflow_run_url(root, dag_id, run_id)
    return f"{run}/tasks/{quote(task_id, safe='')}" if run and task_id else None


@dataclass(frozen=True)
class Page:
    """One page of a long list: which rows, and the numbers for "51–100 of 10,000"."""

    number: int
    size: int
    total: int

    @classmethod
    def of(cls, requested: int | None, total: int, size: int = 50) -> Page:
        last = max(1, math.ceil(total / size))
        return cls(min(max(1, requested or 1), last), size, total)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def last(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_row(self) -> int:
        return self.offset + 1 if self.total else 0

    @property
    def last_row(self) -> int:
        return min(self.offset + self.size, self.total)


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


def problems_by_row(problems: Sequence[ConfigProblem]) -> dict[int, list[str]]:
    """The editor's refused rows: row number -> messages (to highlight the row and say why next to it)."""
    rows: dict[int, list[str]] = {}
    for problem in problems:
        if problem.row is not None:
            rows.setdefault(problem.row, []).append(problem.message)
    return rows


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


def field_choices(describe_fields: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The describe's fields for a pick list: API name, label and type, by name."""
    return sorted(
        ({"name": str(f["name"]), "label": str(f.get("label") or f["name"]), "type": str(f.get("type") or "")} for f in describe_fields),
        key=lambda choice: choice["name"].lower(),
    )
