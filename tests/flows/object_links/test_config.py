"""Object links + webhooks configuration (R10): validation without any network, and the generated DAGs."""

from __future__ import annotations

import copy
import json

import pytest

from deployteq_salesforce.core.exceptions import ConfigurationError
from deployteq_salesforce.flows.object_links.config import load_object_links

WEBHOOK = {
    "name": "campaign-member",
    "datamodel": "dm_campaign_member",
    "fields": [
        {"json_field": "Id", "column": "sf_id", "dedup": True},
        {"json_field": "LeadId", "column": "lead_id"},
        {"json_field": "Status", "column": "status"},
    ],
    "customer_relation": [{"column": "lead_id", "customer_field": "sf_lead_id"}],
}
LINK = {"name": "campaign_members", "sobject": "CampaignMember", "webhook": "campaign-member", "datamodel": "dm_campaign_member"}


def config(hook=None, link=None, **link_changes):
    link = copy.deepcopy(link or LINK)
    link.update(link_changes)
    return {"webhooks": [copy.deepcopy(hook or WEBHOOK)], "links": [link]}


def problems_of(raw) -> str:
    with pytest.raises(ConfigurationError) as error:
        load_object_links(raw)
    return str(error.value)


def test_valid_configuration_loads_with_the_manuals_defaults():
    loaded = load_object_links(json.dumps(config()))
    link = loaded.links[0]
    assert (link.allow_inserts, link.delete, link.use_sync_column) == (True, False, False)
    assert loaded.webhook_of(link).key_columns == ["sf_id"] and loaded.webhook_of(link).id_column == "sf_id"


def test_use_sync_column_means_the_fixed_syncwithclang_field():
    assert load_object_links(config(use_sync_column=True)).links[0].sync_flag_field == "SyncWithClang__c"
    assert load_object_links(config()).links[0].sync_flag_field is None


def test_reconciliation_is_automatic_for_hard_deleted_objects_with_delete_on():
    assert load_object_links(config(delete=True)).links[0].needs_reconciliation
    assert not load_object_links(config(delete=False)).links[0].needs_reconciliation
    assert not load_object_links(config(delete=True, reconcile_ids=False)).links[0].needs_reconciliation


def test_link_to_an_undefined_webhook_is_named():
    assert "link 'campaign_members': webhook 'nope' is not defined" in problems_of(config(webhook="nope"))


def test_link_datamodel_must_be_the_webhooks_table():
    assert "datamodel 'dm_other' is not the table of webhook" in problems_of(config(datamodel="dm_other"))


def test_datamodel_names_need_the_dm_prefix_so_they_never_hit_our_own_tables():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["datamodel"] = "customer"
    message = problems_of(config(hook=webhook, datamodel="customer"))
    assert "webhooks[1] ('campaign-member'), datamodel" in message and "'dm_'" in message


def test_reserved_and_duplicate_columns_are_refused():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["fields"].append({"json_field": "Name", "column": "customer_id"})
    assert "'customer_id' is maintained by the datamodel itself" in problems_of(config(hook=webhook))
    webhook = copy.deepcopy(WEBHOOK)
    webhook["fields"].append({"json_field": "Other", "column": "status"})
    assert "column 'status' is filled twice" in problems_of(config(hook=webhook))


def test_a_webhook_needs_a_dedup_field():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["fields"][0]["dedup"] = False
    assert "no field is marked dedup" in problems_of(config(hook=webhook))


def test_relation_column_must_be_a_text_column_of_the_webhook():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["customer_relation"] = [{"column": "contact_id", "customer_field": "sf_contact_id"}]
    assert "customer_relation column 'contact_id' is not one of the webhook's columns" in problems_of(config(hook=webhook))


def test_a_links_webhook_must_map_the_salesforce_id():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["fields"][0] = {"json_field": "ExternalKey", "column": "ext_key", "dedup": True}
    assert "does not map the JSON field 'Id'" in problems_of(config(hook=webhook))


def test_max_length_only_for_text_and_bad_schedule_named():
    webhook = copy.deepcopy(WEBHOOK)
    webhook["fields"].append({"json_field": "Score", "column": "score", "type": "integer", "max_length": 5})
    assert "max_length applies to text columns only" in problems_of(config(hook=webhook))
    assert "links[1] ('campaign_members'), schedule" in problems_of(config(schedule="every hour"))


def test_unknown_settings_and_invalid_json_are_refused():
    assert "links[1] ('campaign_members'), allow_insert" in problems_of(config(allow_insert=False))
    assert "not valid JSON" in problems_of("{nope")


def test_empty_variable_means_no_links():
    assert load_object_links(None).links == [] and load_object_links("").webhooks == []


def test_one_dag_per_link_plus_reconciliation_where_needed():
    from deployteq_salesforce.dag_factory import object_link_dags

    raw = config(delete=True)
    raw["links"].append({**LINK, "name": "members_no_delete", "delete": False})
    raw["links"].append({**LINK, "name": "disabled", "enabled": False})
    dags = {d.dag_id: d for d in object_link_dags(json.dumps(raw))}
    assert sorted(dags) == ["salesforce_link_campaign_members", "salesforce_link_campaign_members_reconcile",
                            "salesforce_link_members_no_delete"]
    (sync,) = dags["salesforce_link_campaign_members"].tasks
    (reconcile,) = dags["salesforce_link_campaign_members_reconcile"].tasks
    assert (sync.link_name, sync.reconcile, sync.pool) == ("campaign_members", False, "salesforce_api")
    assert reconcile.reconcile and dags["salesforce_link_campaign_members_reconcile"].schedule == "@daily"
    assert "deployteq-demo" in dags["salesforce_link_campaign_members"].tags
