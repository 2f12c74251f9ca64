"""Faults injected through the admin API: the next (or the N-th) matching API request misbehaves."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("500", "503", "drop", "slow", "invalid_session", "limit")


@dataclass
class Fault:
    kind: str
    at_request: int | None = None  # value of the API request counter from which it applies
    count: int = 1
    path_contains: str | None = None
    delay_seconds: float | None = None

    def matches(self, request_number: int, path: str) -> bool:
        if self.at_request is not None and request_number < self.at_request:
            return False
        return self.path_contains is None or self.path_contains in path


class Faults:
    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, kind: str, at_request=None, count=1, path_contains=None, delay_seconds=None) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        if int(count) < 1:
            raise ValueError("count must be at least 1")
        fault = Fault(kind, None if at_request is None else int(at_request), int(count), path_contains,
                      None if delay_seconds is None else float(delay_seconds))
        self.pending.append(fault)
        return fault

    def take(self, request_number: int, path: str) -> Fault | None:
        """The fault this request suffers, if any (consumes one of its count)."""
        for fault in self.pending:
            if fault.matches(request_number, path):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()

    def describe(self) -> list[dict]:
        return [vars(f).copy() for f in self.pending]
