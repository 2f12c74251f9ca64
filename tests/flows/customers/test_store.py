"""flows/customers/store.py: which mappings write new customers by binary COPY, and that both COPYs store the same
values (against the emulator and a real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest

from deployteq_salesforce.flows.customers.store import binary_copy_types
from deployteq_salesforce.hooks.deployteq import DeployteqHook
from tests.flows.customers.test_operator import LEAD, config, env, lead, run  # noqa: F401 (env: a fixture)

TABLE = {"email": "text", "first_name": "character varying", "number_of_employees": "bigint",
         "annual_revenue": "numeric", "newsletter": "boolean", "birth_date": "date",
         "created_in_salesforce": "timestamp with time zone", "status": "text", "sf_lead_id": "text",
         "sf_contact_id": "text", "sf_system_modstamp": "timestamp with time zone", "sf_deleted": "boolean",
         "sf_deleted_at": "timestamp with time zone", "sf_merged_into": "text"}
MAPPED = [("email", "email"), ("first_name", "text"), ("number_of_employees", "integer"),
          ("annual_revenue", "decimal"), ("newsletter", "boolean"), ("birth_date", "date"),
          ("created_in_salesforce", "datetime")]


def test_every_deployteq_type_in_its_own_column_type_goes_binary_in_write_order():
    columns = [column for column, _ in MAPPED]
    assert binary_copy_types(columns, MAPPED, TABLE) == [
        "text", "varchar", "int8", "numeric", "bool", "date", "timestamptz",  # the mapped columns (e-mail first)
        "text", "text", "text", "timestamptz", "bool", "timestamptz", "text",  # status ... sf_merged_into
    ]


def test_an_unmapped_email_column_is_always_null_and_goes_binary():
    assert binary_copy_types(["first_name"], [("first_name", "text")], TABLE)[:2] == ["varchar", "text"]


@pytest.mark.parametrize("column, table_type, kind", [
    ("email", "citext", "email"),  # a type psycopg does not know
    ("number_of_employees", "numeric", "integer"),  # an int where psycopg's numeric dumper wants a Decimal
    ("number_of_employees", "integer", "integer"),  # may overflow: PostgreSQL's error names the column
    ("annual_revenue", "double precision", "decimal"),  # a Decimal where a float is wanted
    ("created_in_salesforce", "timestamp without time zone", "datetime"),
    ("first_name", "character", "text"),  # blank-padded
])
def test_a_column_whose_type_the_mapped_values_do_not_have_in_binary_keeps_text_copy(column, table_type, kind):
    mapped = [(c, kind if c == column else k) for c, k in MAPPED]
    assert binary_copy_types([c for c, _ in mapped], mapped, {**TABLE, column: table_type}) is None


def test_two_mapping_rows_into_one_column_must_both_fit():
    mapped = [*MAPPED, ("first_name", "integer")]
    assert binary_copy_types([c for c, _ in MAPPED], mapped, TABLE) is None


def test_a_system_column_of_another_type_keeps_text_copy():
    columns = [column for column, _ in MAPPED]
    assert binary_copy_types(columns, MAPPED, {**TABLE, "sf_system_modstamp": "timestamp without time zone"}) is None


TYPED_LEAD = {
    **LEAD,
    "mappings": [
        *LEAD["mappings"],
        {"salesforce_field": "NumberOfEmployees", "deployteq_type": "integer", "deployteq_field": "number_of_employees"},
        {"salesforce_field": "AnnualRevenue", "deployteq_type": "decimal", "deployteq_field": "annual_revenue"},
        {"salesforce_field": "Newsletter__c", "deployteq_type": "boolean", "deployteq_field": "newsletter"},
        {"salesforce_field": "CreatedDate", "deployteq_type": "datetime", "deployteq_field": "created_in_salesforce"},
    ],
}


@pytest.mark.parametrize("revenue_type, employees_type, binary", [
    ("numeric", "bigint", True),
    ("double precision", "integer", False),
])
def test_new_customers_store_the_values_of_every_type_by_either_copy(env, deployteq_conn_id, revenue_type,
                                                                      employees_type, binary):
    store = DeployteqHook(deployteq_conn_id=deployteq_conn_id)
    store.migrate()
    with psycopg.connect(env.url) as conn:
        conn.execute(f'SET search_path = "{env.schema}"')
        conn.execute("ALTER TABLE customer ADD COLUMN created_in_salesforce timestamptz")
        conn.execute(f"ALTER TABLE customer ALTER COLUMN annual_revenue TYPE {revenue_type}")
        conn.execute(f"ALTER TABLE customer ALTER COLUMN number_of_employees TYPE {employees_type}")
    mapped = [(m["deployteq_field"], m["deployteq_type"]) for m in TYPED_LEAD["mappings"]]
    types = binary_copy_types(list(dict.fromkeys(c for c, _ in mapped)), mapped, store.table_columns("customer"))
    assert (types is not None) is binary
    env.sf.seed("Lead", [lead(1, NumberOfEmployees=250, AnnualRevenue=1250000.5, Newsletter__c=True),
                         lead(2, NumberOfEmployees=None, AnnualRevenue=None, Newsletter__c=False, FirstName="Émile")])
    stored_leads = {r["Email"]: r for r in env.sf.records("Lead")}

    run("Lead", config(TYPED_LEAD))

    with psycopg.connect(env.url) as conn:
        conn.execute(f'SET search_path = "{env.schema}"')
        rows = conn.execute("SELECT email, first_name, number_of_employees, annual_revenue, newsletter, "
                            "created_in_salesforce, sf_lead_id, sf_system_modstamp, status FROM customer "
                            "ORDER BY email").fetchall()
    first, second = rows
    assert first[:5] == ("lead1@example.nl", "Voornaam1", 250,
                         Decimal("1250000.5") if revenue_type == "numeric" else 1250000.5, True)
    assert second[:5] == ("lead2@example.nl", "Émile", None, None, False)
    for row in rows:
        sent = stored_leads[row[0]]
        assert row[5] == datetime.fromisoformat(sent["CreatedDate"]).astimezone(timezone.utc)
        assert row[6] == sent["Id"] and row[8] == "Prospect"
        assert row[7] == datetime.fromisoformat(sent["SystemModstamp"])
