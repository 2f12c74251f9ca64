"""Benchmark of the emulator: seed 100,000 leads via the admin client, then page them with simple-salesforce.

Run from the repo root: ``python -m include.salesforce_emulator.bench_emulator [--records N]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import requests
from simple_salesforce import Salesforce

from .process import start_emulator

FIELDS = ("Id, FirstName, LastName, Name, Email, Company, Phone, City, Country, Status, LeadSource, "
          "HasOptedOutOfEmail, Sync_to_Deployteq__c, Email_Opt_In__c, IsConverted, CreatedDate, SystemModstamp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    leads = [{"FirstName": f"Voornaam{i}", "LastName": f"Achternaam{i}", "Company": "Tulp BV",
              "Email": f"lead{i}@example.nl", "City": "Utrecht", "Country": "Netherlands",
              "Sync_to_Deployteq__c": i % 3 == 0, "Email_Opt_In__c": "Y"} for i in range(args.records)]
    with tempfile.TemporaryDirectory(prefix="sf-emulator-bench-") as state_dir, start_emulator(state_dir) as emulator:
        started = time.perf_counter()
        emulator.client.seed("Lead", leads)
        seed_seconds = time.perf_counter() - started

        session = requests.Session()
        session.verify, session.trust_env = emulator.info["ca_file"], False
        sf = Salesforce(instance_url=emulator.info["instance_url"], session_id=emulator.info["session_id"],
                        session=session)
        started = time.perf_counter()
        count = sum(1 for _ in sf.query_all_iter(f"SELECT {FIELDS} FROM Lead ORDER BY SystemModstamp, Id"))
        page_seconds = time.perf_counter() - started
        requests_used = emulator.client.counters()["total"]
    assert count == args.records, f"paged {count} of {args.records} leads"
    print(f"seed {args.records} leads via the admin client:      {seed_seconds:6.2f} s")
    print(f"page {count} leads with query_all_iter ({requests_used} requests): {page_seconds:6.2f} s")
    print(json.dumps({"records": args.records, "seed_seconds": round(seed_seconds, 2),
                      "page_seconds": round(page_seconds, 2), "sf_requests": requests_used}))


if __name__ == "__main__":
    main()
