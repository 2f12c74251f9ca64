"""The soak's org and the load generator that keeps changing both sides while the soak runs.

Salesforce side (through the emulator's admin API, as users and automations would, never counted as API
use): leads and contacts created, edited, converted and deleted, sync flags set, accounts edited (and
pushed to the ``account`` webhook receiver, as a Salesforce outbound message would), campaign members
created, changed and hard-deleted.  Deployteq side (SQL): e-mail contact moments sent and opened or
clicked, and preference changes queued for the campaign's Salesforce Synchronize step.

Records are split so every check has one source of truth: Salesforce-side edits only touch records
whose number is not a multiple of ``DEPLOYTEQ_SIDE`` (the "Salesforce partition"); contact moments and
preference changes only go to customers of the others (each customer's preference changes once), so a
later inbound sync never echoes an older Salesforce value over a newer Deployteq change by design.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
import requests

from include.salesforce_emulator.ids import make_id
from include.salesforce_emulator.schema import OBJECTS

POD = "Sk0"  # ids of soak records never collide with ids the emulator hands out
DEPLOYTEQ_SIDE = 10
FLAG = "Sync_to_Deployteq__c"
LINK_FLAG = "SyncWithClang__c"
_INDUSTRIES = ("Technology", "Banking", "Retail", "Energy", "Healthcare", "Media")
_CITIES = ("Amsterdam", "Rotterdam", "Utrecht", "Den Haag", "Eindhoven", "Groningen", "Antwerpen", "Berlin")


def sf_id(sobject: str, number: int) -> str:
    return make_id(OBJECTS[sobject].key_prefix, number, pod=POD)


@dataclass
class OrgSize:
    leads: int = 200_000
    contacts: int = 100_000
    campaigns: int = 20
    members: int = 5_000

    @property
    def accounts(self) -> int:
        return max(10, self.contacts // 20)


def lead_record(n: int, rng: random.Random) -> dict:
    return {"Id": sf_id("Lead", n), "FirstName": f"Lead{n}", "LastName": f"Soak{n}", "Company": f"Bedrijf {n % 997} BV",
            "Email": f"lead{n}@soak.example", "City": rng.choice(_CITIES), "Industry": rng.choice(_INDUSTRIES),
            "Email_Opt_In__c": rng.choice(("Y", "N")), "Newsletter__c": rng.random() < 0.5, FLAG: True}


def contact_record(n: int, accounts: int, rng: random.Random) -> dict:
    return {"Id": sf_id("Contact", n), "FirstName": f"Contact{n}", "LastName": f"Soak{n}",
            "Email": f"contact{n}@soak.example", "MailingCity": rng.choice(_CITIES),
            "AccountId": sf_id("Account", n % accounts + 1), "Email_Opt_In__c": rng.choice(("Y", "N")),
            "Newsletter__c": rng.random() < 0.5}


def seed_org(client, size: OrgSize, seed: int) -> dict[str, int]:
    """The large org: accounts, contacts, leads (all flagged for the first sync), campaigns and members."""
    rng = random.Random(seed)
    client.seed("Account", [{"Id": sf_id("Account", n), "Name": f"Account {n}", "Industry": rng.choice(_INDUSTRIES),
                             "BillingCity": rng.choice(_CITIES)} for n in range(1, size.accounts + 1)])
    client.seed("Contact", [contact_record(n, size.accounts, rng) for n in range(1, size.contacts + 1)])
    client.seed("Lead", [lead_record(n, rng) for n in range(1, size.leads + 1)])
    client.seed("Campaign", [{"Id": sf_id("Campaign", n), "Name": f"Campaign {n}", "IsActive": True}
                             for n in range(1, size.campaigns + 1)])
    client.seed("CampaignMember", [
        {"Id": sf_id("CampaignMember", n), "CampaignId": sf_id("Campaign", n % size.campaigns + 1),
         "LeadId": sf_id("Lead", n), "Status": "Sent", LINK_FLAG: True} for n in range(1, size.members + 1)])
    return {"Account": size.accounts, "Contact": size.contacts, "Lead": size.leads, "Campaign": size.campaigns,
            "CampaignMember": size.members}


@dataclass
class Truth:
    """What the load generator did; what the checks compare the end state with."""

    actions: Counter = field(default_factory=Counter)
    preferences: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # customer_id -> (newsletter, optin)
    webhook_failures: list[str] = field(default_factory=list)


class LoadGenerator(threading.Thread):
    """Changes both sides every ``pause`` seconds until ``stop()``; ``truth`` holds what it did."""

    def __init__(self, *, client, deployteq_url: str, schema: str, api: str, webhook_token: str, size: OrgSize,
                 seed: int, pause: float = 0.5) -> None:
        super().__init__(name="soak-load", daemon=True)
        self.client = client
        self.deployteq_url = deployteq_url
        self.schema = schema
        self.api = api
        self.webhook_token = webhook_token
        self.size = size
        self.rng = random.Random(seed + 1)
        self.pause = pause
        self.truth = Truth()
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._next = {"Lead": size.leads, "Contact": size.contacts, "CampaignMember": size.members}
        self._gone: set[str] = set()  # deleted or converted: not edited again
        self._deployteq_side_ready = False

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def run(self) -> None:
        actions = [(self.edit_leads, 5), (self.create_leads, 2), (self.convert_lead, 1), (self.delete_records, 1),
                   (self.edit_contacts, 4), (self.create_contacts, 1), (self.edit_account_and_push, 2),
                   (self.change_campaign_members, 2), (self.send_contact_moments, 4), (self.open_contact_moments, 2),
                   (self.change_preferences, 2)]
        functions, weights = zip(*actions)
        try:
            with psycopg.connect(self.deployteq_url, autocommit=True) as self.db:
                self.db.execute(f'SET search_path = "{self.schema}"')
                while not self._halt.wait(self.pause * self.rng.uniform(0.5, 1.5)):
                    action = self.rng.choices(functions, weights)[0]
                    try:
                        done = action()
                    except psycopg.errors.UndefinedTable:  # no flow has created the Deployteq schema yet
                        done = False
                    if done:
                        self.truth.actions[action.__name__] += 1
        except BaseException as error:  # the soak reports it; a dead load generator must not go unnoticed
            self.error = error

    # -- Salesforce side ----------------------------------------------------------------------------------------
    def _pick(self, sobject: str, count: int) -> list[str]:
        ids = []
        for _ in range(count * 3):
            n = self.rng.randrange(1, self._next[sobject] + 1)
            record_id = sf_id(sobject, n)
            if n % DEPLOYTEQ_SIDE and record_id not in self._gone:
                ids.append(record_id)
            if len(ids) == count:
                break
        return list(dict.fromkeys(ids))

    def edit_leads(self) -> bool:
        ids = self._pick("Lead", self.rng.randint(5, 40))
        stamp = int(time.time() * 1000)
        self.client.update("Lead", [{"Id": i, "FirstName": f"Edited{stamp}", "City": self.rng.choice(_CITIES), FLAG: True}
                                    for i in ids])
        return bool(ids)

    def create_leads(self) -> bool:
        start = self._next["Lead"] + 1
        self._next["Lead"] += self.rng.randint(1, 20)
        self.client.seed("Lead", [lead_record(n, self.rng) for n in range(start, self._next["Lead"] + 1)])
        return True

    def convert_lead(self) -> bool:
        for lead_id in self._pick("Lead", 1):
            self.client.convert_lead(lead_id)
            self._gone.add(lead_id)
            return True
        return False

    def delete_records(self) -> bool:
        sobject = self.rng.choice(("Lead", "Contact"))
        ids = self._pick(sobject, self.rng.randint(1, 5))
        if ids:
            self.client.delete(ids)
            self._gone.update(ids)
        return bool(ids)

    def edit_contacts(self) -> bool:
        ids = self._pick("Contact", self.rng.randint(5, 40))
        stamp = int(time.time() * 1000)
        self.client.update("Contact", [{"Id": i, "FirstName": f"Edited{stamp}", "MailingCity": self.rng.choice(_CITIES)}
                                       for i in ids])
        return bool(ids)

    def create_contacts(self) -> bool:
        start = self._next["Contact"] + 1
        self._next["Contact"] += self.rng.randint(1, 10)
        self.client.seed("Contact", [contact_record(n, self.size.accounts, self.rng)
                                     for n in range(start, self._next["Contact"] + 1)])
        return True

    def edit_account_and_push(self) -> bool:
        account_id = sf_id("Account", self.rng.randrange(1, self.size.accounts + 1))
        change = {"Id": account_id, "Name": f"Account edited {int(time.time() * 1000)}",
                  "Industry": self.rng.choice(_INDUSTRIES), "BillingCity": self.rng.choice(_CITIES)}
        self.client.update("Account", [change])
        # the same change pushed to the receiver right away, as a Salesforce outbound message would
        try:
            response = requests.post(f"{self.api}/deployteq-webhooks/account", json=change, timeout=30,
                                     headers={"Authorization": f"Bearer {self.webhook_token}"})
            if response.status_code >= 400:
                self.truth.webhook_failures.append(f"{response.status_code}: {response.text[:200]}")
        except requests.RequestException as error:  # the API server may be restarting; the link sync still brings it
            self.truth.webhook_failures.append(f"{type(error).__name__}: {error}")
        return True

    def change_campaign_members(self) -> bool:
        kind = self.rng.choice(("create", "update", "delete"))
        if kind == "create":
            self._next["CampaignMember"] += 1
            n = self._next["CampaignMember"]
            lead = sf_id("Lead", self.rng.randrange(1, self.size.leads + 1))
            try:
                self.client.seed("CampaignMember", [{"Id": sf_id("CampaignMember", n), "LeadId": lead, "Status": "Sent",
                                                     "CampaignId": sf_id("Campaign", n % self.size.campaigns + 1),
                                                     LINK_FLAG: True}])
            except Exception:  # the lead may be in that campaign already (one member per lead and campaign)
                return False
            return True
        ids = [i for i in self._pick("CampaignMember", self.rng.randint(1, 5))]
        if not ids:
            return False
        if kind == "update":
            self.client.update("CampaignMember", [{"Id": i, "Status": "Responded", LINK_FLAG: True} for i in ids])
        else:
            self.client.hard_delete(ids)
            self._gone.update(ids)
        return True

    # -- Deployteq side ---------------------------------------------------------------------------------------
    def _deployteq_customers(self, count: int) -> list[tuple[int, str | None, str | None]]:
        """Customers of the Deployteq partition that came from Salesforce (they have an id to send to)."""
        if not self._deployteq_side_ready:
            # Deployteq-side changes start once the first full read of leads and contacts completed (both have a
            # watermark): a full read still going on would rightly bring Salesforce's values over them
            (synced,) = self.db.execute(
                "SELECT count(*) FROM sync_state WHERE flow IN ('sync:Lead', 'sync:Contact') "
                "AND watermark_modstamp IS NOT NULL").fetchone()
            if synced < 2:
                return []
            self._deployteq_side_ready = True
        numbers = [self.rng.randrange(0, max(self.size.leads, self.size.contacts) // DEPLOYTEQ_SIDE) * DEPLOYTEQ_SIDE
                   for _ in range(count)]
        ids = [sf_id("Lead", n) for n in numbers if 0 < n <= self.size.leads]
        ids += [sf_id("Contact", n) for n in numbers if 0 < n <= self.size.contacts]
        return self.db.execute(
            "SELECT customer_id, sf_lead_id, sf_contact_id FROM customer "
            "WHERE (sf_lead_id = ANY(%s) OR sf_contact_id = ANY(%s)) AND NOT sf_deleted", (ids, ids)).fetchall()

    def send_contact_moments(self) -> bool:
        customers = self._deployteq_customers(self.rng.randint(5, 60))
        if not customers:
            return False
        now = datetime.now(timezone.utc)
        mailing = self.rng.randrange(1, 10_000)
        self.db.execute(
            "INSERT INTO contact_moment (customer_id, mailing_id, mailing_name, subject, sent_at, online_version_url) "
            "SELECT c, %s, %s, %s, %s, %s FROM unnest(%s::bigint[]) AS c",
            (mailing, f"Soak mailing {mailing}", f"Nieuwsbrief {mailing}", now,
             f"https://deployteq.example/m/{mailing}", [c[0] for c in customers]))
        return True

    def open_contact_moments(self) -> bool:
        rows = self.db.execute(
            "UPDATE contact_moment SET open_count = open_count + 1, opened_first_at = coalesce(opened_first_at, now()), "
            "click_count = click_count + (random() < 0.3)::int "
            "WHERE contact_moment_id IN (SELECT contact_moment_id FROM contact_moment ORDER BY random() LIMIT %s) "
            "RETURNING contact_moment_id", (self.rng.randint(1, 30),)).fetchall()
        return bool(rows)

    def change_preferences(self) -> bool:
        customers = [c for c in self._deployteq_customers(self.rng.randint(1, 10)) if c[0] not in self.truth.preferences]
        if not customers:
            return False
        self.db.execute(QUEUE_DDL)
        for customer_id, _, _ in customers:
            newsletter, optin = self.rng.random() < 0.5, self.rng.random() < 0.5
            with self.db.transaction():
                self.db.execute("UPDATE customer SET newsletter = %s, email_optin = %s WHERE customer_id = %s",
                                (newsletter, optin, customer_id))
                self.db.execute(
                    "INSERT INTO campaign_preference_change (customer_id) VALUES (%s) ON CONFLICT (customer_id) DO UPDATE "
                    "SET changed_at = now(), synced_at = NULL, needs_follow_up = false", (customer_id,))
            self.truth.preferences[customer_id] = (newsletter, optin)
        return True


def _queue_ddl() -> str:
    """The queue table as the campaign DAG defines it (the DAG file is the one definition)."""
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "dags" / "deployteq_campaign_synchronize.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "QUEUE_DDL":
            return ast.literal_eval(node.value)
    raise LookupError("QUEUE_DDL not found in dags/deployteq_campaign_synchronize.py")


QUEUE_DDL = _queue_ddl()
