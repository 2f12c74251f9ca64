"""Everything one emulated org holds: records, clock, limits, faults, counters, cursors, Bulk 2.0 and 1.0 jobs."""

from __future__ import annotations

import secrets
from collections import deque
from pathlib import Path

from .bulk import BulkJobs
from .bulk1 import Bulk1Jobs
from .db import MemoryOnlyStateDB, StateDB
from .faults import Faults
from .limits import Clock, Limits
from .queries import QueryEngine
from .store import Store

_KEPT_ON_RESET = ("session_id", "id_counter")
REQUEST_LOG_SIZE = 1_000_000


class Emulator:
    def __init__(self, state_dir: str | Path, cli_limits: dict | None = None, *, memory_only: bool = False):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.db = MemoryOnlyStateDB() if memory_only else StateDB(self.state_dir / "state.sqlite3")
        # The session id survives restarts so connections configured once keep working.
        self.session_id = self.db.get_meta("session_id")
        if not self.session_id:
            self.session_id = "00D8d0000000001!" + secrets.token_urlsafe(48)
            self.db.set_meta("session_id", self.session_id)
        self.clock = Clock(self.db)
        self.limits = Limits(self.clock, self.db, cli_limits)
        self.store = Store(self.db, self.clock)
        self.faults = Faults()
        self.queries = QueryEngine(self.store)
        self.bulk = BulkJobs(self.store, self.queries.compile)
        self.bulk1 = Bulk1Jobs(self.store, self.queries.compile)
        saved = self.db.get_meta("counters") or {}
        self.total_requests: int = saved.get("total", 0)
        self.by_endpoint: dict[str, int] = saved.get("by_endpoint", {})
        # seconds from a request's arrival to the last byte of its answer written, per endpoint
        self.server_seconds: dict[str, float] = saved.get("server_seconds", {}).get("by_endpoint", {})
        # Every API request as it arrived: (number, emulator time, endpoint, blocked then), for "the most requests
        # in any rolling hour" and "none sent while blocked" (make soak); memory only, the newest kept.
        self.request_log: deque[tuple[int, float, str, bool]] = deque(maxlen=REQUEST_LOG_SIZE)
        # Bumped by reset(): a request still waiting (slow fault) from before a reset must not touch the fresh org.
        self.generation = 0

    def count_request(self, endpoint: str) -> int:
        self.total_requests += 1
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        self.request_log.append((self.total_requests, self.clock.now(), endpoint, self.limits.is_blocked()))
        self.db.set_meta("counters", self.counters())
        return self.total_requests

    def add_server_time(self, endpoint: str, seconds: float) -> None:
        self.server_seconds[endpoint] = self.server_seconds.get(endpoint, 0.0) + seconds
        self.db.set_meta("counters", self.counters())

    def counters(self) -> dict:
        return {
            "total": self.total_requests,
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "server_seconds": {"total": round(sum(self.server_seconds.values()), 6),
                               "by_endpoint": {name: round(seconds, 6)
                                               for name, seconds in sorted(self.server_seconds.items())}},
        }

    def reset(self, hourly_limit=None, daily_limit=None, block_seconds=None) -> None:
        self.generation += 1
        self.db.wipe(keep_meta=_KEPT_ON_RESET)
        self.store.wipe()
        self.clock.reset()
        self.limits.reset(hourly_limit, daily_limit, block_seconds)
        self.faults.clear()
        self.queries.clear()
        self.bulk.jobs.clear()
        self.bulk1.jobs.clear()
        self.total_requests = 0
        self.by_endpoint = {}
        self.server_seconds = {}
        self.request_log.clear()
        self.db.set_meta("counters", self.counters())
