"""`make demo`'s webhook step: one push through the receiver endpoint over real HTTP (R10).

Serves Airflow's own API app (with our plugin mounted at /deployteq-webhooks) on a free local
port for a moment, and POSTs one CampaignMember change to it with the bearer token of the
Connection ``deployteq_webhook`` -- what a Salesforce Flow or outbound call would do.
"""

from __future__ import annotations

import socket
import threading
import time

from include.local_services import server_context

WEBHOOK = "campaign-member"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def push_demo_object(database_url: str, schema: str, token: str) -> str:
    """Push a synced CampaignMember back as "Responded"; returns one line for the console."""
    import psycopg
    import requests
    import uvicorn
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
        try:
            row = conn.execute("SELECT sf_id, campaign_id, lead_id, contact_id FROM dm_campaign_member ORDER BY deployteq_id LIMIT 1").fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
    if row is None:
        return "skipped: no CampaignMember was synced, nothing to push"
    change = {"Id": row[0], "CampaignId": row[1], "LeadId": row[2], "ContactId": row[3], "Status": "Responded", "HasResponded": True}
    with server_context():
        from airflow.api_fastapi.app import create_app

        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    return "failed: the local API server did not start"
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}/deployteq-webhooks/{WEBHOOK}"
            response = requests.post(url, json=change, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        finally:
            server.should_exit = True
            thread.join(timeout=15)
    if response.status_code != 200:
        return f"failed: POST /deployteq-webhooks/{WEBHOOK} answered {response.status_code}: {response.text[:200]}"
    body = response.json()
    stored = body["stored"][0]
    return (f"POST /deployteq-webhooks/{WEBHOOK} (CampaignMember {row[0]} -> Responded): 200, deployteq_id "
            f"{stored['deployteq_id']}, customer_id {stored.get('customer_id')}, updated {body['updated']}, inserted {body['inserted']}")
