"""Fixtures for the emulator's own tests: simple-salesforce clients wired to the session emulator."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce


def emulator_session(info: dict) -> requests.Session:
    """A session that trusts the emulator's CA (and ignores a REQUESTS_CA_BUNDLE from the environment,
    which requests would otherwise prefer over ``session.verify``)."""
    session = requests.Session()
    session.verify = info["ca_file"]
    session.trust_env = False
    return session


def salesforce_client(info: dict, session_id: str | None = None) -> Salesforce:
    return Salesforce(instance_url=info["instance_url"], session_id=session_id or info["session_id"],
                      session=emulator_session(info))


@pytest.fixture
def sf(emulator, emulator_process) -> Salesforce:
    """simple-salesforce against a freshly reset emulator (direct session: instance URL + session id)."""
    return salesforce_client(emulator_process.info)


@pytest.fixture
def api(emulator, emulator_process):
    """Raw HTTP access to the REST API: ``api(method, path, **kw) -> requests.Response``."""
    info = emulator_process.info
    session = emulator_session(info)
    base = info["instance_url"] + "/services/data/v59.0/"

    def call(method: str, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or info['session_id']}", **kwargs.pop("headers", {})}
        return session.request(method, base + path, headers=headers, **kwargs)

    return call
