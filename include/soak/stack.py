"""The soak's deployment: a real, distributed Airflow 3 on this machine, from the project's own settings.

CeleryExecutor with Redis as the broker, PostgreSQL as Airflow's metadata database and Celery result
backend, two Celery workers as separate processes, the scheduler, the DAG processor, the triggerer and
the API server; every component in its own process group so chaos can ``kill -9`` it whole (a worker
dies with its task processes, as when its container or machine goes).  The servers come from the
environment: ``SOAK_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) and ``SOAK_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``: a role that may create databases).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from include.demo import ROOT, airflow_environment, connection_environment, stop_process

STATE = ROOT / ".state" / "soak"
AIRFLOW_HOME = STATE / "airflow"
LOG_DIR = STATE / "logs"
AIRFLOW_DB = "soak_airflow"
DEPLOYTEQ_DB = "soak_deployteq"
DEPLOYTEQ_SCHEMA = "deployteq"
WORKERS = ("worker1", "worker2")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", *WORKERS)


class SoakError(RuntimeError):
    """Something the user can act on (a server missing, a component that does not start)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def recreate_database(server_url: str, name: str) -> str:
    """Drop (with its sessions) and create database ``name``; return its URL."""
    try:
        conn = psycopg.connect(server_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        raise SoakError(
            f"PostgreSQL not reachable at {server_url} ({error}); start it (see README, 'Running at scale') "
            "or set SOAK_POSTGRES_URL"
        ) from None
    with conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                     (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


def check_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5)
        client.ping()
        client.flushdb()  # the soak's own database number: stale Celery messages of an earlier run go
    except redis.RedisError as error:
        raise SoakError(f"Redis not reachable at {url} ({error}); start it (see README, 'Running at scale') "
                        "or set SOAK_REDIS_URL") from None


@dataclass
class Component:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    killed: bool = False  # down on purpose (chaos restarts it itself)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class AirflowStack:
    """Start, kill and restart the Airflow components; everything under ``.state/soak``."""

    postgres_url: str
    redis_url: str
    salesforce: dict  # the emulator's connection.json
    worker_concurrency: int = 2
    port: int = field(default_factory=free_port)
    components: dict[str, Component] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    objects_config: dict = field(default_factory=dict)  # the soak's Variables, for the checks
    links_config: dict = field(default_factory=dict)
    scheduled: list[str] = field(default_factory=list)  # dag_ids with a schedule
    cleared_deferred: int = 0
    _token: str | None = None

    def prepare(self) -> None:
        """Fresh databases and AIRFLOW_HOME, the environment every component shares, `airflow db migrate`."""
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
        AIRFLOW_HOME.mkdir(parents=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        check_redis(self.redis_url)
        airflow_url = recreate_database(self.postgres_url, AIRFLOW_DB)
        self.deployteq_url = recreate_database(self.postgres_url, DEPLOYTEQ_DB)
        sqlalchemy_url = airflow_url.replace("postgresql://", "postgresql+psycopg2://", 1)
        env = {
            **airflow_environment(AIRFLOW_HOME, self.port),
            **connection_environment(self.deployteq_url, self.salesforce, AIRFLOW_HOME),
            "DEPLOYTEQ_SCHEMA": DEPLOYTEQ_SCHEMA,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__CORE__PARALLELISM": "16",
            # the soak's time scale: a killed task is noticed within a minute and retried 20 s later
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "20",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(LOG_DIR / "tasks"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(AIRFLOW_HOME / "passwords.json"),
        }
        self.password = os.urandom(12).hex()
        (AIRFLOW_HOME / "passwords.json").write_text(json.dumps({"admin": self.password}))
        self.env = {**os.environ, **env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        self.run_cli(["db", "migrate"], "airflow-db-migrate")
        airflow = [sys.executable, "-m", "airflow"]
        commands = {
            "api-server": [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": [*airflow, "scheduler"],
            "dag-processor": [*airflow, "dag-processor"],
            "triggerer": [*airflow, "triggerer"],
        }
        for number, name in enumerate(WORKERS, 1):
            # both workers on one machine: the logs are local files, so no log server (it would need a port each)
            commands[name] = [*airflow, "celery", "worker", "--celery-hostname", f"{name}@soak", "--skip-serve-logs",
                              "--without-mingle", "--without-gossip"]
        self.components = {name: Component(name, command) for name, command in commands.items()}

    def run_cli(self, args: list[str], log_name: str) -> None:
        with open(LOG_DIR / f"{log_name}.log", "a") as log:
            result = subprocess.run([sys.executable, "-m", "airflow", *args], cwd=ROOT, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode:
            raise SoakError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); see {LOG_DIR / log_name}.log")

    def apply_settings(self, overrides: dict[str, str], pool_slots: int, salesforce_extra: dict) -> None:
        """The project's airflow_settings.yaml, with the soak's Variables, pool size and Salesforce extras on top."""
        code = (
            "import json, sys\n"
            "from include.soak.stack import soak_settings\n"
            "from include.settings_loader import apply_settings, summary\n"
            "args = json.loads(sys.argv[1])\n"
            "print(summary(apply_settings(soak_settings(**args))))\n"
        )
        args = json.dumps({"overrides": overrides, "pool_slots": pool_slots, "salesforce_extra": salesforce_extra})
        with open(LOG_DIR / "settings.log", "a") as log:
            result = subprocess.run([sys.executable, "-c", code, args], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        if result.returncode:
            raise SoakError(f"applying the settings failed; see {LOG_DIR / 'settings.log'}")

    # -- processes -----------------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        component = self.components[name]
        log = open(LOG_DIR / f"{name}.log", "a")
        component.process = subprocess.Popen(
            component.command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes its children (task processes) along
        )
        log.close()
        component.killed = False

    def start_all(self, timeout: float = 180.0) -> None:
        self.start("api-server")
        self.wait_for_api(timeout)
        for name in COMPONENTS[1:]:
            self.start(name)

    def kill(self, name: str) -> None:
        """``kill -9`` of the component's whole process group."""
        component = self.components[name]
        if component.process is None:
            return
        try:
            os.killpg(component.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        component.process.wait()
        component.killed = True

    def ensure_running(self) -> list[str]:
        """Restart components that died on their own (not killed by chaos); names of those restarted."""
        restarted = []
        for name, component in self.components.items():
            if component.process is not None and not component.alive and not component.killed:
                self.start(name)
                restarted.append(name)
        return restarted

    def stop_all(self) -> None:
        for component in reversed(list(self.components.values())):
            if component.alive:
                stop_process(component.process.pid, timeout=20.0)

    # -- the REST API ------------------------------------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for_api(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.components["api-server"].alive:
                raise SoakError(f"the API server exited; see {LOG_DIR / 'api-server.log'}")
            try:
                if requests.get(f"{self.api}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise SoakError(f"the API server did not answer within {timeout:.0f} s; see {LOG_DIR / 'api-server.log'}")

    def call(self, method: str, path: str, **kwargs) -> dict:
        if self._token is None:
            answer = requests.post(f"{self.api}/auth/token", json={"username": "admin", "password": self.password}, timeout=30)
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        headers = {"Authorization": f"Bearer {self._token}"}
        response = requests.request(method, f"{self.api}/api/v2/{path}", timeout=60, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise SoakError(f"Airflow API {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else {}


def soak_settings(*, overrides: dict[str, str], pool_slots: int, salesforce_extra: dict):
    """airflow_settings.yaml as shipped, with ``overrides`` (Variables), the pool and Salesforce extras changed."""
    from include.settings_loader import VariableSpec, load_settings_file

    settings = load_settings_file()
    variables = {v.key: v for v in settings.variables}
    for key, value in overrides.items():
        variables[key] = replace(variables[key], value=value) if key in variables else VariableSpec(key, value)
    connections = [replace(c, extra={**(c.extra or {}), **salesforce_extra}) if c.conn_id == "salesforce_default" else c
                   for c in settings.connections]
    pools = [replace(p, slots=pool_slots) for p in settings.pools]
    return replace(settings, connections=connections, pools=pools, variables=list(variables.values()))
