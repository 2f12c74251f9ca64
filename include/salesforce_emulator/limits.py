"""The emulator clock and Salesforce's request limits.

Two limits, both on the emulator clock (real time + an adjustable offset):
- the hourly limit of the integration (default 3600 in a rolling hour): the request that would
  exceed it blocks the session for ``block_seconds`` (default 4 hours), and every request is
  refused until the block ends;
- the org's rolling 24-hour allocation (DailyApiRequests, default 100,000): refused while spent.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from .db import StateDB
from .values import format_epoch

HOUR = 3600.0
DAY = 86400.0
DEFAULT_HOURLY_LIMIT = 3600
DEFAULT_DAILY_LIMIT = 100_000
DEFAULT_BLOCK_SECONDS = 4 * 3600


class Clock:
    """Real time plus an offset that tests move forward (persisted)."""

    def __init__(self, db: StateDB):
        self.db = db
        self.offset = float(db.get_meta("clock_offset", 0.0))

    def now(self) -> float:
        return time.time() + self.offset

    def now_wire(self) -> str:
        return format_epoch(self.now())

    def now_datetime(self) -> datetime:
        """The emulator's now as an aware UTC datetime (date literals such as TODAY use it)."""
        return datetime.fromtimestamp(self.now(), tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        self.offset += float(seconds)
        self.db.set_meta("clock_offset", self.offset)

    def reset(self) -> None:
        self.offset = 0.0
        self.db.set_meta("clock_offset", 0.0)


@dataclass
class LimitSettings:
    hourly_limit: int = DEFAULT_HOURLY_LIMIT
    daily_limit: int = DEFAULT_DAILY_LIMIT
    block_seconds: float = DEFAULT_BLOCK_SECONDS


class Limits:
    def __init__(self, clock: Clock, db: StateDB, cli: dict | None = None):
        """``cli``: limits given on the command line; they win over saved ones, and reset() returns to them."""
        self.clock = clock
        self.db = db
        given = {k: v for k, v in (cli or {}).items() if v is not None}
        self.startup = LimitSettings(**given)
        self.settings = LimitSettings(**{**(db.get_meta("limits") or {}), **given})
        db.set_meta("limits", vars(self.settings))
        self.blocked_until: float | None = db.get_meta("blocked_until")
        now = clock.now()
        self.daily: deque[float] = deque(db.load_usage(now - DAY))
        self.hourly: deque[float] = deque(ts for ts in self.daily if ts > now - HOUR)
        self._admitted = 0

    def _prune(self, now: float) -> None:
        hour_ago, day_ago = now - HOUR, now - DAY
        while self.hourly and self.hourly[0] <= hour_ago:
            self.hourly.popleft()
        while self.daily and self.daily[0] <= day_ago:
            self.daily.popleft()

    def is_blocked(self) -> bool:
        now = self.clock.now()
        if self.blocked_until is not None and now >= self.blocked_until:
            self.blocked_until = None
            self.db.set_meta("blocked_until", None)
        return self.blocked_until is not None

    def admit(self) -> bool:
        """Count one API request; False when it must be refused with REQUEST_LIMIT_EXCEEDED."""
        if self.is_blocked():
            return False
        now = self.clock.now()
        self._prune(now)
        if len(self.hourly) + 1 > self.settings.hourly_limit:
            self.blocked_until = now + self.settings.block_seconds
            self.db.set_meta("blocked_until", self.blocked_until)
            return False
        if len(self.daily) + 1 > self.settings.daily_limit:
            return False
        self.hourly.append(now)
        self.daily.append(now)
        self.db.add_usage(now)
        self._admitted += 1
        if self._admitted % 1000 == 0:  # keep the usage table at about one day of rows
            self.db.prune_usage(now - DAY)
        return True

    def daily_used(self) -> int:
        self._prune(self.clock.now())
        return len(self.daily)

    def hourly_used(self) -> int:
        self._prune(self.clock.now())
        return len(self.hourly)

    def usage_header(self) -> str:
        return f"api-usage={self.daily_used()}/{self.settings.daily_limit}"

    def configure(self, hourly_limit=None, daily_limit=None, block_seconds=None) -> None:
        if hourly_limit is not None:
            self.settings.hourly_limit = int(hourly_limit)
        if daily_limit is not None:
            self.settings.daily_limit = int(daily_limit)
        if block_seconds is not None:
            self.settings.block_seconds = float(block_seconds)
        self.db.set_meta("limits", vars(self.settings))

    def reset(self, hourly_limit=None, daily_limit=None, block_seconds=None) -> None:
        self.settings = LimitSettings(**vars(self.startup))
        self.blocked_until = None
        self.hourly.clear()
        self.daily.clear()
        self.db.set_meta("blocked_until", None)
        self.configure(hourly_limit, daily_limit, block_seconds)

    def state(self) -> dict:
        blocked = self.is_blocked()
        return {
            "hourly_used": self.hourly_used(),
            "hourly_limit": self.settings.hourly_limit,
            "daily_used": self.daily_used(),
            "daily_limit": self.settings.daily_limit,
            "block_seconds": self.settings.block_seconds,
            "blocked_until": format_epoch(self.blocked_until) if blocked else None,
            "now": self.clock.now_wire(),
        }
