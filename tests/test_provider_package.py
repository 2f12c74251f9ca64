"""The provider as an installed distribution: its metadata, its entry points and its wheel in a fresh Airflow.

The quick tests read ``get_provider_info()`` and the editable install that ``make install`` makes.  The
slow ones build the wheel, install it with Airflow into a fresh venv (``-c constraints.txt``; no
``plugins/`` folder anywhere) and check what an Airflow user gets: the CLI, the connection form
metadata, the Test button through the REST API, the plugin with its UI, and the repo's DAG files
importing the same API from the installed package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from importlib.metadata import entry_points, version
from pathlib import Path

import psycopg
import pytest
import requests

from deployteq_salesforce import __version__
from deployteq_salesforce.provider_info import (
    DEPLOYTEQ_CONN_TYPE,
    PACKAGE_NAME,
    SALESFORCE_CONN_TYPE,
    get_provider_info,
    trigger_modules,
)
from include.local_services import postgres_connection, salesforce_emulator_connection
from tests import airflow_env
from tests.test_dag_integrity import shipped_variables
from tests.ui.test_e2e_chromium import ARTIFACTS, CHROMIUM, Browser, _free_port, _stop, click_by_text, fill

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "plugins" / "deployteq_salesforce"
HOOK_CLASSES = {
    SALESFORCE_CONN_TYPE: "deployteq_salesforce.hooks.salesforce.BudgetedSalesforceHook",
    DEPLOYTEQ_CONN_TYPE: "deployteq_salesforce.hooks.deployteq.DeployteqHook",
}
ADMIN_PASSWORD = "provider-test-admin"
OPENLINEAGE_INSTALLED = importlib.util.find_spec("airflow.providers.openlineage") is not None


def connection_type(conn_type: str) -> dict:
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    return entry


def outside_the_project(home: Path, **overrides: str) -> dict[str, str]:
    """An Airflow environment that knows nothing of this checkout: no plugins/, no repo on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON"))}
    env.update(airflow_env.airflow_test_environment(home))
    for folder in ("plugins", "dags"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    env.update(AIRFLOW__CORE__PLUGINS_FOLDER=str(home / "plugins"), AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
               AIRFLOW__CORE__UNIT_TEST_MODE="False")
    env.update(overrides)
    return env


def run(command: list, *, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def last_json_line(output: str):
    return json.loads(output.strip().splitlines()[-1])


# -- get_provider_info() ----------------------------------------------------------------------------------


def test_provider_info_validates_against_airflows_schemas():
    from airflow.providers_manager import _create_provider_info_schema_validator, _read_schema_from_resources_or_local_file
    import jsonschema

    info = get_provider_info()
    _create_provider_info_schema_validator().validate(info)  # what Airflow checks at every start
    # provider.yaml's stricter schema is the one that defines conn-fields and ui-field-behaviour
    strict = _read_schema_from_resources_or_local_file("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(info["connection-types"], strict)
    assert info["package-name"] == PACKAGE_NAME and info["versions"] == [__version__]


def test_airflow_reads_both_connection_types_with_their_form_fields():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    hooks = {t: manager._hook_provider_dict[t] for t in HOOK_CLASSES}
    widgets = manager._connection_form_widgets_from_metadata
    behaviours = manager._field_behaviours_from_metadata

    assert {t: (h.hook_class_name, h.package_name) for t, h in hooks.items()} == {
        t: (cls, PACKAGE_NAME) for t, cls in HOOK_CLASSES.items()
    }
    budget = widgets[f"extra__{SALESFORCE_CONN_TYPE}__hourly_budget"]
    assert (budget.field["schema"]["title"], budget.field["schema"]["type"]) == ("Hourly budget", ["integer", "null"])
    assert "default 3600" in budget.field["description"]
    assert widgets[f"extra__{SALESFORCE_CONN_TYPE}__security_token"].is_sensitive
    assert not widgets[f"extra__{SALESFORCE_CONN_TYPE}__ca_file"].is_sensitive
    assert widgets[f"extra__{DEPLOYTEQ_CONN_TYPE}__deployteq_schema"].field["schema"]["title"] == "Deployteq schema"
    assert behaviours[SALESFORCE_CONN_TYPE]["relabeling"]["login"] == "Username"
    assert "host" in behaviours[SALESFORCE_CONN_TYPE]["hidden_fields"]
    assert behaviours[DEPLOYTEQ_CONN_TYPE]["relabeling"] == {"schema": "Database"}


def test_hooks_declare_the_connection_types_they_are_registered_for():
    from airflow.sdk._shared.module_loading import import_string

    for conn_type, class_name in HOOK_CLASSES.items():
        hook = import_string(class_name)
        entry = connection_type(conn_type)
        assert (hook.conn_type, hook.hook_name) == (conn_type, entry["hook-name"])
        assert entry["hook-class-name"] == class_name
        assert "test_connection" in vars(hook), f"{class_name} must test connections its own way"


def test_every_secret_extra_of_the_salesforce_hook_is_a_masked_form_field():
    from deployteq_salesforce.hooks.salesforce import _SECRET_EXTRAS

    fields = connection_type(SALESFORCE_CONN_TYPE)["conn-fields"]
    in_form = [name for name in _SECRET_EXTRAS if name in fields]
    assert in_form == ["security_token", "consumer_secret", "private_key"]
    assert all(fields[name]["schema"]["format"] == "password" for name in in_form)
    assert all(f["label"] and f["description"] for f in fields.values())


def test_help_texts_state_the_defaults_the_code_uses():
    from deployteq_salesforce.core.budget import DEFAULT_BLOCK_HOURS, DEFAULT_DAILY_SHARE, DEFAULT_HOURLY_BUDGET
    from deployteq_salesforce.core.store import DEFAULT_SCHEMA

    sf = connection_type(SALESFORCE_CONN_TYPE)["conn-fields"]
    assert f"(default {DEFAULT_HOURLY_BUDGET})" in sf["hourly_budget"]["description"]
    assert f"(default {DEFAULT_DAILY_SHARE:g})" in sf["daily_share"]["description"]
    assert f"(default {DEFAULT_BLOCK_HOURS:g})" in sf["block_hours"]["description"]
    assert f"(default {DEFAULT_SCHEMA})" in connection_type(DEPLOYTEQ_CONN_TYPE)["conn-fields"]["deployteq_schema"]["description"]


def test_the_providers_page_shows_hooks_and_connection_types_legibly():
    from airflow.api_fastapi.core_api.services.public.providers import _remove_rst_syntax

    shown = _remove_rst_syntax(get_provider_info()["description"])  # Admin -> Providers drops ` _ < >
    assert "BudgetedSalesforceHook (connection type 'Salesforce (budgeted, Deployteq)')" in shown
    assert "DeployteqHook (connection type 'Deployteq (PostgreSQL)')" in shown


def test_every_operator_module_is_listed():
    (operators,) = get_provider_info()["operators"]
    flows = sorted(p.parent.name for p in (PACKAGE_DIR / "flows").glob("*/operator.py"))
    assert sorted(operators["python-modules"]) == sorted(
        ["deployteq_salesforce.operators.health", *(f"deployteq_salesforce.flows.{f}.operator" for f in flows)]
    )


def test_trigger_modules_are_the_files_in_the_triggers_package():
    on_disk = sorted(p.stem for p in (PACKAGE_DIR / "triggers").glob("*.py") if p.stem != "__init__")
    assert trigger_modules() == [f"deployteq_salesforce.triggers.{name}" for name in on_disk]
    listed = get_provider_info()["triggers"]
    assert listed == ([{"integration-name": "Deployteq Salesforce", "python-modules": trigger_modules()}] if on_disk else [])


# -- the editable install of `make install` ----------------------------------------------------------------


def test_make_install_installed_the_package_with_its_entry_points():
    assert version(PACKAGE_NAME) == __version__, "run `make install`: the installed provider is out of date"
    (provider,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.dist.name == PACKAGE_NAME]
    (plugin,) = [ep for ep in entry_points(group="airflow.plugins") if ep.dist.name == PACKAGE_NAME]
    assert provider.load() is get_provider_info
    from deployteq_salesforce.plugin import DeployteqSalesforcePlugin

    assert plugin.load() is DeployteqSalesforcePlugin


def test_loading_the_provider_info_imports_no_airflow(tmp_path):
    probe = (
        "import sys, deployteq_salesforce.provider_info as p; p.get_provider_info();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'psycopg', 'requests', 'simple_salesforce'}))"
    )
    out = run([sys.executable, "-c", probe], cwd=tmp_path, env=outside_the_project(tmp_path / "home"))
    assert out.strip() == "[]"


def test_airflow_cli_works_outside_the_project(tmp_path):
    """An entry point is loaded before Airflow puts plugins/ on sys.path: it must load from the install."""
    out = run([Path(sys.executable).parent / "airflow", "providers", "list", "-o", "json"], cwd=tmp_path,
              env=outside_the_project(tmp_path / "home"))
    assert {"package_name": PACKAGE_NAME, "version": __version__} in [
        {k: p.get(k) for k in ("package_name", "version")} for p in json.loads(out)
    ]


PLUGIN_PROBE = """
import json
from airflow import plugins_manager
from airflow.sdk import plugins_manager as sdk_plugins_manager
core, core_errors = plugins_manager._get_plugins()
sdk, sdk_errors = sdk_plugins_manager._get_plugins()
print(json.dumps({"core": [p.name for p in core], "core_errors": core_errors,
                  "sdk": [p.name for p in sdk], "sdk_errors": sdk_errors}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("lazy", ["True", "False"])
def test_the_plugin_registers_once_however_airflow_discovers_it(tmp_path, lazy):
    """With this repo's plugins/ as plugins folder, installed, and either way of discovering providers.

    (Without a plugins folder: the fresh-venv tests below.)"""
    env = outside_the_project(tmp_path / "home", AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS=lazy,
                              AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"))

    seen = last_json_line(run([sys.executable, "-c", PLUGIN_PROBE], cwd=tmp_path, env=env))

    # other installed providers bring their own plugins (requirements.txt: OpenLineage's OpenLineageProviderPlugin)
    assert [name for name in seen["core"] if name == "deployteq_salesforce"] == ["deployteq_salesforce"]
    openlineage_twice = {"OpenLineageProviderPlugin": "Plugin 'OpenLineageProviderPlugin' already registered, skipping"}
    if lazy == "False" and OPENLINEAGE_INSTALLED:
        # apache-airflow-providers-openlineage 2.20.3 declares its plugin twice (an airflow.plugins entry point and
        # "plugins" in get_provider_info); eager provider discovery loads both, core Airflow records the second
        # as a plugin import error and skips it
        assert seen["core_errors"] == openlineage_twice
        if "deployteq_salesforce" not in seen["sdk"]:
            pytest.xfail(
                "upstream: apache-airflow-task-sdk 1.3.2, airflow/sdk/plugins_manager.py _get_plugins.__register_plugins "
                "'return's at the first name already registered (core's plugins_manager 'continue's), so OpenLineage's "
                "second registration drops every provider plugin after it from the task SDK's list; ours holds only "
                "API-server parts (apps, views, middleware), which the task SDK does not use"
            )
    else:
        assert seen["core_errors"] == {}
    assert [name for name in seen["sdk"] if name == "deployteq_salesforce"] == ["deployteq_salesforce"]
    assert seen["sdk_errors"] == {}


# -- the wheel in a fresh Airflow --------------------------------------------------------------------------


def build_wheel(work: Path) -> Path:
    """Build from a copy of what the wheel is made of, so the checkout stays untouched."""
    source = work / "source"
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE_DIR, source / "plugins" / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", source], cwd=work)
    (wheel,) = (work / "dist").glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory, wheel) -> Path:
    """A new venv with nothing but the wheel and what it depends on (Airflow from the package index)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    # this venv's pip installs into the new one (pip --python): no pip bootstrap in the fresh venv
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "--disable-pip-version-check"]
    reachable = subprocess.run([*pip, "index", "versions", "apache-airflow-core"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=120)
    if reachable.returncode != 0 or "3.3" not in reachable.stdout:
        pytest.skip(f"no package index with Airflow is reachable from here, so nothing can be installed: "
                    f"{(reachable.stderr or reachable.stdout).strip()[-300:]}")
    # --no-compile: compiling Airflow's thousands of files up front took ~40% of the install here
    run([*pip, "install", "--quiet", "--no-compile", wheel, "-c", ROOT / "constraints.txt"], cwd=venv.parent,
        timeout=900)
    return venv


@pytest.fixture(scope="module")
def fresh_airflow(fresh_venv, emulator_process, pg_url):
    """Airflow of the fresh venv: its own SQLite metadata DB, the two connections, an API server."""
    home = fresh_venv.parent / "home"
    port = _free_port()
    env = outside_the_project(
        home,
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__SECRET_KEY="provider-test-" + os.urandom(16).hex(),
        PATH=f"{fresh_venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    (home / "passwords.json").write_text(json.dumps({"admin": ADMIN_PASSWORD}))
    airflow = fresh_venv / "bin" / "airflow"
    run([airflow, "db", "migrate"], cwd=home, env=env)

    schema = f"provider_{os.urandom(6).hex()}"
    connections = {
        "deployteq_default": {**postgres_connection(pg_url, deployteq_schema=schema), "conn_type": DEPLOYTEQ_CONN_TYPE},
        "salesforce_default": {
            **salesforce_emulator_connection(emulator_process.connection_json), "conn_type": SALESFORCE_CONN_TYPE
        },
        "salesforce_wrong": {
            **salesforce_emulator_connection(emulator_process.connection_json),
            "conn_type": SALESFORCE_CONN_TYPE, "password": "not-a-valid-session-id",
        },
    }
    (home / "connections.json").write_text(json.dumps(connections))
    run([airflow, "connections", "import", home / "connections.json"], cwd=home, env=env)

    log_path = home / "api-server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)], cwd=home,
                                  env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"api-server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not up after 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        answer = requests.post(f"{base}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield {"base": base, "api": session, "airflow": airflow, "env": env, "home": home, "schema": schema,
               "python": fresh_venv / "bin" / "python"}
    finally:
        _stop(server)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_wheel_holds_the_package_with_its_migrations_templates_and_static_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    expected = [p.relative_to(PACKAGE_DIR.parent).as_posix() for p in PACKAGE_DIR.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts]
    assert sorted(n for n in names if not n.startswith(f"{PACKAGE_NAME.replace('-', '_')}-")) == sorted(expected)
    assert any(n.endswith(".sql") for n in expected) and any(n.endswith(".html") for n in expected)
    assert any(n.startswith("deployteq_salesforce/ui/static/") for n in expected)
    assert "deployteq_salesforce_plugin.py" not in names  # only for a plugins folder


@pytest.mark.slow
def test_the_cli_of_a_plain_airflow_lists_the_provider_and_its_hooks(fresh_airflow):
    airflow, env, home = fresh_airflow["airflow"], fresh_airflow["env"], fresh_airflow["home"]

    (provider,) = json.loads(run([airflow, "providers", "get", PACKAGE_NAME, "-o", "json"], cwd=home, env=env))
    hooks = json.loads(run([airflow, "providers", "hooks", "-o", "json"], cwd=home, env=env))

    assert (provider["Provider"], provider["Version"]) == (PACKAGE_NAME, __version__)
    ours = {h["connection_type"]: h["class"] for h in hooks if h["package_name"] == PACKAGE_NAME}
    assert ours == HOOK_CLASSES


@pytest.mark.slow
def test_admin_providers_of_a_plain_airflow_lists_the_package_with_hooks_and_connection_types(fresh_airflow):
    answer = fresh_airflow["api"].get(f"{fresh_airflow['base']}/api/v2/providers", timeout=30)  # the page's data

    (ours,) = [p for p in answer.json()["providers"] if p["package_name"] == PACKAGE_NAME]
    assert ours["version"] == __version__
    assert "BudgetedSalesforceHook (connection type 'Salesforce (budgeted, Deployteq)')" in ours["description"]
    assert "DeployteqHook (connection type 'Deployteq (PostgreSQL)')" in ours["description"]


@pytest.mark.slow
def test_the_connection_form_of_a_plain_airflow_shows_our_fields(fresh_airflow):
    answer = fresh_airflow["api"].get(f"{fresh_airflow['base']}/ui/connections/hook_meta", timeout=30)
    assert answer.status_code == 200, answer.text
    meta = {m["connection_type"]: m for m in answer.json()}

    salesforce, deployteq = meta[SALESFORCE_CONN_TYPE], meta[DEPLOYTEQ_CONN_TYPE]
    assert salesforce["hook_name"] == "Salesforce (budgeted, Deployteq)"
    assert salesforce["standard_fields"]["login"]["title"] == "Username"
    assert salesforce["standard_fields"]["host"]["hidden"] is True
    budget = salesforce["extra_fields"]["hourly_budget"]
    assert budget["schema"]["title"] == "Hourly budget" and "default 3600" in budget["description"]
    assert salesforce["extra_fields"]["security_token"]["schema"]["format"] == "password"
    assert set(connection_type(SALESFORCE_CONN_TYPE)["conn-fields"]) == set(salesforce["extra_fields"])
    assert deployteq["standard_fields"]["url_schema"]["title"] == "Database"
    assert deployteq["extra_fields"]["deployteq_schema"]["schema"]["title"] == "Deployteq schema"


@pytest.mark.slow
def test_the_test_button_of_a_plain_airflow_tests_both_connection_types(fresh_airflow, emulator_process):
    def test(conn_id: str, conn_type: str, **as_the_list_sends_it) -> dict:
        answer = fresh_airflow["api"].post(
            f"{fresh_airflow['base']}/api/v2/connections/test",
            json={"connection_id": conn_id, "conn_type": conn_type, **as_the_list_sends_it}, timeout=60,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    deployteq = test("deployteq_default", DEPLOYTEQ_CONN_TYPE)
    salesforce = test("salesforce_default", SALESFORCE_CONN_TYPE)
    wrong = test("salesforce_wrong", SALESFORCE_CONN_TYPE)
    # Airflow 3.3.2's list posts port 0 for "no port" (the plugin's middleware makes that work)
    from_the_list = test("salesforce_default", SALESFORCE_CONN_TYPE, host="", port=0, login="", password="***")

    assert deployteq["status"] is True and deployteq["message"].startswith("Connected to PostgreSQL "), deployteq
    instance_url = json.loads(Path(emulator_process.connection_json).read_text())["instance_url"]
    assert salesforce["status"] is True, salesforce
    assert salesforce["message"].startswith(f"Connection OK: {instance_url} (direct login, session id)")
    assert from_the_list["status"] is True, from_the_list
    assert wrong["status"] is False and "paste a new session id" in wrong["message"]
    assert "not-a-valid-session-id" not in wrong["message"]


@pytest.mark.slow
def test_a_plain_airflow_serves_the_plugin_and_its_salesforce_page(fresh_airflow):
    api, base = fresh_airflow["api"], fresh_airflow["base"]

    plugins = api.get(f"{base}/api/v2/plugins", timeout=30).json()["plugins"]
    import_errors = api.get(f"{base}/api/v2/plugins/importErrors", timeout=30).json()["import_errors"]
    page = api.get(f"{base}/deployteq-salesforce/", timeout=60)

    assert import_errors == []
    (ours,) = [p for p in plugins if p["name"] == "deployteq_salesforce"]
    assert "airflow.plugins" in ours["source"] and PACKAGE_NAME in ours["source"]
    assert {v["name"] for v in ours["external_views"]} >= {"Salesforce"}
    assert page.status_code == 200, page.text[:500]
    assert "API budget" in page.text


@pytest.mark.slow
def test_the_dag_files_import_the_same_api_from_the_installed_package(fresh_airflow, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    probe = (
        "import json, sys\nfrom airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)\n"
        "print(json.dumps({'errors': bag.import_errors, 'dags': {d: sorted(t.task_id for t in dag.tasks) "
        "for d, dag in bag.dags.items()}}))"
    )
    env = {**fresh_airflow["env"], **shipped_variables()}
    installed = last_json_line(run([fresh_airflow["python"], "-c", probe, ROOT / "dags"], cwd=fresh_airflow["home"], env=env))
    for name, value in shipped_variables().items():
        monkeypatch.setenv(name, value)
    here = DagBag(dag_folder=ROOT / "dags", safe_mode=False)

    assert installed["errors"] == {}
    assert installed["dags"] == {d: sorted(t.task_id for t in dag.tasks) for d, dag in here.dags.items()}
    assert "deployteq_health_check" in installed["dags"]


def real_click(browser: Browser, element_js: str) -> None:
    """A mouse click where the element is (the form's accordions ignore element.click())."""
    x, y = browser.evaluate(
        f"(() => {{ const e = {element_js}; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    for event in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left", clickCount=1)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)")
def test_a_user_creates_and_tests_a_salesforce_connection_in_the_ui(fresh_airflow, emulator_process, tmp_path):
    """Admin -> Connections in Chromium: the form of our type, Save, then the list's Test button.

    Keeps docs/connection-form.png and docs/connection-test.png up to date (copied from test-artifacts/)."""
    base, info = fresh_airflow["base"], json.loads(Path(emulator_process.connection_json).read_text())
    row = "[...document.querySelectorAll('tr')].find(r => r.innerText.includes('salesforce_form'))"
    dialog_button = "[...document.querySelectorAll('[role=dialog] button')].find(e => e.textContent.trim() === '{}')"
    browser = Browser(tmp_path)
    try:
        browser.open(f"{base}/auth/login")
        browser.wait_for("document.querySelector('input[name=password]')", "the login form")
        fill(browser, "document", {"username": "admin", "password": ADMIN_PASSWORD})
        browser.wait_for("(() => { const b = document.querySelector('button[type=submit]'); if (!b || b.disabled) return false;"
                         " b.click(); return true; })()", "an enabled Sign in button")
        browser.wait_for("!location.pathname.startsWith('/auth/')", "the redirect after login")
        browser.open(f"{base}/connections")
        browser.wait_for(click_by_text("button", "Add Connection"), "the Add Connection button")

        browser.wait_for("document.querySelector('input[name=connection_id]')", "the connection form")
        fill(browser, "document", {"connection_id": "salesforce_form"})
        browser.evaluate("document.querySelector('[role=dialog] input[role=combobox]').focus()")
        browser.send("Input.insertText", text="budgeted")
        browser.wait_for(click_by_text("[id*=-option-]", "Salesforce (budgeted, Deployteq)"), "our connection type")
        browser.wait_for("document.querySelector('input[name=password]')", "the password field")
        labels = browser.evaluate("document.querySelector('[role=dialog]').innerText")
        assert "Username" in labels and "Password or session id" in labels and "Host" not in labels
        fill(browser, "document", {"password": info["session_id"]})
        real_click(browser, dialog_button.format("Extra Fields"))
        browser.wait_for("document.querySelector('#element_ca_file')?.offsetParent", "the extra fields")
        fill(browser, "document", {"element_instance_url": info["instance_url"], "element_ca_file": info["ca_file"]})
        hourly_budget = "document.querySelector('input[name=element_hourly_budget]')"
        browser.evaluate(f"{hourly_budget}.scrollIntoView({{block: 'center'}})")
        browser.wait_for(f"{hourly_budget}.focus() || document.activeElement === {hourly_budget}", "focus on Hourly budget")
        browser.send("Input.insertText", text="1800")  # a number input keeps its own state: type into it
        browser.wait_for(f"{hourly_budget}.value === '1800'", "the typed hourly budget in its field")
        form = browser.evaluate("document.querySelector('[role=dialog]').innerText")
        for label in ("Instance URL", "Security token", "Domain", "Hourly budget", "Daily share", "Block hours",
                      "CA file", "Budget key"):
            assert label in form
        assert "Salesforce API requests per rolling hour" in form  # the help texts
        assert browser.evaluate("document.querySelector('#element_security_token').type") == "password"
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=2050, deviceScaleFactor=1, mobile=False)
        browser.screenshot(ARTIFACTS / "connection-form.png")
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)

        real_click(browser, dialog_button.format("Save"))
        browser.wait_for(f"!document.querySelector('[role=dialog]') && {row}", "the saved connection in the list")
        # a click that lands while the list re-renders after the save does nothing (seen once in a full run):
        # click again, at most three times (testing a connection changes nothing)
        for attempt in range(3):
            real_click(browser, f"{row}.querySelector('button[aria-label=\"Test Connection\"]')")
            try:
                browser.wait_for("/Test Connection (Successful|Failed)/.test(document.body.innerText)", "the test result",
                                 timeout=25)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        shown = browser.evaluate("document.body.innerText")
        assert "Test Connection Successful" in shown, shown
        time.sleep(1.5)  # the toast slides in; only the picture needs that
        browser.screenshot(ARTIFACTS / "connection-test.png")
    finally:
        browser.close()

    assert f"Connection OK: {info['instance_url']} (direct login, session id)" in shown
    stored = fresh_airflow["api"].get(f"{base}/api/v2/connections/salesforce_form", timeout=30).json()
    assert stored["conn_type"] == SALESFORCE_CONN_TYPE and stored["password"] == "***"
    extra = json.loads(stored["extra"])
    assert (extra["hourly_budget"], extra["ca_file"], extra["instance_url"]) == (1800, info["ca_file"], info["instance_url"])
