"""Authentication, and the stock Airflow SalesforceHook used unchanged against the emulator."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceExpiredSession

from tests.emulator.conftest import emulator_session, salesforce_client


def test_wrong_session_id_is_401_invalid_session(emulator, emulator_process):
    sf = salesforce_client(emulator_process.info, session_id="00D000000000000!nope")
    with pytest.raises(SalesforceExpiredSession) as error:
        sf.query("SELECT Id FROM Lead")
    assert error.value.content == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_missing_authorization_header_is_401(api, emulator_process):
    session = emulator_session(emulator_process.info)
    response = session.get(emulator_process.info["instance_url"] + "/services/data/v59.0/limits/")
    assert response.status_code == 401


def test_any_api_version_is_served(api, emulator_process):
    session = emulator_session(emulator_process.info)
    response = session.get(emulator_process.info["instance_url"] + "/services/data/v62.0/sobjects/",
                           headers={"Authorization": f"Bearer {emulator_process.info['session_id']}"})
    assert response.status_code == 200 and response.json()["sobjects"][0]["urls"]["sobject"].startswith("/services/data/v62.0/")


def test_stock_salesforce_hook_queries_and_describes(salesforce_conn_id, emulator, emulator_process):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    emulator.seed("Lead", [{"LastName": "Hook", "Company": "Airflow BV", "Email": "hook@example.nl"}])
    hook = SalesforceHook(salesforce_conn_id=salesforce_conn_id, session_id=emulator_process.info["session_id"],
                          session=emulator_session(emulator_process.info))
    result = hook.make_query("SELECT Id, Email FROM Lead")
    assert result["totalSize"] == 1 and result["records"][0]["Email"] == "hook@example.nl"
    assert "Sync_to_Deployteq__c" in hook.get_available_fields("Lead")
