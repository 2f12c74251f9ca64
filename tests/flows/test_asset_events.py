"""What each flow announces as Asset events: one per table or Salesforce object it changed, with its
counts; none for a run that changed nothing; a budget-limited run announces what it committed.

The operators get Airflow's real ``OutletEventAccessors`` (what the task runner hands them); the
scheduler's side (events in the metadata DB, the downstream run) is ``tests/test_assets.py``."""

from __future__ import annotations

import pytest

from deployteq_salesforce.assets import DEPLOYTEQ_CUSTOMERS, DEPLOYTEQ_DATAMODEL, SALESFORCE_OBJECTS
from deployteq_salesforce.core.datasets import DEPLOYTEQ, SALESFORCE, DeployteqDatabase, SalesforceOrg, Written
from deployteq_salesforce.flows.contact_moments.logic import CONTACT_OBJECT, LEAD_OBJECT
from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator
from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator
from tests.flows.contact_moments.test_operator import Store
from tests.flows.customers.test_operator import FLAG, LEAD, config, lead, set_hourly_budget


def announced(context) -> dict[str, list[tuple[str, dict]]]:
    """alias name -> [(asset URI, extra)] of what the operator added to its outlet events."""
    found: dict[str, list[tuple[str, dict]]] = {}
    for key in context["outlet_events"]:
        for event in context["outlet_events"][key].asset_alias_events:
            found.setdefault(event.source_alias_name, []).append((event.dest_asset_key.uri, dict(event.extra)))
    return found


def new_context() -> dict:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"outlet_events": OutletEventAccessors()}


def customer_uri(pg_url: str, schema: str) -> str:
    return f"postgres://{pg_url.split('@', 1)[1].split('?', 1)[0]}/{schema}/customer"


@pytest.fixture
def sync(emulator, salesforce_conn_id, deployteq_conn_id):
    def run(cfg, context, **kwargs):
        operator = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config=cfg, **kwargs)
        return operator, operator.execute(context)

    return run


def test_a_sync_announces_the_customer_table_with_its_counts_and_a_no_op_sync_announces_nothing(
    emulator, sync, pg_url, pg_schema
):
    emulator.seed("Lead", [lead(n) for n in range(4)])
    context = new_context()
    operator, summary = sync(config(LEAD), context)

    assert summary["inserted"] == 4
    ((uri, extra),) = announced(context)["deployteq_customers"]
    assert uri == customer_uri(pg_url, pg_schema)
    assert extra["inserted"] == 4 and extra["flow"] == "sync:Lead" and extra["outcome"] == "success"
    assert extra["watermark"] and "updated" not in extra  # counts that are 0 are left out
    assert operator.outlets[-1] == DEPLOYTEQ_CUSTOMERS  # declared, so Airflow accepts events through it

    context = new_context()
    sync(config(LEAD), context)  # nothing changed in Salesforce
    assert announced(context) == {}


def test_a_run_limited_by_the_budget_announces_what_it_committed(emulator, sync, monkeypatch, pg_url, pg_schema):
    stamps = [f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00.000+0000" for i in range(600)]
    emulator.seed("Lead", [lead(i, SystemModstamp=stamps[i], **{FLAG: False}) for i in range(600)])
    set_hourly_budget(monkeypatch, 3)  # describe + 2 pages of 200
    monkeypatch.setattr(SalesforceToDeployteqOperator, "defer_when_limited", False)
    context = new_context()
    _, summary = sync(config(LEAD, sync_flag_field=None, page_size=200), context, batch_size=200)

    assert summary["outcome"] == "limited" and 0 < summary["inserted"] < 600
    ((uri, extra),) = announced(context)["deployteq_customers"]
    assert uri == customer_uri(pg_url, pg_schema)
    assert extra["outcome"] == "limited" and extra["inserted"] == summary["inserted"]


def test_contact_moments_announce_each_salesforce_object_they_wrote(emulator, emulator_process, salesforce_conn_id,
                                                                     deployteq_conn_id, pg_url, pg_schema):
    store = Store(pg_url, pg_schema)
    (lead_id,) = emulator.seed("Lead", [{"LastName": "Lead", "Company": "L"}])
    (contact_id,) = emulator.seed("Contact", [{"LastName": "Contact"}])
    store.moments(store.customer(lead=lead_id), 2)
    store.moments(store.customer(contact=contact_id), 3)
    context = new_context()
    ContactMomentsToSalesforceOperator(task_id="send", hourly_share=1.0).execute(context)

    host = SalesforceOrg.of(emulator_process.client.info["instance_url"]).instance
    events = dict(announced(context)["deployteq_salesforce_objects"])
    assert set(events) == {f"salesforce://{host}/{LEAD_OBJECT}", f"salesforce://{host}/{CONTACT_OBJECT}"}
    assert events[f"salesforce://{host}/{LEAD_OBJECT}"]["inserted"] == 2
    assert events[f"salesforce://{host}/{CONTACT_OBJECT}"]["inserted"] == 3

    context = new_context()
    ContactMomentsToSalesforceOperator(task_id="send", hourly_share=1.0).execute(context)  # nothing new to send
    assert announced(context) == {}


# -- the pure naming -----------------------------------------------------------------------------------


def test_tables_and_objects_are_named_in_the_airflow_and_openlineage_conventions():
    table = DeployteqDatabase.of("DB.example.com", None, "crm", "deployteq").table("customer")
    assert table.uri == "postgres://db.example.com:5432/crm/deployteq/customer"
    assert (table.namespace, table.name) == ("postgres://db.example.com:5432", "crm.deployteq.customer")
    assert DeployteqDatabase.of("/var/run/postgresql", 5433, None, "s").table("t").uri == "postgres://localhost:5433/postgres/s/t"
    lead_object = SalesforceOrg.of("https://MyDomain.my.salesforce.com/").sobject("Lead")
    assert lead_object.uri == "salesforce://mydomain.my.salesforce.com/Lead"
    assert (lead_object.namespace, lead_object.name) == ("salesforce://mydomain.my.salesforce.com", "Lead")


def test_written_counts_decide_whether_there_is_an_event_and_which_alias_carries_it():
    from deployteq_salesforce.assets import alias_for

    nothing = Written(DEPLOYTEQ, "customer", {"inserted": 0, "updated": 0})
    assert not nothing.changed
    nothing.add(updated=2)
    assert nothing.changed and nothing.event_extra() == {"updated": 2}
    assert Written(DEPLOYTEQ, "customer", {}, watermark="2026-01-01T00:00:00+00:00").event_extra() == {
        "watermark": "2026-01-01T00:00:00+00:00"}
    assert alias_for(Written(DEPLOYTEQ, "customer")) == DEPLOYTEQ_CUSTOMERS
    assert alias_for(Written(DEPLOYTEQ, "dm_account")) == DEPLOYTEQ_DATAMODEL
    assert alias_for(Written(SALESFORCE, "Lead")) == SALESFORCE_OBJECTS
