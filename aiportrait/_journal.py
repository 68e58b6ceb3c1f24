"""The batch journal: an SQLite file that makes a batch resumable after a crash or a kill.

One row per item (kind and key). Before a charged call the row says ``submitting``; a training
acknowledged by the service becomes ``submitted`` with its job id *before* any polling; an item
ends ``done`` (with the training result, or the portrait's file, which is written atomically
before the row) or ``failed``. Every write is a committed transaction with ``synchronous=FULL``.
The calls are blocking and short; the batch runs them in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Literal

import attrs

from .errors import InvalidArgument

__all__ = ["Journal", "Record"]

Status = Literal["submitting", "submitted", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    job_id INTEGER,
    model_id TEXT,
    data TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


@attrs.frozen
class Record:
    """One item's row."""

    kind: str
    key: str
    fingerprint: str
    status: Status
    job_id: int | None = None
    model_id: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0


class Journal:
    """A batch journal in one SQLite file (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def get(self, kind: str, key: str, fingerprint: str) -> Record | None:
        """The item's row, or ``None``; refuses a key whose request changed since."""
        with self._lock:
            row = self._db.execute(
                "SELECT kind, key, fingerprint, status, job_id, model_id, data, error, attempts"
                " FROM items WHERE kind = ? AND key = ?",
                (kind, key),
            ).fetchone()
        if row is None:
            return None
        if row[2] != fingerprint:
            raise InvalidArgument(
                f"journal {self.path}: item {key!r} was recorded for a different request; "
                "use another journal or other keys"
            )
        return Record(
            kind=row[0],
            key=row[1],
            fingerprint=row[2],
            status=row[3],
            job_id=row[4],
            model_id=row[5],
            data=None if row[6] is None else json.loads(row[6]),
            error=row[7],
            attempts=row[8],
        )

    def put(
        self,
        kind: str,
        key: str,
        fingerprint: str,
        status: Status,
        *,
        job_id: int | None = None,
        model_id: str | None = None,
        data: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Write the item's row (one committed transaction)."""
        payload = None if data is None else json.dumps(data)
        bump = 1 if status == "submitting" else 0
        with self._lock:
            self._db.execute(
                "INSERT INTO items (kind, key, fingerprint, status, job_id, model_id, data,"
                " error, attempts, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET status = excluded.status,"
                " job_id = COALESCE(excluded.job_id, job_id),"
                " model_id = COALESCE(excluded.model_id, model_id),"
                " data = excluded.data, error = excluded.error,"
                " attempts = attempts + ?, updated = excluded.updated",
                (
                    kind,
                    key,
                    fingerprint,
                    status,
                    job_id,
                    model_id,
                    payload,
                    error,
                    bump,
                    time.time(),
                    bump,
                ),
            )

    def forget(self, kind: str, key: str) -> None:
        """Drop the item's row (a call that provably never left: it is simply new again)."""
        with self._lock:
            self._db.execute("DELETE FROM items WHERE kind = ? AND key = ?", (kind, key))

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """How many items are in each status."""
        query = "SELECT status, COUNT(*) FROM items"
        args: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        with self._lock:
            rows = self._db.execute(query + " GROUP BY status", args).fetchall()
        return {str(status): int(count) for status, count in rows}
