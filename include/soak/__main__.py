"""``make soak``: the integration on a real, distributed Airflow, under load and faults, checked end to end.

    python -m include.soak [--minutes 15] [--budget 120] [--leads 200000] [--contacts 100000] [--worker-kills N]

Starts the Salesforce emulator with a large org and the soak's Airflow (CeleryExecutor, Redis, PostgreSQL,
two Celery workers, scheduler, DAG processor, triggerer, API server; see stack.py) from the project's own
settings with a small hourly budget and every DAG unpaused on a short schedule; runs the load generator
(load.py) and chaos (chaos.py) for ``--minutes``; then stops the load, raises the budget, lets the flows
drain and checks the end state (checks.py).  Prints a table and, last, one JSON line.  Exit code 0 only
when every loss/duplicate/stuck count is 0 and the busiest rolling hour stayed within the budget.
State and logs: .state/soak/ (Airflow's task logs in .state/soak/logs/tasks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from datetime import datetime, timezone

from include.soak import checks
from include.soak.chaos import Chaos
from include.soak.load import LINK_FLAG, LoadGenerator, OrgSize, seed_org
from include.soak.stack import DEPLOYTEQ_SCHEMA, LOG_DIR, STATE, AirflowStack, SoakError

SALESFORCE_LIMIT = 3600  # Salesforce's own hourly limit (the manual's); our budget is far below it
DRAIN_BUDGET = 100_000
DEFERRED_GRACE_SECONDS = 90
LOUD_COUNTS = ("requests_while_blocked", "customers_lost", "customers_duplicated", "moments_lost",
               "moments_sent_twice", "updates_lost", "stuck_tasks", "flags_not_reset", "link_rows_wrong")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="load + chaos phase (default %(default)s)")
    # Small on purpose: the flows need few requests (Bulk API, composite batches), so on this machine a 15-minute run
    # stays far below 600/h; at 120/h the budget runs out during the run and deferral, limited runs and on_limit happen.
    parser.add_argument("--budget", type=int, default=120, help="hourly Salesforce API budget during the load (default %(default)s)")
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=5_000, help="campaign members")
    parser.add_argument("--worker-kills", type=int, default=None,
                        help="kill -9 of a Celery worker, spread over the run (default: 10 per 15 minutes, at least 2)")
    parser.add_argument("--schedule", default="*/1 * * * *", help="schedule of every scheduled DAG during the soak")
    parser.add_argument("--block-seconds", type=int, default=90, help="how long the injected Salesforce block lasts")
    parser.add_argument("--drain-minutes", type=float, default=20.0, help="at most this long for the flows to drain")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if args.worker_kills is None:
        args.worker_kills = max(2, math.ceil(args.minutes * 10 / 15))
    return args


def say(text: str = "") -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {text}" if text else "", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    STATE.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    postgres_url = os.environ.get("SOAK_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/15")
    from include.salesforce_emulator.process import start_emulator

    try:
        with start_emulator(STATE / "salesforce", hourly_limit=SALESFORCE_LIMIT, block_seconds=args.block_seconds,
                            timeout=60) as emulator:
            client = emulator.client
            client.reset()
            size = OrgSize(leads=args.leads, contacts=args.contacts, members=args.members)
            started = time.monotonic()
            counts = seed_org(client, size, args.seed)
            say(f"Salesforce emulator: {', '.join(f'{n:,} {s}' for s, n in counts.items())} "
                f"({time.monotonic() - started:.0f} s)")
            stack = AirflowStack(postgres_url=postgres_url, redis_url=redis_url, salesforce=emulator.info)
            try:
                stack.prepare()
                _configure(stack, args)
                say(f"Airflow: CeleryExecutor, broker {redis_url}, metadata DB + result backend on {postgres_url}; "
                    f"budget {args.budget}/h, schedules {args.schedule!r}; logs in {LOG_DIR}")
                stack.start_all()
                _wait_for_dags(stack)
                say(f"Airflow up: API server on {stack.api}, scheduler, DAG processor, triggerer, 2 Celery workers")
                result = _soak(stack, client, size, args)
            finally:
                say("Stopping Airflow")  # before the emulator it talks to
                stack.stop_all()
    except SoakError as error:
        say(f"error: {error}")
        return 2
    print(render_table(result))
    print(json.dumps(result["summary"]), flush=True)
    return 0 if passed(result["summary"]) else 1


def passed(summary: dict) -> bool:
    return all(summary[name] == 0 for name in LOUD_COUNTS) and summary["max_requests_rolling_hour"] <= summary["budget"]


def _configure(stack: AirflowStack, args: argparse.Namespace) -> None:
    """The shipped settings with the soak's budget, pool and schedules (configuration only, no code edits)."""
    from include.settings_loader import load_settings_file, pool_slots_for_budget

    shipped = {v.key: json.loads(v.value) for v in load_settings_file(environ=stack.env).variables if v.value.lstrip().startswith("{")}
    objects = shipped["deployteq_salesforce_objects"]
    for obj in objects["objects"]:
        obj["schedule"] = args.schedule
    links = shipped["deployteq_salesforce_object_links"]
    for link in links["links"]:
        link["schedule"] = args.schedule
        link["reconcile_schedule"] = args.schedule
    overrides = {
        "deployteq_salesforce_hourly_budget": str(args.budget),
        "deployteq_salesforce_objects": json.dumps(objects),
        "deployteq_salesforce_object_links": json.dumps(links),
        "deployteq_salesforce_schedules": json.dumps({"deployteq_contact_moments": args.schedule,
                                                      "deployteq_campaign_synchronize": args.schedule}),
    }
    # our client expects a block a little longer than the emulator's, so it never knocks on a blocked door
    extra = {"block_hours": round(args.block_seconds * 1.5 / 3600, 4)}
    stack.apply_settings(overrides, pool_slots_for_budget(args.budget), extra)
    stack.objects_config = objects
    stack.links_config = links


def _wait_for_dags(stack: AirflowStack, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dags = stack.call("GET", "dags", params={"limit": 100})["dags"]
        errors = stack.call("GET", "importErrors")["import_errors"]
        if errors:
            raise SoakError(f"DAG import errors: {errors}")
        if len(dags) >= 11:
            stack.scheduled = sorted(d["dag_id"] for d in dags if d.get("timetable_summary") not in (None, "None"))
            return
        time.sleep(5)
    raise SoakError(f"the DAG processor did not parse the DAGs within {timeout:.0f} s; see {LOG_DIR}/dag-processor.log")


def _soak(stack: AirflowStack, client, size: OrgSize, args: argparse.Namespace) -> dict:
    load = LoadGenerator(client=client, deployteq_url=stack.deployteq_url, schema=DEPLOYTEQ_SCHEMA, api=stack.api,
                         webhook_token=stack.env["DEPLOYTEQ_WEBHOOK_TOKEN"], size=size, seed=args.seed)
    chaos = Chaos(stack=stack, client=client, minutes=args.minutes, worker_kills=args.worker_kills, seed=args.seed,
                  block_seconds=args.block_seconds, salesforce_limit=SALESFORCE_LIMIT, log=say)
    started = time.monotonic()
    load.start()
    chaos.start()
    say(f"Load and chaos for {args.minutes:g} minutes ({args.worker_kills} worker kills planned)")
    while time.monotonic() - started < args.minutes * 60:
        time.sleep(min(60.0, args.minutes * 60 - (time.monotonic() - started)))
        for name in stack.ensure_running():
            say(f"  {name} had exited; restarted")
        say(f"  {_progress(stack, client, load)}")
    chaos.stop()
    load.stop()
    for thread in (chaos, load):
        if thread.error is not None:
            raise SoakError(f"{thread.name} failed: {''.join(traceback.format_exception(thread.error))}")
    load_end = time.time()  # the emulator's clock is real time after its reset
    say(f"Load stopped: {dict(load.truth.actions)}; chaos: {chaos.worker_kills} worker kills, "
        f"{dict(chaos.kills)}, faults {dict(chaos.faults)}")
    drain_seconds = _drain(stack, client, args)
    say(f"Drained in {drain_seconds:.0f} s")
    return _results(stack, client, load, chaos, args, load_end, drain_seconds)


def _progress(stack: AirflowStack, client, load: LoadGenerator) -> str:
    states = dict(_airflow_rows(stack, "SELECT state, count(*) FROM task_instance GROUP BY state"))
    runs = _airflow_rows(stack, "SELECT count(*) FROM dag_run")[0][0]
    limits = client.limits_state()
    return (f"{runs} DAG runs; task instances {states}; Salesforce requests in the last hour {limits['hourly_used']}"
            f"{' (BLOCKED)' if limits['blocked_until'] else ''}; load actions {sum(load.truth.actions.values())}")


def _airflow_rows(stack: AirflowStack, sql: str, params=()) -> list[tuple]:
    import psycopg

    from include.soak.stack import AIRFLOW_DB, database_url

    with psycopg.connect(database_url(stack.postgres_url, AIRFLOW_DB)) as conn:
        return conn.execute(sql, params).fetchall()


def _drain(stack: AirflowStack, client, args: argparse.Namespace) -> float:
    """Budget raised, faults cleared, tasks waiting for budget woken; wait until every scheduled DAG has a
    successful run that started after the load stopped and nothing is running, queued or deferred."""
    from include.settings_loader import pool_slots_for_budget

    started = time.monotonic()
    drain_start = datetime.now(timezone.utc)
    client.clear_faults()
    client.set_limits(hourly_limit=DRAIN_BUDGET)
    stack.call("PATCH", "variables/deployteq_salesforce_hourly_budget",
               json={"key": "deployteq_salesforce_hourly_budget", "value": str(DRAIN_BUDGET)})
    stack.call("PATCH", "pools/salesforce_api", json={"name": "salesforce_api", "slots": pool_slots_for_budget(DRAIN_BUDGET),
                                                   "include_deferred": False})
    # Tasks deferred for budget should resume once it is raised (their trigger polls the ledger every 30 s);
    # the ones still waiting after that are cleared, as an operator who raised the budget would, and counted.
    time.sleep(DEFERRED_GRACE_SECONDS)
    for dag_id, run_id, task_id in _airflow_rows(stack, "SELECT dag_id, run_id, task_id FROM task_instance WHERE state = 'deferred'"):
        stack.call("POST", f"dags/{dag_id}/clearTaskInstances",
                   json={"dry_run": False, "only_failed": False, "task_ids": [task_id], "dag_run_id": run_id})
        stack.cleared_deferred += 1
        say(f"  {dag_id}.{task_id} still deferred {DEFERRED_GRACE_SECONDS} s after the budget was raised: cleared")
    deadline = started + args.drain_minutes * 60
    while time.monotonic() < deadline:
        time.sleep(15)
        stack.ensure_running()
        done = dict(_airflow_rows(stack, "SELECT dag_id, count(*) FROM dag_run WHERE state = 'success' AND start_date > %s "
                                         "GROUP BY dag_id", (drain_start,)))
        busy = _airflow_rows(stack, "SELECT count(*) FROM task_instance WHERE state = ANY(%s)", (list(checks.STUCK_STATES),))[0][0]
        waiting = [d for d in stack.scheduled if done.get(d, 0) < 1]
        if not waiting and not busy:
            return time.monotonic() - started
        say(f"  draining: waiting for {waiting or 'no DAG'}; {busy} task instances not finished")
    say(f"  the flows did not drain within {args.drain_minutes:g} minutes")
    return time.monotonic() - started


def _results(stack, client, load, chaos, args, load_end: float, drain_seconds: float) -> dict:
    import psycopg
    import psycopg.rows

    from deployteq_salesforce.flows.customers.config import load_objects_config

    log = client.request_log()
    times = [entry["at"] for entry in log]
    objects = {o.sobject: o for o in load_objects_config(stack.objects_config).objects}
    records = {s: client.records(s, include_deleted=True) for s in ("Lead", "Contact", "Account", "CampaignMember")}
    moments_sf = client.records("ClangLeadContactMoment__c") + client.records("ClangContactContactMoment__c")
    with psycopg.connect(stack.deployteq_url, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute(f'SET search_path = "{DEPLOYTEQ_SCHEMA}"')
        customers = conn.execute("SELECT * FROM customer").fetchall()
        moments = conn.execute(
            "SELECT m.contact_moment_id, m.open_count, m.click_count, c.sf_lead_id, c.sf_contact_id "
            "FROM contact_moment m JOIN customer c USING (customer_id)").fetchall()
        open_errors = {r["record_id"] for r in conn.execute(
            "SELECT record_id FROM sync_error WHERE flow = 'campaign:preferences' AND resolved_at IS NULL")}
        accounts = {r["sf_id"]: r for r in conn.execute("SELECT * FROM dm_account")}
        members = {r["sf_id"]: r for r in conn.execute("SELECT * FROM dm_campaign_member")}
        runs = conn.execute("SELECT flow, outcome, count(*) AS n FROM run_log GROUP BY flow, outcome ORDER BY flow, outcome").fetchall()
        failed_runs = [f"{r['flow']} {r['outcome']}: {r['message']}" for r in conn.execute(
            "SELECT flow, outcome, message FROM run_log WHERE outcome NOT IN ('success', 'partial', 'limited') "
            "ORDER BY started_at")]
        ledger = conn.execute("SELECT count(*) AS n FROM api_ledger").fetchone()["n"]
    customer_check = checks.check_customers(objects, records, customers)
    by_id = {s: {r["Id"]: r for r in records[s]} for s in ("Lead", "Contact")}
    preferences_lost = checks.check_preferences(objects, load.truth.preferences,
                                                {c["customer_id"]: c for c in customers}, by_id, open_errors)
    moment_check = checks.check_contact_moments(moments, moments_sf)
    link_rows = checks.check_link_rows("Account", records["Account"], accounts,
                                       {"Name": "name", "Industry": "industry", "BillingCity": "city"})
    link_rows += checks.check_link_rows("CampaignMember", records["CampaignMember"], members,
                                        {"Status": "status", "LeadId": "lead_id"}, flag=LINK_FLAG)
    ti_states = dict(_airflow_rows(stack, "SELECT coalesce(state, 'none'), count(*) FROM task_instance GROUP BY 1"))
    stuck = sum(n for state, n in ti_states.items() if state in checks.STUCK_STATES)
    failed = _airflow_rows(stack, "SELECT dag_id, task_id, run_id, try_number FROM task_instance WHERE state = 'failed'")
    summary = {
        "minutes": args.minutes,
        "dag_runs": _airflow_rows(stack, "SELECT count(*) FROM dag_run")[0][0],
        "task_instances": sum(ti_states.values()),
        "worker_kills": chaos.worker_kills,
        "faults_injected": chaos.faults_injected,
        "max_requests_rolling_hour": checks.max_requests_rolling_hour(times, until=load_end),
        "budget": args.budget,
        "requests_while_blocked": checks.requests_while_blocked(log),
        "customers_lost": len(customer_check.lost),
        "customers_duplicated": len(customer_check.duplicated),
        "moments_lost": len(moment_check.lost),
        "moments_sent_twice": len(moment_check.sent_twice),
        "updates_lost": len(customer_check.stale) + len(customer_check.not_marked_deleted) + len(preferences_lost),
        "stuck_tasks": stuck,
        "flags_not_reset": len(customer_check.flags_not_reset),
        "link_rows_wrong": len(link_rows),
    }
    details = {
        "customers lost": customer_check.lost, "customers duplicated": customer_check.duplicated,
        "customers stale": customer_check.stale, "not marked deleted": customer_check.not_marked_deleted,
        "flags not reset": customer_check.flags_not_reset, "preference changes lost": preferences_lost,
        "contact moments lost": moment_check.lost, "contact moments twice": moment_check.sent_twice,
        "datamodel rows wrong": link_rows, "failed task instances": [" ".join(map(str, f)) for f in failed],
        "webhook push failures": load.truth.webhook_failures, "run log rows not successful": failed_runs,
    }
    (STATE / "result.json").write_text(json.dumps({"summary": summary, "details": details}, indent=1, default=str))
    facts = {
        "Salesforce requests (emulator)": len(log), "of them during the drain": sum(1 for t in times if t > load_end),
        "ledger rows (our count)": ledger, "drain seconds": round(drain_seconds),
        "deferred tasks cleared after the budget was raised": stack.cleared_deferred,
        "task instances by state": ti_states, "chaos kills": dict(chaos.kills), "faults": dict(chaos.faults),
        "load actions": dict(load.truth.actions), "preference changes": len(load.truth.preferences),
        "contact moments": len(moments), "customers": len(customers),
        "run log": {f"{r['flow']} {r['outcome']}": r["n"] for r in runs},
    }
    return {"summary": summary, "details": details, "facts": facts}


def render_table(result: dict) -> str:
    lines = ["", "Soak result", "-" * 72]
    for name, value in result["summary"].items():
        flag = "  <-- must be 0" if name in LOUD_COUNTS and value else ""
        if name == "max_requests_rolling_hour" and value > result["summary"]["budget"]:
            flag = "  <-- over the budget"
        lines.append(f"{name:<32} {value:>12}{flag}")
    lines.append("-" * 72)
    for name, value in result["facts"].items():
        lines.append(f"{name:<32} {value}")
    for name, items in result["details"].items():
        if items:
            lines.append(f"{name} ({len(items)}), first ones: {items[:5]}")
    lines.append(f"Full lists: {STATE / 'result.json'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
