"""The webhook receivers over real HTTP: TestClient, a real uvicorn server, and mounted in Airflow's API app (R10)."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time

import psycopg
import pytest
import requests
from fastapi.testclient import TestClient

from deployteq_salesforce.flows.object_links.webhooks import URL_PREFIX, create_app

TOKEN = "s3cret-webhook-token"
MEMBER_WEBHOOK = {
    "name": "campaign-member",
    "datamodel": "dm_campaign_member",
    "fields": [
        {"json_field": "Id", "column": "sf_id", "dedup": True, "max_length": 18},
        {"json_field": "CampaignId", "column": "campaign_id"},
        {"json_field": "LeadId", "column": "lead_id"},
        {"json_field": "ContactId", "column": "contact_id"},
        {"json_field": "Status", "column": "status"},
        {"json_field": "FirstRespondedDate", "column": "first_responded", "type": "date"},
        {"json_field": "Score", "column": "score", "type": "integer"},
    ],
    "customer_relation": [
        {"column": "contact_id", "customer_field": "sf_contact_id"},
        {"column": "lead_id", "customer_field": "sf_lead_id"},
    ],
}
CONFIG = {"webhooks": [MEMBER_WEBHOOK], "links": []}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def member(n, **fields):
    return {"Id": f"00v8d0000000{n:03d}AAA", "CampaignId": "7018d0000000001AAA", "Status": "Sent", **fields}


@pytest.fixture
def receiver_env(deployteq_conn_id, monkeypatch, pg_url, pg_schema):
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECT_LINKS", json.dumps(CONFIG))
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOYTEQ_WEBHOOK", json.dumps({"conn_type": "generic", "password": TOKEN}))

    class Env:
        def rows(self, statement, params=()):
            with psycopg.connect(pg_url) as conn:
                conn.execute(f'SET search_path = "{pg_schema}"')
                return conn.execute(statement, params).fetchall()

        def execute(self, statement, params=()):
            with psycopg.connect(pg_url) as conn:
                conn.execute(f'SET search_path = "{pg_schema}"')
                conn.execute(statement, params)

        def table_exists(self):
            with psycopg.connect(pg_url) as conn:
                return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{pg_schema}".dm_campaign_member',)).fetchone()[0]

    return Env()


@pytest.fixture
def client(receiver_env):
    return TestClient(create_app())


def test_one_object_is_stored_and_answered_with_its_deployteq_id(client, receiver_env):
    response = client.post("/campaign-member", json=member(1, FirstRespondedDate="2024-05-01", Score="7"), headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    (stored,) = body["stored"]
    rows = receiver_env.rows("SELECT deployteq_id, sf_id, first_responded::text, score FROM dm_campaign_member")
    assert rows == [(stored["deployteq_id"], member(1)["Id"], "2024-05-01", 7)]
    assert body["inserted"] == 1 and body["datamodel"] == "dm_campaign_member"


def test_an_array_is_upserted_on_the_dedup_key_with_ids_in_request_order(client, receiver_env):
    first = client.post("/campaign-member", json=[member(1), member(2)], headers=AUTH).json()
    second = client.post("/campaign-member", json=[member(3), member(1, Status="Responded")], headers=AUTH).json()
    ids = {sf_id: did for did, sf_id in receiver_env.rows("SELECT deployteq_id, sf_id FROM dm_campaign_member")}
    assert [s["deployteq_id"] for s in second["stored"]] == [ids[member(3)["Id"]], ids[member(1)["Id"]]]
    assert second["stored"][1]["deployteq_id"] == first["stored"][0]["deployteq_id"]
    assert (second["inserted"], second["updated"]) == (1, 1)
    assert receiver_env.rows("SELECT status FROM dm_campaign_member WHERE sf_id = %s", (member(1)["Id"],)) == [("Responded",)]


def test_wrong_token_is_401_and_nothing_is_written(client, receiver_env):
    response = client.post("/campaign-member", json=member(1), headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert client.post("/campaign-member", json=member(1)).status_code == 401
    assert not receiver_env.table_exists()


def test_malformed_json_is_400_with_nothing_written(client, receiver_env):
    response = client.post("/campaign-member", content=b'[{"Id": "00v8d0000000001AAA",', headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]
    assert not receiver_env.table_exists()


def test_a_value_that_does_not_fit_is_400_naming_index_and_field_and_nothing_is_written(client, receiver_env):
    client.post("/campaign-member", json=member(1), headers=AUTH)
    response = client.post(
        "/campaign-member",
        json=[member(2), member(3, Score="veel"), member(4, FirstRespondedDate="gisteren"), {"Status": "Sent"}],
        headers=AUTH,
    )
    assert response.status_code == 400
    errors = {(e["index"], e["field"]) for e in response.json()["errors"]}
    assert errors == {(1, "Score"), (2, "FirstRespondedDate"), (3, "Id")}
    assert receiver_env.rows("SELECT count(*) FROM dm_campaign_member") == [(1,)]  # object 0 was not written either


def test_an_array_element_that_is_not_an_object_is_400(client, receiver_env):
    response = client.post("/campaign-member", json=[member(1), 5], headers=AUTH)
    assert response.status_code == 400 and response.json()["errors"][0]["index"] == 1


def test_unknown_webhook_is_404(client):
    assert client.post("/nope", json=member(1), headers=AUTH).status_code == 404


def test_customer_relation_is_resolved_and_returned(client, receiver_env):
    client.post("/campaign-member", json=member(9), headers=AUTH)  # creates the schema and table
    receiver_env.execute("INSERT INTO customer (sf_contact_id, status) VALUES ('0038d0000000001AAA', 'Klant')")
    (customer_id,) = receiver_env.rows("SELECT customer_id FROM customer")[0]
    body = client.post("/campaign-member", json=[member(1, ContactId="0038d0000000001AAA"), member(2, LeadId="00Q8d0000000404AAA")],
                       headers=AUTH).json()
    assert [s["customer_id"] for s in body["stored"]] == [customer_id, None]


def test_push_that_would_lose_data_is_409(client, receiver_env, monkeypatch):
    client.post("/campaign-member", json=member(1), headers=AUTH)
    changed = copy.deepcopy(CONFIG)
    changed["webhooks"][0]["fields"] = [f for f in MEMBER_WEBHOOK["fields"] if f["column"] != "score"]
    monkeypatch.setenv("AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECT_LINKS", json.dumps(changed))
    response = client.post("/campaign-member", json=member(2), headers=AUTH)
    assert response.status_code == 409 and "'score' would be dropped" in response.json()["detail"]
    assert receiver_env.rows("SELECT count(*) FROM dm_campaign_member") == [(1,)]


def test_each_push_is_in_the_run_log(client, receiver_env):
    client.post("/campaign-member", json=[member(1), member(2)], headers=AUTH)
    assert receiver_env.rows("SELECT flow, outcome, fetched, inserted FROM run_log") == [("webhook:campaign-member", "success", 2, 2)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_http_server_with_requests(receiver_env):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/campaign-member"
        ok = requests.post(url, json=[member(1), member(2)], headers=AUTH, timeout=30)
        denied = requests.post(url, json=member(3), headers={"Authorization": "Bearer nope"}, timeout=30)
        bad = requests.post(url, data="{nope", headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert ok.status_code == 200 and len(ok.json()["stored"]) == 2
    assert denied.status_code == 401 and bad.status_code == 400
    assert receiver_env.rows("SELECT count(*) FROM dm_campaign_member") == [(2,)]


def test_airflow_api_server_mounts_the_receiver_without_airflow_login(airflow_db, receiver_env):
    from airflow.api_fastapi.app import create_app as create_airflow_app
    from airflow.plugins_manager import get_fastapi_plugins

    get_fastapi_plugins.cache_clear()
    airflow_app = create_airflow_app()
    with TestClient(airflow_app) as http:
        response = http.post(f"{URL_PREFIX}/campaign-member", json=member(1), headers=AUTH)
        denied = http.post(f"{URL_PREFIX}/campaign-member", json=member(1))
    assert response.status_code == 200, response.text
    assert denied.status_code == 401
