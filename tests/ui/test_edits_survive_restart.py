"""What an operator saves on the Salesforce page survives the settings loader and the demo's start (issue 14)."""

from __future__ import annotations

import json

import pytest

from include.settings_loader import DEFAULT_SETTINGS_FILE, STATE_VARIABLE, load_settings_file, main
from tests.test_settings_loader import SHIPPED_FILE_ENV, delete_entries
from tests.ui.helpers import links_value, submitted_form, variable_value

KEPT = "kept (value): changed in Airflow since the last load; --force to overwrite"


@pytest.fixture
def loaded_settings(client_for, seeded, monkeypatch):
    """airflow_settings.yaml applied by the loader, as `make demo` / `make ui` do before the UI starts."""
    for name, value in SHIPPED_FILE_ENV.items():
        monkeypatch.setenv(name, value)
    shipped = load_settings_file(DEFAULT_SETTINGS_FILE)
    names = ([c.conn_id for c in shipped.connections], [p.name for p in shipped.pools], [v.key for v in shipped.variables])
    delete_entries(*names)
    assert main([]) == 0
    yield
    delete_entries(*names)
    delete_entries(variables=[STATE_VARIABLE])


def edit_in_the_ui(client_for) -> None:
    """Mr. => De heer in the Lead mapping, and a new object link, through the pages' POST routes."""
    client = client_for("op")
    form = submitted_form(client.get("/objects/Lead/edit").text, "mapping-form")
    row = next(key.split("-")[1] for key, value in form.items() if key.endswith("-salesforce_field") and value == "Salutation")
    form[f"row-{row}-translations"] = form[f"row-{row}-translations"].replace("Mr. => Dhr.", "Mr. => De heer")
    assert client.post("/objects/Lead", data=form, follow_redirects=False).status_code == 303
    form = submitted_form(client.get("/links/new").text, "link-form")
    form.update(name="account_updates", sobject="Account", webhook="account", datamodel="dm_account", allow_inserts="no")
    response = client.post("/links/edit", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text[:3000]


def edits_are_there() -> bool:
    lead = next(o for o in json.loads(variable_value())["objects"] if o["sobject"] == "Lead")
    salutation = next(m for m in lead["mappings"] if m["salesforce_field"] == "Salutation")
    return salutation["translations"]["Mr."] == "De heer" and "account_updates" in [l["name"] for l in links_value()["links"]]


def test_ui_edits_survive_the_settings_loader(loaded_settings, client_for, capsys):
    edit_in_the_ui(client_for)
    capsys.readouterr()

    assert main([]) == 0

    out = capsys.readouterr().out
    assert f"variable deployteq_salesforce_objects: {KEPT}" in out
    assert f"variable deployteq_salesforce_object_links: {KEPT}" in out
    assert edits_are_there()


def test_ui_edits_survive_the_demo_start(loaded_settings, client_for):
    from include.demo import load_settings

    edit_in_the_ui(client_for)

    changes = {f"{c.kind} {c.name}": c for c in load_settings()}  # what `make demo` / `make ui` run at start

    assert changes["variable deployteq_salesforce_objects"].action == "kept"
    assert edits_are_there()
