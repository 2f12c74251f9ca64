"""Plain values of the Deployteq store, and discovery of its SQL migrations.

No Airflow and no database here: ``hooks/deployteq.py`` does the talking to PostgreSQL,
these are the values it takes and returns, so pure modules and tests can use them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

DEFAULT_SCHEMA = "deployteq"
# PostgreSQL truncates longer identifiers silently; a truncated schema name would be a different schema
MAX_IDENTIFIER_BYTES = 63

RUN_OUTCOMES = ("running", "success", "failed", "limited", "partial", "crashed")
FINAL_RUN_OUTCOMES = tuple(o for o in RUN_OUTCOMES if o != "running")
# counters that have their own column in run_log; any other count goes into run_log.details
RUN_COUNT_COLUMNS = ("fetched", "inserted", "updated", "merged", "skipped", "errors", "deleted")


@dataclass(frozen=True)
class UpsertCounts:
    """What one ``copy_upsert`` did.  Rows whose values were already current count as ``unchanged``."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def written(self) -> int:
        return self.inserted + self.updated

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        if not isinstance(other, UpsertCounts):
            return NotImplemented
        return UpsertCounts(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


@dataclass(frozen=True)
class RecordError:
    """One record a flow could not process; stored in ``sync_error`` until resolved."""

    record_id: str | None
    reason: str
    detail: Mapping[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class Watermark:
    """Where an incremental read stands: the last ``SystemModstamp`` and, for ties, the last Id."""

    modstamp: datetime | None
    last_id: str | None = None


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def checksum(self) -> str:
        """Identifies the file's content, to notice an applied migration that was edited afterwards."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The numbered ``NNNN_name.sql`` files of ``directory``, in order.

    Versions must run 1, 2, 3, ... without gaps or duplicates, and every ``.sql`` file must follow
    the naming pattern: a migration that is silently skipped is worse than a loud error.
    """
    migrations: dict[int, Migration] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(
                f"Migration file {path.name!r} in {directory} is not named NNNN_lower_case_name.sql "
                "(four digits, underscore, lower-case name); rename it so it is applied."
            )
        version = int(match["version"])
        if version in migrations:
            raise ValueError(
                f"Migrations {migrations[version].filename!r} and {path.name!r} share version {version}; "
                "give one of them the next free number."
            )
        migrations[version] = Migration(version, match["name"], path)
    expected = list(range(1, len(migrations) + 1))
    if sorted(migrations) != expected:
        missing = sorted(set(range(1, max(migrations, default=0) + 1)) - set(migrations))
        raise ValueError(f"Migration versions in {directory} must be consecutive from 1; missing: {missing}")
    return [migrations[v] for v in expected]


def validate_schema_name(name: Any, *, source: str) -> str:
    """A usable PostgreSQL schema name, or a ValueError that says where the bad value came from."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source} must be a non-empty schema name, got {name!r}")
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"{source} {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would truncate it. "
            "Choose a shorter schema name."
        )
    if "\x00" in name:
        raise ValueError(f"{source} {name!r} contains a NUL character")
    return name


def split_run_counts(counts: Mapping[str, Any] | None) -> tuple[dict[str, int], dict[str, Any]]:
    """Split a flow's counts into run_log counter columns and the rest (stored in ``details``).

    Counter values must be whole, non-negative numbers: a count that is not is a bug in the flow,
    and the run log is where people look when things go wrong, so it must not hide it.
    """
    columns: dict[str, int] = {}
    details: dict[str, Any] = {}
    for key, value in (counts or {}).items():
        if key in RUN_COUNT_COLUMNS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"run count {key!r} must be a non-negative integer, got {value!r}")
            columns[key] = value
        else:
            details[str(key)] = value
    return columns, details


def check_upsert_columns(
    table: str,
    columns: list[str],
    key_columns: list[str],
    update_columns: list[str] | None,
) -> list[str]:
    """Validate the column lists of an upsert and return the columns to update.

    By default every non-key column is updated.  An empty result means "insert new rows only".
    """
    if not columns:
        raise ValueError(f"copy_upsert into {table!r}: no columns given")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ValueError(f"copy_upsert into {table!r}: columns listed twice: {duplicates}")
    if not key_columns:
        raise ValueError(f"copy_upsert into {table!r}: key_columns is empty; name the unique key to match rows on")
    unknown_keys = [c for c in key_columns if c not in columns]
    if unknown_keys:
        raise ValueError(f"copy_upsert into {table!r}: key columns {unknown_keys} are not among the columns {columns}")
    if update_columns is None:
        return [c for c in columns if c not in key_columns]
    unknown = [c for c in update_columns if c not in columns]
    if unknown:
        raise ValueError(f"copy_upsert into {table!r}: update columns {unknown} are not among the columns {columns}")
    keys_in_update = [c for c in update_columns if c in key_columns]
    if keys_in_update:
        raise ValueError(f"copy_upsert into {table!r}: key columns {keys_in_update} cannot also be update columns")
    return list(dict.fromkeys(update_columns))
