"""End to end: the real Airflow API server with the plugin, driven in headless Chromium.

Logs in through SimpleAuthManager's login page, opens Integrations -> Salesforce from the nav,
checks the overview and its chart, saves a mapping edit in the editor and keeps a screenshot
under ``test-artifacts/``.  Chromium is driven over its DevTools protocol (``websockets`` comes
with Airflow's FastAPI stack), so no browser download and no extra package is needed.
Needs Debian's ``chromium`` (``.ci/run`` installs it); skipped with the reason when it is missing.
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

import pytest
import requests

from tests import airflow_env
from tests.ui.conftest import OBJECTS_TEXT

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
PASSWORD = "e2e-admin-password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does this)"),
]


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


@pytest.fixture
def api_server(tmp_path, seeded, salesforce_conn_id):
    """``airflow api-server`` with this repo's plugins, its own metadata DB, one admin user and the Variable."""
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    port = _free_port()
    env = {
        **os.environ,
        **airflow_env.airflow_test_environment(home),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": "e2e-" + os.urandom(16).hex(),
        "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-" + os.urandom(64).hex(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }
    log = open(tmp_path / "api-server.log", "w")
    # its own metadata DB: the suite's shared one may be rebuilt by a parallel run at any moment
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    assert migrated.returncode == 0, (tmp_path / "api-server.log").read_text()[-3000:]
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"api-server exited with {process.returncode}:\n{(tmp_path / 'api-server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/api/v2/monitor/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not up after 60 s:\n{(tmp_path / 'api-server.log').read_text()[-3000:]}")
            time.sleep(0.3)
        token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=10).json()["access_token"]
        created = requests.post(
            f"{base}/api/v2/variables", json={"key": "deployteq_salesforce_objects", "value": OBJECTS_TEXT},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )
        assert created.status_code == 201, created.text
        yield base
    finally:
        _stop(process)
        log.close()


class Browser:
    """A tiny DevTools-protocol client for one page of a headless Chromium."""

    def __init__(self, tmp_path: Path) -> None:
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={tmp_path / 'chromium'}",
             "--window-size=1400,1000", "about:blank"],
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
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, **params):
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 20.0):
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

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

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
SET_VALUE = """(el, value) => { const proto = el.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, value);
  el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); }"""
FRAME = "document.querySelector('iframe[title=\"Salesforce\"]')"
FRAME_DOC = f"({FRAME} && {FRAME}.contentDocument)"


def click_by_text(selector: str, text: str, doc: str = "document") -> str:
    return (
        f"(() => {{ const el = [...{doc}.querySelectorAll('{selector}')].find(e => e.textContent.trim() === '{text}');"
        " if (!el) return false; el.click(); return true; })()"
    )


def test_salesforce_page_in_the_airflow_ui(api_server, tmp_path):
    started = time.monotonic()
    browser = Browser(tmp_path)
    try:
        # log in through SimpleAuthManager's own login page
        browser.navigate(f"{api_server}/auth/login")
        browser.wait_for("!!document.querySelector('input[name=password]')", "the login form")
        browser.evaluate(
            f"(() => {{ const set = {SET_VALUE};"
            f" set(document.querySelector('input[name=username]'), 'admin');"
            f" set(document.querySelector('input[name=password]'), '{PASSWORD}'); return true; }})()"
        )
        browser.wait_for(
            "(() => { const b = document.querySelector('button[type=submit]'); if (!b || b.disabled) return false; b.click(); return true; })()",
            "an enabled Sign in button",
        )
        browser.wait_for("!location.pathname.startsWith('/auth/')", "the redirect after login")

        # the nav entry of category "Integrations": a menu when the category has several entries, the
        # entry itself in the nav bar when it is the only one
        browser.navigate(f"{api_server}/")
        browser.wait_for(click_by_text("a, button", "Salesforce") + " || " + click_by_text("a, button", "Integrations"),
                         "Salesforce / Integrations in the nav")
        browser.wait_for(
            f"location.pathname === '/plugin/salesforce' || {click_by_text('a, [role=menuitem]', 'Salesforce')}",
            "the Salesforce entry",
        )
        browser.wait_for("location.pathname === '/plugin/salesforce'", "the plugin page")

        # the overview with its chart, inside the UI's iframe
        browser.wait_for(f"{FRAME_DOC} && {FRAME_DOC}.querySelector('#budget-chart svg.chart')", "the budget chart")
        overview = browser.evaluate(f"{FRAME_DOC}.body.innerText")
        assert "API budget" in overview and "sync:Lead" in overview
        browser.screenshot(ARTIFACTS / "salesforce-ui-overview.png")

        # the mapping editor: add a row and save
        browser.wait_for(click_by_text("a", "Configured objects", FRAME_DOC), "the Configured objects tab")
        browser.wait_for(click_by_text("a", "✎ Edit Lead", FRAME_DOC), "the Edit Lead button")
        browser.wait_for(f"{FRAME_DOC}.querySelector('#mapping-form')", "the mapping form")
        browser.evaluate(
            f"(() => {{ const set = {SET_VALUE}; const d = {FRAME_DOC};"
            " set(d.querySelector('[name=\"row-4-salesforce_field\"]'), 'Company');"
            " set(d.querySelector('[name=\"row-4-deployteq_field\"]'), 'company');"
            " d.querySelector('#save').click(); return true; })()"
        )
        browser.wait_for(f"{FRAME_DOC}.querySelector('#saved')", "the saved message")
        saved = browser.evaluate(f"{FRAME_DOC}.body.innerText")
        assert "Saved the mapping of Lead" in saved and "Company" in saved
        stored = browser.evaluate(
            "fetch('/api/v2/variables/deployteq_salesforce_objects').then(r => r.json()).then(v => v.value)"
        )
        lead = next(o for o in json.loads(stored)["objects"] if o["sobject"] == "Lead")
        assert {"salesforce_field": "Company", "deployteq_type": "text", "deployteq_field": "company", "unique_key": False} in lead["mappings"]
        browser.screenshot(ARTIFACTS / "salesforce-ui-saved.png")
    finally:
        browser.close()
    assert time.monotonic() - started < 60
