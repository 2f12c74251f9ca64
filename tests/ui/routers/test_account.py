"""Account settings: the Salesforce connection's login, password, token and sandbox switch; secrets write-only."""

from __future__ import annotations

import json

import pytest

from tests.ui.helpers import submitted_form

SECRET_PASSWORD = "stored-password-never-shown"
SECRET_TOKEN = "stored-token-never-shown"


@pytest.fixture
def stored_connection(salesforce_conn_id, emulator_process, monkeypatch, airflow_db):
    """``salesforce_default`` in the metadata DB (not in the environment): what the account form edits."""
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    def store(**fields) -> None:
        with create_session() as session:
            session.execute(delete(Connection).where(Connection.conn_id == salesforce_conn_id))
            session.add(Connection(conn_id=salesforce_conn_id, **fields))

    monkeypatch.delenv("AIRFLOW_CONN_SALESFORCE_DEFAULT")
    yield store
    with create_session() as session:
        session.execute(delete(Connection).where(Connection.conn_id == salesforce_conn_id))


def read_connection() -> tuple:
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == "salesforce_default"))
        return (conn.conn_type, conn.login, conn.password, conn.extra_dejson) if conn else None


def password_login(store) -> None:
    store(conn_type="salesforce", login="integration@example.com", password=SECRET_PASSWORD,
          extra=json.dumps({"security_token": SECRET_TOKEN, "domain": "test", "hourly_budget": 1200, "ca_file": "/x/ca.pem"}))


def test_the_form_shows_the_login_never_a_secret(client_for, seeded, stored_connection):
    password_login(stored_connection)
    html = client_for("op").get("/account").text
    form = submitted_form(html, "account-form")
    assert form["login"] == "integration@example.com" and form["environment"] == "sandbox"
    assert form["password"] == "" and form["security_token"] == ""
    assert SECRET_PASSWORD not in html and SECRET_TOKEN not in html
    assert "a password is stored; it is never shown" in html and "a token is stored; it is never shown" in html


def test_saving_keeps_secrets_left_empty_and_every_other_setting(client_for, seeded, stored_connection):
    password_login(stored_connection)
    client = client_for("op")
    form = {**submitted_form(client.get("/account").text, "account-form"), "login": "other@example.com", "environment": "production"}
    response = client.post("/account", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/account?saved=1"
    assert read_connection() == (
        "salesforce", "other@example.com", SECRET_PASSWORD,
        {"security_token": SECRET_TOKEN, "hourly_budget": 1200, "ca_file": "/x/ca.pem"},  # domain gone: production
    )
    page = client.get(response.headers["location"]).text
    assert "Saved connection" in page and 'id="test-result"' in page and "not connected" in page  # the test ran on it


def test_typed_secrets_replace_the_stored_ones(client_for, seeded, stored_connection):
    password_login(stored_connection)
    client = client_for("op")
    form = {**submitted_form(client.get("/account").text, "account-form"), "password": "new-pw", "security_token": "new-token"}
    client.post("/account", data=form)
    conn_type, login, password, extras = read_connection()
    assert (password, extras["security_token"], extras["domain"]) == ("new-pw", "new-token", "test")


def test_a_new_connection_gets_our_type(client_for, seeded, stored_connection):
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(Connection).where(Connection.conn_id == "salesforce_default"))
    client = client_for("op")
    form = {**submitted_form(client.get("/account").text, "account-form"), "login": "new@example.com", "password": "pw",
            "security_token": "tok", "environment": "sandbox"}
    assert client.post("/account", data=form, follow_redirects=False).status_code == 303
    assert read_connection() == ("deployteq_salesforce", "new@example.com", "pw", {"security_token": "tok", "domain": "test"})


def test_switching_from_a_session_id_needs_a_password(client_for, seeded, stored_connection, emulator_process):
    info = json.loads(open(emulator_process.connection_json).read())
    stored_connection(conn_type="salesforce", password=info["session_id"], extra=json.dumps({"instance_url": info["instance_url"]}))
    client = client_for("op")
    html = client.get("/account").text
    assert "a session id is stored, no password" in html and info["session_id"] not in html
    form = {**submitted_form(html, "account-form"), "login": "someone@example.com"}
    response = client.post("/account", data=form)
    assert response.status_code == 422
    assert "Password: enter the user&#39;s password: the stored secret is a session id, not a password" in response.text
    assert read_connection()[1] is None  # nothing saved


def test_saving_is_audit_logged_without_secrets(client_for, seeded, stored_connection):
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    password_login(stored_connection)
    client = client_for("op")
    form = {**submitted_form(client.get("/account").text, "account-form"), "password": "logged-nowhere"}
    client.post("/account", data=form)
    with create_session() as session:
        entry = session.scalars(
            select(Log).where(Log.event == "deployteq_salesforce_account_settings").order_by(Log.id.desc()).limit(1)
        ).one()
        assert entry.owner == "op" and "password" in entry.extra and "logged-nowhere" not in entry.extra


def test_only_connection_editors_see_and_save_the_form(client_for, seeded, stored_connection):
    password_login(stored_connection)
    viewer = client_for("viewer")
    assert "Account settings" not in viewer.get("/").text  # no tab
    assert viewer.get("/account").status_code == 403
    token = submitted_form(viewer.get("/errors").text)["csrf_token"]
    assert viewer.post("/account", data={"csrf_token": token, "login": "x@example.com", "environment": "production"}).status_code == 403
    assert read_connection()[1] == "integration@example.com"


def test_a_connection_from_the_environment_is_not_edited_here(client_for, seeded, salesforce_conn_id):
    client = client_for("op")
    html = client.get("/account").text
    assert "set by the environment variable <code>AIRFLOW_CONN_SALESFORCE_DEFAULT</code>" in html
    form = {**submitted_form(html, "account-form"), "login": "x@example.com", "password": "pw"}
    assert client.post("/account", data=form).status_code == 409
