"""Run the emulator as a child process (tests, benchmarks, ``make demo``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .client import EmulatorClient

REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    def __init__(self, popen: subprocess.Popen, state_dir: Path, log_file: Path):
        self.popen = popen
        self.state_dir = state_dir
        self.log_file = log_file
        self.connection_json = state_dir / "connection.json"
        self.info: dict = {}
        self.client: EmulatorClient | None = None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the emulator exited with code {self.popen.returncode}; log:\n{self._log_tail()}")
            if self.connection_json.exists():
                self.info = json.loads(self.connection_json.read_text())
                self.client = EmulatorClient(self.info)
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the emulator was not ready after {timeout:.0f}s; log:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text()[-4000:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.client is not None:
            self.client.session.close()  # an idle keep-alive connection only slows the shutdown down
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextmanager
def start_emulator(state_dir, *, port=0, hourly_limit=None, daily_limit=None, block_seconds=None,
                   seed_demo=False, memory_only=False, timeout=30.0) -> Iterator[EmulatorProcess]:
    """Start ``python -m include.salesforce_emulator`` and yield once ``connection.json`` is written."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "connection.json").unlink(missing_ok=True)
    command = [sys.executable, "-m", "include.salesforce_emulator", "--port", str(port), "--state-dir", str(state_dir)]
    for flag, value in (("--hourly-limit", hourly_limit), ("--daily-limit", daily_limit),
                        ("--block-seconds", block_seconds)):
        if value is not None:
            command += [flag, str(value)]
    if seed_demo:
        command.append("--seed-demo")
    if memory_only:
        command.append("--memory-only")
    log_file = state_dir / "emulator.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with open(log_file, "ab") as log:
        popen = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    process = EmulatorProcess(popen, state_dir, log_file)
    try:
        process.wait_ready(timeout)
        yield process
    finally:
        process.stop()
