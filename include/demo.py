"""The demo: a Salesforce emulator, a Deployteq database and every demo DAG, run once.

    python -m include.demo              # what `make demo` runs
    python -m include.demo --keep-ui    # ... and leave the Airflow UI running on localhost:8080
    python -m include.demo --ui         # no DAG runs: the full Airflow (UI, scheduler, ...) until Ctrl-C
    python -m include.demo --stop       # stop what --keep-ui left running

Everything is kept under ``.state/demo`` (PostgreSQL data, emulator state, AIRFLOW_HOME, logs),
so running it again continues with the same Deployteq database and Airflow history; the
emulator starts from the demo data set each time (``--seed-demo``).  PostgreSQL is the server in
``DEPLOYTEQ_DATABASE_URL`` if set, else an embedded one (``pgserver``).  DAGs join the demo by
carrying the tag ``deployteq-demo``; the health check runs first, the others by dag_id.
Airflow's own output goes to ``.state/demo/logs/demo.log``; the console gets the report.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import traceback
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state" / "demo"
POSTGRES_DIR = STATE / "postgres"
SALESFORCE_DIR = STATE / "salesforce"
AIRFLOW_HOME = STATE / "airflow"
LOG_DIR = STATE / "logs"
PROCESSES_FILE = STATE / "processes.json"

DEMO_TAG = "deployteq-demo"
FIRST_DAG = "deployteq_health_check"
DEMO_STAGE_PREFIX = "demo-stage:"
DEPLOYTEQ_SCHEMA = "deployteq"
UI_HOST, UI_PORT = "127.0.0.1", 8080


class DemoError(RuntimeError):
    """Something the user can act on; printed without a traceback."""


# --------------------------------------------------------------------------- console and timings


class Console:
    """Writes to the real terminal while fds 1 and 2 (Airflow's chatter) go to the log file."""

    def __init__(self) -> None:
        self._out = os.fdopen(os.dup(1), "w", buffering=1)
        self.timings: list[tuple[str, float]] = []

    def say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    @contextlib.contextmanager
    def quiet(self, log_file: Path) -> Iterator[None]:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", buffering=1) as log, _fds_to(log):
            yield

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._out.write(f"  {title} ... ")
        self._out.flush()
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.say("failed")
            raise
        seconds = time.monotonic() - started
        self.timings.append((title, seconds))
        self.say(f"{seconds:.1f} s")


# --------------------------------------------------------------------------- processes we start


@dataclass
class Services:
    database_url: str
    salesforce: dict  # connection.json of the emulator
    embedded_postgres: object | None = None
    emulator: subprocess.Popen | None = None
    admin_client: object | None = None  # the emulator's admin API (request counters)


def running_processes() -> dict[str, int]:
    """Processes a previous ``--keep-ui`` left running (name -> pid), dead ones dropped."""
    if not PROCESSES_FILE.exists():
        return {}
    alive = {name: pid for name, pid in json.loads(PROCESSES_FILE.read_text()).items() if pid and _alive(pid)}
    if not alive:
        PROCESSES_FILE.unlink(missing_ok=True)  # e.g. after a reboot
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_postgres(*, keep_running: bool) -> tuple[str, object | None]:
    url = os.environ.get("DEPLOYTEQ_DATABASE_URL")
    if url:
        return url, None
    from include.local_services import embedded_postgres

    # cleanup_mode "stop": the server stops when this process exits (unless asked to keep it).
    server = embedded_postgres(POSTGRES_DIR, cleanup_mode=None if keep_running else "stop")
    return server.get_uri(), server


def stop_embedded_postgres(data_dir: Path = POSTGRES_DIR) -> bool:
    """Stop the embedded server of ``data_dir`` if it runs (also used by `make clean` for the tests' one)."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    import pgserver

    pgserver.get_server(str(data_dir), cleanup_mode="stop").cleanup()
    return True


def start_emulator(log_file: Path, *, timeout: float = 90.0) -> tuple[subprocess.Popen, dict]:
    """Start the Salesforce emulator with demo data; return once it wrote connection.json."""
    SALESFORCE_DIR.mkdir(parents=True, exist_ok=True)
    connection_json = SALESFORCE_DIR / "connection.json"
    connection_json.unlink(missing_ok=True)  # a stale file would look like "ready"
    log = open(log_file, "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "include.salesforce_emulator", "--port", str(_emulator_port()),
         "--state-dir", str(SALESFORCE_DIR), "--seed-demo"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # our own process group: stopping it never hits the caller
    )
    deadline = time.monotonic() + timeout
    while not connection_json.exists():
        if process.poll() is not None:
            raise DemoError(f"the Salesforce emulator exited with code {process.returncode}; see {log_file}")
        if time.monotonic() > deadline:
            stop_process(process.pid)
            raise DemoError(f"the Salesforce emulator did not start within {timeout:.0f} s; see {log_file}")
        time.sleep(0.1)
    info = json.loads(connection_json.read_text())
    (SALESFORCE_DIR / "demo-port").write_text(info["instance_url"].rsplit(":", 1)[-1])
    return process, info


def _emulator_port() -> int:
    """The port of the last run when it is free again (a stable instance URL keeps the connection and
    the API budget key the same across runs), else 0 = any free port."""
    import socket

    try:
        port = int((SALESFORCE_DIR / "demo-port").read_text())
    except (OSError, ValueError):
        return 0
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def stop_process(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM the process group of ``pid`` (we start every child in its own group), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (started by an earlier run): poll instead
            finished = 0 if _alive(pid) else pid
        if finished:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_everything(console: Console) -> None:
    """``--stop``: end what an earlier ``--keep-ui`` left running."""
    processes = running_processes()
    for name, pid in processes.items():
        if name != "postgres":
            console.say(f"  stopping {name} (pid {pid})")
            stop_process(pid)
    if stop_embedded_postgres():
        console.say("  stopping embedded PostgreSQL")
    PROCESSES_FILE.unlink(missing_ok=True)
    if not processes:
        console.say("  nothing was running")


# --------------------------------------------------------------------------- Airflow environment


def _secret_file(name: str, make, home: Path = AIRFLOW_HOME) -> str:
    path = home / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


OPENLINEAGE_FILE = "openlineage-events.jsonl"


def airflow_environment(home: Path = AIRFLOW_HOME, port: int = UI_PORT) -> dict[str, str]:
    """Settings for the demo's Airflow (``make soak`` builds on them); secrets are generated once and kept in ``home``."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": _secret_file("fernet.key", lambda: urlsafe_b64encode(os.urandom(32)).decode(), home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__API__HOST": UI_HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        # Shared by the API server and the workers, so task tokens verify across processes.
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file("jwt.secret", lambda: secrets.token_urlsafe(64), home),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        # the demo environment runs its DAGs once the scheduler is up (`make ui`); production keeps the default
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # the Test button of Admin -> Connections (Airflow 3 disables it by default; the demo's one user is admin)
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # OpenLineage events of every task, one JSON line each (the demo report lists them)
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(home / OPENLINEAGE_FILE),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "deployteq-demo",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }


def connection_environment(database_url: str, salesforce: dict, home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """The ``${VAR}`` values airflow_settings.yaml needs, from the services just started."""
    from include.local_services import postgres_connection

    pg = postgres_connection(database_url)
    return {
        "SALESFORCE_SESSION_ID": salesforce["session_id"],
        "SALESFORCE_INSTANCE_URL": salesforce["instance_url"],
        "SALESFORCE_CA_FILE": salesforce["ca_file"],
        "DEPLOYTEQ_DB_HOST": pg["host"],
        "DEPLOYTEQ_DB_PORT": str(pg.get("port", "")),
        "DEPLOYTEQ_DB_NAME": pg["schema"],
        "DEPLOYTEQ_DB_USER": pg.get("login", "postgres"),
        "DEPLOYTEQ_DB_PASSWORD": pg.get("password", ""),
        "DEPLOYTEQ_SCHEMA": os.environ.get("DEPLOYTEQ_SCHEMA", DEPLOYTEQ_SCHEMA),
        # bearer token of the webhook receivers (Connection deployteq_webhook), generated once
        "DEPLOYTEQ_WEBHOOK_TOKEN": _secret_file("webhook.token", lambda: secrets.token_urlsafe(32), home),
    }


def migrate_airflow_db(log_file: Path) -> str:
    from airflow.utils import db

    try:
        db.check_migrations(timeout=0)
        return "already current"
    except Exception:  # missing file/tables or an older revision
        pass
    with open(log_file, "a") as log:
        result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode:
        raise DemoError(f"`airflow db migrate` failed (exit {result.returncode}); see {log_file}")
    return "migrated"


def load_settings() -> list:
    from include.settings_loader import apply_settings, consistency_warnings, load_settings_file

    settings = load_settings_file()
    for warning in consistency_warnings(settings):
        print(f"warning: {warning}")
    return apply_settings(settings)


# --------------------------------------------------------------------------- the DAG runs


@dataclass
class DagResult:
    dag_id: str
    state: str
    seconds: float
    failed_tasks: list[str]
    api_requests: int | None
    log_file: Path
    error_lines: list[str]
    returns: dict = field(default_factory=dict)  # task_id -> return value (XCom), successful tasks


def demo_stage(dag) -> int:
    """Order of a demo DAG: the tag ``demo-stage:N`` (inbound syncs before flows that need their
    customers), the health check first, untagged DAGs in the middle."""
    if dag.dag_id == FIRST_DAG:
        return 0
    for tag in dag.tags:
        if tag.startswith(DEMO_STAGE_PREFIX) and tag[len(DEMO_STAGE_PREFIX):].isdigit():
            return int(tag[len(DEMO_STAGE_PREFIX):])
    return 50


def demo_dags() -> tuple[list, dict[str, str]]:
    """DAGs tagged ``deployteq-demo`` (by demo stage, then dag_id) and import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=ROOT / "dags", safe_mode=False)
    dags = [dag for dag in bag.dags.values() if DEMO_TAG in dag.tags]
    dags.sort(key=lambda dag: (demo_stage(dag), dag.dag_id))
    return dags, dict(bag.import_errors)


def run_dag(dag, emulator_client, log_file: Path) -> DagResult:
    before = _request_total(emulator_client)
    started = time.monotonic()
    log_file.unlink(missing_ok=True)
    # Airflow's task output goes to a log file per DAG; the console only gets the outcome.
    with open(log_file, "a", buffering=1) as log, _fds_to(log):
        try:
            dag_run = dag.test()
            state = str(getattr(dag_run.state, "value", dag_run.state))
            task_instances = dag_run.get_task_instances()
            failed = sorted(ti.task_id for ti in task_instances if ti.state in ("failed", "upstream_failed"))
            returns = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in task_instances if ti.state == "success"}
        except Exception:
            traceback.print_exc()
            state, failed, returns = "error", [], {}
    after = _request_total(emulator_client)
    return DagResult(
        dag_id=dag.dag_id, state=state, seconds=time.monotonic() - started, failed_tasks=failed,
        api_requests=None if before is None or after is None else after - before,
        log_file=log_file, error_lines=_error_lines(log_file) if state != "success" else [], returns=returns,
    )


@contextlib.contextmanager
def _fds_to(log) -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exceeded|Exhausted|Expired|Failed)\w*: .+")


def _error_lines(log_file: Path, limit: int = 3) -> list[str]:
    """The most telling lines of a failed run's log: the exception messages, else error-level lines."""
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)] or [line for line in lines if "[error" in line]
    return list(dict.fromkeys(found))[-limit:]


def _request_total(client) -> int | None:
    if client is None:
        return None
    try:
        return int(client.counters()["total"])
    except Exception:
        return None


def emulator_admin_client(info: dict):
    try:
        from include.salesforce_emulator.client import EmulatorClient

        return EmulatorClient(info)
    except Exception:
        return None


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.demo", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--keep-ui", action="store_true",
                      help="after the runs, leave the Airflow API server (and emulator, database) running")
    mode.add_argument("--ui", action="store_true",
                      help="no DAG runs: start the whole Airflow (UI, scheduler, ...) until Ctrl-C")
    mode.add_argument("--stop", action="store_true", help="stop what --keep-ui left running")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its exit hook chats at INFO level
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    if args.stop:
        with console.quiet(LOG_DIR / "demo.log"):
            stop_everything(console)
        return 0
    if running_processes():
        console.say("The demo UI from an earlier `--keep-ui` is still running; stop it first: make stop")
        return 1

    started_wall = time.monotonic()
    run_stamp = datetime.now(timezone.utc)
    log_file = LOG_DIR / "demo.log"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    services: Services | None = None
    console.say(f"Deployteq <-> Salesforce demo (state in {STATE.relative_to(ROOT)}, Airflow output in "
                f"{log_file.relative_to(ROOT)})")
    try:
        with console.quiet(log_file):
            services = start_services(console, log_file, keep_running=args.keep_ui)
            os.environ.update(airflow_environment())
            os.environ.update(connection_environment(services.database_url, services.salesforce))
            with console.step("Airflow metadata DB (import Airflow, migrate if needed)"):
                migrate_airflow_db(log_file)
            with console.step("Load airflow_settings.yaml"):
                changes = load_settings()
            console.say("    " + "; ".join(str(c) for c in changes if c.action != "unchanged")
                        if any(c.action != "unchanged" for c in changes) else "    all settings unchanged")
            if args.ui or args.keep_ui:
                with console.step("Switch on the project's DAGs (except those paused by hand)"):
                    from include.demo_unpause import unpause_project_dags

                    switched = unpause_project_dags()
                console.say(f"    switched on: {', '.join(switched)}" if switched else "    nothing to switch on")
            if not args.ui:
                results, import_errors = run_demo_dags(console, services)
                with console.step("Push one object through the webhook endpoint (R10)"):
                    push_line = demo_webhook_push(services)
                console.say(f"    {push_line}")
                with console.step("Preview a mapping change (dry run, writes nothing)"):
                    preview_lines = demo_preview()
                from include.demo_report import build_report

                report = lambda: build_report(  # noqa: E731 - evaluated after the services stopped
                    results=results, import_errors=import_errors, store=store, since=run_stamp,
                    emulator_limits=emulator_limits, timings=console.timings,
                    total_seconds=time.monotonic() - started_wall, schema=os.environ["DEPLOYTEQ_SCHEMA"],
                    asset_events=asset_events, lineage_events=lineage_events, preview_lines=preview_lines,
                )
                from include.demo_report import read_asset_events, read_lineage_events, read_store

                asset_events = read_asset_events(run_stamp)
                lineage_events = read_lineage_events(AIRFLOW_HOME / OPENLINEAGE_FILE, run_stamp)

                store = read_store(services.database_url, os.environ["DEPLOYTEQ_SCHEMA"], run_stamp)
                emulator_limits = _emulator_limits(services.admin_client)
        if args.ui:
            return run_full_airflow(console)
        if args.keep_ui:
            start_api_server(console, services, log_file)
        else:
            _stop(console, services, log_file)
            services = None
        console.say()
        console.say(report())
        ok = all(r.state == "success" for r in results) and not import_errors
        return 0 if ok else 1
    except DemoError as error:
        console.say(f"\nerror: {error}")
        return 1
    except Exception:
        with open(log_file, "a") as log:
            traceback.print_exc(file=log)
        console.say(f"\nerror: {traceback.format_exc().strip().splitlines()[-1]}  (details in {log_file})")
        return 1
    finally:
        if services is not None and not args.keep_ui:
            _stop(console, services, log_file)


def demo_preview() -> list[str]:
    """The preview's summary, or why it could not run (a show-case: it must not hide the report)."""
    try:
        from include.demo_preview import preview_demo_change

        return preview_demo_change()
    except Exception as error:
        return [f"could not run: {type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"]


def _stop(console: Console, services: Services, log_file: Path) -> None:
    what = "emulator and embedded PostgreSQL" if services.embedded_postgres is not None else "emulator"
    with console.quiet(log_file), console.step(f"Stop {what}"):
        shut_down(console, services)


def _emulator_limits(client) -> dict | None:
    try:
        return client.limits_state() if client is not None else None
    except Exception:
        return None


def start_services(console: Console, log_file: Path, *, keep_running: bool) -> Services:
    label = "PostgreSQL (DEPLOYTEQ_DATABASE_URL)" if os.environ.get("DEPLOYTEQ_DATABASE_URL") else "PostgreSQL (embedded)"
    with console.step(f"Start {label}"):
        url, embedded = start_postgres(keep_running=keep_running)
    try:
        with console.step("Start Salesforce emulator with demo data"):
            emulator, info = start_emulator(LOG_DIR / "emulator.log")
    except BaseException:
        if embedded is not None and not keep_running:
            embedded.cleanup()
        raise
    return Services(database_url=url, salesforce=info, embedded_postgres=embedded, emulator=emulator,
                    admin_client=emulator_admin_client(info))


def demo_webhook_push(services: Services) -> str:
    from include.demo_webhook import push_demo_object

    try:
        return push_demo_object(services.database_url, os.environ["DEPLOYTEQ_SCHEMA"], os.environ["DEPLOYTEQ_WEBHOOK_TOKEN"])
    except Exception as error:  # the push is a show-case; its failure must not hide the report
        traceback.print_exc()
        return f"failed: {type(error).__name__}: {error}"


def _demo_store():
    from deployteq_salesforce.hooks.deployteq import DeployteqHook

    store = DeployteqHook()
    store.migrate()
    return store


def _demo_contact_moments(dag) -> dict:
    """E-mails "sent from Deployteq" to the customers the Lead/Contact syncs brought in."""
    from include.demo_contact_moments import seed_demo_contact_moments

    return seed_demo_contact_moments(_demo_store())


def _demo_preference_changes(dag) -> dict:
    """A few customers change their preferences; the queue table is the one the campaign DAG defines."""
    from include.demo_campaign import play_preference_centre

    queue_ddl = dag.get_task("preference_queue").python_callable.__globals__["QUEUE_DDL"]
    return play_preference_centre(_demo_store(), queue_ddl)


# Demo data a DAG needs, made right before the demo runs it (production DAGs carry no demo code).
DEMO_PREPARATIONS = {
    "deployteq_contact_moments": _demo_contact_moments,
    "deployteq_campaign_synchronize": _demo_preference_changes,
}


def run_demo_dags(console: Console, services: Services) -> tuple[list[DagResult], dict[str, str]]:
    with console.step("Parse DAGs"):
        dags, import_errors = demo_dags()
    results = []
    for dag in dags:
        prepare = DEMO_PREPARATIONS.get(dag.dag_id)
        if prepare is not None:
            from include.local_services import server_context

            with console.step(f"Demo data for {dag.dag_id}"), server_context():  # connections from the metadata DB
                console.say(f"    {prepare(dag)}")
        with console.step(f"Run {dag.dag_id}"):
            result = run_dag(dag, services.admin_client, LOG_DIR / f"{dag.dag_id}.log")
        results.append(result)
        if result.state != "success":
            console.say(f"    {result.state}; see {result.log_file.relative_to(ROOT)}")
    return results, import_errors


def start_api_server(console: Console, services: Services, log_file: Path) -> None:
    log = open(LOG_DIR / "api-server.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", "api-server", "--host", UI_HOST, "--port", str(UI_PORT)],
        cwd=ROOT, env=os.environ.copy(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    processes = {"api-server": process.pid}
    if services.emulator is not None:
        processes["salesforce-emulator"] = services.emulator.pid
    if services.embedded_postgres is not None:
        processes["postgres"] = services.embedded_postgres.get_pid()
    PROCESSES_FILE.write_text(json.dumps(processes, indent=2))
    console.say()
    console.say(f"The Airflow UI is starting on http://localhost:{UI_PORT} (log: {LOG_DIR.relative_to(ROOT)}/api-server.log).")
    console.say(f"  Log in as admin; the password is in {(AIRFLOW_HOME / 'simple_auth_manager_passwords.json.generated').relative_to(ROOT)}")
    console.say("  (Airflow writes it when the API server first starts).")
    console.say("  The emulator and PostgreSQL keep running with it.  Stop everything with: make stop")


def run_full_airflow(console: Console) -> int:
    """``--ui``: `airflow standalone` (API server, scheduler, DAG processor, triggerer) in the foreground."""
    console.say()
    console.say(f"Starting Airflow on http://localhost:{UI_PORT}: Ctrl-C stops it and the demo services.")
    console.say(f"  Log in as admin; the password is in "
                f"{(AIRFLOW_HOME / 'simple_auth_manager_passwords.json.generated').relative_to(ROOT)}")
    env = os.environ.copy()
    # standalone starts its components as `airflow ...`: our venv's bin must come first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    process = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], cwd=ROOT, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        pass
    # Ctrl-C in a terminal reaches standalone too, and it stops its components; give it time,
    # and pass the signal on if only we got it.
    for nudge in (lambda: None, lambda: process.send_signal(signal.SIGINT), process.terminate, process.kill):
        nudge()
        try:
            process.wait(timeout=20)
            break
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue
    return 0


def shut_down(console: Console, services: Services) -> None:
    if services.emulator is not None:
        # The emulator finishes open keep-alive connections before it exits: close ours first
        # (the admin client's, and the hooks' sessions left over from the DAG runs).
        session = getattr(services.admin_client, "session", None)
        if session is not None:
            session.close()
        gc.collect()
        stop_process(services.emulator.pid, timeout=5.0)
    if services.embedded_postgres is not None:
        services.embedded_postgres.cleanup()


if __name__ == "__main__":
    sys.exit(main())
