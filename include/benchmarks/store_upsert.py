"""Benchmark: ``DeployteqHook.copy_upsert`` of N customer rows (default 100,000).

Run from the repo root:  .venv/bin/python -m include.benchmarks.store_upsert [--records N]
Uses ``DEPLOYTEQ_DATABASE_URL`` if set, else a throw-away embedded PostgreSQL (``.state/bench-postgres``).
Three passes on a fresh schema: insert all rows, upsert them again unchanged, upsert with 10% changed.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

COLUMNS = [
    "customer_id", "email", "first_name", "last_name", "company", "city", "country", "phone", "lead_source",
    "annual_revenue", "number_of_employees", "newsletter", "status", "email_optin",
    "sf_contact_id", "sf_system_modstamp",
]
KEY = ["customer_id"]


def customer_rows(count: int, *, changed_every: int = 0):
    """Generated customers; with ``changed_every`` = k every k-th row gets a new city."""
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for i in range(count):
        city = "Utrecht" if changed_every and i % changed_every == 0 else "Amsterdam"
        yield (
            i + 1, f"person{i}@example.nl", f"First{i}", f"Last{i}", f"Company {i % 1000}", city, "NL",
            f"+31 6 {i:08d}", "Web", 1000.5 + i, i % 500, i % 2 == 0, "Klant", i % 3 == 0,
            f"003{i:015d}", base + timedelta(seconds=i),
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args(argv)

    from tests import airflow_env  # a quiet, local Airflow configuration (no metadata DB needed)

    airflow_env.configure(ROOT / ".state" / "bench-airflow")
    import psycopg

    from include.local_services import embedded_postgres, postgres_connection

    url = os.environ.get("DEPLOYTEQ_DATABASE_URL")
    if not url:
        # a throw-away embedded server, deleted when this script ends
        url = embedded_postgres(ROOT / ".state" / "bench-postgres", cleanup_mode="delete").get_uri()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    os.environ["AIRFLOW_CONN_DEPLOYTEQ_BENCH"] = json.dumps(postgres_connection(url, deployteq_schema=schema))

    from deployteq_salesforce.core.timing import PhaseTimer
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    # Keyed on customer_id: the sf_lead_id / sf_contact_id constraints are deferrable (the customer
    # writer moves ids between rows within one batch) and ON CONFLICT cannot use deferrable ones.
    hook = DeployteqHook("deployteq_bench")
    hook.migrate()
    try:
        results = {}
        for name, changed_every in (("insert", 0), ("unchanged", 0), ("changed_10pct", 10)):
            phases = PhaseTimer()
            started = time.perf_counter()
            counts = hook.copy_upsert("customer", COLUMNS, customer_rows(args.records, changed_every=changed_every), KEY,
                                      phases=phases)
            results[name] = (time.perf_counter() - started, counts, phases.as_dict())
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema)))

    print(f"copy_upsert of {args.records:,} customer rows ({len(COLUMNS)} columns)")
    print(f"{'pass':<16}{'seconds':>9}{'rows/s':>11}{'inserted':>10}{'updated':>9}{'unchanged':>11}  seconds per phase")
    for name, (seconds, counts, phases) in results.items():
        print(
            f"{name:<16}{seconds:>9.2f}{args.records / seconds:>11,.0f}"
            f"{counts.inserted:>10}{counts.updated:>9}{counts.unchanged:>11}  "
            + ", ".join(f"{phase} {value:.2f}" for phase, value in phases.items())
        )
    seconds = results["insert"][0]
    summary = {
        "records": args.records,
        "seconds": round(seconds, 3),
        "records_per_s": round(args.records / seconds),
        "seconds_unchanged": round(results["unchanged"][0], 3),
        "seconds_changed_10pct": round(results["changed_10pct"][0], 3),
        "sf_requests": 0,
        "requests_per_10k": 0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "phase_seconds": results["insert"][2],  # copy = rows generated and sent by COPY, upsert = the statement
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
