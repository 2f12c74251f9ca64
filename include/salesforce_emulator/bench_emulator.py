"""Benchmark of the emulator at the benchmarks' scale: seed leads via the admin client, download them all with a
Bulk API 2.0 query job (locator pages of ``--max-records``, streamed), run the flag reset of the lead_sync and
object_sync flows (a Bulk 2.0 ingest update of ``Id`` and one boolean, of leads and of campaign members), a Bulk 2.0
ingest insert of contact moments (a reference to a lead, datetime fields) and the contact-moment flow's Bulk 2.0
upsert by external id (twice: it creates the records, then updates them), and page a REST query with
simple-salesforce. Each step reports wall seconds, the emulator's own server seconds (from its
counters), the emulator process's CPU seconds (all its threads; steadier than wall time on a shared machine)
and rows/s; the last line is one JSON object, with the emulator process's peak RSS.

Run from the repo root: ``python -m include.salesforce_emulator.bench_emulator [--records N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import requests
from simple_salesforce import Salesforce

from .process import start_emulator

FIELDS = ("Id, FirstName, LastName, Name, Email, Company, Phone, City, Country, Status, LeadSource, "
          "HasOptedOutOfEmail, Sync_to_Deployteq__c, Email_Opt_In__c, IsConverted, CreatedDate, SystemModstamp")
API = "/services/data/v59.0/"


def _leads(count: int) -> list[dict]:
    return [{"FirstName": f"Voornaam{i}", "LastName": f"Achternaam{i}", "Company": "Tulp BV",
             "Email": f"lead{i}@example.nl", "City": "Utrecht", "Country": "Netherlands",
             "Sync_to_Deployteq__c": i % 3 == 0, "Email_Opt_In__c": "Y"} for i in range(count)]


# the columns of the contact-moment flow's Bulk upsert (plugins' contact_moments build_payload), in its order
MOMENT_COLUMNS = ("Lead__c,Deployteq_Id__c,Name,Mailing_Name__c,Subject__c,Sent_Date__c,Opened__c,First_Opened_Date__c,"
                  "Open_Count__c,Clicked__c,First_Clicked_Date__c,Click_Count__c,Bounced__c,Bounce_Date__c,"
                  "Bounce_Type__c,Online_Version_URL__c")


def _moments_csv(lead_ids: list[str], count: int) -> str:
    """The CSV the contact-moment flow uploads for ``count`` moments under the leads: one send time per mailing,
    ``#N/A`` for what did not happen (not opened, not clicked, not bounced)."""
    rows = [MOMENT_COLUMNS]
    for i in range(count):
        mailing, day = i % 50, 1 + i % 28
        opened = i % 2 == 0
        clicked = i % 4 == 0
        bounced = i % 20 == 1
        rows.append(",".join((
            lead_ids[i % len(lead_ids)], str(1_000_000 + i), f"Nieuwsbrief {mailing} (2024-03-{day:02})",
            f"Nieuwsbrief {mailing}", "Uw nieuwsbrief van maart", f"2024-03-{day:02}T09:30:00.000+0000",
            "true" if opened else "false", f"2024-03-{day:02}T{10 + i % 12}:{i % 60:02}:00.000+0000" if opened else "#N/A",
            str(1 + i % 3) if opened else "0", "true" if clicked else "false",
            f"2024-03-{day:02}T{10 + i % 12}:30:00.000+0000" if clicked else "#N/A", "1" if clicked else "0",
            "true" if bounced else "false", f"2024-03-{day:02}T09:31:00.000+0000" if bounced else "#N/A",
            "hard" if bounced else "#N/A", f"https://mail.example.nl/view/{mailing}")))
    return "\n".join(rows) + "\n"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, emulator):
        self.admin = emulator.client
        self.pid = emulator.popen.pid
        info = emulator.info
        self.session = requests.Session()
        self.session.verify, self.session.trust_env = info["ca_file"], False
        self.session.headers["Authorization"] = f"Bearer {info['session_id']}"
        self.base = info["instance_url"] + API
        self.sf = Salesforce(instance_url=info["instance_url"], session_id=info["session_id"], session=self.session)
        self.results: dict[str, dict] = {}

    def step(self, name: str, rows: int, action) -> None:
        """Run ``action`` and record its wall seconds, the server and CPU seconds it cost the emulator, rows/s."""
        before, cpu_before = self.admin.counters(), _cpu_seconds(self.pid)
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        after, cpu = self.admin.counters(), _cpu_seconds(self.pid) - cpu_before
        server = after["server_seconds"]["total"] - before["server_seconds"]["total"]
        self.results[name] = {"rows": rows, "seconds": round(wall, 2), "server_seconds": round(server, 2),
                              "emulator_cpu_seconds": round(cpu, 2), "rows_per_s": round(rows / wall),
                              "requests": after["total"] - before["total"]}
        print(f"{name:<28} {rows:>9} rows  {wall:7.2f} s wall  {server:7.2f} s server  {cpu:7.2f} s cpu  "
              f"{rows / wall:>9,.0f} rows/s  {after['total'] - before['total']:>4} requests", flush=True)

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.session.request(method, self.base + path, json=body)
        response.raise_for_status()
        return response.json()

    def _wait(self, kind: str, job_id: str) -> dict:
        while (job := self._json("GET", f"jobs/{kind}/{job_id}"))["state"] not in ("JobComplete", "Failed", "Aborted"):
            time.sleep(0.05)
        assert job["state"] == "JobComplete", job
        return job

    def bulk_query(self, soql: str, max_records: int) -> int:
        """Create a Bulk 2.0 query job and stream every locator page of its results, as a client would."""
        job = self._json("POST", "jobs/query", {"operation": "query", "query": soql})
        self._wait("query", job["id"])
        rows, locator = 0, None
        while locator != "null":
            params = {"maxRecords": max_records, **({"locator": locator} if locator else {})}
            with self.session.get(f"{self.base}jobs/query/{job['id']}/results", params=params, stream=True) as page:
                page.raise_for_status()
                lines = sum(chunk.count(b"\n") for chunk in page.iter_content(1 << 20))
                assert lines - 1 == int(page.headers["Sforce-NumberOfRecords"]), (lines, page.headers)
                rows += lines - 1
                locator = page.headers["Sforce-Locator"]
        return rows

    def bulk_ingest(self, operation: str, csv_text: str, sobject: str = "Lead", **job_fields) -> dict:
        job = self._json("POST", "jobs/ingest", {"object": sobject, "operation": operation, "contentType": "CSV",
                                                 "lineEnding": "LF", **job_fields})
        upload = self.session.put(f"{self.base}jobs/ingest/{job['id']}/batches", data=csv_text.encode(),
                                  headers={"Content-Type": "text/csv"})
        upload.raise_for_status()
        self._json("PATCH", f"jobs/ingest/{job['id']}", {"state": "UploadComplete"})
        return self._wait("ingest", job["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000, help="leads to seed and download")
    parser.add_argument("--max-records", type=int, default=100_000, help="maxRecords per Bulk 2.0 result page")
    parser.add_argument("--ingest", type=int, default=100_000, help="rows of each Bulk 2.0 ingest job")
    parser.add_argument("--rest", type=int, default=100_000, help="records paged through the REST query API")
    parser.add_argument("--memory-only", action="store_true", help="run the emulator with --memory-only, as the "
                        "benchmarks do (no record written to SQLite)")
    args = parser.parse_args()
    leads = _leads(args.records)
    with (tempfile.TemporaryDirectory(prefix="sf-emulator-bench-") as state_dir,
          start_emulator(state_dir, memory_only=args.memory_only) as emulator):
        bench = Bench(emulator)
        ids: list[str] = []
        bench.step("seed (admin client)", args.records, lambda: ids.extend(emulator.client.seed("Lead", leads)))
        downloaded: list[int] = []
        bench.step(f"bulk 2.0 query, {args.max_records}/page", args.records, lambda: downloaded.append(
            bench.bulk_query(f"SELECT {FIELDS} FROM Lead", args.max_records)))
        assert downloaded == [args.records], downloaded

        # the flag reset of lead_sync: Id and the sync flag, always false
        update = "Id,Sync_to_Deployteq__c\n" + "".join(f"{i},false\n" for i in ids[:args.ingest])
        job: dict = {}
        bench.step("bulk 2.0 ingest update", args.ingest, lambda: job.update(bench.bulk_ingest("update", update)))
        assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (args.ingest, 0), job

        # the flag reset of object_sync: campaign members of 100 campaigns (unique per campaign and lead)
        campaigns = emulator.client.seed("Campaign", [{"Name": f"Campagne {i}"} for i in range(100)])
        members = emulator.client.seed("CampaignMember", [
            {"CampaignId": campaigns[i % 100], "LeadId": ids[i // 100], "SyncWithClang__c": True}
            for i in range(args.ingest)])
        update = "Id,SyncWithClang__c\n" + "".join(f"{i},false\n" for i in members)
        job = {}
        bench.step("bulk 2.0 ingest update (cm)", args.ingest, lambda: job.update(
            bench.bulk_ingest("update", update, "CampaignMember")))
        assert (job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (args.ingest, 0), job

        # contact moments, as the contact-moment flow writes them: a reference to a lead and datetime fields
        insert = "Name,Lead__c,Deployteq_Id__c,Subject__c,Sent_Date__c,Opened__c,First_Opened_Date__c,Open_Count__c\n"
        insert += "".join(f"Mailing {i},{ids[i % len(ids)]},dq-{i},Nieuwsbrief,2024-03-01T10:15:{i % 60:02}.000+0000,"
                          + ("true,2024-03-02T08:00:00.000+0000,2\n" if i % 2 else "false,,0\n")
                          for i in range(args.ingest))
        inserted: dict = {}
        bench.step("bulk 2.0 ingest insert", args.ingest, lambda: inserted.update(
            bench.bulk_ingest("insert", insert, "ClangLeadContactMoment__c")))
        assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"]) == (args.ingest, 0), inserted

        moments = _moments_csv(ids, args.ingest)
        for step in ("create", "update"):  # the second upsert of the same rows finds every record by its external id
            upserted: dict = {}
            bench.step(f"bulk 2.0 ingest upsert {step}", args.ingest, lambda: upserted.update(bench.bulk_ingest(
                "upsert", moments, "ClangLeadContactMoment__c", externalIdFieldName="Deployteq_Id__c")))
            assert (upserted["numberRecordsProcessed"], upserted["numberRecordsFailed"]) == (args.ingest, 0), upserted

        paged: list[int] = []
        bench.step("REST query paging", args.rest, lambda: paged.append(sum(1 for _ in bench.sf.query_all_iter(
            f"SELECT {FIELDS} FROM Lead ORDER BY SystemModstamp, Id LIMIT {args.rest}"))))
        assert paged == [args.rest], paged
        peak_rss_mb = _peak_rss_mb(emulator.popen.pid)
    print(f"emulator peak RSS: {peak_rss_mb:.0f} MB")
    print(json.dumps({"records": args.records, "max_records": args.max_records, "steps": bench.results,
                      "peak_rss_mb": round(peak_rss_mb)}))


if __name__ == "__main__":
    main()
