"""SQLite persistence of the emulator state (records, deletion log, settings, request usage).

The in-memory store is the source of truth while the server runs.  Writes are queued to one
writer thread, which batches them into transactions: a request never waits for the disk, and
the writes of one request are applied in order.  ``close()`` (graceful shutdown) drains the
queue; a killed process loses at most the last fraction of a second of changes.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import jsonutil

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (id TEXT PRIMARY KEY, sobject TEXT NOT NULL, deleted_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS usage (ts REAL NOT NULL);
"""
_STOP = object()


class StateDB:
    keeps_records = True  # records and deletions are saved here (Txn.commit saves none to a memory-only org)

    def __init__(self, path: str | Path):
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")  # a crash of the machine is not our concern
        self.conn.executescript(_SCHEMA)
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="emulator-sqlite-writer", daemon=True)
        self._writer.start()

    # --- the writer thread ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            operation = self._queue.get()
            batch = [operation]
            while True:  # take everything queued so far into one transaction
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            try:
                self.conn.execute("BEGIN")
                for item in batch:
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, threading.Event):
                        continue
                    else:
                        item(self.conn)
                self.conn.execute("COMMIT")
            except BaseException as error:  # keep serving; report on flush/close
                self._error = error
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if stop:
                return

    def _submit(self, operation: Callable[[sqlite3.Connection], None]) -> None:
        self._queue.put(operation)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything queued so far is on disk."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing emulator state failed: {error}") from error

    def close(self) -> None:
        self._queue.put(_STOP)
        self._writer.join(60)
        self.conn.close()

    # --- records --------------------------------------------------------------------------------
    def load_records(self) -> Iterator[tuple[str, dict]]:
        for sobject, data in self.conn.execute("SELECT sobject, data FROM records ORDER BY rowid"):
            yield sobject, jsonutil.loads(data)

    def save_records(self, rows: list[tuple[str, dict]]) -> None:
        """Store records (dicts that are never changed after this call; they are encoded later)."""
        dumps = jsonutil.dumps

        def save(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR REPLACE INTO records (id, sobject, data) VALUES (?, ?, ?)",
                ((record["Id"], sobject, dumps(record)) for sobject, record in rows),
            )

        self._submit(save)

    def delete_records(self, ids: list[str]) -> None:
        self._submit(lambda conn: conn.executemany("DELETE FROM records WHERE id = ?", ((i,) for i in ids)))

    def clear_records(self) -> None:
        def clear(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM records")
            conn.execute("DELETE FROM tombstones")

        self._submit(clear)

    # --- deletion log ---------------------------------------------------------------------------
    def load_tombstones(self) -> Iterator[tuple[str, str, str]]:
        yield from self.conn.execute("SELECT id, sobject, deleted_date FROM tombstones")

    def save_tombstones(self, rows: list[tuple[str, str, str]]) -> None:
        self._submit(lambda conn: conn.executemany("INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?)", rows))

    def delete_tombstones(self, ids: list[str]) -> None:
        self._submit(lambda conn: conn.executemany("DELETE FROM tombstones WHERE id = ?", ((i,) for i in ids)))

    # --- settings (read at start-up only; written through the queue) -----------------------------
    def get_meta(self, key: str, default=None):
        self.flush()
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return jsonutil.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        data = jsonutil.dumps(value)
        self._submit(lambda conn: conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, data)))

    # --- request usage (rolling windows) --------------------------------------------------------
    def add_usage(self, ts: float) -> None:
        self._submit(lambda conn: conn.execute("INSERT INTO usage (ts) VALUES (?)", (ts,)))

    def load_usage(self, since: float) -> list[float]:
        self.flush()
        return [row[0] for row in self.conn.execute("SELECT ts FROM usage WHERE ts > ? ORDER BY ts", (since,))]

    def prune_usage(self, before: float) -> None:
        self._submit(lambda conn: conn.execute("DELETE FROM usage WHERE ts <= ?", (before,)))

    def wipe(self, *, keep_meta: Iterable[str] = ()) -> None:
        keep = list(keep_meta)

        def wipe(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM records")
            conn.execute("DELETE FROM tombstones")
            conn.execute("DELETE FROM usage")
            placeholders = ",".join("?" for _ in keep) or "''"
            conn.execute(f"DELETE FROM meta WHERE key NOT IN ({placeholders})", keep)

        self._submit(wipe)


class MemoryOnlyStateDB(StateDB):
    """The state of an org kept in memory only (``--memory-only``): settings, counters and usage in an in-memory
    SQLite database, records and deletions nowhere but in the store.

    For the benchmarks, which start a fresh emulator for every run: a real org's storage costs the machine running
    our flows nothing, while writing every record of a Bulk job to SQLite took the emulator 1-2 s of CPU per
    100,000 records on the two cores the flow being measured uses.  A restart starts with an empty org."""

    keeps_records = False  # Txn.commit does not even list what a Bulk job changed (0.06 s per 100,000 records)

    def __init__(self) -> None:
        super().__init__(":memory:")
