"""Benchmark ``contact_moments``: N new e-mail contact moments, Deployteq -> Salesforce custom objects (issue 5).

Run from the repo root:
    .venv/bin/python -m include.benchmarks contact_moments [--records N] [--baseline-records M] [--skip-baseline]

A fresh emulator gets 1,000 leads and 1,000 contacts; the Deployteq store gets one customer per
lead/contact and N contact moments spread over them (half to leads, half to contacts).  Set-up is
not timed.  Then, each flow in its own child process:

- ours: ``ContactMomentsToSalesforceOperator.execute({})`` (upsert on Deployteq_Id__c; composite 200
  per request, Bulk API 2.0 ingest above the threshold); afterwards the emulator must hold N moment
  records and the store must have N moments marked sent.
- baseline: what the manual's "with delay" implies: one ``create`` request per moment through the
  stock ``SalesforceHook`` (simple-salesforce ``sf.<object>.create``), on the first M moments (default
  2,000; their records from our run are removed first), extrapolated linearly to N.

Target (issue 5): 100,000 new contact moments with at most 50 Salesforce requests.  The operator's
hourly budget is raised (connection extra ``hourly_budget``) so the flow is measured, not throttled.
The last line printed is one JSON object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from include.benchmarks.harness import (
    phase_lines,
    BENCH_API_LIMIT,
    BenchmarkCheckFailed,
    FlowResult,
    benchmark_main,
    OPERATOR_CONN_IDS,
    baseline_size,
    comparison_summary,
    comparison_table,
    fresh_services,
)

DEFAULT_RECORDS = 100_000
DEFAULT_BASELINE_RECORDS = 2_000
TARGET_REQUESTS = 50
PEOPLE_PER_OBJECT = 1_000
MODULE = "include.benchmarks.contact_moments"
LEAD_OBJECT = "ClangLeadContactMoment__c"
CONTACT_OBJECT = "ClangContactContactMoment__c"

MOMENTS_SQL = """
INSERT INTO contact_moment (customer_id, mailing_id, mailing_name, subject, sent_at, opened_first_at, open_count,
                            clicked_first_at, click_count, bounced_at, bounce_type, online_version_url)
SELECT c.ids[1 + n %% cardinality(c.ids)], 100 + n %% 12, 'Nieuwsbrief ' || (1 + n %% 12), 'Nieuws van deze maand',
       timestamptz '2024-01-01 08:00+00' + n * interval '7 seconds',
       CASE WHEN n %% 3 = 0 THEN timestamptz '2024-01-01 10:00+00' + n * interval '7 seconds' END,
       CASE WHEN n %% 3 = 0 THEN 1 + n %% 4 ELSE 0 END,
       CASE WHEN n %% 9 = 0 THEN timestamptz '2024-01-01 10:05+00' + n * interval '7 seconds' END,
       CASE WHEN n %% 9 = 0 THEN 1 ELSE 0 END,
       CASE WHEN n %% 50 = 1 THEN timestamptz '2024-01-01 08:01+00' + n * interval '7 seconds' END,
       CASE WHEN n %% 50 = 1 THEN 'soft' END,
       'https://deployteq.example/mailing/' || (100 + n %% 12) || '/online/' || n
  FROM generate_series(0, %s - 1) AS n, (SELECT array_agg(customer_id ORDER BY customer_id) AS ids FROM customer) AS c
"""


# -- set-up and the two flows (run in child processes by the harness) -------------------------------------


def prepare_operator_flow(salesforce_conn_id: str, deployteq_conn_id: str, records: int,
                          lead_ids: list[str], contact_ids: list[str]) -> Callable[[], dict]:
    """Untimed: migrate the store, add customers and ``records`` moments.  Timed: the operator."""
    from deployteq_salesforce.hooks.deployteq import DeployteqHook
    from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator

    store = DeployteqHook(deployteq_conn_id)
    store.migrate()
    with store.connect() as conn:
        people = [(f"lead{i}@example.nl", lead, None, "Prospect") for i, lead in enumerate(lead_ids)]
        people += [(f"contact{i}@example.nl", None, contact, "Klant") for i, contact in enumerate(contact_ids)]
        store.copy_rows("customer", ["email", "sf_lead_id", "sf_contact_id", "status"], people, conn=conn)
        conn.execute(MOMENTS_SQL, (records,))
    operator = ContactMomentsToSalesforceOperator(
        task_id="bench", salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id, hourly_share=1.0,
    )
    return lambda: operator.execute({})


def prepare_baseline_flow(salesforce_conn_id: str, postgres_conn_id: str, schema: str, records: int) -> Callable[[], dict]:
    """Baseline: read the oldest ``records`` moments and create each one with its own request."""
    import requests
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from deployteq_salesforce.flows.contact_moments.logic import MomentRow, build_payload, route

    def flow() -> dict:
        connection = SalesforceHook.get_connection(salesforce_conn_id)
        session = requests.Session()
        session.verify = connection.extra_dejson["ca_file"]
        session.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment overrides verify
        salesforce = SalesforceHook(salesforce_conn_id=salesforce_conn_id, session_id=connection.password, session=session)
        rows = PostgresHook(postgres_conn_id=postgres_conn_id).get_records(
            f'SELECT cm.contact_moment_id, cm.changed_at, cm.sent_at, cm.mailing_name, cm.subject, cm.opened_first_at, '
            f'cm.open_count, cm.clicked_first_at, cm.click_count, cm.bounced_at, cm.bounce_type, cm.online_version_url, '
            f'c.sf_lead_id, c.sf_contact_id FROM "{schema}".contact_moment cm JOIN "{schema}".customer c USING (customer_id) '
            f'ORDER BY cm.changed_at, cm.contact_moment_id LIMIT %s',
            parameters=(records,),
        )
        names = ("contact_moment_id", "changed_at", "sent_at", "mailing_name", "subject", "opened_first_at", "open_count",
                 "clicked_first_at", "click_count", "bounced_at", "bounce_type", "online_version_url", "sf_lead_id",
                 "sf_contact_id")
        sf = salesforce.get_conn()
        created = 0
        for values in rows:
            moment = MomentRow(**dict(zip(names, values)))
            target = route(moment)
            getattr(sf, target.sobject).create(build_payload(moment, target))
            created += 1
        return {"created": created}

    return flow


# -- the benchmark -----------------------------------------------------------------------------------------


def run(records: int, *, baseline_records: int | None = None, skip_baseline: bool = False, verbose: bool = False) -> dict:
    baseline_n = baseline_size(records, baseline_records, DEFAULT_BASELINE_RECORDS)
    with fresh_services(log_level="INFO" if verbose else "WARNING") as services:
        admin = services.admin
        started = time.perf_counter()
        lead_ids = admin.seed("Lead", [{"LastName": f"Lead {i}", "Company": f"Bedrijf {i}", "Email": f"lead{i}@example.nl"}
                                       for i in range(PEOPLE_PER_OBJECT)])
        contact_ids = admin.seed("Contact", [{"LastName": f"Contact {i}", "Email": f"contact{i}@example.nl"}
                                             for i in range(PEOPLE_PER_OBJECT)])
        seed_seconds = time.perf_counter() - started

        schema = services.new_schema("bench_contact_moments")
        ours = services.run_flow(
            "ours", f"{MODULE}:prepare_operator_flow",
            {**OPERATOR_CONN_IDS, "records": records,
             "lead_ids": lead_ids, "contact_ids": contact_ids},
            records=records,
            connections=services.operator_connections(schema),
        )
        _check_ours(services, schema, ours, records)

        baseline = None
        if not skip_baseline:
            _remove_oldest_from_salesforce(services, schema, baseline_n)  # same moments, created anew (not timed)
            baseline = services.run_flow(
                "baseline", f"{MODULE}:prepare_baseline_flow",
                {"salesforce_conn_id": "salesforce_baseline", "postgres_conn_id": "postgres_baseline",
                 "schema": schema, "records": baseline_n},
                records=baseline_n,
                connections={
                    "salesforce_baseline": services.salesforce_connection(),
                    "postgres_baseline": services.postgres_connection(),
                },
            )
            if (baseline.value or {}).get("created") != baseline_n:
                raise BenchmarkCheckFailed(f"contact_moments baseline created {baseline.value}, expected {baseline_n:,}")

        summary = _summary(ours, baseline, records)
        _print_report(services, summary, ours, baseline, seed_seconds)
    return summary


def _moment_records(admin) -> dict[str, list[dict]]:
    return {sobject: admin.records(sobject) for sobject in (LEAD_OBJECT, CONTACT_OBJECT)}


def _check_ours(services, schema: str, result: FlowResult, records: int) -> None:
    in_salesforce = {sobject: len(rows) for sobject, rows in _moment_records(services.admin).items()}
    marked = services.sql(f'SELECT count(*) FROM "{schema}".contact_moment_sync WHERE sent_hash IS NOT NULL')[0][0]
    summary = result.value or {}
    problems = []
    if sum(in_salesforce.values()) != records:
        problems.append(f"{in_salesforce} moment records in Salesforce, expected {records:,} in total")
    if marked != records:
        problems.append(f"{marked:,} moments marked sent, expected {records:,}")
    if summary.get("errors") or summary.get("left_for_next_run"):
        problems.append(f"{summary.get('errors')} errors, {summary.get('left_for_next_run')} left for the next run")
    if problems:
        raise BenchmarkCheckFailed(f"contact_moments (ours) did not do its job: {'; '.join(problems)}; summary: {summary}")


def _remove_oldest_from_salesforce(services, schema: str, count: int) -> None:
    oldest = {str(row[0]) for row in services.sql(
        f'SELECT contact_moment_id FROM "{schema}".contact_moment ORDER BY changed_at, contact_moment_id LIMIT %s', (count,))}
    ids = [r["Id"] for rows in _moment_records(services.admin).values() for r in rows if r["Deployteq_Id__c"] in oldest]
    for start in range(0, len(ids), 5_000):
        services.admin.hard_delete(ids[start : start + 5_000])


def _summary(ours: FlowResult, baseline: FlowResult | None, records: int) -> dict:
    summary = comparison_summary("contact_moments", ours, baseline, records)
    summary.update(
        target_requests=TARGET_REQUESTS, target_met=ours.sf_requests <= TARGET_REQUESTS, hourly_budget=BENCH_API_LIMIT
    )
    if baseline is not None:
        summary["baseline_hours_at_3600_per_hour"] = round(baseline.sf_requests * records / baseline.records / 3600, 1)
    return summary


def _print_report(services, summary: dict, ours: FlowResult, baseline: FlowResult | None, seed_seconds: float) -> None:
    records = summary["records"]
    print(f"contact_moments: {records:,} new e-mail contact moments -> Salesforce custom objects (half leads, half contacts)")
    print(f"  fresh emulator (API limits hourly {services.api_limit:,}); PostgreSQL: {services.pg_source}, fresh schema; "
          f"{PEOPLE_PER_OBJECT:,} leads + {PEOPLE_PER_OBJECT:,} contacts seeded in {seed_seconds:.1f} s (not timed)")
    print(f"  the operator's hourly budget is raised to {BENCH_API_LIMIT:,} (connection extra) so it is measured, not throttled")
    print()
    print(comparison_table("ContactMomentsToSalesforceOperator", ours, "one create per moment", baseline, summary))
    print()
    for line in phase_lines(ours):
        print(line)
    print(f"  ours by endpoint: {', '.join(f'{k} {v:,}' for k, v in ours.by_endpoint.items()) or 'none'}")
    if baseline is not None:
        print(f"  baseline at 3,600 requests/hour (the manual's limit): {summary['baseline_hours_at_3600_per_hour']:,} hours "
              f"of API budget for {records:,} moments; ours: {ours.sf_requests} requests")
    print(f"  target (issue 5): {records:,} moments with <= {TARGET_REQUESTS} Salesforce requests: {ours.sf_requests} "
          f"({'met' if summary['target_met'] else 'MISSED'})")
    print(flush=True)


def _add_arguments(parser) -> None:
    parser.add_argument("--baseline-records", type=int, default=None, metavar="M",
                        help=f"run the baseline on the oldest M moments (default {DEFAULT_BASELINE_RECORDS:,}) "
                             "and extrapolate linearly to N")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our operator")


def main(argv: Sequence[str] | None = None) -> dict:
    return benchmark_main(run, argv, description=__doc__.splitlines()[0], default_records=DEFAULT_RECORDS,
                          add_arguments=_add_arguments, prog="python -m include.benchmarks contact_moments")


if __name__ == "__main__":
    main()
