"""The Airflow environment of the test suite.

``configure()`` must run before anything imports Airflow: Airflow reads its configuration
(and ``AIRFLOW_HOME``) once, at import time.  ``tests/conftest.py`` calls it first thing.
The metadata database is a SQLite file under ``.state/airflow-test``; it is only created
when a test asks for the ``airflow_db`` fixture (``migrate_metadata_db``).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_TEST_HOME = ROOT / ".state" / "airflow-test"

# A fixed key, for tests only: secrets in the test metadata DB are encrypted like in production.
TEST_FERNET_KEY = "G9mQy2Jp1bX0nQw8g6y4w2h5b0oA7f3kR1sT9uV2xYc="


def airflow_test_environment(home: Path = AIRFLOW_TEST_HOME) -> dict[str, str]:
    """Environment variables that make Airflow quiet, local and self-contained for tests."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__FERNET_KEY": TEST_FERNET_KEY,
        # 64 bytes or more: the API server signs its JWTs with HMAC-SHA512
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-" + "0123456789abcdef" * 4,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        # DAG files must parse fast and never need the network (see test_dag_integrity).
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "60",
    }


def configure(home: Path = AIRFLOW_TEST_HOME) -> None:
    """Point Airflow at the test home; values already in the environment are overridden on purpose."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_test_environment(home))


def migrate_metadata_db(home: Path = AIRFLOW_TEST_HOME) -> None:
    """Create or upgrade the test metadata DB; a quick no-op when it is current.

    A file lock serialises pytest runs started at the same time in one checkout, which
    would otherwise both try to create the same SQLite tables.
    """
    import fcntl

    from airflow.utils import db

    home.mkdir(parents=True, exist_ok=True)
    with open(home / "migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not metadata_db_is_current():
            db.initdb()


def metadata_db_is_current() -> bool:
    from airflow.utils import db

    try:
        db.check_migrations(timeout=0)
    except Exception:  # a missing file, missing tables or an old revision all mean "migrate"
        return False
    return True
