"""Benchmark ``lead_sync``: N changed leads (sync flag on) -> the Deployteq customer table (issue 3).

Run from the repo root:
    .venv/bin/python -m include.benchmarks lead_sync [--records N] [--baseline-records M] [--skip-baseline]

Seeds N leads into a fresh emulator (not timed), then measures, each flow in its own child process:

- ours: ``SalesforceToDeployteqOperator(sobject="Lead").execute({})`` with e-mail uniqueness and the
  sync flag ``Sync_to_Deployteq__c``; afterwards N customers must exist and no lead may still be flagged.
- baseline: what a DAG author writes today with the stock hooks, on the same leads (flags set back
  to true first): ``SalesforceHook.make_query`` on the flagged leads, ``PostgresHook.insert_rows``
  into a plain customer table, and one ``sf.Lead.update`` per record to reset the flag.  With
  ``--baseline-records M`` it runs on the first M leads and its time and requests are extrapolated
  linearly to N (labelled so in the table and in ``baseline_extrapolated_from``).

Salesforce requests are read from the emulator's counters.  The operator's own API ledger enforces
an hourly budget (default 3600); the benchmark's connection raises it (extra ``hourly_budget``) so the
flow is measured, not throttled.  The last line printed is one JSON object.
"""

from __future__ import annotations

import random
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

DEFAULT_RECORDS = 10_000
MODULE = "include.benchmarks.lead_sync"  # what the child processes import (also when run as __main__)
FLAG = "Sync_to_Deployteq__c"
INDUSTRY_TRANSLATIONS = {"Technology": "ICT", "Banking": "Financiële dienstverlening"}

# The mapping of tests/operators/test_customer_sync.py's LEAD: e-mail uniqueness, sync flag, default bulk threshold.
LEAD_CONFIG = {
    "sobject": "Lead",
    "unique_field": "email",
    "sync_flag_field": FLAG,
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Company", "deployteq_type": "text", "deployteq_field": "company"},
        {"salesforce_field": "Industry", "deployteq_type": "text", "deployteq_field": "industry",
         "translations": INDUSTRY_TRANSLATIONS},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ],
}

# The baseline's plain customer-like table, and the Lead fields it reads.
BASELINE_TABLE = "customer"
BASELINE_FIELDS = ("Id", "Email", "FirstName", "LastName", "Company", "Industry", "Email_Opt_In__c")
BASELINE_COLUMNS = ("sf_lead_id", "email", "first_name", "last_name", "company", "industry", "email_optin", "status")

# -- the data ----------------------------------------------------------------------------------------------

_FIRST_NAMES = (
    "Sanne", "Daan", "Emma", "Lucas", "Julia", "Sem", "Tess", "Milan", "Lotte", "Bram", "Fleur", "Thijs", "Anouk",
    "Jesse", "Noor", "Ruben", "Eva", "Stijn", "Iris", "Joris", "Femke", "Pieter", "Maartje", "Koen", "Olivia",
    "James", "Sophie", "Mohammed", "Aisha", "Luca", "Chloé", "Mateo", "Yuki", "Priya", "Lars", "Zofia", "Fatima",
    "Élodie", "Giulia", "Kenji", "Amara", "Søren", "Björn", "Małgorzata", "Oğuz",
)
_LAST_NAMES = (
    "de Vries", "Jansen", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot",
    "Bos", "Vos", "Peters", "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "van der Meer",
    "Smith", "Müller", "García", "Rossi", "Dubois", "Kowalski", "Nguyen", "Okafor", "Tanaka", "Singh",
    "Andersson", "O'Brien", "Schneider", "Fernández", "Yılmaz", "Novak", "Lefèvre",
)
_COMPANIES = (
    "Tulp Technologies B.V.", "Polder Logistics", "Grachtenhuis Media", "Molenaar & Zonen", "Noordzee Energy N.V.",
    "Rijnmond Retail", "Delfts Blauw Design", "Utrechtse Zorggroep", "Brabant Bouw", "Friesland Foods",
    "Acme Corporation", "Globex GmbH", "Initech Ltd", "Umbrella Health", "Vandelay Industries", "Hooli Europe",
)
_INDUSTRIES = (
    "Agriculture", "Banking", "Consulting", "Education", "Energy", "Finance", "Government", "Healthcare",
    "Hospitality", "Manufacturing", "Media", "Retail", "Technology", "Transportation",
)
_CITIES = (
    ("Amsterdam", "Netherlands"), ("Rotterdam", "Netherlands"), ("Utrecht", "Netherlands"),
    ("Den Haag", "Netherlands"), ("Eindhoven", "Netherlands"), ("Groningen", "Netherlands"),
    ("Antwerpen", "Belgium"), ("Berlin", "Germany"), ("London", "United Kingdom"), ("Paris", "France"),
)
_DOMAINS = ("example.nl", "example.com", "voorbeeld.nl", "mail.example.org")
_ASCII = str.maketrans("éèçüöıłáøößğ", "eecuoilaoosg")


def generate_leads(count: int, *, start: int = 0, seed: int = 20240101) -> list[dict]:
    """``count`` realistic Dutch/international leads with unique e-mails, all flagged for the sync; ``start``
    numbers them on from an earlier chunk (large seeds are generated and sent a chunk at a time)."""
    rng = random.Random(seed + start)
    leads = []
    for n in range(start, start + count):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        city, country = rng.choice(_CITIES)
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "").translate(_ASCII)
        leads.append({
            "FirstName": first,
            "LastName": last,
            "Email": f"{local}.{n}@{rng.choice(_DOMAINS)}",  # the number keeps every address unique
            "Company": rng.choice(_COMPANIES),
            "Industry": rng.choice(_INDUSTRIES),
            "City": city,
            "Country": country,
            "LeadSource": rng.choice(("Web", "Event", "Partner Referral", "Phone Inquiry")),
            "Email_Opt_In__c": "Y" if rng.random() < 0.6 else "N",
            FLAG: True,
        })
    return leads


def set_sync_flags(admin, ids: Sequence[str], value: bool, *, chunk: int = 25_000) -> None:
    """Set the flag as a user would (admin API: not counted as API use)."""
    for start in range(0, len(ids), chunk):
        admin.update("Lead", [{"Id": i, FLAG: value} for i in ids[start : start + chunk]])


def flagged_leads(admin) -> int:
    return sum(1 for record in admin.records("Lead") if record.get(FLAG))


# -- the two flows (run in child processes by the harness) ---------------------------------------------------


def prepare_operator_flow(salesforce_conn_id: str, deployteq_conn_id: str) -> Callable[[], dict]:
    """Ours: the provider's operator, exactly as a DAG runs it."""
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    operator = SalesforceToDeployteqOperator(
        task_id="bench", sobject="Lead", object_config={"objects": [LEAD_CONFIG]},
        salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id,
    )
    return lambda: operator.execute({})


def prepare_baseline_flow(salesforce_conn_id: str, postgres_conn_id: str, table: str) -> Callable[[], dict]:
    """Baseline: the stock hooks as a DAG author uses them today (one update request per record)."""
    import requests
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    def flow() -> dict:
        connection = SalesforceHook.get_connection(salesforce_conn_id)
        session = requests.Session()
        session.verify = connection.extra_dejson["ca_file"]
        session.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment overrides verify
        # the stock hook takes a direct session only through its constructor
        salesforce = SalesforceHook(salesforce_conn_id=salesforce_conn_id, session_id=connection.password,
                                    session=session)
        result = salesforce.make_query(f"SELECT {', '.join(BASELINE_FIELDS)} FROM Lead WHERE {FLAG} = true")
        leads = result["records"]
        rows = [
            (lead["Id"], lead["Email"], lead["FirstName"], lead["LastName"], lead["Company"],
             INDUSTRY_TRANSLATIONS.get(lead["Industry"], lead["Industry"]), lead["Email_Opt_In__c"] == "Y",
             "Prospect")
            for lead in leads
        ]
        PostgresHook(postgres_conn_id=postgres_conn_id).insert_rows(table, rows, target_fields=list(BASELINE_COLUMNS))
        sf = salesforce.get_conn()
        for lead in leads:
            sf.Lead.update(lead["Id"], {FLAG: False})
        return {"fetched": len(leads), "inserted": len(rows), "flags_reset": len(leads)}

    return flow


# -- the benchmark -----------------------------------------------------------------------------------------


def run(records: int, *, baseline_records: int | None = None, skip_baseline: bool = False,
        verbose: bool = False) -> dict:
    """Seed, run ours, check it, run the baseline on the same leads, check it; print the table; return the summary."""
    baseline_n = baseline_size(records, baseline_records)
    with fresh_services(log_level="INFO" if verbose else "WARNING") as services:
        admin = services.admin
        started = time.perf_counter()
        ids = admin.seed("Lead", generate_leads(records))
        seed_seconds = time.perf_counter() - started

        schema = services.new_schema("bench_lead_sync")
        ours = services.run_flow(
            "ours", f"{MODULE}:prepare_operator_flow",
            OPERATOR_CONN_IDS,
            records=records,
            connections=services.operator_connections(schema),
        )
        _check_ours(services, schema, ours, records)

        baseline = None
        if not skip_baseline:
            set_sync_flags(admin, ids[:baseline_n], True)  # the same leads, flagged again (not timed)
            baseline_schema = services.new_schema("bench_lead_baseline")
            table = f'"{baseline_schema}".{BASELINE_TABLE}'
            services.sql(f'CREATE SCHEMA "{baseline_schema}"')
            services.sql(
                f"CREATE TABLE {table} (customer_id bigserial PRIMARY KEY, sf_lead_id text, email text, "
                "first_name text, last_name text, company text, industry text, email_optin boolean, status text)"
            )
            baseline = services.run_flow(
                "baseline", f"{MODULE}:prepare_baseline_flow",
                {"salesforce_conn_id": "salesforce_baseline", "postgres_conn_id": "postgres_baseline", "table": table},
                records=baseline_n,
                connections={
                    "salesforce_baseline": services.salesforce_connection(),
                    "postgres_baseline": services.postgres_connection(),
                },
            )
            _check_baseline(services, table, baseline, baseline_n)

        summary = _summary(ours, baseline, records)
        _print_report(services, summary, ours, baseline, seed_seconds)
    return summary


def _check_ours(services, schema: str, result: FlowResult, records: int) -> None:
    customers = services.sql(f'SELECT count(*) FROM "{schema}".customer')[0][0]
    still_flagged = flagged_leads(services.admin)
    summary = result.value or {}
    problems = []
    if customers != records:
        problems.append(f"{customers:,} customers in the table, expected {records:,}")
    if still_flagged:
        problems.append(f"{still_flagged:,} leads still have {FLAG} = true")
    if summary.get("errors"):
        problems.append(f"the operator reported {summary['errors']:,} record errors")
    if problems:
        raise BenchmarkCheckFailed(f"lead_sync (ours) did not do its job: {'; '.join(problems)}; summary: {summary}")


def _check_baseline(services, table: str, result: FlowResult, records: int) -> None:
    rows = services.sql(f"SELECT count(*) FROM {table}")[0][0]
    still_flagged = flagged_leads(services.admin)
    if rows != records or still_flagged:
        raise BenchmarkCheckFailed(
            f"lead_sync baseline did not do its job: {rows:,} rows (expected {records:,}), "
            f"{still_flagged:,} leads still flagged"
        )


def _summary(ours: FlowResult, baseline: FlowResult | None, records: int) -> dict:
    summary = comparison_summary("lead_sync", ours, baseline, records)
    summary["hourly_budget"] = BENCH_API_LIMIT
    return summary


def _print_report(services, summary: dict, ours: FlowResult, baseline: FlowResult | None, seed_seconds: float) -> None:
    records = summary["records"]
    print(f"lead_sync: {records:,} changed leads (sync flag on) -> Deployteq customer table")
    print(f"  fresh emulator (API limits hourly {services.api_limit:,}, daily {services.api_limit:,}); "
          f"PostgreSQL: {services.pg_source}, fresh schemas; {records:,} leads seeded in {seed_seconds:.1f} s (not timed)")
    print(f"  API budget: the operator's ledger enforces an hourly budget (default 3,600); this run sets the "
          f"connection extra hourly_budget = {BENCH_API_LIMIT:,} so the flow is not throttled")
    print()
    print(comparison_table("SalesforceToDeployteqOperator", ours, "stock hooks", baseline, summary))
    print()
    for line in phase_lines(ours):
        print(line)
    print("  Salesforce requests by endpoint (emulator counters):")
    print(f"    ours:     {_endpoints(ours.by_endpoint)}")
    if baseline is not None:
        print(f"    baseline: {_endpoints(baseline.by_endpoint)}")
    print(f"  the operator's own ledger counted {summary['ledger_requests']} requests (emulator: {ours.sf_requests})")
    print(f"  RSS before MB = the child's peak after imports and set-up; the flow added "
          f"{ours.peak_rss_mb - ours.rss_before_flow_mb:,.0f} MB")
    if baseline is not None and baseline.seconds > 0:
        print(f"  ours vs baseline: {summary['baseline_seconds'] / ours.seconds:,.1f}x faster, "
              f"{summary['baseline_sf_requests'] / max(ours.sf_requests, 1):,.0f}x fewer Salesforce requests"
              + (" (baseline extrapolated)" if baseline.records != records else ""))
    if records >= 100_000:
        print(f"  targets (issue 3, at 100,000): <= 20 requests: {ours.sf_requests} "
              f"({'met' if ours.sf_requests <= 20 else 'MISSED'}); >= 5,000 records/s: {ours.records_per_s:,.0f} "
              f"({'met' if ours.records_per_s >= 5000 else 'MISSED'}); flat memory: compare peak RSS with a smaller --records")
    else:
        print("  targets (issue 3) are stated for 100,000 records: <= 20 requests, >= 5,000 records/s, flat memory")
    print(flush=True)


def _endpoints(by_endpoint: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in by_endpoint.items()) or "none"


def _add_arguments(parser) -> None:
    parser.add_argument("--baseline-records", type=int, default=None, metavar="M",
                        help="run the baseline on the first M leads and extrapolate linearly to N")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only our operator")


def main(argv: Sequence[str] | None = None) -> dict:
    return benchmark_main(run, argv, description=__doc__.splitlines()[0], default_records=DEFAULT_RECORDS,
                          add_arguments=_add_arguments, prog="python -m include.benchmarks lead_sync")


if __name__ == "__main__":
    main()
