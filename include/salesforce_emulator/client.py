"""Python client of the emulator's admin API (``/__emulator__/``), for tests, benchmarks and the demo."""

from __future__ import annotations

import requests

from . import jsonutil

SEED_CHUNK = 25_000  # records per seed request: big enough to be fast, small enough to stream


class EmulatorAdminError(RuntimeError):
    """The admin API refused a request; the message carries its explanation."""


class EmulatorClient:
    def __init__(self, info: dict, *, timeout: float = 120.0):
        self.info = info
        self.base_url = info["instance_url"].rstrip("/") + "/__emulator__/"
        self.session = requests.Session()
        # Passed per request too: a REQUESTS_CA_BUNDLE in the environment would override session.verify.
        self.session.verify = info["ca_file"]
        self.timeout = timeout

    def _call(self, method: str, name: str, body: dict | None = None, params: dict | None = None):
        data = jsonutil.dumps(body) if body is not None else None  # msgspec: much faster than json= for big seeds
        response = self.session.request(method, self.base_url + name, data=data, params=params,
                                        headers={"Content-Type": "application/json"},
                                        timeout=self.timeout, verify=self.info["ca_file"])
        if response.status_code >= 400:
            raise EmulatorAdminError(f"{method} /__emulator__/{name} failed ({response.status_code}): {response.text}")
        return response.json()

    # state ---------------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._call("GET", "health")

    def reset(self, hourly_limit=None, daily_limit=None, block_seconds=None) -> dict:
        return self._call("POST", "reset", _given(hourly_limit=hourly_limit, daily_limit=daily_limit,
                                                    block_seconds=block_seconds))

    def seed(self, sobject: str, records: list[dict]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(records), SEED_CHUNK):
            chunk = records[start : start + SEED_CHUNK]
            ids.extend(self._call("POST", "seed", {"sobject": sobject, "records": chunk})["ids"])
        return ids

    def seed_demo(self) -> dict:
        return self._call("POST", "seed-demo")["counts"]

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict]:
        params = {"sobject": sobject, "include_deleted": "true" if include_deleted else "false"}
        return self._call("GET", "records", params=params)["records"]

    def update(self, sobject: str, records: list[dict]) -> list[str]:
        return self._call("POST", "update", {"sobject": sobject, "records": records})["ids"]

    def convert_lead(self, lead_id: str, contact_id: str | None = None, account_id: str | None = None) -> dict:
        return self._call("POST", "convert-lead", {"lead_id": lead_id, "contact_id": contact_id,
                                                   "account_id": account_id})

    def delete(self, ids: list[str]) -> dict:
        return self._call("POST", "delete", {"ids": list(ids)})

    def undelete(self, ids: list[str]) -> dict:
        return self._call("POST", "undelete", {"ids": list(ids)})

    def hard_delete(self, ids: list[str]) -> dict:
        return self._call("POST", "hard-delete", {"ids": list(ids)})

    def merge(self, master_id: str, loser_ids: list[str]) -> dict:
        return self._call("POST", "merge", {"master_id": master_id, "loser_ids": list(loser_ids)})

    # clock, limits, faults -----------------------------------------------------------------------
    def advance_clock(self, seconds: float) -> str:
        return self._call("POST", "advance-clock", {"seconds": seconds})["now"]

    def now(self) -> str:
        return self._call("GET", "now")["now"]

    def set_limits(self, hourly_limit=None, daily_limit=None, block_seconds=None) -> dict:
        return self._call("POST", "limits", _given(hourly_limit=hourly_limit, daily_limit=daily_limit,
                                                     block_seconds=block_seconds))

    def limits_state(self) -> dict:
        return self._call("GET", "limits")

    def inject_fault(self, kind: str, at_request: int | None = None, count: int = 1,
                     path_contains: str | None = None, delay_seconds: float | None = None) -> dict:
        return self._call("POST", "faults", {"kind": kind, "at_request": at_request, "count": count,
                                             "path_contains": path_contains, "delay_seconds": delay_seconds})

    def clear_faults(self) -> dict:
        """Drop every pending injected fault (records and counters stay)."""
        return self._call("DELETE", "faults")

    def add_validation_rule(self, sobject: str, field: str, equals, message: str) -> dict:
        return self._call("POST", "validation-rules", {"sobject": sobject, "field": field, "equals": equals,
                                                       "message": message})

    def counters(self) -> dict:
        return self._call("GET", "counters")

    def request_log(self, after: int = 0) -> list[dict]:
        """Every API request after number ``after``: ``{"number", "at" (emulator epoch seconds), "endpoint",
        "blocked" (the session was blocked by REQUEST_LIMIT_EXCEEDED when it arrived)}``."""
        return self._call("GET", "request-log", params={"after": str(after)})["requests"]


def _given(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}
