"""What every benchmark needs: fresh services, flows measured in child processes, a table and a JSON line.

A benchmark module (``include/benchmarks/<name>.py``) exposes ``run(records: int, **options) -> dict``
and ``main(argv) -> dict``; ``benchmark_main`` gives ``main`` the common command line and output.

- ``fresh_services()`` starts a fresh Salesforce emulator (limits high enough for any baseline) and
  picks a PostgreSQL server (``DEPLOYTEQ_DATABASE_URL``, else an embedded pgserver under
  ``.state/bench-flows-postgres`` that is stopped afterwards); ``new_schema()`` hands out fresh schemas
  that are dropped at the end.
- ``BenchServices.run_flow()`` runs one flow in a fresh *spawned* child process with its own Airflow
  environment (connections and Variables as ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``), and measures
  it there: wall time of the flow, the child's own peak RSS (``peak_rss_kib``), and the Salesforce requests the emulator
  counted meanwhile (its own counters, independent of the provider's ledger).

Nothing here imports Airflow: the parent never does; the children do, after their environment is set.
Children are spawned: a script (not ``python -m include.benchmarks``) that calls ``run_flow`` needs the
usual ``if __name__ == "__main__":`` guard, and a flow's ``"module:function"`` must be importable by name.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT, ROOT / "plugins"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# High enough that neither our flow nor a one-request-per-record baseline is ever limited.
BENCH_API_LIMIT = 10_000_000
DATABASE_URL_ENV = "DEPLOYTEQ_DATABASE_URL"
PROFILE_DIR_ENV = "DEPLOYTEQ_BENCH_PROFILE_DIR"  # set: each measured flow writes a cProfile .pstats file there
EMBEDDED_PG_DIR = ROOT / ".state" / "bench-flows-postgres"  # not store_upsert's: that one is deleted after use


class BenchmarkCheckFailed(AssertionError):
    """A flow did not do its job (wrong row count, flags left set, ...): its timing means nothing."""


# -- one measured flow -----------------------------------------------------------------------------------


@dataclass
class FlowResult:
    """One flow, measured in its own process."""

    label: str
    records: int
    seconds: float
    sf_requests: int
    by_endpoint: dict[str, int]
    peak_rss_mb: float
    rss_before_flow_mb: float  # the child's peak after imports and set-up, before the timed flow
    value: Any = None  # what the flow returned (e.g. the operator's XCom summary)
    server_seconds: float | None = None  # the emulator's own time answering the flow's requests (its counters)
    cpu_seconds: float | None = None  # the flow process's CPU time (all threads)
    server_seconds_by_endpoint: dict[str, float] = field(default_factory=dict)  # the emulator's time, per endpoint

    @property
    def phase_seconds(self) -> dict[str, float]:
        """Where the flow's time went: the operator's phases (run log ``phase_seconds``) and the emulator's own time."""
        phases = dict((self.value or {}).get("phase_seconds") or {}) if isinstance(self.value, dict) else {}
        if self.server_seconds is not None:
            phases["salesforce_server"] = round(self.server_seconds, 3)
        return phases

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_10k(self) -> float:
        return self.sf_requests * 10_000 / self.records if self.records else 0.0


def peak_rss_kib() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` of ``/proc/self/status`` where there is one: Linux carries the parent's high-water mark
    across ``fork`` + ``execve`` into ``getrusage(RUSAGE_SELF).ru_maxrss``, so in a spawned child
    ``ru_maxrss`` is at least the parent's RSS at spawn time (measured: a 650 MB parent gave a 15 MB
    child a ru_maxrss of 650 MB), while ``VmHWM`` belongs to the child's own address space only.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])  # "VmHWM:   123456 kB"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def _child_entry(target: str, kwargs: dict, env: dict[str, str]) -> dict:
    """Runs in the spawned child: set the environment, prepare the flow (untimed), time it."""
    os.environ.update(env)
    module_name, _, function_name = target.partition(":")
    prepare = getattr(importlib.import_module(module_name), function_name)
    flow = prepare(**kwargs)  # imports Airflow, builds hooks/operators: not part of the flow's time
    rss_before = peak_rss_kib()
    cpu_before = _cpu_seconds()
    profile_dir = os.environ.get(PROFILE_DIR_ENV)
    profiler = None
    if profile_dir:  # cProfile of the timed flow (it slows the flow: timings of such a run mean little)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    value = flow()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(Path(profile_dir) / f"{function_name}-{os.getpid()}.pstats")
    return {"value": value, "seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu_before, "rss_before_kib": rss_before,
            "peak_rss_kib": peak_rss_kib()}


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system): unlike wall time, hardly moved by other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_in_child(target: str, kwargs: Mapping[str, Any], env: Mapping[str, str]) -> dict:
    """Call ``target`` (``"module:function"``) in a fresh spawned process and return its measurements.

    ``target(**kwargs)`` must return a zero-argument callable: the flow.  Only that call is timed;
    the peak RSS is read in the child when the flow has ended, so each flow's memory is its own.
    An exception in the child is raised here with the child's traceback attached.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_child_entry, target, dict(kwargs), dict(env)).result()


def airflow_child_environment(
    airflow_home: Path,
    *,
    connections: Mapping[str, dict] = (),
    variables: Mapping[str, Any] = (),
    log_level: str = "WARNING",
) -> dict[str, str]:
    """Environment for a child that uses Airflow hooks without a metadata database."""
    env = {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": log_level,
    }
    for conn_id, conn in dict(connections).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    for name, value in dict(variables).items():
        env[f"AIRFLOW_VAR_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


# -- fresh services for one benchmark run ------------------------------------------------------------------


@dataclass
class BenchServices:
    """A fresh emulator and a PostgreSQL server for one benchmark run."""

    emulator: Any  # include.salesforce_emulator.process.EmulatorProcess
    pg_url: str
    pg_source: str  # "DEPLOYTEQ_DATABASE_URL" or "embedded pgserver"
    workdir: Path
    api_limit: int
    log_level: str = "WARNING"
    schemas: list[str] = field(default_factory=list)

    @property
    def admin(self):  # the emulator's admin client (its calls never count as API requests)
        return self.emulator.client

    def new_schema(self, prefix: str) -> str:
        """A fresh schema name (not created: migrations or the caller create it); dropped at the end."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.schemas.append(name)
        return name

    def salesforce_connection(self, **extra) -> dict:
        from include.local_services import salesforce_emulator_connection

        return salesforce_emulator_connection(self.emulator.connection_json, **extra)

    def postgres_connection(self, *, deployteq_schema: str | None = None) -> dict:
        from include.local_services import postgres_connection

        return postgres_connection(self.pg_url, deployteq_schema=deployteq_schema)

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement in the benchmark database (set-up and checks, never timed)."""
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def operator_connections(self, schema: str) -> dict[str, dict]:
        """``salesforce_default`` and ``deployteq_default`` for our operators, the hourly budget of the
        ledger (default 3,600) raised so the flow is measured, not throttled."""
        return {
            "salesforce_default": self.salesforce_connection(hourly_budget=BENCH_API_LIMIT),
            "deployteq_default": self.postgres_connection(deployteq_schema=schema),
        }

    def run_flow(
        self,
        label: str,
        target: str,
        kwargs: Mapping[str, Any],
        *,
        records: int,
        connections: Mapping[str, dict] = (),
        variables: Mapping[str, Any] = (),
    ) -> FlowResult:
        """Run one flow in a child process; its requests are read from the emulator's counters."""
        home = self.workdir / f"airflow-{label}"
        home.mkdir(parents=True, exist_ok=True)
        env = airflow_child_environment(home, connections=connections, variables=variables, log_level=self.log_level)
        before = self.admin.counters()
        measured = run_in_child(target, kwargs, env)
        after = self.admin.counters()
        return FlowResult(
            label=label,
            records=records,
            seconds=measured["seconds"],
            sf_requests=after["total"] - before["total"],
            by_endpoint=_counter_difference(before["by_endpoint"], after["by_endpoint"]),
            peak_rss_mb=measured["peak_rss_kib"] / 1024,
            rss_before_flow_mb=measured["rss_before_kib"] / 1024,
            value=measured["value"],
            server_seconds=_server_seconds(after) - _server_seconds(before) if "server_seconds" in after else None,
            cpu_seconds=measured["cpu_seconds"],
            server_seconds_by_endpoint=_server_seconds_by_endpoint(before, after),
        )

    def drop_schemas(self) -> None:
        for name in self.schemas:
            self.sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self.schemas.clear()


def _server_seconds(counters: Mapping[str, Any]) -> float:
    return float((counters.get("server_seconds") or {}).get("total") or 0.0)


def _server_seconds_by_endpoint(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """The emulator's own seconds per endpoint between two counter readings (largest first)."""
    old = (before.get("server_seconds") or {}).get("by_endpoint") or {}
    new = (after.get("server_seconds") or {}).get("by_endpoint") or {}
    spent = {name: round(seconds - old.get(name, 0.0), 3) for name, seconds in new.items()}
    return dict(sorted(((n, s) for n, s in spent.items() if s > 0), key=lambda item: -item[1]))


def _counter_difference(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    diff = {name: count - before.get(name, 0) for name, count in after.items()}
    return {name: count for name, count in sorted(diff.items()) if count}


@contextmanager
def fresh_services(*, api_limit: int = BENCH_API_LIMIT, log_level: str = "WARNING") -> Iterator[BenchServices]:
    """A fresh emulator (own state dir) and PostgreSQL for one run; everything is stopped and dropped after."""
    from include.salesforce_emulator.process import start_emulator

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="deployteq-bench-")))
        pg_url = os.environ.get(DATABASE_URL_ENV)
        pg_source = DATABASE_URL_ENV
        if not pg_url:
            from include.local_services import embedded_postgres

            # "stop": the server stops when this process lets go of it (unless someone else holds it)
            server = stack.enter_context(embedded_postgres(EMBEDDED_PG_DIR, cleanup_mode="stop"))
            pg_url, pg_source = server.get_uri(), "embedded pgserver"
        emulator = stack.enter_context(
            # records in memory only: a real org's storage costs our machine nothing (MemoryOnlyStateDB)
            start_emulator(workdir / "emulator", hourly_limit=api_limit, daily_limit=api_limit, memory_only=True)
        )
        services = BenchServices(emulator=emulator, pg_url=pg_url, pg_source=pg_source, workdir=workdir,
                                 api_limit=api_limit, log_level=log_level)
        try:
            yield services
        finally:
            services.drop_schemas()


# -- output ------------------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table; numbers right-aligned with thousands separators."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] in (None, "") for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line([str(h) for h in headers]), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return str(value)


def flow_figures(result: FlowResult) -> dict[str, float | int]:
    """The contract's figures of one flow, rounded for the JSON line."""
    return {
        "records": result.records,
        "seconds": round(result.seconds, 3),
        "records_per_s": round(result.records_per_s, 1),
        "sf_requests": result.sf_requests,
        "requests_per_10k": round(result.requests_per_10k, 2),
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "phase_seconds": result.phase_seconds,
        "cpu_seconds": round(result.cpu_seconds, 3) if result.cpu_seconds is not None else None,
    }


COMPARISON_HEADERS = ["flow", "records", "seconds", "records/s", "SF requests", "req/10k", "peak RSS MB", "RSS before MB"]


def _flow_row(label: str, result: FlowResult) -> list:
    return [label, result.records, result.seconds, result.records_per_s, result.sf_requests, result.requests_per_10k,
            result.peak_rss_mb, result.rss_before_flow_mb]


def comparison_table(ours_label: str, ours: FlowResult, baseline_label: str, baseline: FlowResult | None,
                     summary: dict) -> str:
    """Ours, the baseline as measured and, when it ran on fewer records, scaled to ours (see comparison_summary)."""
    rows = [_flow_row(f"ours: {ours_label}", ours)]
    if baseline is None:
        rows.append(["baseline: skipped (--skip-baseline)"] + [None] * (len(COMPARISON_HEADERS) - 1))
        return format_table(COMPARISON_HEADERS, rows)
    scaled = baseline.records != ours.records
    rows.append(_flow_row(f"baseline: {baseline_label}" + (" (measured)" if scaled else ""), baseline))
    if scaled:
        rows.append([f"baseline: extrapolated from {baseline.records:,}", ours.records, summary["baseline_seconds"],
                     baseline.records_per_s, summary["baseline_sf_requests"], baseline.requests_per_10k, None, None])
    return format_table(COMPARISON_HEADERS, rows)


OPERATOR_CONN_IDS = {"salesforce_conn_id": "salesforce_default", "deployteq_conn_id": "deployteq_default"}


def baseline_size(records: int, baseline_records: int | None, default: int | None = None) -> int:
    """How many records the baseline runs on (``--baseline-records``, else ``default``, else all), at most ``records``."""
    if baseline_records is not None and baseline_records < 1:
        raise ValueError("--baseline-records must be at least 1")
    return min(baseline_records or default or records, records)


def comparison_summary(name: str, ours: FlowResult, baseline: FlowResult | None, records: int) -> dict:
    """The JSON line's common part: our figures, and the baseline's scaled to ``records`` when it ran on fewer."""
    summary: dict = {"benchmark": name, **flow_figures(ours)}
    summary["rss_before_flow_mb"] = round(ours.rss_before_flow_mb, 1)
    summary["ledger_requests"] = (ours.value or {}).get("api_requests")
    summary["sf_requests_by_endpoint"] = ours.by_endpoint
    summary["salesforce_server_seconds_by_endpoint"] = ours.server_seconds_by_endpoint
    if baseline is None:
        summary.update(baseline_skipped=True, baseline_seconds=None, baseline_sf_requests=None)
        return summary
    factor = records / baseline.records
    summary.update(
        baseline_records=records,
        baseline_seconds=round(baseline.seconds * factor, 3),
        baseline_sf_requests=round(baseline.sf_requests * factor),
        baseline_records_per_s=round(baseline.records_per_s, 1),
        baseline_requests_per_10k=round(baseline.requests_per_10k, 2),
        baseline_peak_rss_mb=round(baseline.peak_rss_mb, 1),
        baseline_extrapolated_from=baseline.records if baseline.records != records else None,
        baseline_measured_seconds=round(baseline.seconds, 3),
        baseline_measured_sf_requests=baseline.sf_requests,
        baseline_sf_requests_by_endpoint=baseline.by_endpoint,
    )
    return summary


PHASE_NOTE = ("phases are exclusive on the flow's thread (they add up to its time; 'other' is the rest); 'read:*' ran "
              "in the background reader at the same time; 'read_wait' = the flow waiting for it; salesforce_server = the "
              "emulator's own time answering (its counters)")


def phase_lines(result: FlowResult) -> list[str]:
    """The flow's time per phase, largest first, as lines for a report."""
    phases = result.phase_seconds
    if not phases:
        return ["  phases: none reported"]
    cells = [f"{name} {seconds:,.2f}" for name, seconds in sorted(phases.items(), key=lambda item: -item[1])]
    cpu = f"; the flow process used {result.cpu_seconds:,.1f} s CPU" if result.cpu_seconds is not None else ""
    return [f"  seconds per phase ({result.seconds:,.1f} s in all{cpu}): " + ", ".join(cells), f"  ({PHASE_NOTE})"]


def growth_table(summaries: Sequence[dict]) -> str:
    """How time and memory grow with N: one row per run, with the peak RSS relative to the smallest run."""
    ordered = sorted(summaries, key=lambda s: s["records"])
    smallest = ordered[0]["peak_rss_mb"] or 1.0
    rows = [[s["records"], s["seconds"], s["records_per_s"], s["sf_requests"], s["peak_rss_mb"],
             f"{s['peak_rss_mb'] / smallest:.2f}x"] for s in ordered]
    return format_table(["N", "seconds", "records/s", "SF requests", "peak RSS MB", "RSS vs smallest"], rows)


def benchmark_main(
    run: Callable[..., dict],
    argv: Sequence[str] | None,
    *,
    description: str,
    default_records: int,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    prog: str | None = None,
) -> dict:
    """The common command line: ``--records N`` (+ the benchmark's own options), then ``run(...)``.

    ``run`` prints its readable table; this prints the summary it returns as the LAST line (JSON).
    ``--scale 10000,1000000`` runs the flow again at those sizes (without baseline) and adds how time and
    memory grow with N: a table, and ``scaling`` in the JSON line.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--records", type=int, default=default_records, help=f"records (default {default_records:,})")
    parser.add_argument("--verbose", action="store_true", help="INFO logging from the flows (on stderr)")
    parser.add_argument("--scale", type=_sizes, default=[], metavar="N,N,...",
                        help="also run at these sizes and print how time and memory grow with N")
    if add_arguments:
        add_arguments(parser)
    args = vars(parser.parse_args(argv))
    if args["records"] < 1:
        parser.error("--records must be at least 1")
    sizes = args.pop("scale")
    machine_before = machine_seconds()
    summary = run(**args)
    if sizes:
        runs = {summary["records"]: summary}
        extra = {"skip_baseline": True} if "skip_baseline" in inspect.signature(run).parameters else {}
        for size in sizes:
            if size not in runs:
                runs[size] = run(**{**args, **extra, "records": size})
        summary["scaling"] = [
            {key: s[key] for key in ("records", "seconds", "records_per_s", "sf_requests", "peak_rss_mb")}
            for s in sorted(runs.values(), key=lambda s: s["records"])
        ]
        print("How time and memory grow with N (each run a fresh emulator and schema):")
        print(growth_table(list(runs.values())))
        print(flush=True)
    summary["machine_seconds"] = {"before": machine_before, "after": machine_seconds()}
    print(f"This machine's speed: a fixed Python loop took {machine_before:.2f} s before the runs and "
          f"{summary['machine_seconds']['after']:.2f} s after (compare figures only from runs near in this number)")
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)
    return summary


MACHINE_LOOP = 3_000_000


def machine_seconds() -> float:
    """Seconds a fixed pure-Python loop takes now.  The development machine's cores are shared and its speed moved by
    up to four times within an hour: figures of runs far apart only compare next to this number."""
    started = time.perf_counter()
    total = 0
    for number in range(MACHINE_LOOP):
        total += number
    return round(time.perf_counter() - started, 3)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scale takes sizes like 10000,1000000, not {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--scale sizes must be at least 1")
    return sizes
