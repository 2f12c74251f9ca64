"""End to end: the real Airflow API server with the plugin, driven in headless Chromium as an ops person would.

A logged-out visit is sent to Airflow's login and back; Integrations -> Salesforce opens the pages
inside Airflow; a mapping edit is saved, an invalid object link and an empty retry are refused with
a page; a link to an Airflow run opens in Airflow itself; every page fits 1440 px and 390 px without
horizontal scrolling and every form control has an accessible name (Chromium's accessibility tree);
after `settings_loader` and a restart of the API server the edit is still there.  Screenshots land in
``test-artifacts/`` (the ones in ``docs/`` come from here).

Chromium is driven over its DevTools protocol (``websockets`` comes with Airflow's FastAPI stack), so
no browser download and no extra package is needed.  Needs Debian's ``chromium`` (``.ci/run``
installs it); skipped with the reason when it is missing.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests import airflow_env
from tests.test_settings_loader import SHIPPED_FILE_ENV
from tests.ui.conftest import CAMPAIGN_DAG, SYNC_DAG

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
PASSWORD = "e2e-admin-password"
PREFIX = "/deployteq-salesforce"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)"),
]

# Every page of ours, as an ops person reaches them.
PAGES = [
    "/", "/objects", "/objects/Lead/edit", "/links", "/links/new", "/links/edit?name=accounts",
    "/links/delete?name=accounts", "/runs", "/errors", "/errors?reason=DUPLICATE_VALUE",
    "/errors/history?flow=sync:Lead&record=00Q000000000001AAA", "/contact-moments", "/account",
    f"/dag/{SYNC_DAG}", f"/dag/{CAMPAIGN_DAG}/run/manual__1/task/synchronize", "/objects/Opportunity/edit",
]
CONTROL_ROLES = {"textbox", "searchbox", "combobox", "listbox", "checkbox", "radio", "spinbutton", "slider", "switch", "button"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class ApiServer:
    """``airflow api-server`` with this repo's plugins, its own metadata DB and one admin user; restartable."""

    def __init__(self, tmp_path: Path) -> None:
        home = tmp_path / "airflow"
        home.mkdir()
        (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "api-server.log"
        self.env = {
            **os.environ,
            **airflow_env.airflow_test_environment(home),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base,
            "AIRFLOW__API__SECRET_KEY": "e2e-" + os.urandom(16).hex(),
            "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-" + os.urandom(64).hex(),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            **SHIPPED_FILE_ENV,  # what airflow_settings.yaml needs (the fixture puts the real values in)
        }
        self.process: subprocess.Popen | None = None

    def run(self, *args: str) -> str:
        """``python -m ...`` in this Airflow's environment; its output."""
        with open(self.log_path, "a") as log:
            log.write(f"\n$ python {' '.join(args)}\n")
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True)
        with open(self.log_path, "a") as log:
            log.write(result.stdout + result.stderr)
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        return result.stdout

    def start(self) -> None:
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 90
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"api-server exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/api/v2/monitor/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not up after 90 s:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def variable(self, key: str) -> str:
        token = requests.post(f"{self.base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10).json()["access_token"]
        response = requests.get(f"{self.base}/api/v2/variables/{key}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["value"]


@pytest.fixture
def api_server(tmp_path, seeded, salesforce_conn_id, emulator_process, pg_url, pg_schema, monkeypatch):
    """The API server after `airflow db migrate` and the settings loader, as `make ui` prepares it: the
    connections come from airflow_settings.yaml (filled with this test's emulator and schema), not the environment."""
    from include.local_services import postgres_connection

    emulator = json.loads(Path(emulator_process.connection_json).read_text())
    database = postgres_connection(pg_url, deployteq_schema=pg_schema)
    monkeypatch.delenv("AIRFLOW_CONN_SALESFORCE_DEFAULT")
    monkeypatch.delenv("AIRFLOW_CONN_DEPLOYTEQ_DEFAULT")
    server = ApiServer(tmp_path)
    server.env.update(
        SALESFORCE_SESSION_ID=emulator["session_id"], SALESFORCE_INSTANCE_URL=emulator["instance_url"],
        SALESFORCE_CA_FILE=emulator["ca_file"], DEPLOYTEQ_DB_HOST=database["host"], DEPLOYTEQ_DB_PORT=str(database.get("port", "")),
        DEPLOYTEQ_DB_NAME=database["schema"], DEPLOYTEQ_DB_USER=database.get("login", "postgres"),
        DEPLOYTEQ_DB_PASSWORD=database.get("password", ""), DEPLOYTEQ_SCHEMA=pg_schema,
    )
    # its own metadata DB: the suite's shared one may be rebuilt by a parallel run at any moment
    server.run("-m", "airflow", "db", "migrate")
    server.run("-m", "include.settings_loader")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Browser:
    """A tiny DevTools-protocol client for one page of a headless Chromium."""

    def __init__(self, tmp_path: Path) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium'}",
             "--window-size=1440,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = self.process.stderr.readline().decode(errors="replace")
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
            elif not line and self.process.poll() is not None:
                break
        if port is None:
            self.close()
            pytest.fail("chromium did not start its DevTools endpoint")
        page = next(t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json() if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ids = itertools.count(1)
        for domain in ("Page", "Runtime", "Accessibility"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params):
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(f"!!({expression})")
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        self.screenshot(ARTIFACTS / "salesforce-ui-e2e-failure.png")
        raise AssertionError(f"timed out waiting for {what}; page: {self.evaluate('location.href')}")

    def open(self, url: str) -> None:
        """Navigate the top window and wait until the page (one of ours, or Airflow's) has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for(f"location.href !== 'about:blank' && document.readyState === 'complete' && document.body", url)

    def set_width(self, width: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=900 if width > 800 else 844,
                  deviceScaleFactor=1, mobile=width < 800)

    def horizontal_overflow(self) -> int:
        return self.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    def unlabelled_controls(self) -> list[str]:
        """Form controls without an accessible name, from Chromium's accessibility tree."""
        nodes = self.send("Accessibility.getFullAXTree")["nodes"]
        return [
            f"{node['role']['value']} #{node.get('backendDOMNodeId')}"
            for node in nodes
            if not node.get("ignored") and node.get("role", {}).get("value") in CONTROL_ROLES
            and not str(node.get("name", {}).get("value") or "").strip()
        ]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        _stop(self.process)


# JavaScript helpers: React inputs need the native setter plus an input event.
SET_VALUE = """(el, value) => { const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype
  : el.tagName === 'SELECT' ? HTMLSelectElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); }"""
FRAME = "document.querySelector('iframe[title=\"Salesforce\"]')"
FRAME_DOC = f"({FRAME} && {FRAME}.contentDocument)"


def click_by_text(selector: str, text: str, doc: str = "document") -> str:
    return (
        f"(() => {{ const el = [...{doc}.querySelectorAll('{selector}')].find(e => e.textContent.trim() === '{text}');"
        " if (!el) return false; el.click(); return true; })()"
    )


def fill(browser: Browser, doc: str, values: dict[str, str]) -> None:
    assignments = " ".join(f"set(d.querySelector('[name=\"{name}\"]'), {json.dumps(value)});" for name, value in values.items())
    browser.evaluate(f"(() => {{ const set = {SET_VALUE}; const d = {doc}; {assignments} return true; }})()")


def frame_loaded(path: str) -> str:
    """The Salesforce frame shows our page ``path`` and has finished loading it."""
    return (f"{FRAME_DOC} && {FRAME}.contentWindow.location.pathname === '{PREFIX}{path}'"
            f" && {FRAME_DOC}.readyState === 'complete' && {FRAME_DOC}.querySelector('main')")


def test_salesforce_pages_in_the_airflow_ui(api_server, tmp_path):
    browser = Browser(tmp_path)
    try:
        # logged out, a Salesforce page sends the browser to Airflow's login, which comes back to it
        browser.open(f"{api_server.base}{PREFIX}/errors?flow=sync:Lead")
        browser.wait_for("location.pathname.startsWith('/auth/login') && document.querySelector('input[name=password]')",
                         "Airflow's login page")
        assert parse_qs(urlsplit(browser.evaluate("location.href")).query)["next"] == [f"{PREFIX}/errors?flow=sync:Lead"]
        browser.evaluate(
            f"(() => {{ const set = {SET_VALUE};"
            f" set(document.querySelector('input[name=username]'), 'admin');"
            f" set(document.querySelector('input[name=password]'), '{PASSWORD}'); return true; }})()"
        )
        browser.wait_for(
            "(() => { const b = document.querySelector('button[type=submit]'); if (!b || b.disabled) return false; b.click(); return true; })()",
            "an enabled Sign in button",
        )
        browser.wait_for(f"location.pathname === '{PREFIX}/errors' && document.querySelector('#errors')", "the errors page after login")

        # the nav: Airflow 3.3 groups plugin pages in its "Plugins" menu, by category: Integrations -> Salesforce
        browser.open(f"{api_server.base}/")
        browser.wait_for(click_by_text("button, a", "Plugins"), "the Plugins menu in the nav")
        browser.wait_for(click_by_text("[role=menuitem]", "Integrations"), "Integrations in the Plugins menu")
        browser.wait_for(f"[...document.querySelectorAll('[role=menuitem]')].some(e => e.textContent.trim() === 'Salesforce errors')",
                         "Salesforce errors under Integrations")
        browser.screenshot(ARTIFACTS / "salesforce-ui-nav.png")
        browser.wait_for(click_by_text("a, [role=menuitem]", "Salesforce"), "Salesforce under Integrations")
        browser.wait_for("location.pathname === '/plugin/salesforce'", "the plugin page")
        browser.wait_for(f"{FRAME_DOC} && {FRAME_DOC}.querySelector('#budget-chart svg.chart')", "the budget chart")
        overview = browser.evaluate(f"{FRAME_DOC}.body.innerText")
        assert "API budget" in overview and "sync:Lead" in overview and "2 open errors" in overview
        assert browser.evaluate(f"{FRAME_DOC}.documentElement.scrollWidth - {FRAME}.contentWindow.innerWidth") <= 0
        browser.screenshot(ARTIFACTS / "salesforce-ui.png")

        # the mapping editor: Mr. => De heer, saved
        browser.wait_for(click_by_text("a", "Configured objects", FRAME_DOC), "the Configured objects tab")
        browser.wait_for(click_by_text("a", "✎ Edit Lead", FRAME_DOC), "the Edit Lead button")
        browser.wait_for(f"{FRAME_DOC}.querySelector('#mapping-form')", "the mapping form")
        salutation = browser.evaluate(
            f"[...{FRAME_DOC}.querySelectorAll('textarea')].find(t => t.value.includes('Mr. => Dhr.')).name"
        )
        text = browser.evaluate(f"{FRAME_DOC}.querySelector('[name=\"{salutation}\"]').value")
        fill(browser, FRAME_DOC, {salutation: text.replace("Mr. => Dhr.", "Mr. => De heer")})
        browser.screenshot(ARTIFACTS / "salesforce-ui-mapping-editor.png")
        browser.evaluate(f"{FRAME_DOC}.querySelector('#save').click()")
        browser.wait_for(f"{FRAME_DOC}.querySelector('#saved')", "the saved message")
        assert "Mr. → De heer" in browser.evaluate(f"{FRAME_DOC}.body.innerText")

        # an object link for an object Salesforce does not have is refused, nothing saved
        browser.wait_for(click_by_text("a", "Object links", FRAME_DOC), "the Object links tab")
        browser.wait_for(click_by_text("a", "+ Add link", FRAME_DOC), "the Add link button")
        browser.wait_for(f"{FRAME_DOC}.querySelector('#link-form')", "the link form")
        fill(browser, FRAME_DOC, {"name": "ghosts", "sobject": "Nonexistent__c", "webhook": "account", "datamodel": "dm_account"})
        browser.evaluate(f"{FRAME_DOC}.querySelector('#save').click()")
        browser.wait_for(f"{FRAME_DOC}.querySelector('#problems')", "the refusal")
        assert "Salesforce has no object 'Nonexistent__c'" in browser.evaluate(f"{FRAME_DOC}.querySelector('#problems').innerText")
        assert "ghosts" not in api_server.variable("deployteq_salesforce_object_links")

        # "Retry selected records" with nothing ticked: a page that says so, with a way back
        browser.wait_for(click_by_text("a", "Errors", FRAME_DOC), "the Errors tab")
        browser.wait_for(frame_loaded("/errors") + f" && {FRAME_DOC}.querySelector('#retry')", "the errors page")
        browser.evaluate(f"{FRAME_DOC}.querySelector('#retry').click()")
        browser.wait_for(f"{FRAME_DOC}.querySelector('.error-page')", "the error page")
        page = browser.evaluate(f"{FRAME_DOC}.body.innerText")
        assert "Select at least one record to retry" in page and "← Back" in page and '{"detail"' not in page

        # a link to an Airflow run opens in Airflow itself, not inside the frame
        browser.wait_for(click_by_text("a", "Sync log", FRAME_DOC), "the Sync log tab")
        browser.wait_for(frame_loaded("/runs"), "the sync log")
        browser.evaluate(f"{FRAME_DOC}.querySelector('a[data-airflow-link]').click()")
        browser.wait_for(f"location.pathname.startsWith('/dags/{SYNC_DAG}/runs/')", "Airflow's run page")

        # every page: no horizontal scrolling at 1440 and 390 px, every form control named
        problems = []
        for width in (1440, 390):
            browser.set_width(width)
            for path in PAGES:
                browser.open(f"{api_server.base}{PREFIX}{path}")
                if (overflow := browser.horizontal_overflow()) > 0:
                    problems.append(f"{path} at {width} px: {overflow} px too wide")
                if width == 1440 and (unnamed := browser.unlabelled_controls()):
                    problems.append(f"{path}: controls without a name: {unnamed}")
                if width == 390 and path == "/":
                    browser.screenshot(ARTIFACTS / "salesforce-ui-390px.png")
                if width == 1440 and path in ("/errors?reason=DUPLICATE_VALUE", "/account", "/links", "/runs"):
                    browser.screenshot(ARTIFACTS / f"salesforce-ui-{path.strip('/').split('?')[0]}.png")
        assert not problems, "\n".join(problems)
        browser.set_width(1440)

        # `make ui` again: the settings loader and a new API server keep the edit
        api_server.stop()
        loaded = api_server.run("-m", "include.settings_loader")
        assert "variable deployteq_salesforce_objects: kept (value): changed in Airflow since the last load" in loaded
        api_server.start()
        browser.open(f"{api_server.base}{PREFIX}/objects")
        browser.wait_for("document.querySelector('#object-Lead')", "the objects page after the restart")
        assert "Mr. → De heer" in browser.evaluate("document.body.innerText")
    finally:
        browser.close()
