"""Local stand-ins used by `make demo`, the tests and the benchmarks.

PostgreSQL: the server named by an environment variable, else an embedded one
from the ``pgserver`` wheel.  Connections are handed to Airflow as JSON in
``AIRFLOW_CONN_*`` variables so no metadata database is needed to use a hook.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def embedded_postgres(data_dir: str | Path, *, cleanup_mode: str | None = None):
    """Start (or reuse) an embedded PostgreSQL (``pgserver``) in ``data_dir``, creating its parent folders.

    ``cleanup_mode``: pgserver's (None: keep running, "stop" at exit, "delete" the data too).
    """
    import logging

    import pgserver  # imported lazily: only needed where no server is configured

    # pgserver logs its shutdown at interpreter exit, after pytest/Airflow closed their log streams
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    Path(data_dir).parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no .state/ yet
    return pgserver.get_server(str(data_dir), cleanup_mode=cleanup_mode)


def embedded_postgres_url(data_dir: str | Path) -> str:
    """Start (or reuse) an embedded PostgreSQL in ``data_dir`` and return its URL."""
    return embedded_postgres(data_dir).get_uri()


def postgres_url(env_var: str, data_dir: str | Path) -> str:
    """The URL in ``env_var`` if set, else an embedded server in ``data_dir``."""
    import os

    return os.environ.get(env_var) or embedded_postgres_url(data_dir)


def postgres_connection(url: str, *, deployteq_schema: str | None = None) -> dict:
    """Airflow connection (JSON form) for a ``postgresql://`` URL, socket URLs included."""
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or parsed.hostname or "localhost"
    conn: dict = {
        "conn_type": "postgres",
        "host": unquote(host),
        "login": unquote(parsed.username or "") or None,
        "password": unquote(parsed.password or "") or None,
        "schema": (parsed.path or "/").lstrip("/") or "postgres",
    }
    if parsed.port:
        conn["port"] = parsed.port
    extra = dict(query)
    if deployteq_schema:
        extra["deployteq_schema"] = deployteq_schema
    if extra:
        conn["extra"] = extra
    return {k: v for k, v in conn.items() if v is not None}


def salesforce_emulator_connection(connection_json: str | Path | dict, **extra) -> dict:
    """Airflow ``salesforce`` connection for the emulator (session id + instance URL + CA file).

    The session id travels in the password field so Airflow masks it like any secret.
    """
    info = connection_json if isinstance(connection_json, dict) else json.loads(Path(connection_json).read_text())
    return {
        "conn_type": "salesforce",
        "password": info["session_id"],
        "extra": {"instance_url": info["instance_url"], "ca_file": info["ca_file"], **extra},
    }


@contextlib.contextmanager
def server_context():
    """Resolve Connections/Variables like the API server does (metadata DB), as Airflow's triggerer does too."""
    previous = os.environ.get("_AIRFLOW_PROCESS_CONTEXT")
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "server"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("_AIRFLOW_PROCESS_CONTEXT", None)
        else:
            os.environ["_AIRFLOW_PROCESS_CONTEXT"] = previous
