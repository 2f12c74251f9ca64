"""Chaos while the soak runs: workers killed, the scheduler and the triggerer killed once, Salesforce faults.

- ``kill -9`` of a Celery worker's whole process group at random moments (at least ``worker_kills``
  over the run), restarted after a few seconds;
- one ``kill -9`` of the scheduler and one of the triggerer (restarted likewise);
- emulator faults at random: 500, 503, dropped connection, slow answer, INVALID_SESSION_ID, and once a
  real REQUEST_LIMIT_EXCEEDED block (the emulator's hourly limit is lowered until the next request
  trips it, as when other integrations use up the org; the block lasts ``block_seconds``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

FAULT_KINDS = ("500", "503", "drop", "slow", "invalid_session")


class Chaos(threading.Thread):
    def __init__(self, *, stack, client, minutes: float, worker_kills: int, seed: int, block_seconds: int,
                 salesforce_limit: int, log) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.stack = stack
        self.client = client
        self.seconds = minutes * 60
        self.rng = random.Random(seed + 2)
        self.block_seconds = block_seconds
        self.salesforce_limit = salesforce_limit
        self.log = log
        self.worker_kills = 0
        self.kills = Counter()
        self.faults = Counter()
        self.blocks = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._plan = self._schedule(worker_kills)

    def _schedule(self, worker_kills: int) -> list[tuple[float, str]]:
        """(seconds from start, event): kills spread over the run (not in its first minute: the stack settles),
        a fault every 20 s, the block before the budget runs out."""
        span = max(self.seconds - 60, 30)
        events = [(60 + span * (i + self.rng.uniform(0.1, 0.9)) / worker_kills, "kill-worker") for i in range(worker_kills)]
        events += [(60 + span * self.rng.uniform(0.2, 0.5), "kill-scheduler"),
                   (60 + span * self.rng.uniform(0.5, 0.8), "kill-triggerer"),
                   (self.seconds * self.rng.uniform(0.25, 0.45), "block")]  # while requests still flow
        events += [(t, "fault") for t in range(20, int(self.seconds), 20)]
        return sorted(events)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=120)

    def run(self) -> None:
        started = time.monotonic()
        try:
            for at, event in self._plan:
                if self._halt.wait(max(0.0, at - (time.monotonic() - started))):
                    return
                getattr(self, event.replace("-", "_"))()
        except BaseException as error:  # reported by the soak
            self.error = error

    def _kill_and_restart(self, name: str) -> None:
        self.stack.kill(name)
        self.kills[name] += 1
        self.log(f"chaos: kill -9 {name}")
        self._halt.wait(self.rng.uniform(3, 8))
        self.stack.start(name)

    def kill_worker(self) -> None:
        self._kill_and_restart(self.rng.choice(("worker1", "worker2")))
        self.worker_kills += 1

    def kill_scheduler(self) -> None:
        self._kill_and_restart("scheduler")

    def kill_triggerer(self) -> None:
        self._kill_and_restart("triggerer")

    def fault(self) -> None:
        kind = self.rng.choice(FAULT_KINDS)
        self.client.inject_fault(kind, count=self.rng.randint(1, 2), delay_seconds=self.rng.uniform(2, 10) if kind == "slow" else None)
        self.faults[kind] += 1

    def block(self) -> None:
        """Lower the emulator's hourly limit to what is used, so the next request trips a real block; then restore it."""
        used = self.client.limits_state()["hourly_used"]
        self.client.set_limits(hourly_limit=max(used, 1), block_seconds=self.block_seconds)
        deadline = time.monotonic() + 300
        while self.client.limits_state()["blocked_until"] is None and time.monotonic() < deadline:
            if self._halt.wait(1):
                break
        self.client.set_limits(hourly_limit=self.salesforce_limit)
        self.blocks += 1
        self.faults["REQUEST_LIMIT_EXCEEDED block"] += 1
        self.log("chaos: Salesforce blocked the token (REQUEST_LIMIT_EXCEEDED)")

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())
