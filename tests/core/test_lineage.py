"""OpenLineage of the flows: the pure module (names, schema, column lineage with translations, run
facets) and one real DAG run whose events the OpenLineage provider writes to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployteq_salesforce.core import lineage
from deployteq_salesforce.core.datasets import DEPLOYTEQ, SALESFORCE, DeployteqDatabase, SalesforceOrg, Written
from deployteq_salesforce.flows.customers.config import load_objects_config
from deployteq_salesforce.flows.customers.mapping import inverse_translations
from deployteq_salesforce.flows.object_links.config import load_object_links

ROOT = Path(__file__).resolve().parents[2]

SALUTATION = {
    "salesforce_field": "Salutation",
    "deployteq_type": "text",
    "deployteq_field": "salutation",
    "translations": {"Mr.": "De heer", "Ms.": "Mevrouw", "Mrs.": "Mevrouw"},
}
LEAD = {
    "sobject": "Lead",
    "unique_field": "email",
    "sync_flag_field": "Sync_to_Deployteq__c",
    "mappings": [
        {"salesforce_field": "Email", "deployteq_type": "email", "deployteq_field": "email", "unique_key": True},
        {"salesforce_field": "FirstName", "deployteq_type": "text", "deployteq_field": "first_name"},
        {"salesforce_field": "LastName", "deployteq_type": "text", "deployteq_field": "last_name"},
        SALUTATION,
        {"salesforce_field": "Email_Opt_In__c", "deployteq_type": "optin", "deployteq_field": "email_optin"},
    ],
}
PLACES = lineage.Places(DeployteqDatabase.of("DB.example.nl", 6432, "deployteq", "crm"),
                        SalesforceOrg.of("https://acme.my.salesforce.com"))


def lead_object():
    return load_objects_config({"objects": [LEAD]}).objects[0]


def as_json(objects) -> list[dict]:
    from openlineage.client.serde import Serde

    return [json.loads(Serde.to_json(o)) for o in objects]


# ------------------------------------------------------------------------------------------------ naming


def test_names_follow_the_openlineage_naming_spec():
    assert PLACES.name(DEPLOYTEQ, "customer") == ("postgres://db.example.nl:6432", "deployteq.crm.customer")
    # a source table given as schema.table keeps its own schema
    assert PLACES.name(DEPLOYTEQ, "campaign.selection") == ("postgres://db.example.nl:6432", "deployteq.campaign.selection")
    assert PLACES.name(SALESFORCE, "Lead") == ("salesforce://acme.my.salesforce.com", "Lead")
    # no org known (never logged in, no instance in the connection): no Salesforce dataset rather than a wrong one
    assert lineage.Places(PLACES.database, None).name(SALESFORCE, "Lead") is None


# ------------------------------------------------------------------------------------- column lineage


def test_customer_lineage_maps_every_field_with_its_translation_and_type():
    flow = lineage.customers(lead_object(), field_types={"Salutation": "picklist", "Email": "email", "Id": "id"})
    (sf,) = flow.inputs
    (customer,) = flow.outputs
    assert (sf.system, sf.name, customer.system, customer.name) == (SALESFORCE, "Lead", DEPLOYTEQ, "customer")
    assert {c.name: c.type for c in sf.columns}["Salutation"] == "picklist"
    assert {"Id", "SystemModstamp", "IsDeleted", "Sync_to_Deployteq__c"} <= {c.name for c in sf.columns}
    assert {c.name: c.type for c in customer.columns} == {
        "email": "email", "first_name": "text", "last_name": "text", "salutation": "text",
        "email_optin": "optin", "sf_lead_id": "text",
    }
    (salutation,) = customer.lineage["salutation"]
    assert (salutation.dataset, salutation.column, salutation.subtype) == ("Lead", "Salutation", "TRANSFORMATION")
    assert salutation.description == "translated: Mr. => De heer, Ms. => Mevrouw, Mrs. => Mevrouw; other values kept"
    (first_name,) = customer.lineage["first_name"]
    assert (first_name.column, first_name.subtype, first_name.description) == ("FirstName", "IDENTITY", None)
    assert customer.lineage["sf_lead_id"][0].column == "Id"  # the Id is always stored (R6)
    assert "opt-in" in customer.lineage["email_optin"][0].description


def test_synchronize_lineage_translates_back_and_names_what_cannot_be_sent():
    obj = lead_object()
    ambiguous = next(m for m in obj.mappings if m.salesforce_field == "Salutation")
    flow = lineage.synchronize({"Lead": [m for m in obj.mappings if m.salesforce_field in ("FirstName", "Salutation")]},
                               {"Lead": obj}, inverse_translations=inverse_translations,
                               field_types={"Lead": {"Salutation": "picklist"}}, source_table="selection")
    (lead,) = flow.outputs
    assert lead.name == "Lead" and {c.name for c in lead.columns} == {"Id", "FirstName", "Salutation"}
    (back,) = lead.lineage["Salutation"]
    assert (back.system, back.dataset, back.column) == (DEPLOYTEQ, "customer", "salutation")
    # Mevrouw comes from two Salesforce values: not invertible, such records go to on_error
    assert back.description == "translated back: De heer => Mr.; not sent (on_error): Mevrouw"
    assert lead.lineage["Id"][0].column == "sf_lead_id"
    assert [d.name for d in flow.inputs] == ["customer", "selection"]
    assert ambiguous.translations  # the config itself is untouched


def test_contact_moment_lineage_covers_the_whole_payload():
    from deployteq_salesforce.flows.contact_moments.logic import PARENT_FIELDS, PAYLOAD_FIELDS

    flow = lineage.contact_moments(PARENT_FIELDS)
    assert [d.name for d in flow.inputs] == ["contact_moment", "customer"]
    assert {d.name for d in flow.outputs} == set(PARENT_FIELDS)
    moment_columns = {c.name for c in flow.inputs[0].columns}
    for output in flow.outputs:
        parent = PARENT_FIELDS[output.name]
        assert set(output.lineage) == {*PAYLOAD_FIELDS, parent}  # a new payload field needs its lineage here
        assert output.lineage[parent][0].column == ("sf_lead_id" if parent == "Lead__c" else "sf_contact_id")
        assert all(s.column in moment_columns for f in PAYLOAD_FIELDS for s in output.lineage[f])


def test_object_link_lineage_and_the_customer_relation():
    config = load_object_links({
        "webhooks": [{"name": "campaign-members", "datamodel": "dm_campaign_member", "fields": [
            {"json_field": "Id", "column": "sf_id", "dedup": True},
            {"json_field": "LeadId", "column": "lead_id"},
            {"json_field": "NumberOfOpens__c", "column": "opens", "type": "integer"},
        ], "customer_relation": [{"column": "lead_id", "customer_field": "sf_lead_id"}]}],
        "links": [{"name": "campaign_members", "sobject": "CampaignMember", "webhook": "campaign-members",
                   "datamodel": "dm_campaign_member"}],
    })
    link = config.links[0]
    flow = lineage.object_link(link, config.webhook_of(link))
    (table,) = flow.outputs
    assert table.name == "dm_campaign_member"
    assert {c.name: c.type for c in table.columns}["opens"] == "integer"
    assert table.lineage["opens"][0].column == "NumberOfOpens__c" and table.lineage["opens"][0].description == "as integer"
    direct, join = table.lineage["customer_id"]
    assert (direct.dataset, direct.column, join.type, join.subtype) == ("customer", "customer_id", "INDIRECT", "JOIN")
    reconcile = lineage.object_link(link, config.webhook_of(link), reconcile=True)
    assert [c.name for c in reconcile.inputs[0].columns] == ["Id"] and not reconcile.outputs[0].lineage


# ------------------------------------------------------------------------------- OpenLineage objects


def test_openlineage_datasets_carry_schema_column_lineage_and_rows_written():
    written = [Written(DEPLOYTEQ, "customer", {"inserted": 3, "updated": 2, "merged": 1, "deleted": 4})]
    inputs, outputs, run_facets = lineage.to_openlineage(lineage.customers(lead_object()), PLACES, written)
    (lead,), (customer,) = as_json(inputs), as_json(outputs)
    assert (lead["namespace"], lead["name"]) == ("salesforce://acme.my.salesforce.com", "Lead")
    assert (customer["namespace"], customer["name"]) == ("postgres://db.example.nl:6432", "deployteq.crm.customer")
    assert [f["name"] for f in customer["facets"]["schema"]["fields"]] == [
        "email", "first_name", "last_name", "salutation", "email_optin", "sf_lead_id"]
    (source,) = customer["facets"]["columnLineage"]["fields"]["salutation"]["inputFields"]
    assert source["namespace"] == "salesforce://acme.my.salesforce.com" and source["name"] == "Lead"
    assert source["field"] == "Salutation"
    (transformation,) = source["transformations"]
    assert transformation["type"] == "DIRECT" and transformation["subtype"] == "TRANSFORMATION"
    assert "Mr. => De heer" in transformation["description"]
    assert customer["outputFacets"]["outputStatistics"]["rowCount"] == 6  # deleted rows are not written rows
    for facet in (customer["facets"]["schema"], customer["facets"]["columnLineage"]):
        assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/") and facet["_producer"]
    assert run_facets == {}


def test_a_partial_or_limited_run_carries_an_error_message():
    assert lineage.problem_summary("success", {"errors": 0}) is None
    partial = lineage.problem_summary("partial", {"errors": 2})
    assert partial == "run ended partial: 2 record(s) failed"
    limited = lineage.problem_summary("limited", {"errors": 0, "on_limit": 5}, "hourly budget used up")
    assert limited == "run ended limited: stopped by the Salesforce API budget (5 record(s) not sent): hourly budget used up"
    *_, run_facets = lineage.to_openlineage(lineage.customers(lead_object()), PLACES, problem=partial)
    (facet,) = as_json(run_facets.values())
    assert facet["message"] == partial and facet["programmingLanguage"] == "python"
    assert facet["_schemaURL"].startswith("https://openlineage.io/spec/facets/") and "ErrorMessageRunFacet" in facet["_schemaURL"]


def test_without_a_known_org_salesforce_datasets_and_their_column_lineage_are_left_out():
    inputs, outputs, _ = lineage.to_openlineage(lineage.customers(lead_object()), lineage.Places(PLACES.database, None))
    assert inputs == [] and len(outputs) == 1 and "columnLineage" not in outputs[0].facets


# ------------------------------------------------------------------------- the operators, run in-process


def test_a_partial_contact_moments_run_names_its_datasets_rows_and_failures(
    emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema
):
    from deployteq_salesforce.flows.contact_moments.logic import CONTACT_OBJECT, LEAD_OBJECT
    from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator
    from tests.flows.contact_moments.test_operator import Store

    store = Store(pg_url, pg_schema)
    (lead_id,) = emulator.seed("Lead", [{"LastName": "Dekker", "Company": "D"}])
    emulator.add_validation_rule(LEAD_OBJECT, "Subject__c", "VERBODEN", "Onderwerp niet toegestaan")
    customer = store.customer(lead=lead_id)
    store.moments(customer, 3)
    store.moments(customer, subject="VERBODEN")
    operator = ContactMomentsToSalesforceOperator(task_id="send_contact_moments", hourly_share=1.0)

    assert operator.execute({})["errors"] == 1

    facets = operator.get_openlineage_facets_on_complete(None)
    inputs, outputs = as_json(facets.inputs), {d["name"]: d for d in as_json(facets.outputs)}
    assert [d["name"].rsplit(".", 1)[1] for d in inputs] == ["contact_moment", "customer"]
    assert set(outputs) == {LEAD_OBJECT, CONTACT_OBJECT}
    lead_object = outputs[LEAD_OBJECT]
    assert lead_object["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "outputStatistics" not in outputs[CONTACT_OBJECT]["outputFacets"]  # nothing written there
    (parent,) = lead_object["facets"]["columnLineage"]["fields"]["Lead__c"]["inputFields"]
    assert parent["name"] == f"test.{pg_schema}.customer" and parent["field"] == "sf_lead_id"
    (message,) = as_json([facets.run_facets["errorMessage"]])
    assert message["message"] == "run ended partial: 1 record(s) failed"


def test_an_object_link_run_names_its_table_with_the_webhook_columns(
    emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema
):
    from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator
    from tests.flows.object_links.test_operator import CAMPAIGN_LINK, campaign, links

    emulator.seed("Campaign", [campaign(n) for n in range(3)])
    emulator.advance_clock(2)
    operator = ObjectLinkSyncOperator(task_id="link_campaigns", link_name="campaigns", links_config=links(CAMPAIGN_LINK))
    assert operator.execute({})["inserted"] == 3

    facets = operator.get_openlineage_facets_on_complete(None)
    (campaigns,), (table,) = as_json(facets.inputs), as_json(facets.outputs)
    assert campaigns["name"] == "Campaign" and campaigns["namespace"].startswith("salesforce://")
    assert {"StartDate": "date", "IsActive": "boolean"}.items() <= {
        f["name"]: f["type"] for f in campaigns["facets"]["schema"]["fields"]}.items()
    assert table["name"] == f"test.{pg_schema}.dm_campaign"
    assert [f["name"] for f in table["facets"]["schema"]["fields"]] == [
        "deployteq_id", "sf_id", "name", "campaign_type", "start_date", "is_active"]
    (start,) = table["facets"]["columnLineage"]["fields"]["start_date"]["inputFields"]
    assert (start["name"], start["field"], start["transformations"][0]["description"]) == ("Campaign", "StartDate", "as date")
    assert table["outputFacets"]["outputStatistics"]["rowCount"] == 3 and facets.run_facets == {}


def test_a_failed_run_still_names_what_it_wrote_and_a_run_that_never_started_names_nothing(
    emulator, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema, monkeypatch
):
    from deployteq_salesforce.flows.customers.operator import CustomerSync, SalesforceToDeployteqOperator

    emulator.seed("Lead", [{"LastName": f"L{n}", "Company": "C", "Email": f"l{n}@example.nl",
                            "Sync_to_Deployteq__c": True} for n in range(3)])
    emulator.advance_clock(2)

    def fail(self):
        raise RuntimeError("the worker lost its database")

    monkeypatch.setattr(CustomerSync, "_retry_requested", fail)  # after the records are written
    operator = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead", object_config={"objects": [LEAD]})
    with pytest.raises(RuntimeError):
        operator.execute({})

    facets = operator.get_openlineage_facets_on_failure(None)
    (customer,) = as_json(facets.outputs)
    assert customer["name"] == f"test.{pg_schema}.customer"
    assert customer["outputFacets"]["outputStatistics"]["rowCount"] == 3  # committed before the failure
    assert facets.run_facets == {}  # the listener adds the errorMessage of the exception itself

    broken = SalesforceToDeployteqOperator(task_id="sync_contact", sobject="Contact", object_config={"objects": [LEAD]})
    with pytest.raises(Exception, match="not a configured object"):
        broken.execute({})
    nothing = broken.get_openlineage_facets_on_failure(None)
    assert (nothing.inputs, nothing.outputs, nothing.run_facets) == ([], [], {})


# ------------------------------------------------------------------------------- end to end, through Airflow

# A DAG file in a dags folder of its own (``dag.test()`` runs what the DAG processor serialized from the
# dags folder), run in a fresh interpreter with an Airflow home and metadata DB of its own: the OpenLineage
# provider reads its configuration, and decides whether its listener exists at all, when it is imported.
DAG_FILE = '''
from datetime import datetime

from airflow.sdk import DAG

from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator
from deployteq_salesforce.flows.synchronize.operator import SalesforceSynchronizeOperator

with DAG("deployteq_lineage_e2e", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    sync = SalesforceToDeployteqOperator(task_id="sync_lead", sobject="Lead")
    back = SalesforceSynchronizeOperator(
        task_id="synchronize_lead", sobject="Lead", fields=["salutation", "first_name"],
        selection_sql="SELECT customer_id FROM customer",
    )
    sync >> back

if __name__ == "__main__":
    import os
    from pathlib import Path

    from tests.airflow_env import migrate_metadata_db

    migrate_metadata_db(Path(os.environ["AIRFLOW_HOME"]))
    print("DAG_RUN_STATE", dag.test().state)
'''

# The structure every OpenLineage RunEvent has (spec 2-0-2, OpenLineage.json: RunEvent, Run, Job, the
# datasets, and the BaseFacet every facet extends); openlineage-python ships no validator of its own.
_FACET = {"type": "object", "required": ["_producer", "_schemaURL"],
          "properties": {"_producer": {"type": "string", "format": "uri"}, "_schemaURL": {"type": "string", "format": "uri"}}}
_FACETS = {"type": "object", "additionalProperties": _FACET}
_DATASET = {"type": "object", "required": ["namespace", "name"],
            "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS,
                           "inputFacets": _FACETS, "outputFacets": _FACETS}}
RUN_EVENT_SCHEMA = {
    "type": "object",
    "required": ["eventTime", "producer", "schemaURL", "run", "job"],
    "properties": {
        "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
        "eventTime": {"type": "string", "format": "date-time"},
        "producer": {"type": "string", "format": "uri"},
        "schemaURL": {"type": "string", "format": "uri"},
        "run": {"type": "object", "required": ["runId"],
                "properties": {"runId": {"type": "string", "format": "uuid"}, "facets": _FACETS}},
        "job": {"type": "object", "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}, "facets": _FACETS}},
        "inputs": {"type": "array", "items": _DATASET},
        "outputs": {"type": "array", "items": _DATASET},
    },
}


def validate_event(event: dict) -> None:
    import jsonschema

    jsonschema.validate(event, RUN_EVENT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def run_dag_with_openlineage(tmp_path: Path, config: dict) -> tuple[list[dict], float]:
    from tests.airflow_env import airflow_test_environment

    events_file = tmp_path / "openlineage.jsonl"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "deployteq_lineage_e2e.py").write_text(DAG_FILE)
    env = {
        **os.environ,
        **airflow_test_environment(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_VAR_DEPLOYTEQ_SALESFORCE_OBJECTS": json.dumps(config),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "deployteq-test",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(dags / "deployteq_lineage_e2e.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=150)
    seconds = time.monotonic() - started
    assert done.returncode == 0 and "DAG_RUN_STATE success" in done.stdout, done.stdout[-4000:] + done.stderr[-4000:]
    assert events_file.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()], seconds


@pytest.mark.slow
def test_a_dag_run_emits_valid_events_with_the_mapping_and_its_column_lineage(
    emulator, emulator_process, salesforce_conn_id, deployteq_conn_id, pg_url, pg_schema, tmp_path
):
    config = {"objects": [{**LEAD, "mappings": [
        *(m for m in LEAD["mappings"] if m is not SALUTATION),
        {**SALUTATION, "translations": {"Mr.": "De heer", "Ms.": "Mevrouw"}},  # one-to-one: it can be sent back
    ]}]}
    emulator.seed("Lead", [
        {"FirstName": f"Voornaam{n}", "LastName": f"Achternaam{n}", "Company": "Bedrijf BV", "Email": f"lead{n}@example.nl",
         "Salutation": "Mr.", "Sync_to_Deployteq__c": True} for n in range(3)
    ])
    emulator.advance_clock(2)

    events, seconds = run_dag_with_openlineage(tmp_path, config)

    for event in events:
        validate_event(event)
    by_task = {}
    for event in events:
        by_task.setdefault(event["job"]["name"], []).append(event)
    sync_events = by_task["deployteq_lineage_e2e.sync_lead"]
    back_events = by_task["deployteq_lineage_e2e.synchronize_lead"]
    assert [e["eventType"] for e in sync_events] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in back_events] == ["START", "COMPLETE"]
    assert all(e["job"]["namespace"] == "deployteq-test" for e in events)

    instance_host = json.loads(Path(emulator_process.connection_json).read_text())["instance_url"].split("://")[1]
    host, port_db = pg_url.split("@", 1)[1].split(":", 1)
    port, database = port_db.split("/", 1)
    namespace = f"postgres://{host}:{port}"

    # Lead -> customer: the configured mapping's columns, and where each comes from
    complete = sync_events[-1]
    (lead_in,) = complete["inputs"]
    assert (lead_in["namespace"], lead_in["name"]) == (f"salesforce://{instance_host.lower()}", "Lead")
    assert {"Email": "email", "Salutation": "picklist"}.items() <= {
        f["name"]: f["type"] for f in lead_in["facets"]["schema"]["fields"]}.items()  # types from the run's describe
    (customer,) = complete["outputs"]
    assert (customer["namespace"], customer["name"]) == (namespace, f"{database}.{pg_schema}.customer")
    assert [(f["name"], f["type"]) for f in customer["facets"]["schema"]["fields"]] == [
        ("email", "email"), ("first_name", "text"), ("last_name", "text"), ("email_optin", "optin"),
        ("salutation", "text"), ("sf_lead_id", "text")]
    assert set(customer["facets"]["columnLineage"]["fields"]) == {
        "email", "first_name", "last_name", "email_optin", "salutation", "sf_lead_id"}
    (source,) = customer["facets"]["columnLineage"]["fields"]["salutation"]["inputFields"]
    assert (source["namespace"], source["name"], source["field"]) == (lead_in["namespace"], "Lead", "Salutation")
    assert source["transformations"][0]["description"] == "translated: Mr. => De heer, Ms. => Mevrouw; other values kept"
    assert customer["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert "errorMessage" not in complete["run"]["facets"]

    # customer -> Lead (Synchronize): the inverse translation
    complete = back_events[-1]
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [(namespace, f"{database}.{pg_schema}.customer")]
    (lead_out,) = [d for d in complete["outputs"] if d["name"] == "Lead"]
    (source,) = lead_out["facets"]["columnLineage"]["fields"]["Salutation"]["inputFields"]
    assert (source["name"], source["field"]) == (f"{database}.{pg_schema}.customer", "salutation")
    assert source["transformations"][0]["description"] == "translated back: De heer => Mr., Mevrouw => Ms."
    assert lead_out["outputFacets"]["outputStatistics"]["rowCount"] == 3

    # no secret of either connection in any event
    session_id = json.loads(Path(emulator_process.connection_json).read_text())["session_id"]
    assert session_id not in json.dumps(events)
    assert seconds < 60, f"the DAG run took {seconds:.0f} s"


def test_the_flows_import_and_describe_their_lineage_without_openlineage_installed():
    """Without the OpenLineage provider (it is an extra) nothing imports openlineage until the listener asks."""
    probe = (
        "import sys; sys.modules['openlineage'] = None  # as if openlineage-python were not installed\n"
        "from deployteq_salesforce.core import lineage\n"
        "from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator\n"
        "from deployteq_salesforce.flows.object_links.operator import ObjectLinkSyncOperator\n"
        "from deployteq_salesforce.flows.contact_moments.operator import ContactMomentsToSalesforceOperator\n"
        "from deployteq_salesforce.flows.synchronize.operator import SalesforceSynchronizeOperator\n"
        "from deployteq_salesforce.flows.contact_moments.logic import PARENT_FIELDS\n"
        "print(len(lineage.contact_moments(PARENT_FIELDS).outputs))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "2", done.stderr[-3000:]
