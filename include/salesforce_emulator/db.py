"""SQLite persistence of the emulator state (records, deletion log, settings, request usage).

The in-memory store is the source of truth while the server runs; every change is written
through here before the response goes out, so a restarted emulator sees the same org.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import jsonutil

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, deleted_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS usage (ts REAL NOT NULL);
"""


class StateDB:
    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # Durability against a crash of the machine is not needed; against a killed process it is (WAL).
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.executescript(_SCHEMA)

    # records ----------------------------------------------------------------------------------
    def load_records(self) -> Iterator[tuple[str, dict]]:
        for sobject, data in self.conn.execute("SELECT sobject, data FROM records ORDER BY rowid"):
            yield sobject, jsonutil.loads(data)

    def save_records(self, rows: Iterable[tuple[str, dict]]) -> None:
        dumps = jsonutil.dumps
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO records (id, sobject, data) VALUES (?, ?, ?)",
                ((record["Id"], sobject, dumps(record)) for sobject, record in rows),
            )

    def delete_records(self, ids: Iterable[str]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM records WHERE id = ?", ((i,) for i in ids))

    # deletion log -----------------------------------------------------------------------------
    def load_tombstones(self) -> Iterator[tuple[str, str, str]]:
        yield from self.conn.execute("SELECT id, sobject, deleted_date FROM tombstones")

    def save_tombstones(self, rows: Iterable[tuple[str, str, str]]) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)", rows)

    def delete_tombstones(self, ids: Iterable[str]) -> None:
        with self.conn:
            self.conn.executemany("DELETE FROM tombstones WHERE id = ?", ((i,) for i in ids))

    # settings ---------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return jsonutil.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, jsonutil.dumps(value)))

    # request usage (rolling windows) ----------------------------------------------------------
    def add_usage(self, ts: float) -> None:
        self.conn.execute("INSERT INTO usage (ts) VALUES (?)", (ts,))

    def load_usage(self, since: float) -> list[float]:
        return [row[0] for row in self.conn.execute("SELECT ts FROM usage WHERE ts > ? ORDER BY ts", (since,))]

    def prune_usage(self, before: float) -> None:
        self.conn.execute("DELETE FROM usage WHERE ts <= ?", (before,))

    def wipe(self, *, keep_meta: Iterable[str] = ()) -> None:
        keep = list(keep_meta)
        with self.conn:
            self.conn.execute("DELETE FROM records")
            self.conn.execute("DELETE FROM tombstones")
            self.conn.execute("DELETE FROM usage")
            placeholders = ",".join("?" for _ in keep) or "''"
            self.conn.execute(f"DELETE FROM meta WHERE key NOT IN ({placeholders})", keep)

    def close(self) -> None:
        self.conn.close()
