"""Demo data for the example campaign: a preference centre where a few customers change their minds.

Only used by ``make demo``, right before it runs ``deployteq_campaign_synchronize``: it flips the
newsletter / e-mail opt-in of a few customers that came from Salesforce (a different pick each run)
and queues them, plus one Deployteq-only customer without a lead/contact id (R15: that one must end
in ``on_error``).  On a database where the Lead/Contact syncs never ran only that customer is queued.
"""

from __future__ import annotations

DEMO_CUSTOMERS = 6
DEPLOYTEQ_ONLY_EMAIL = "alleen-in-deployteq@voorbeeld.nl"


def play_preference_centre(store, queue_ddl: str) -> dict:
    """Change and queue the preferences of a few customers; ``queue_ddl`` is the campaign DAG's queue table."""
    with store.connect() as conn:
        conn.execute(queue_ddl)
        runs = conn.execute(
            "SELECT count(*) FROM synchronize_run WHERE dag_id = 'deployteq_campaign_synchronize'"
        ).fetchone()[0]
        changed = conn.execute(
            "UPDATE customer SET newsletter = NOT coalesce(newsletter, false), email_optin = NOT email_optin "
            "WHERE customer_id IN (SELECT customer_id FROM customer "
            "  WHERE (sf_lead_id IS NOT NULL OR sf_contact_id IS NOT NULL) AND NOT sf_deleted "
            "  ORDER BY md5(customer_id::text || %s::text) LIMIT %s) RETURNING customer_id",
            (runs, DEMO_CUSTOMERS),
        ).fetchall()
        row = conn.execute("SELECT customer_id FROM customer WHERE email = %s", (DEPLOYTEQ_ONLY_EMAIL,)).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO customer (email, first_name, last_name, newsletter, email_optin) "
                "VALUES (%s, 'Nog', 'Niet in Salesforce', true, true) RETURNING customer_id",
                (DEPLOYTEQ_ONLY_EMAIL,),
            ).fetchone()
        queued = [r[0] for r in changed] + [row[0]]
        conn.execute(
            "INSERT INTO campaign_preference_change (customer_id) SELECT unnest(%s::bigint[]) "
            "ON CONFLICT (customer_id) DO UPDATE SET changed_at = now(), synced_at = NULL, needs_follow_up = false",
            (queued,),
        )
    return {"simulated": len(queued), "from_salesforce": len(changed)}
