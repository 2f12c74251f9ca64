"""Demo data for the contact-moment flow: e-mails "sent from Deployteq" to the demo customers.

Only used by ``make demo``: ``include/demo.py`` calls ``seed_demo_contact_moments`` right before it
runs ``deployteq_contact_moments``.  The demo customers come from the Lead/Contact sync, which the
demo runs first (demo stage 10).

- Customers with a Salesforce id and no contact moment yet get a few mailings each, with opens,
  clicks and bounces (deterministic per customer id).
- Customers that already have moments (a second ``make demo``) get new opens and clicks on some
  of them, as recipients keep reading: the flow then sends those updates to the same records.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

MAILINGS = (
    (101, "Nieuwsbrief januari", "Het nieuwe jaar: onze plannen voor u"),
    (102, "Voorjaarsactie", "20% korting op alle voorjaarsartikelen"),
    (103, "Webinar uitnodiging", "Uitnodiging: marketing automation in de praktijk"),
    (104, "Klanttevredenheid", "Hoe tevreden bent u over onze service?"),
    (105, "Nieuwsbrief juni", "Zomertips en productnieuws"),
)
ONLINE_VERSION = "https://deployteq.example/mailing/{mailing_id}/online/{customer_id}"

NEW_CUSTOMERS_SQL = """
SELECT c.customer_id FROM customer c
 WHERE (c.sf_lead_id IS NOT NULL OR c.sf_contact_id IS NOT NULL) AND NOT c.sf_deleted
   AND NOT EXISTS (SELECT 1 FROM contact_moment cm WHERE cm.customer_id = c.customer_id)
 ORDER BY c.customer_id
"""

# Every fifth moment (a different fifth each run) gets one more open, some a click too.
NEW_EVENTS_SQL = """
UPDATE contact_moment
   SET open_count = open_count + 1, opened_first_at = coalesce(opened_first_at, clock_timestamp()),
       click_count = click_count + (contact_moment_id %% 2)::int,
       clicked_first_at = CASE WHEN contact_moment_id %% 2 = 1 THEN coalesce(clicked_first_at, clock_timestamp())
                               ELSE clicked_first_at END
 WHERE bounced_at IS NULL AND contact_moment_id %% 5 = %s
"""


def demo_moments(customer_id: int, now: datetime) -> list[tuple]:
    """2-4 mailings for one customer: (customer_id, mailing_id, name, subject, sent_at, opened_first_at,
    open_count, clicked_first_at, click_count, bounced_at, bounce_type, online_version_url)."""
    rng = random.Random(customer_id)
    rows = []
    for mailing_id, name, subject in rng.sample(MAILINGS, rng.randint(2, 4)):
        sent_at = (now - timedelta(days=rng.uniform(1, 60))).replace(microsecond=0)
        opened = clicked = bounced = None
        opens = clicks = 0
        bounce_type = None
        draw = rng.random()
        if draw < 0.05:
            bounced, bounce_type = sent_at + timedelta(minutes=rng.randint(1, 30)), rng.choice(("hard", "soft"))
        elif draw < 0.65:
            opened, opens = sent_at + timedelta(hours=rng.uniform(0.1, 48)), rng.randint(1, 5)
            if rng.random() < 0.4:
                clicked, clicks = opened + timedelta(minutes=rng.randint(1, 20)), rng.randint(1, 3)
        rows.append((customer_id, mailing_id, name, subject, sent_at, opened, opens, clicked, clicks, bounced,
                     bounce_type, ONLINE_VERSION.format(mailing_id=mailing_id, customer_id=customer_id)))
    return rows


def seed_demo_contact_moments(store) -> dict:
    """Add demo moments for customers without any, and new events on earlier ones; returns counts."""
    store.migrate()
    now = datetime.now(timezone.utc)
    with store.connect() as conn:
        had_moments = conn.execute("SELECT count(*) FROM contact_moment").fetchone()[0]
        customers = [row[0] for row in conn.execute(NEW_CUSTOMERS_SQL).fetchall()]
        rows = [moment for customer_id in customers for moment in demo_moments(customer_id, now)]
        if rows:
            store.copy_rows(
                "contact_moment",
                ["customer_id", "mailing_id", "mailing_name", "subject", "sent_at", "opened_first_at", "open_count",
                 "clicked_first_at", "click_count", "bounced_at", "bounce_type", "online_version_url"],
                rows, conn=conn,
            )
        updated = 0
        if had_moments:
            updated = conn.execute(NEW_EVENTS_SQL, (int(now.timestamp()) % 5,)).rowcount
    return {"customers": len(customers), "new_moments": len(rows), "moments_with_new_events": updated}
