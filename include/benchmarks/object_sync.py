"""Benchmark ``object_sync``: N CampaignMembers -> the datamodel table ``dm_campaign_member`` (issue 4, R10).

Run from the repo root:
    .venv/bin/python -m include.benchmarks object_sync [--records N] [--deleted-share 0.01]

Seeds N CampaignMembers (sync column ``SyncWithClang__c`` on) spread over 100 campaigns and N/100 leads
into a fresh emulator (not timed), syncs those leads into the customer table first (set-up, measured
but not the figure), then measures, each flow in its own child process:

- link sync: ``ObjectLinkSyncOperator(link_name="campaign_members").execute({})`` with use sync column =
  yes and delete = yes: N rows written, every customer relation resolved, every flag reset;
- reconciliation: after hard-deleting ``--deleted-share`` of the members in the emulator,
  ``ObjectLinkSyncOperator(..., reconcile=True)``: one ``SELECT Id`` read (Bulk API 2.0 at this volume)
  and the rows of the deleted members removed.

The issue asks for no baseline; a naive reconciliation would cost one request per stored row (N).
Salesforce requests are read from the emulator's counters; the last line printed is one JSON object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from include.benchmarks.harness import (
    phase_lines,
    OPERATOR_CONN_IDS,
    BenchmarkCheckFailed,
    FlowResult,
    benchmark_main,
    flow_figures,
    format_table,
    fresh_services,
)

DEFAULT_RECORDS = 10_000
MODULE = "include.benchmarks.object_sync"
CAMPAIGNS = 100
FLAG = "SyncWithClang__c"

LINKS_CONFIG = {
    "webhooks": [{
        "name": "campaign-member", "datamodel": "dm_campaign_member",
        "fields": [
            {"json_field": "Id", "column": "sf_id", "max_length": 18, "dedup": True},
            {"json_field": "CampaignId", "column": "campaign_id"},
            {"json_field": "LeadId", "column": "lead_id"},
            {"json_field": "ContactId", "column": "contact_id"},
            {"json_field": "Status", "column": "status"},
            {"json_field": "HasResponded", "column": "has_responded", "type": "boolean"},
        ],
        "customer_relation": [
            {"column": "contact_id", "customer_field": "sf_contact_id"},
            {"column": "lead_id", "customer_field": "sf_lead_id"},
        ],
    }],
    "links": [{
        "name": "campaign_members", "sobject": "CampaignMember", "webhook": "campaign-member",
        "datamodel": "dm_campaign_member", "allow_inserts": True, "delete": True, "use_sync_column": True,
    }],
}
LEAD_CONFIG = {"objects": [{
    "sobject": "Lead", "unique_field": "id",
    "mappings": [
        {"salesforce_field": "Id", "deployteq_type": "text", "deployteq_field": "sf_lead_id", "unique_key": True},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
    ],
}]}


def prepare_lead_flow(salesforce_conn_id: str, deployteq_conn_id: str) -> Callable[[], dict]:
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    operator = SalesforceToDeployteqOperator(task_id="leads", sobject="Lead", object_config=LEAD_CONFIG,
                                             salesforce_conn_id=salesforce_conn_id, deployteq_conn_id=deployteq_conn_id)
    return lambda: operator.execute({})


def prepare_link_flow(salesforce_conn_id: str, deployteq_conn_id: str, reconcile: bool) -> Callable[[], dict]:
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator

    operator = ObjectLinkSyncOperator(task_id="link", link_name="campaign_members", reconcile=reconcile,
                                      links_config=LINKS_CONFIG, salesforce_conn_id=salesforce_conn_id,
                                      deployteq_conn_id=deployteq_conn_id)
    return lambda: operator.execute({})


def seed(admin, records: int) -> tuple[list[str], float]:
    started = time.perf_counter()
    campaigns = admin.seed("Campaign", [{"Name": f"Campagne {i}", "Type": "Email", "IsActive": True} for i in range(CAMPAIGNS)])
    lead_count = max(1, -(-records // CAMPAIGNS))
    leads = admin.seed("Lead", [{"LastName": f"Lid {i}", "Company": "Bench BV"} for i in range(lead_count)])
    members = []
    for n in range(records):
        members.append({"CampaignId": campaigns[n % CAMPAIGNS], "LeadId": leads[n // CAMPAIGNS],
                        "Status": "Responded" if n % 7 == 0 else "Sent", FLAG: True})
    member_ids = []
    for start in range(0, records, 25_000):
        member_ids += admin.seed("CampaignMember", members[start : start + 25_000])
    return member_ids, time.perf_counter() - started


def run(records: int, *, deleted_share: float = 0.01, verbose: bool = False) -> dict:
    if not 0 <= deleted_share < 1:
        raise ValueError("--deleted-share must be in [0, 1)")
    with fresh_services(log_level="INFO" if verbose else "WARNING") as services:
        admin = services.admin
        member_ids, seed_seconds = seed(admin, records)
        schema = services.new_schema("bench_object_sync")
        connections = services.operator_connections(schema)
        ids = OPERATOR_CONN_IDS
        leads = services.run_flow("leads", f"{MODULE}:prepare_lead_flow", ids, records=1, connections=connections)
        sync = services.run_flow("link", f"{MODULE}:prepare_link_flow", {**ids, "reconcile": False},
                                 records=records, connections=connections)
        _check_sync(services, schema, sync, records)

        deleted = member_ids[:: max(1, round(1 / deleted_share))] if deleted_share else []
        if deleted:
            admin.hard_delete(deleted)
        reconcile = services.run_flow("reconcile", f"{MODULE}:prepare_link_flow", {**ids, "reconcile": True},
                                      records=records, connections=connections)
        _check_reconcile(services, schema, reconcile, records, len(deleted))

        summary = {"benchmark": "object_sync", **flow_figures(sync)}
        summary.update(
            rss_before_flow_mb=round(sync.rss_before_flow_mb, 1),
            sf_requests_by_endpoint=sync.by_endpoint,
            unresolved_relations=(sync.value or {}).get("unresolved_relations"),
            flags_reset=(sync.value or {}).get("flags_reset"),
            reconcile_seconds=round(reconcile.seconds, 3),
            reconcile_sf_requests=reconcile.sf_requests,
            reconcile_deleted=(reconcile.value or {}).get("deleted"),
            reconcile_peak_rss_mb=round(reconcile.peak_rss_mb, 1),
            reconcile_sf_requests_by_endpoint=reconcile.by_endpoint,
            naive_reconcile_sf_requests=records,  # one GET per stored row
            baseline_seconds=None, baseline_sf_requests=None,
            setup_lead_sync_seconds=round(leads.seconds, 3),
        )
        _print_report(services, summary, sync, reconcile, seed_seconds, len(deleted))
    return summary


def _check_sync(services, schema: str, result: FlowResult, records: int) -> None:
    rows, unrelated = services.sql(
        f'SELECT count(*), count(*) FILTER (WHERE customer_id IS NULL) FROM "{schema}".dm_campaign_member')[0]
    flagged = sum(1 for r in services.admin.records("CampaignMember") if r.get(FLAG))
    summary = result.value or {}
    problems = []
    if rows != records:
        problems.append(f"{rows:,} rows, expected {records:,}")
    if unrelated:
        problems.append(f"{unrelated:,} rows without their customer")
    if flagged:
        problems.append(f"{flagged:,} members still flagged")
    if summary.get("errors"):
        problems.append(f"{summary['errors']:,} record errors")
    if problems:
        raise BenchmarkCheckFailed(f"object_sync link did not do its job: {'; '.join(problems)}; summary: {summary}")


def _check_reconcile(services, schema: str, result: FlowResult, records: int, deleted: int) -> None:
    rows = services.sql(f'SELECT count(*) FROM "{schema}".dm_campaign_member')[0][0]
    if rows != records - deleted or (result.value or {}).get("deleted") != deleted:
        raise BenchmarkCheckFailed(
            f"object_sync reconciliation: {rows:,} rows left (expected {records - deleted:,}); summary {result.value}")


def _print_report(services, summary: dict, sync: FlowResult, reconcile: FlowResult, seed_seconds: float, deleted: int) -> None:
    records = summary["records"]
    print(f"object_sync: {records:,} CampaignMembers (SyncWithClang__c on) -> datamodel dm_campaign_member")
    print(f"  fresh emulator; PostgreSQL: {services.pg_source}; seeded in {seed_seconds:.1f} s (not timed); "
          f"customers from a lead sync first ({summary['setup_lead_sync_seconds']:.1f} s, set-up)")
    print()
    headers = ["flow", "records", "seconds", "records/s", "SF requests", "req/10k", "peak RSS MB", "RSS before MB"]
    print(format_table(headers, [
        ["link sync (use sync column, delete)", records, sync.seconds, sync.records_per_s, sync.sf_requests,
         sync.requests_per_10k, sync.peak_rss_mb, sync.rss_before_flow_mb],
        [f"Id reconciliation ({deleted:,} hard-deleted)", records, reconcile.seconds, reconcile.records_per_s,
         reconcile.sf_requests, reconcile.requests_per_10k, reconcile.peak_rss_mb, reconcile.rss_before_flow_mb],
    ]))
    print()
    for line in phase_lines(sync):
        print(line)
    print(f"  link sync requests: {_endpoints(sync.by_endpoint)}")
    print(f"  reconciliation requests: {_endpoints(reconcile.by_endpoint)} "
          f"(a naive per-row check would need {records:,})")
    print(f"  unresolved customer relations after the sync: {summary['unresolved_relations']}; "
          f"flags reset: {summary['flags_reset']:,}", flush=True)
    print()


def _endpoints(by_endpoint: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in by_endpoint.items()) or "none"


def _add_arguments(parser) -> None:
    parser.add_argument("--deleted-share", type=float, default=0.01,
                        help="share of members hard-deleted before the reconciliation (default 0.01)")


def main(argv: Sequence[str] | None = None) -> dict:
    return benchmark_main(run, argv, description=__doc__.splitlines()[0], default_records=DEFAULT_RECORDS,
                          add_arguments=_add_arguments, prog="python -m include.benchmarks object_sync")


if __name__ == "__main__":
    main()
