"""Benchmark ``synchronize``: N Deployteq customers -> updates of their Salesforce leads (issue 6, R13-R15).

Run from the repo root:
    .venv/bin/python -m include.benchmarks synchronize [--records N] [--baseline-records M] [--skip-baseline]

Seeds N leads into a fresh emulator and N customers carrying their lead ids into a fresh Deployteq
schema (not timed; done in the child before its clock starts), then measures, each in its own child:

- ours: ``SalesforceSynchronizeOperator(sobject="Lead", selection_sql=..., fields=[Newsletter__c,
  Email_Opt_In__c, LeadSource])`` exactly as a DAG runs it: above ``bulk_threshold`` (2,000) one Bulk
  API 2.0 ingest ``update`` job, per-record outcomes stored in ``synchronize_outcome``.  Afterwards all N
  leads must carry the new values and all N outcomes must be ``on_success``.
- baseline: the stock hooks as a DAG author writes it today: ``PostgresHook`` reads the customers and
  one ``sf.Lead.update(Id, {...})`` request per record.  With ``--baseline-records M`` (default 2,000)
  it runs on the first M customers and is extrapolated linearly to N (labelled so).

Salesforce requests come from the emulator's counters.  The operator's ledger budget is raised with
the connection extra ``hourly_budget`` so the flow is measured, not throttled.  The last line is JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from include.benchmarks.harness import (
    phase_lines,
    BenchmarkCheckFailed,
    FlowResult,
    benchmark_main,
    OPERATOR_CONN_IDS,
    baseline_size,
    comparison_summary,
    comparison_table,
    fresh_services,
)

DEFAULT_RECORDS = 10_000
DEFAULT_BASELINE_RECORDS = 2_000
MODULE = "include.benchmarks.synchronize"
FIELDS = ["Newsletter__c", "Email_Opt_In__c", "LeadSource"]
TARGET_REQUESTS, TARGET_RATE = 50, 5_000  # issue 6, at 100,000 records

LEAD_CONFIG = {
    "sobject": "Lead",
    "unique_field": "email",
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "LeadSource", "deployteq_type": "text", "deployteq_field": "lead_source",
         "translations": {"Web": "Website", "Phone Inquiry": "Telefonisch", "Partner Referral": "Partner"}},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
    ],
}
SELECTION = "SELECT customer_id FROM customer WHERE preferences = 'changed'"


def generate_leads(count: int) -> list[dict]:
    """Leads as Salesforce has them before the campaign: no newsletter, no opt-in."""
    return [
        {"LastName": f"Klant {n}", "Company": "Polder Logistics", "Email": f"klant.{n}@example.nl",
         "LeadSource": "Web", "Newsletter__c": False, "Email_Opt_In__c": "N"}
        for n in range(count)
    ]


def _load_customers(deployteq_conn_id: str, lead_ids: Sequence[str]) -> None:
    """Migrate and fill the customer table: every customer subscribed and opted in (the change to send)."""
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    store = DeployteqHook(deployteq_conn_id)
    store.migrate()
    rows = (
        (f"klant.{n}@example.nl", f"Klant {n}", "Prospect", lead_id, "Partner", True, True, "changed")
        for n, lead_id in enumerate(lead_ids)
    )
    store.copy_rows("customer", ["email", "last_name", "status", "sf_lead_id", "lead_source", "newsletter",
                                 "email_optin", "preferences"], rows)


# -- the two flows (run in child processes by the harness) ---------------------------------------------------


def prepare_operator_flow(salesforce_conn_id: str, deployteq_conn_id: str, lead_ids: list[str]) -> Callable[[], dict]:
    """Ours: the provider's operator, exactly as a DAG runs it (customers loaded before the clock starts)."""
    from deployteq_salesforce.flows.synchronize.operator import SalesforceSynchronizeOperator

    _load_customers(deployteq_conn_id, lead_ids)
    operator = SalesforceSynchronizeOperator(
        task_id="bench", sobject="Lead", fields=FIELDS, selection_sql=SELECTION, object_config={"objects": [LEAD_CONFIG]},
        run_key="bench", salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id,
    )
    return lambda: operator.execute({})


def prepare_baseline_flow(salesforce_conn_id: str, postgres_conn_id: str, deployteq_schema: str, lead_ids: list[str],
                          limit: int) -> Callable[[], dict]:
    """Baseline: the stock hooks, one ``update`` request per record."""
    import requests
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    def flow() -> dict:
        rows = PostgresHook(postgres_conn_id=postgres_conn_id).get_records(
            f'SELECT sf_lead_id, newsletter, email_optin, lead_source FROM "{deployteq_schema}".customer '
            "WHERE preferences = 'changed' AND sf_lead_id IS NOT NULL ORDER BY customer_id LIMIT %s", parameters=(limit,)
        )
        connection = SalesforceHook.get_connection(salesforce_conn_id)
        session = requests.Session()
        session.verify = connection.extra_dejson["ca_file"]
        session.trust_env = False
        sf = SalesforceHook(salesforce_conn_id=salesforce_conn_id, session_id=connection.password, session=session).get_conn()
        sources = {"Website": "Web", "Partner": "Partner Referral", "Telefonisch": "Phone Inquiry"}
        updated = 0
        for lead_id, newsletter, optin, source in rows:
            sf.Lead.update(lead_id, {"Newsletter__c": newsletter, "Email_Opt_In__c": "Y" if optin else "N",
                                     "LeadSource": sources.get(source, source)})
            updated += 1
        return {"updated": updated}

    return flow


# -- the benchmark -----------------------------------------------------------------------------------------


def run(records: int, *, baseline_records: int | None = DEFAULT_BASELINE_RECORDS, skip_baseline: bool = False,
        verbose: bool = False) -> dict:
    baseline_n = baseline_size(records, baseline_records)
    with fresh_services(log_level="INFO" if verbose else "WARNING") as services:
        admin = services.admin
        started = time.perf_counter()
        lead_ids = admin.seed("Lead", generate_leads(records))
        seed_seconds = time.perf_counter() - started

        schema = services.new_schema("bench_synchronize")
        ours = services.run_flow(
            "ours", f"{MODULE}:prepare_operator_flow",
            {**OPERATOR_CONN_IDS, "lead_ids": lead_ids},
            records=records,
            connections=services.operator_connections(schema),
        )
        _check_ours(services, schema, ours, records)

        baseline = None
        if not skip_baseline:
            _reset_leads(admin, lead_ids[:baseline_n])  # the same leads back to their old values (not timed)
            baseline = services.run_flow(
                "baseline", f"{MODULE}:prepare_baseline_flow",
                {"salesforce_conn_id": "salesforce_baseline", "postgres_conn_id": "postgres_baseline",
                 "deployteq_schema": schema, "lead_ids": lead_ids, "limit": baseline_n},
                records=baseline_n,
                connections={
                    "salesforce_baseline": services.salesforce_connection(),
                    "postgres_baseline": services.postgres_connection(),
                },
            )
            updated = _updated_leads(admin)
            if updated != records or (baseline.value or {}).get("updated") != baseline_n:
                raise BenchmarkCheckFailed(f"synchronize baseline did not do its job: {updated:,} leads updated, "
                                           f"baseline says {baseline.value}")
        summary = _summary(ours, baseline, records)
        _print_report(services, summary, ours, baseline, seed_seconds)
    return summary


def _reset_leads(admin, ids: Sequence[str], chunk: int = 25_000) -> None:
    for start in range(0, len(ids), chunk):
        admin.update("Lead", [{"Id": i, "Newsletter__c": False, "Email_Opt_In__c": "N", "LeadSource": "Web"}
                              for i in ids[start : start + chunk]])


def _updated_leads(admin) -> int:
    return sum(1 for r in admin.records("Lead")
               if r.get("Newsletter__c") and r.get("Email_Opt_In__c") == "Y" and r.get("LeadSource") == "Partner Referral")


def _check_ours(services, schema: str, result: FlowResult, records: int) -> None:
    summary = result.value or {}
    # the operator's XCom is a fixed small summary; its seconds per phase are in the run log
    result.value = {**summary, "phase_seconds": services.sql(
        f'SELECT details->\'phase_seconds\' FROM "{schema}".run_log ORDER BY run_log_id DESC LIMIT 1')[0][0]}
    stored = dict(services.sql(f'SELECT exit, count(*) FROM "{schema}".synchronize_outcome GROUP BY exit'))
    updated = _updated_leads(services.admin)
    problems = []
    if summary.get("on_success") != records or stored.get("on_success") != records:
        problems.append(f"on_success {summary.get('on_success')} (stored: {stored}), expected {records:,}")
    if updated != records:
        problems.append(f"{updated:,} leads carry the new values, expected {records:,}")
    if problems:
        raise BenchmarkCheckFailed(f"synchronize (ours) did not do its job: {'; '.join(problems)}; summary: {summary}")


def _summary(ours: FlowResult, baseline: FlowResult | None, records: int) -> dict:
    summary = comparison_summary("synchronize", ours, baseline, records)
    summary["exits"] = {k: (ours.value or {}).get(k) for k in ("continue", "on_success", "on_error", "on_limit")}
    return summary


def _print_report(services, summary: dict, ours: FlowResult, baseline: FlowResult | None, seed_seconds: float) -> None:
    records = summary["records"]
    print(f"synchronize: {records:,} Deployteq customers -> updates of their Salesforce leads (3 fields, by Id)")
    print(f"  fresh emulator (API limits {services.api_limit:,}); PostgreSQL: {services.pg_source}; "
          f"{records:,} leads seeded in {seed_seconds:.1f} s, customers loaded before the clock starts")
    print()
    print(comparison_table("SalesforceSynchronizeOperator", ours, "one update per record", baseline, summary))
    print()
    for line in phase_lines(ours):
        print(line)
    print("  ours by endpoint: " + (", ".join(f"{k} {v:,}" for k, v in ours.by_endpoint.items()) or "none"))
    print(f"  exits: {summary['exits']}")
    if baseline is not None and ours.seconds > 0:
        print(f"  ours vs baseline: {summary['baseline_seconds'] / ours.seconds:,.1f}x faster, "
              f"{summary['baseline_sf_requests'] / max(ours.sf_requests, 1):,.0f}x fewer Salesforce requests")
    print(f"  targets (issue 6, at 100,000): <= {TARGET_REQUESTS} requests: {ours.sf_requests} "
          f"({'met' if ours.sf_requests <= TARGET_REQUESTS else 'MISSED'}); >= {TARGET_RATE:,} records/s: "
          f"{ours.records_per_s:,.0f} ({'met' if ours.records_per_s >= TARGET_RATE else 'MISSED'})")
    print(flush=True)


def _add_arguments(parser) -> None:
    parser.add_argument("--baseline-records", type=int, default=DEFAULT_BASELINE_RECORDS, metavar="M",
                        help=f"run the baseline on the first M records and extrapolate to N (default {DEFAULT_BASELINE_RECORDS:,})")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our operator")


def main(argv: Sequence[str] | None = None) -> dict:
    return benchmark_main(run, argv, description=__doc__.splitlines()[0], default_records=DEFAULT_RECORDS,
                          add_arguments=_add_arguments, prog="python -m include.benchmarks synchronize")


if __name__ == "__main__":
    main()
