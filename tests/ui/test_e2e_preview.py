"""End to end: the mapping editor's Preview button in headless Chromium against the real API server, on
leads synced from the emulator.  Makes ``docs/salesforce-ui-preview.png`` (in ``test-artifacts/``, like
the other screenshots of ``test_e2e_chromium.py``, whose API server and browser it uses)."""

from __future__ import annotations

import json

import pytest
import requests

from tests.ui.conftest import shipped_variable
from tests.ui.test_e2e_chromium import (  # noqa: F401  (api_server is a fixture)
    ARTIFACTS, CHROMIUM, PASSWORD, PREFIX, Browser, api_server, fill,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)"),
]

# Dutch demo leads: two with "Mr.", one "Ms.", one whose e-mail address is missing (refused with e-mail uniqueness)
LEADS = [
    {"Salutation": "Mr.", "FirstName": "Jan", "LastName": "de Boer", "Company": "Boer Techniek BV", "Email": "jan@boertechniek.nl",
     "City": "Utrecht", "Status": "Working - Contacted"},
    {"Salutation": "Ms.", "FirstName": "Sanne", "LastName": "Visser", "Company": "Visser & Co", "Email": "sanne@visser.nl",
     "City": "Zwolle", "Status": "Open - Not Contacted"},
    {"Salutation": "Mr.", "FirstName": "Pieter", "LastName": "Bakker", "Company": "Bakkerij Bakker", "Email": "pieter@bakker.nl",
     "City": "Delft", "Status": "Closed - Converted"},
    {"Salutation": "Dr.", "FirstName": "Eva", "LastName": "Mulder", "Company": "Mulder Advies", "Email": None, "City": "Leiden"},
]


@pytest.fixture
def demo_leads(seeded, emulator, salesforce_conn_id, deployteq_conn_id):
    """The demo leads in the emulator, loaded into the customer table with the shipped Lead mapping
    (before ``api_server`` takes the connections out of the environment)."""
    from deployteq_salesforce.flows.customers.operator import SalesforceToDeployteqOperator

    ids = emulator.seed("Lead", LEADS)
    SalesforceToDeployteqOperator(
        task_id="load", sobject="Lead", object_config=json.loads(shipped_variable("deployteq_salesforce_objects")), full_load=True
    ).execute({})
    return ids


def test_preview_of_a_mapping_change_in_the_browser(demo_leads, api_server, tmp_path):
    token = requests.post(f"{api_server.base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10).json()
    browser = Browser(tmp_path)
    try:
        browser.send("Network.setCookie", name="_token", value=token["access_token"], url=api_server.base)
        browser.open(f"{api_server.base}{PREFIX}/objects/Lead/edit")
        browser.wait_for("document.querySelector('#mapping-form')", "the mapping form")
        doc = "document"
        salutation = browser.evaluate(
            "[...document.querySelectorAll('textarea')].find(t => t.value.includes('Mr. => Dhr.')).name"
        )
        text = browser.evaluate(f"document.querySelector('[name=\"{salutation}\"]').value")
        empty = browser.evaluate(
            "[...document.querySelectorAll('select[name$=\"-salesforce_field\"]')].find(s => !s.value).name"
        ).split("-")[1]
        fill(browser, doc, {salutation: text.replace("Mr. => Dhr.", "Mr. => De heer")})
        fill(browser, doc, {f"row-{empty}-salesforce_field": "Status", f"row-{empty}-deployteq_type": "text"})
        # a column the customer table does not have yet: typed in, as the select only offers existing ones
        browser.evaluate(
            f"(() => {{ const s = document.querySelector('[name=\"row-{empty}-deployteq_field\"]');"
            " s.add(new Option('lead_status', 'lead_status', true, true)); return true; })()"
        )
        browser.evaluate("document.querySelector('#preview-button').click()")
        browser.wait_for("document.querySelector('#preview-changes')", "the preview")
        page = browser.evaluate("document.querySelector('#preview').innerText")
        assert "Not saved." in page and "3 Salesforce requests" in page
        assert "Dhr.\n → \nDe heer" in page or "Dhr. → De heer" in page, page
        assert "lead_status" in page and "no e-mail address" in page
        assert browser.unlabelled_controls() == []
        browser.screenshot(ARTIFACTS / "salesforce-ui-preview.png")
        browser.set_width(390)
        assert browser.horizontal_overflow() <= 0, "the preview fits a phone (its tables scroll on their own)"
        assert "De heer" not in api_server.variable("deployteq_salesforce_objects"), "a preview saves nothing"
    finally:
        browser.close()
