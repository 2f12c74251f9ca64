"""Benchmark ``initial_load``: the R9 initial load of N leads into an empty Deployteq customer table (issue 12).

Run from the repo root:
    .venv/bin/python -m include.benchmarks initial_load [--records N] [--scale 10000,1000000]

Seeds N leads into a fresh emulator (not timed), then measures in a child process the manual-triggered
initial-load DAG's operator end to end: ``SalesforceToDeployteqOperator(sobject="Lead", full_load=True)``
with e-mail uniqueness.  Above the bulk threshold that is one Bulk API 2.0 query job whose result pages
are streamed, mapped in batches and written by COPY into staging plus one set-based write per batch.

Checks (the timing means nothing without them): N customers, every lead id and every e-mail address
exactly once, no record errors, and Salesforce untouched: every request the flow sent was a read (R9).
Targets at 1,000,000 leads: at most 120 s and 60 Salesforce requests, and peak memory at most 1.2 times
the 10,000-lead figure (``--scale 10000,1000000`` prints both).  The last line printed is one JSON object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from include.benchmarks.harness import (
    OPERATOR_CONN_IDS,
    BenchmarkCheckFailed,
    FlowResult,
    benchmark_main,
    flow_figures,
    format_table,
    fresh_services,
    phase_lines,
)
from include.benchmarks.lead_sync import LEAD_CONFIG, generate_leads

DEFAULT_RECORDS = 100_000
MODULE = "include.benchmarks.initial_load"
SEED_CHUNK = 50_000  # leads generated and sent per admin call: the parent never holds all of them
TARGET_SECONDS, TARGET_REQUESTS, TARGET_RSS_GROWTH = 120, 60, 1.2  # issue 12, at 1,000,000 leads
# what an initial load may send: reads only (describe, REST query pages, Bulk query jobs and their results)
READ_ENDPOINTS = ("GET ", "POST jobs/query")


def prepare_operator_flow(salesforce_conn_id: str, deployteq_conn_id: str) -> Callable[[], dict]:
    """The initial-load DAG's task, exactly as the DAG runs it."""
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    operator = SalesforceToDeployteqOperator(
        task_id="load_lead", sobject="Lead", full_load=True, object_config={"objects": [LEAD_CONFIG]},
        salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id,
    )
    return lambda: operator.execute({})


def seed(admin, records: int) -> float:
    started = time.perf_counter()
    for start in range(0, records, SEED_CHUNK):
        admin.seed("Lead", generate_leads(min(SEED_CHUNK, records - start), start=start))
    return time.perf_counter() - started


def run(records: int, *, verbose: bool = False) -> dict:
    with fresh_services(log_level="INFO" if verbose else "WARNING") as services:
        seed_seconds = seed(services.admin, records)
        schema = services.new_schema("bench_initial_load")
        result = services.run_flow("ours", f"{MODULE}:prepare_operator_flow", OPERATOR_CONN_IDS, records=records,
                                   connections=services.operator_connections(schema))
        _check(services, schema, result, records)
        summary = {"benchmark": "initial_load", **flow_figures(result)}
        summary.update(
            rss_before_flow_mb=round(result.rss_before_flow_mb, 1),
            ledger_requests=(result.value or {}).get("api_requests"),
            sf_requests_by_endpoint=result.by_endpoint,
            baseline_seconds=None, baseline_sf_requests=None,  # no baseline: the stock hooks offer no initial load
        )
        _print_report(services, summary, result, seed_seconds)
    return summary


def _check(services, schema: str, result: FlowResult, records: int) -> None:
    customers, leads, addresses = services.sql(
        f'SELECT count(*), count(DISTINCT sf_lead_id), count(DISTINCT email_key) FROM "{schema}".customer')[0]
    summary = result.value or {}
    writes = {name: n for name, n in result.by_endpoint.items() if not name.startswith(READ_ENDPOINTS)}
    problems = []
    if not customers == leads == addresses == records:
        problems.append(f"{customers:,} customers with {leads:,} lead ids and {addresses:,} addresses, "
                        f"expected {records:,} of each")
    if summary.get("errors") or summary.get("inserted") != records:
        problems.append(f"the operator reported {summary.get('inserted')} inserted, {summary.get('errors')} errors")
    if writes:
        problems.append(f"Salesforce was written to (R9: an initial load touches nothing): {writes}")
    if problems:
        raise BenchmarkCheckFailed(f"initial_load did not do its job: {'; '.join(problems)}; summary: {summary}")


def _print_report(services, summary: dict, result: FlowResult, seed_seconds: float) -> None:
    records = summary["records"]
    print(f"initial_load: {records:,} leads -> an empty Deployteq customer table (R9, e-mail uniqueness)")
    print(f"  fresh emulator; PostgreSQL: {services.pg_source}, fresh schema; {records:,} leads seeded in "
          f"{seed_seconds:.1f} s (not timed)")
    print()
    print(format_table(
        ["flow", "records", "seconds", "records/s", "SF requests", "peak RSS MB", "RSS before MB"],
        [["SalesforceToDeployteqOperator(full_load=True)", records, result.seconds, result.records_per_s,
          result.sf_requests, result.peak_rss_mb, result.rss_before_flow_mb]],
    ))
    print()
    print(f"  requests: {', '.join(f'{k} {v:,}' for k, v in result.by_endpoint.items())} (reads only: Salesforce untouched)")
    for line in phase_lines(result):
        print(line)
    if records >= 1_000_000:
        print(f"  targets (issue 12, at 1,000,000): <= {TARGET_SECONDS} s: {result.seconds:,.0f} "
              f"({'met' if result.seconds <= TARGET_SECONDS else 'MISSED'}); <= {TARGET_REQUESTS} requests: "
              f"{result.sf_requests} ({'met' if result.sf_requests <= TARGET_REQUESTS else 'MISSED'}); memory: "
              f"compare with --scale 10000 (at most {TARGET_RSS_GROWTH}x)")
    print(flush=True)


def main(argv: Sequence[str] | None = None) -> dict:
    return benchmark_main(run, argv, description=__doc__.splitlines()[0], default_records=DEFAULT_RECORDS,
                          prog="python -m include.benchmarks initial_load")


if __name__ == "__main__":
    main()
