"""The batch journal: an SQLite file that makes a batch resumable after a crash or a kill.

One row per item (kind and key, the key stored with its type so that ``1`` and ``"1"`` are two
items). A key stays bound to one request: its fingerprint is checked on every write. An item is
*claimed* (``submitting``) by one atomic statement, only when its request is about to be
written on the wire; a training acknowledged by the service becomes ``submitted`` with its job
id *before* any polling; an item ends ``done`` (with the training result, or the portrait's
file name, the file being written atomically before the row) or ``failed``. Every write is a
committed transaction with ``synchronous=FULL``.

The file (and SQLite's ``-wal`` and ``-shm`` beside it, and the lock file) is created ``0600``
(a missing folder ``0700``) unless ``shared=True`` (see :mod:`aiportrait._files`). No URL is
stored: uploads by object key and content hash, training states without their URLs' query.

A journal is owned by one run at a time: :class:`Journal` holds an OS-level lock on a file
beside it (``<journal>.lock``, which names the holder) for as long as it is open, and a second
run is refused with :class:`~aiportrait.errors.JournalLocked`. The calls are blocking and
short; the batch runs them in a worker thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._files import make_dir, open_new
from .._wire.signing import public_json
from ..errors import InvalidArgument, JournalError
from .journal_format import (
    DURATIONS_TABLE,
    FORMAT,
    ITEMS_TABLE,
    MIGRATES,
    UPLOADS_TABLE,
    Record,
    Status,
    key_text,
    migrate,
    read_row,
)
from .lockfile import FileLock

__all__ = ["Journal", "Record", "key_text"]

_ASIDE = "move it aside to start over (the items it recorded would then be submitted again)"


class Journal:
    """A batch journal in one SQLite file (created when missing).

    Opening it takes the journal's lock (refused with
    :class:`~aiportrait.errors.JournalLocked` while another run holds it) until :meth:`close`;
    ``lock=False`` opens it without the lock, only to look at it (:meth:`counts`,
    :meth:`get`) while a run may own it. A file that SQLite cannot read raises
    :class:`~aiportrait.errors.JournalError`. The files it creates are private unless
    ``shared`` (see :mod:`aiportrait._files`). A journal of an older format is migrated
    (:func:`~aiportrait._batches.journal_format.migrate`: the URLs it held are dropped) when
    opened with the lock, or with ``memo=True`` (to remember uploads in it: an uploader's
    ``journal=``); opened only to look at, it is read as it is.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock: bool = True,
        shared: bool = False,
        memo: bool = False,
    ) -> None:
        self.path = Path(path)
        self._migrates = lock or memo
        self._lock = threading.Lock()
        self._closed = False
        self._owner: FileLock | None = None
        if lock:
            make_dir(self.path.parent, shared=shared)
            self._owner = FileLock.acquire(self.path, shared=shared)
        try:
            if not self.path.exists():  # SQLite would create it by the umask (and its -wal too)
                make_dir(self.path.parent, shared=shared)
                os.close(open_new(self.path, os.O_RDWR, shared=shared))
            self._db = self._open()
        except BaseException:
            if self._owner is not None:
                self._owner.release()
            raise

    def _open(self) -> sqlite3.Connection:
        db = None
        try:
            # A writer elsewhere (another worker sharing the file) is waited for, not an error.
            db = sqlite3.connect(
                self.path, timeout=30.0, check_same_thread=False, isolation_level=None
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA secure_delete=ON")  # a dropped row leaves no trace in the file
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(str(p) for p in problems))
            has_items = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'items'"
            ).fetchone()
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if has_items and version != FORMAT and version not in MIGRATES:
                raise JournalError(
                    f"journal {self.path} was written by another version of aiportrait (format "
                    f"{version}, this version reads {FORMAT}); finish its batch with that "
                    f"version, or {_ASIDE}",
                    path=self.path,
                )
            columns = [row[1] for row in db.execute("PRAGMA table_info(uploads)")]
            if self._migrates and ((has_items and version != FORMAT) or "url" in columns):
                db.execute("BEGIN IMMEDIATE")
                migrate(db)
                db.execute("COMMIT")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no old page left in the -wal
            if not has_items and self._owner is not None:
                db.execute("BEGIN IMMEDIATE")
                db.execute(ITEMS_TABLE)
                db.execute(f"PRAGMA user_version = {FORMAT}")
                db.execute("COMMIT")
            if self._owner is not None:
                db.execute(DURATIONS_TABLE)
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise self._unreadable(exc) from exc
        except BaseException:
            if db is not None:
                db.close()
            raise
        return db

    def _unreadable(self, exc: sqlite3.Error) -> JournalError:
        return JournalError(f"journal {self.path} cannot be read ({exc}); {_ASIDE}", path=self.path)

    @contextmanager
    def _using(self, *, write: bool = False, shared: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the thread lock; writes in one ``BEGIN IMMEDIATE`` transaction.

        ``shared``: a write any holder may make (the uploads memo), not only the owner.
        SQLite errors become :class:`JournalError`.
        """
        if write and self._owner is None and not shared:
            raise InvalidArgument(f"journal {self.path} was opened to look at only (lock=False)")
        with self._lock:
            try:
                if not write:
                    yield self._db
                    return
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise self._unreadable(exc) from exc

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the file and give up the lock."""
        with self._lock:
            self._closed = True
            self._db.close()
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def get(self, kind: str, key: str, fingerprint: str) -> Record | None:
        """The item's row, or ``None``; refuses a key whose request changed since.

        ``key`` is the stored form (:func:`key_text`). A row that cannot be read raises
        :class:`JournalError` naming the item.
        """
        with self._using() as db:
            row = db.execute(
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
        try:
            return read_row(row)
        except (ValueError, TypeError) as exc:
            raise JournalError(
                f"journal {self.path}: the row of item {key!r} cannot be read ({exc}); {_ASIDE}",
                path=self.path,
                key=key,
            ) from exc

    def claim(self, kind: str, key: str, fingerprint: str, seen: Record | None) -> bool:
        """Mark the item ``submitting``, in one atomic statement, if its row is still ``seen``.

        ``seen`` is the row as read before (``None``: no row). The claim succeeds only when
        the row has not changed since (same status and attempt count, same fingerprint), so
        of several workers or processes claiming one item, exactly one wins. Returns whether
        this call won.
        """
        now = time.time()
        with self._using(write=True) as db:
            if seen is None:
                cursor = db.execute(
                    "INSERT INTO items (kind, key, fingerprint, status, attempts, updated)"
                    " VALUES (?, ?, ?, 'submitting', 1, ?)"
                    " ON CONFLICT (kind, key) DO NOTHING",
                    (kind, key, fingerprint, now),
                )
            else:
                cursor = db.execute(
                    "UPDATE items SET status = 'submitting', error = NULL,"
                    " attempts = attempts + 1, updated = ?"
                    " WHERE kind = ? AND key = ? AND fingerprint = ? AND status = ?"
                    " AND attempts = ?",
                    (now, kind, key, fingerprint, seen.status, seen.attempts),
                )
            return cursor.rowcount == 1

    def release(self, kind: str, key: str, fingerprint: str, seen: Record | None) -> None:
        """Undo a :meth:`claim` whose request provably never left: the row is ``seen`` again.

        An item that had no row is simply new again; an item that had one gets back its
        status, error and attempt count (an earlier run's ``submitting`` stays unknown).
        """
        with self._using(write=True) as db:
            if seen is None:
                db.execute(
                    "DELETE FROM items WHERE kind = ? AND key = ? AND fingerprint = ?"
                    " AND status = 'submitting'",
                    (kind, key, fingerprint),
                )
            else:
                db.execute(
                    "UPDATE items SET status = ?, error = ?, attempts = ?, updated = ?"
                    " WHERE kind = ? AND key = ? AND fingerprint = ? AND status = 'submitting'",
                    (seen.status, seen.error, seen.attempts, time.time(), kind, key, fingerprint),
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
        """Write the item's row (one committed transaction).

        Never overwrites a row recorded for another request (another fingerprint): that
        raises :class:`~aiportrait.errors.InvalidArgument`.
        """
        payload = None if data is None else json.dumps(public_json(data))
        bump = 1 if status == "submitting" else 0
        with self._using(write=True) as db:
            written = db.execute(
                "INSERT INTO items (kind, key, fingerprint, status, job_id, model_id, data,"
                " error, attempts, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET status = excluded.status,"
                " job_id = COALESCE(excluded.job_id, job_id),"
                " model_id = COALESCE(excluded.model_id, model_id),"
                " data = excluded.data, error = excluded.error,"
                " attempts = attempts + ?, updated = excluded.updated"
                " WHERE items.fingerprint = excluded.fingerprint",
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
            ).rowcount
        if written != 1:
            raise InvalidArgument(
                f"journal {self.path}: item {key!r} was recorded for a different request; "
                "use another journal or other keys"
            )

    def durations(self, per_kind: int = 50) -> list[tuple[str, float]]:
        """The most recent job durations learned by earlier runs, oldest first, by kind."""
        with self._using() as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'durations'").fetchone():
                return []
            rows = db.execute(
                "SELECT kind, seconds FROM (SELECT kind, seconds, at, ROW_NUMBER() OVER"
                " (PARTITION BY kind ORDER BY at DESC) AS n FROM durations) WHERE n <= ?"
                " ORDER BY at",
                (per_kind,),
            ).fetchall()
        out = []
        for kind, seconds in rows:  # a garbage row is skipped, never an error
            if isinstance(kind, str) and isinstance(seconds, (int, float)):
                out.append((kind, float(seconds)))
        return out

    def add_durations(self, durations: list[tuple[str, float]]) -> None:
        """Record job durations seen in this run (for later runs to start from)."""
        if not durations:
            return
        now = time.time()
        with self._using(write=True) as db:
            db.executemany(
                "INSERT INTO durations (kind, seconds, at) VALUES (?, ?, ?)",
                [(kind, seconds, now) for kind, seconds in durations],
            )

    def upload(self, key: str) -> tuple[str | None, float] | None:
        """What is remembered of an uploaded object: the SHA-256 of what was stored (``None``
        when unknown) and until when its last URL lasts (epoch seconds)."""
        with self._using() as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'uploads'").fetchone():
                return None
            row = db.execute("SELECT sha256, expires FROM uploads WHERE key = ?", (key,)).fetchone()
        if row is None or not isinstance(row[1], (int, float)):
            return None  # a garbage row is forgotten, never an error
        return (row[0] if isinstance(row[0], str) else None), float(row[1])

    def remember_upload(self, key: str, sha256: str | None, expires: float) -> None:
        """Remember an uploaded object (key, content hash, until when its URL lasts) for
        later runs and for deleting it; never its URL.

        Allowed without owning the journal (``lock=False``): a memo, not a batch item.
        """
        with self._using(write=True, shared=True) as db:
            db.execute(UPLOADS_TABLE)
            db.execute(
                "INSERT OR REPLACE INTO uploads (key, sha256, expires) VALUES (?, ?, ?)",
                (key, sha256, expires),
            )

    def uploads(self) -> list[str]:
        """The object keys of every upload remembered, in key order."""
        with self._using() as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'uploads'").fetchone():
                return []
            rows = db.execute("SELECT key FROM uploads ORDER BY key").fetchall()
        return [row[0] for row in rows if isinstance(row[0], str)]

    def forget_upload(self, key: str) -> None:
        """Forget an upload (its object was deleted). Allowed without owning the journal."""
        with self._using(write=True, shared=True) as db:
            db.execute(UPLOADS_TABLE)
            db.execute("DELETE FROM uploads WHERE key = ?", (key,))

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """How many items are in each status."""
        query = "SELECT status, COUNT(*) FROM items"
        args: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            args = (kind,)
        with self._using() as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone():
                return {}
            rows = db.execute(query + " GROUP BY status", args).fetchall()
        return {str(status): int(count) for status, count in rows}
