"""B3 under SIGKILL: for each of the four flows, a worker killed at a chosen point, then the task run again.

Each test runs the flow once uninterrupted (the reference, cached per scenario), then on a fresh org and
a fresh Deployteq schema runs it in a separate worker process that is SIGKILLed at one point (see
``harness``), reruns the task, and compares the end state with the reference: nothing lost, nothing
duplicated, and at most the one write that was in flight at the kill repeated (``writes``: composite
batches and Bulk ingest uploads counted by the emulator).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pytest

from tests.crash_points.harness import KillPoint, commit_points, request_points, run_killed, writes

FLAG = "Sync_to_Deployteq__c"
POD = "Cr0"


def ids(sobject: str, count: int, start: int = 1) -> list[str]:
    from include.salesforce_emulator.ids import make_id
    from include.salesforce_emulator.schema import OBJECTS

    return [make_id(OBJECTS[sobject].key_prefix, n, pod=POD) for n in range(start, start + count)]


class Env:
    """One fresh org + Deployteq schema per crash point (``fresh`` makes it fresh again)."""

    def __init__(self, emulator, pg_url: str, schema: str) -> None:
        self.sf = emulator
        self.url = pg_url
        self.schema = schema

    def fresh(self) -> None:
        self.sf.reset()
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def rows(self, statement: str, params=()) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            conn.execute(f'SET search_path = "{self.schema}"')
            return conn.execute(statement, params).fetchall()

    def execute(self, statement: str, params=()) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute(f'SET search_path = "{self.schema}"')
            conn.execute(statement, params)


@dataclass
class Scenario:
    """A flow with its data: ``prepare`` seeds both sides (and may run the flow once before), ``run`` is the
    task under test, ``state`` what must come out the same as in an uninterrupted run."""

    name: str
    prepare: Callable[[Env], None]
    run: Callable[[], object]
    state: Callable[[Env], object]
    points: list[KillPoint]


# --- 1. Lead/contact sync with the flag reset (REST pages + composite resets, and Bulk 2.0 query + ingest) ---

LEAD = {
    "sobject": "Lead", "unique_field": "email", "sync_flag_field": FLAG, "page_size": 200,
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ],
}


def lead_records(count: int, start: int = 1, flagged: bool = True) -> list[dict]:
    return [{"Id": i, "FirstName": f"Voornaam{n}", "LastName": f"Achternaam{n}", "Company": "Crash BV",
             "Email": f"lead{n}@crash.example", "Email_Opt_In__c": "Y" if n % 2 else "N", FLAG: flagged}
            for n, i in enumerate(ids("Lead", count, start), start)]


def customer_sync(config: dict, *, batch_size: int) -> Callable[[], object]:
    def run():
        from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

        return SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config={"objects": [config]},
                                             batch_size=batch_size).execute({})

    return run


def customers_state(env: Env) -> object:
    customers = env.rows("SELECT email, first_name, last_name, email_optin, status, sf_lead_id, sf_deleted FROM customer "
                         "ORDER BY email")
    flagged = sorted(r["Id"] for r in env.sf.records("Lead") if r[FLAG])
    errors = env.rows("SELECT record_id, reason FROM sync_error WHERE resolved_at IS NULL ORDER BY record_id")
    return {"customers": customers, "still flagged": flagged, "open errors": errors}


def _seed_leads(count: int) -> Callable[[Env], None]:
    def prepare(env: Env) -> None:
        env.sf.seed("Lead", lead_records(count) + lead_records(30, start=count + 1, flagged=False))

    return prepare


LEADS_REST = Scenario(
    "leads-rest", _seed_leads(600), customer_sync(copy.deepcopy(LEAD), batch_size=200), customers_state,
    # describe, 3 query pages of 200, 3 composite resets of 200: 7 requests (more with the re-check before resets)
    request_points(7) + commit_points(8) + [KillPoint("budget", 4)],
)
LEADS_BULK = Scenario(
    "leads-bulk", _seed_leads(1200), customer_sync({**LEAD, "bulk_threshold": 500}, batch_size=5000), customers_state,
    # describe, first REST page, Bulk query job (create, status, results), Bulk ingest job (create, upload, close,
    # status): 9 requests
    request_points(9) + commit_points(3),
)


# --- 2. Object links, with deletes (queryAll) -----------------------------------------------------------

ACCOUNT_WEBHOOK = {"name": "account", "datamodel": "dm_account", "fields": [
    {"json_field": "Id", "column": "sf_id", "dedup": True, "max_length": 18},
    {"json_field": "Name", "column": "name"},
    {"json_field": "Industry", "column": "industry"},
]}
ACCOUNT_LINKS = {"webhooks": [ACCOUNT_WEBHOOK], "links": [
    {"name": "accounts", "sobject": "Account", "webhook": "account", "datamodel": "dm_account", "delete": True,
     "page_size": 200}]}


def link_sync():
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator

    return ObjectLinkSyncOperator(task_id="sync_accounts", link_name="accounts", links_config=ACCOUNT_LINKS).execute({})


def prepare_accounts(env: Env) -> None:
    accounts = ids("Account", 1200)
    env.sf.seed("Account", [{"Id": i, "Name": f"Account {n}", "Industry": "Retail"} for n, i in enumerate(accounts)])
    link_sync()  # the datamodel holds them all; now Salesforce changes 900 and deletes 200
    env.sf.update("Account", [{"Id": i, "Name": f"Renamed {n}", "Industry": "Banking"} for n, i in enumerate(accounts[:900])])
    env.sf.delete(accounts[900:1100])


def accounts_state(env: Env) -> object:
    return {"rows": env.rows("SELECT sf_id, name, industry FROM dm_account ORDER BY sf_id")}


LINKS = Scenario(
    "object-links", prepare_accounts, link_sync, accounts_state,
    # describe, 6 queryAll pages of 200 (changes and deletions together): 7 requests; 10 commits
    request_points(7) + commit_points(10) + [KillPoint("budget", 2)],
)


# --- 3. Contact moments (composite upserts to leads, one Bulk ingest job to contacts) ---------------------

def prepare_moments(env: Env) -> None:
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    leads, contacts = ids("Lead", 40), ids("Contact", 40)
    env.sf.seed("Lead", lead_records(40, flagged=False))
    env.sf.seed("Contact", [{"Id": i, "LastName": f"Contact {n}"} for n, i in enumerate(contacts)])
    DeployteqHook().migrate()
    env.execute("INSERT INTO customer (email, sf_lead_id, status) SELECT 'l' || n || '@crash.example', id, 'Prospect' "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(id, n)", (leads,))
    env.execute("INSERT INTO customer (email, sf_contact_id, status) SELECT 'c' || n || '@crash.example', id, 'Klant' "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(id, n)", (contacts,))
    # 1,000 moments to leads (5 composite upserts of 200), 2,400 to contacts (one Bulk ingest job)
    env.execute("INSERT INTO contact_moment (customer_id, mailing_id, mailing_name, subject, sent_at, open_count) "
                "SELECT c.customer_id, m, 'Mailing ' || m, 'Onderwerp ' || m, now() - interval '1 day', mod(m, 3) "
                "FROM customer c, generate_series(1, 25) AS m WHERE c.sf_lead_id IS NOT NULL")
    env.execute("INSERT INTO contact_moment (customer_id, mailing_id, mailing_name, subject, sent_at, open_count) "
                "SELECT c.customer_id, m, 'Mailing ' || m, 'Onderwerp ' || m, now() - interval '1 day', mod(m, 3) "
                "FROM customer c, generate_series(1, 60) AS m WHERE c.sf_contact_id IS NOT NULL")


def moments_sync():
    from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator

    return ContactMomentsToSalesforceOperator(task_id="send_contact_moments").execute({})


def moments_state(env: Env) -> object:
    keys = {int(m): None for (m,) in env.rows("SELECT contact_moment_id FROM contact_moment")}
    found: dict[int, list] = {}
    for sobject, parent in (("ClangLeadContactMoment__c", "Lead__c"), ("ClangContactContactMoment__c", "Contact__c")):
        for record in env.sf.records(sobject):
            found.setdefault(int(record["Deployteq_Id__c"]), []).append(
                (sobject, record[parent], record["Open_Count__c"], record["Name"]))
    return {"moments in Salesforce": {key: found.get(key) for key in keys},
            "not recorded as sent": env.rows("SELECT count(*) FROM contact_moment m LEFT JOIN contact_moment_sync s "
                                             "USING (contact_moment_id) WHERE s.sent_hash IS NULL")}


MOMENTS = Scenario(
    "contact-moments", prepare_moments, moments_sync, moments_state,
    # 5 composite upserts (leads), Bulk ingest job (create, upload, close, status, results): 10 requests
    request_points(10) + commit_points(6) + [KillPoint("budget", 3)],
)


# --- 4. Salesforce Synchronize (composite updates of 200, outcomes per record) ---------------------------

SYNCHRONIZED_LEAD = {**LEAD, "mappings": [*LEAD["mappings"], {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean",
                                                               "deployteq_field": "newsletter"}]}


def prepare_synchronize(env: Env) -> None:
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    leads = ids("Lead", 1400)
    env.sf.seed("Lead", lead_records(1400, flagged=False))
    DeployteqHook().migrate()
    env.execute("INSERT INTO customer (email, sf_lead_id, status, newsletter, email_optin) "
                "SELECT 'lead' || n || '@crash.example', id, 'Prospect', mod(n, 2) = 0, true "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS t(id, n)", (leads,))


def synchronize_run():
    from deployteq_salesforce.flows.synchronize.operator import SalesforceSynchronizeOperator

    return SalesforceSynchronizeOperator(
        task_id="synchronize", sobject="Lead", fields=["Newsletter__c", "Email_Opt_In__c"],
        selection_sql="SELECT customer_id FROM customer", run_key="crash/synchronize/1",
        object_config={"objects": [SYNCHRONIZED_LEAD]},
    ).execute({})


def synchronize_state(env: Env) -> object:
    salesforce = sorted((r["Id"], r["Newsletter__c"], r["Email_Opt_In__c"]) for r in env.sf.records("Lead"))
    outcomes = env.rows("SELECT exit, count(*) FROM synchronize_outcome GROUP BY exit ORDER BY exit")
    return {"Salesforce": salesforce, "exits": outcomes}


SYNCHRONIZE = Scenario(
    "synchronize", prepare_synchronize, synchronize_run, synchronize_state,
    # describe, 7 composite updates of 200: 8 requests
    request_points(8) + commit_points(8) + [KillPoint("budget", 3)],
)

SCENARIOS = [LEADS_REST, LEADS_BULK, LINKS, MOMENTS, SYNCHRONIZE]
CASES = [pytest.param(s, p, id=f"{s.name}-{p.id}") for s in SCENARIOS for p in s.points]
_references: dict[str, tuple[object, int]] = {}


@pytest.fixture
def env(emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema) -> Env:
    return Env(emulator, pg_url, pg_schema)


def reference(scenario: Scenario, env: Env) -> tuple[object, int]:
    """The end state and Salesforce writes of one uninterrupted run (once per scenario)."""
    if scenario.name not in _references:
        env.fresh()
        scenario.prepare(env)
        scenario.run()
        _references[scenario.name] = (scenario.state(env), writes(env.sf.counters()))
    return _references[scenario.name]


@pytest.mark.parametrize(("scenario", "point"), CASES)
def test_worker_killed_then_rerun_loses_nothing_and_repeats_at_most_one_write(env, scenario, point):
    expected_state, expected_writes = reference(scenario, env)
    env.fresh()
    scenario.prepare(env)

    exit_code = run_killed(scenario.run, point)
    if point.kind != "budget":
        assert exit_code == -9, f"the worker was not killed at {point.id} (exit {exit_code}): the flow makes fewer " \
                                "requests/commits than this point assumes"
    scenario.run()  # the task again (Airflow's retry, or the next run), with budget to spare

    assert scenario.state(env) == expected_state
    repeated = writes(env.sf.counters()) - expected_writes
    assert repeated <= 1, f"{repeated} writes (batches / Bulk uploads) were sent to Salesforce again after the kill"
