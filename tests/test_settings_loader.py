"""The airflow_settings.yaml loader: validation, ${VAR} expansion, idempotent apply."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from include.settings_loader import (
    DEFAULT_SETTINGS_FILE,
    STATE_VARIABLE,
    SettingsError,
    apply_settings,
    consistency_warnings,
    load_settings_file,
    main,
    parse_settings,
    pool_slots_for_budget,
)

SHIPPED_FILE_ENV = {
    "SALESFORCE_SESSION_ID": "00Dxx!session-secret-value",
    "SALESFORCE_INSTANCE_URL": "https://localhost:8443",
    "SALESFORCE_CA_FILE": "/tmp/ca.pem",
    "DEPLOYTEQ_DB_HOST": "db.example.internal",
    "DEPLOYTEQ_DB_NAME": "deployteq",
    "DEPLOYTEQ_DB_USER": "airflow",
    "DEPLOYTEQ_DB_PASSWORD": "db-secret-password",
    "DEPLOYTEQ_DB_PORT": "5433",
}


def settings_doc(suffix: str, *, password: str = "first-secret-1", slots: int = 3, value: str = "v1") -> dict:
    return {
        "airflow": {
            "connections": [
                {
                    "conn_id": f"sf_{suffix}",
                    "conn_type": "salesforce",
                    "conn_password": password,
                    "conn_extra": {"instance_url": "https://localhost:1234", "ca_file": "/x/ca.pem"},
                },
                {
                    "conn_id": f"pg_{suffix}",
                    "conn_type": "postgres",
                    "conn_host": "localhost",
                    "conn_port": 5432,
                    "conn_schema": "test",
                    "conn_login": "postgres",
                    "conn_extra": '{"deployteq_schema": "deployteq"}',
                },
            ],
            "pools": [{"pool_name": f"pool_{suffix}", "pool_slot": slots, "pool_description": "test pool"}],
            "variables": [{"variable_name": f"var_{suffix}", "variable_value": value}],
        }
    }


def write_settings(tmp_path, doc: dict):
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# ------------------------------------------------------------------ parsing and validation


def test_shipped_file_parses_with_its_environment():
    settings = load_settings_file(DEFAULT_SETTINGS_FILE, environ=SHIPPED_FILE_ENV)

    connections = {c.conn_id: c for c in settings.connections}
    assert connections["salesforce_default"].password == SHIPPED_FILE_ENV["SALESFORCE_SESSION_ID"]
    assert connections["salesforce_default"].extra == {"instance_url": "https://localhost:8443", "ca_file": "/tmp/ca.pem"}
    assert connections["deployteq_default"].port == 5433
    assert connections["deployteq_default"].extra == {"deployteq_schema": "deployteq"}
    assert [(p.name, p.slots) for p in settings.pools] == [("salesforce_api", 6)]
    assert {v.key: v.value for v in settings.variables}["deployteq_salesforce_hourly_budget"] == "3600"


def test_shipped_pool_follows_the_budget_rule():
    settings = load_settings_file(DEFAULT_SETTINGS_FILE, environ=SHIPPED_FILE_ENV)
    assert consistency_warnings(settings) == []


@pytest.mark.parametrize(("budget", "slots"), [(3600, 6), (600, 1), (599, 1), (100, 1), (10000, 16)])
def test_pool_slot_rule(budget, slots):
    assert pool_slots_for_budget(budget) == slots


def test_pool_that_disagrees_with_the_budget_is_warned_about():
    doc = settings_doc("w", slots=2)
    doc["airflow"]["pools"][0]["pool_name"] = "salesforce_api"
    doc["airflow"]["variables"][0].update(variable_name="deployteq_salesforce_hourly_budget", variable_value="3600")
    warnings = consistency_warnings(parse_settings(doc, environ={}))
    assert warnings == ["pool salesforce_api has 2 slots; for an hourly budget of 3600 the rule max(1, budget // 600) gives 6"]


def test_env_references_are_expanded_everywhere_including_extra():
    doc = settings_doc("e", password="${SECRET}", value="prefix-${NAME}-suffix")
    doc["airflow"]["connections"][0]["conn_extra"]["instance_url"] = "https://${HOST}:${PORT}"
    settings = parse_settings(doc, environ={"SECRET": "s3cr3t-value", "NAME": "x", "HOST": "localhost", "PORT": "99"})

    assert settings.connections[0].password == "s3cr3t-value"
    assert settings.connections[0].extra["instance_url"] == "https://localhost:99"
    assert settings.variables[0].value == "prefix-x-suffix"


def test_env_reference_default_and_literal_dollar():
    doc = settings_doc("d", password="${UNSET_FOR_TEST:-fallback-pw}", value="cost $${NOT_EXPANDED}")
    settings = parse_settings(doc, environ={})
    assert settings.connections[0].password == "fallback-pw"
    assert settings.variables[0].value == "cost ${NOT_EXPANDED}"


def test_missing_env_variable_is_a_clear_error_naming_the_entry():
    doc = settings_doc("m", password="${DEPLOYTEQ_TEST_NOT_SET}")
    with pytest.raises(SettingsError) as error:
        parse_settings(doc, environ={})
    assert str(error.value) == (
        "connections[0] (conn_id 'sf_m').conn_password: environment variable DEPLOYTEQ_TEST_NOT_SET "
        "is not set (the file says ${DEPLOYTEQ_TEST_NOT_SET}); set it, or write the value into the file"
    )


@pytest.mark.parametrize(
    ("section", "index", "change", "message"),
    [
        ("connections", 0, {"conn_pasword": "x"}, "connections[0] (conn_id 'sf_v'): unknown key(s) ['conn_pasword']"),
        ("connections", 1, {"conn_port": "fifty"}, "connections[1] (conn_id 'pg_v'): conn_port must be a whole number, got 'fifty'"),
        ("connections", 0, {"conn_type": None}, "connections[0] (conn_id 'sf_v'): conn_type is required"),
        ("connections", 1, {"conn_extra": "{not json"}, "connections[1] (conn_id 'pg_v'): conn_extra is text but not JSON"),
        ("pools", 0, {"pool_slot": None}, "pools[0] (pool_name 'pool_v'): pool_slot is required"),
        ("pools", 0, {"pool_slot": -5}, "pools[0] (pool_name 'pool_v'): pool_slot must be at least -1, got -5"),
        ("variables", 0, {"variable_value": None}, "variables[0] (variable_name 'var_v'): variable_value is required"),
    ],
)
def test_invalid_entries_are_named(section, index, change, message):
    doc = settings_doc("v")
    doc["airflow"][section][index].update(change)
    with pytest.raises(SettingsError, match="^" + __import__("re").escape(message)):
        parse_settings(doc, environ={})


def test_duplicate_connection_is_an_error():
    doc = settings_doc("dup")
    doc["airflow"]["connections"][1]["conn_id"] = "sf_dup"
    with pytest.raises(SettingsError, match="connection 'sf_dup' is defined more than once"):
        parse_settings(doc, environ={})


def test_structured_variable_value_is_stored_as_json():
    doc = settings_doc("j")
    doc["airflow"]["variables"][0]["variable_value"] = {"objects": []}
    assert parse_settings(doc, environ={}).variables[0].value == '{"objects": []}'


# ------------------------------------------------------------------ applying to the metadata DB


def delete_entries(connections=(), pools=(), variables=()) -> None:
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(Connection).where(Connection.conn_id.in_(connections)))
        session.execute(delete(Pool).where(Pool.pool.in_(pools)))
        session.execute(delete(Variable).where(Variable.key.in_(variables)))


@pytest.fixture
def suffix(airflow_db):
    """A unique name suffix; the test's entries are removed from the shared test metadata DB afterwards."""
    suffix = uuid.uuid4().hex[:8]
    yield suffix
    delete_entries([f"sf_{suffix}", f"pg_{suffix}"], [f"pool_{suffix}"], [f"var_{suffix}"])


def read_back(suffix: str) -> dict:
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        sf = session.scalar(select(Connection).where(Connection.conn_id == f"sf_{suffix}"))
        pg = session.scalar(select(Connection).where(Connection.conn_id == f"pg_{suffix}"))
        pool = session.scalar(select(Pool).where(Pool.pool == f"pool_{suffix}"))
        var = session.scalar(select(Variable).where(Variable.key == f"var_{suffix}"))
        return {
            "sf": (sf.conn_type, sf.password, sf.extra_dejson, sf.login),
            "pg": (pg.conn_type, pg.host, pg.port, pg.schema, pg.login, pg.extra_dejson),
            "pool": (pool.slots, pool.description, pool.include_deferred),
            "var": var.val,
            "sf_password_encrypted": sf.is_encrypted,
        }


def test_applying_twice_creates_then_leaves_everything_unchanged(suffix):
    settings = parse_settings(settings_doc(suffix), environ={})

    first = apply_settings(settings)
    second = apply_settings(settings)

    assert [c.action for c in first] == ["created"] * 4
    assert [(c.kind, c.action) for c in second] == [
        ("connection", "unchanged"), ("connection", "unchanged"), ("pool", "unchanged"), ("variable", "unchanged"),
    ]
    assert read_back(suffix) == {
        "sf": ("salesforce", "first-secret-1", {"instance_url": "https://localhost:1234", "ca_file": "/x/ca.pem"}, None),
        "pg": ("postgres", "localhost", 5432, "test", "postgres", {"deployteq_schema": "deployteq"}),
        "pool": (3, "test pool", False),
        "var": "v1",
        "sf_password_encrypted": True,
    }


def test_changed_values_are_updated_and_named(suffix):
    apply_settings(parse_settings(settings_doc(suffix), environ={}))

    changes = apply_settings(parse_settings(settings_doc(suffix, password="second-secret-2", slots=5, value="v2"), environ={}))

    assert [str(c) for c in changes] == [
        f"connection sf_{suffix}: updated (password)",
        f"connection pg_{suffix}: unchanged",
        f"pool pool_{suffix}: updated (slots)",
        f"variable var_{suffix}: updated (value)",
    ]
    state = read_back(suffix)
    assert (state["sf"][1], state["pool"][0], state["var"]) == ("second-secret-2", 5, "v2")


def change_in_airflow(suffix: str) -> None:
    """What an operator does in the Airflow UI: new password, more pool slots, another Variable value."""
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        session.scalar(select(Connection).where(Connection.conn_id == f"sf_{suffix}")).set_password("typed-in-the-ui")
        session.scalar(select(Pool).where(Pool.pool == f"pool_{suffix}")).slots = 9
    Variable.set(f"var_{suffix}", "edited in the UI")


def test_changes_made_in_airflow_are_kept_and_said(suffix):
    apply_settings(parse_settings(settings_doc(suffix), environ={}))
    change_in_airflow(suffix)

    # the file changed too: the loader must still not overwrite what the operator saved
    changes = apply_settings(parse_settings(settings_doc(suffix, password="second-secret-2", slots=5, value="v2"), environ={}))

    reason = "changed in Airflow since the last load; --force to overwrite"
    assert [str(c) for c in changes] == [
        f"connection sf_{suffix}: kept (password): {reason}",
        f"connection pg_{suffix}: unchanged",
        f"pool pool_{suffix}: kept (slots): {reason}",
        f"variable var_{suffix}: kept (value): {reason}",
    ]
    state = read_back(suffix)
    assert (state["sf"][1], state["pool"][0], state["var"]) == ("typed-in-the-ui", 9, "edited in the UI")


def test_force_overwrites_changes_made_in_airflow_and_says_so(suffix):
    apply_settings(parse_settings(settings_doc(suffix), environ={}))
    change_in_airflow(suffix)

    changes = apply_settings(parse_settings(settings_doc(suffix), environ={}), force=True)

    assert [c.action for c in changes] == ["updated", "unchanged", "updated", "updated"]
    assert all(c.reason == "--force overwrote a change made in Airflow" for c in changes if c.action == "updated")
    state = read_back(suffix)
    assert (state["sf"][1], state["pool"][0], state["var"]) == ("first-secret-1", 3, "v1")
    # from now on the file's values are the loader's again: a file change applies without --force
    again = apply_settings(parse_settings(settings_doc(suffix, value="v3"), environ={}))
    assert [c.action for c in again] == ["unchanged", "unchanged", "unchanged", "updated"]


def test_an_entry_the_loader_never_set_is_kept_when_it_differs(suffix):
    from airflow.models.variable import Variable

    Variable.set(f"var_{suffix}", "made by hand before any load")

    changes = apply_settings(parse_settings(settings_doc(suffix), environ={}))

    assert str(changes[-1]) == (
        f"variable var_{suffix}: kept (value): differs from the file and was not set by this loader; --force to overwrite"
    )
    assert read_back(suffix)["var"] == "made by hand before any load"


def test_the_loader_state_holds_no_secret(suffix):
    from airflow.models.variable import Variable

    apply_settings(parse_settings(settings_doc(suffix, password="a-password-to-hide"), environ={}))

    state = json.loads(Variable.get(STATE_VARIABLE))
    assert f"connection:sf_{suffix}" in state["applied"]
    assert "a-password-to-hide" not in Variable.get(STATE_VARIABLE)


def test_cli_force_overwrites(suffix, tmp_path, capsys):
    path = write_settings(tmp_path, settings_doc(suffix))
    assert main(["--file", str(path)]) == 0
    change_in_airflow(suffix)

    assert main(["--file", str(path)]) == 0
    assert main(["--file", str(path), "--force"]) == 0

    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"Applied {path}: 0 created, 3 updated, 0 kept, 1 unchanged"
    assert f"Applied {path}: 0 created, 0 updated, 3 kept, 1 unchanged" in out
    assert read_back(suffix)["var"] == "v1"


def test_cli_reports_without_printing_secrets(suffix, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LOADER_TEST_SECRET", "very-secret-session-id")
    path = write_settings(tmp_path, settings_doc(suffix, password="${LOADER_TEST_SECRET}"))

    assert main(["--file", str(path)]) == 0
    assert main(["--file", str(path)]) == 0

    out = capsys.readouterr().out
    assert "very-secret-session-id" not in out
    assert f"connection sf_{suffix}: created" in out
    assert out.strip().splitlines()[-1] == f"Applied {path}: 0 created, 0 updated, 0 kept, 4 unchanged"


def test_cli_exits_2_with_the_error_for_a_bad_file(tmp_path, capsys):
    doc = settings_doc("bad")
    doc["airflow"]["pools"][0]["pool_slot"] = "many"
    path = write_settings(tmp_path, doc)

    assert main(["--file", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {path}: pools[0] (pool_name 'pool_bad'): pool_slot must be a whole number, got 'many'"
    )


@pytest.fixture
def shipped_entries_removed(airflow_db):
    shipped = load_settings_file(DEFAULT_SETTINGS_FILE, environ=SHIPPED_FILE_ENV)
    names = ([c.conn_id for c in shipped.connections], [p.name for p in shipped.pools], [v.key for v in shipped.variables])
    delete_entries(*names)
    yield
    delete_entries(*names)  # other tests expect these only from AIRFLOW_CONN_* variables


def test_shipped_file_applies_idempotently(shipped_entries_removed, monkeypatch):
    for name, value in SHIPPED_FILE_ENV.items():
        monkeypatch.setenv(name, value)
    settings = load_settings_file(DEFAULT_SETTINGS_FILE)

    first = apply_settings(settings)
    again = apply_settings(settings)

    assert {c.action for c in first} == {"created"}
    assert {c.action for c in again} == {"unchanged"}
    from airflow.models.variable import Variable

    assert json.loads(Variable.get("deployteq_salesforce_hourly_budget")) == 3600
