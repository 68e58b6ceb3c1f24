"""The batch journal's file format: its tables (SQLite ``user_version`` :data:`FORMAT`), how
a batch key is stored (:func:`key_text`), and a row read back as a :class:`Record`."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final, Literal, get_args

import attrs

from .._wire.signing import public_json
from ..errors import InvalidArgument

__all__ = [
    "DURATIONS_TABLE",
    "FORMAT",
    "ITEMS_TABLE",
    "MIGRATES",
    "UPLOADS_TABLE",
    "Record",
    "Status",
    "key_text",
    "migrate",
    "read_row",
]

Status = Literal["submitting", "submitted", "done", "failed"]
_STATUSES = frozenset(get_args(Status))

FORMAT = 3
"""The journal's format (SQLite ``user_version``); 2: keys stored with their type; 3: no URL
stored (uploads by object key and content hash, training states without their URLs' query).
A format-2 journal is migrated when opened (:func:`migrate`)."""

MIGRATES: Final = frozenset({2})
"""The older formats :func:`migrate` brings to :data:`FORMAT`."""

ITEMS_TABLE = """
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


def key_text(key: object) -> str:
    """How a batch key is stored: with its type, so that distinct keys never share a row.

    ``"1"`` is ``str:1`` and ``1`` is ``int:1``; other types use their qualified name and
    ``repr`` (keep keys to values whose ``repr`` is stable, such as strings and numbers).
    A key whose text UTF-8 cannot hold (a lone surrogate, as ``"\\ud800"`` in JSON gives) is
    refused with :class:`~aiportrait.errors.InvalidArgument`: it could be neither a row nor a
    file name.
    """
    kind = type(key)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    text = f"{name}:{key if isinstance(key, str) else repr(key)}"
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"key {ascii(key)[:80]} holds text that UTF-8 cannot hold (a lone surrogate)"
        ) from None
    return text


@attrs.frozen
class Record:
    """One item's row (``key`` as stored, see :func:`key_text`)."""

    kind: str
    key: str
    fingerprint: str
    status: Status
    job_id: int | None = None
    model_id: str | None = None
    data: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0


DURATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS durations (
    kind TEXT NOT NULL,
    seconds REAL NOT NULL,
    at REAL NOT NULL
)
"""

UPLOADS_TABLE = """
CREATE TABLE IF NOT EXISTS uploads (
    key TEXT PRIMARY KEY,
    sha256 TEXT,
    expires REAL NOT NULL
)
"""
"""Local photos uploaded for the batch's items: object key, SHA-256 of what was stored, and
until when the last URL handed out for it lasts. Never the URL: that is a key to the photo,
presigned again (on this machine, after a HEAD) whenever it is needed."""


def migrate(db: sqlite3.Connection) -> None:
    """Bring a journal of an older format (:data:`MIGRATES`) to :data:`FORMAT`, in the
    caller's transaction: the remembered uploads lose their URLs (key and expiry kept, so
    that they can still be deleted), and the items' data their URLs' query."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(uploads)")]
    if "url" in columns:
        db.execute("ALTER TABLE uploads RENAME TO uploads_old")
        db.execute(UPLOADS_TABLE)
        db.execute(
            "INSERT OR REPLACE INTO uploads (key, sha256, expires)"
            " SELECT key, NULL, expires FROM uploads_old"
            " WHERE typeof(key) = 'text' AND typeof(expires) IN ('real', 'integer')"
        )
        db.execute("DROP TABLE uploads_old")
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone():
        rows = db.execute("SELECT rowid, data FROM items WHERE data IS NOT NULL").fetchall()
        for rowid, raw in rows:
            try:
                data = json.loads(raw)
            except (TypeError, ValueError, RecursionError):
                continue  # unreadable: said when the item is read, as before
            clean = json.dumps(public_json(data))
            if clean != raw:
                db.execute("UPDATE items SET data = ? WHERE rowid = ?", (clean, rowid))
    db.execute(f"PRAGMA user_version = {FORMAT}")


def read_row(row: tuple[Any, ...]) -> Record:
    """A row as a :class:`Record`; ``ValueError`` or ``TypeError`` when it is not one."""
    kind, key, fingerprint, status, job_id, model_id, raw, error, attempts = row
    if status not in _STATUSES:
        raise ValueError(f"unknown status {status!r}")
    if job_id is not None and not isinstance(job_id, int):
        raise TypeError(f"job_id is {type(job_id).__name__}")
    if not isinstance(attempts, int):
        raise TypeError(f"attempts is {type(attempts).__name__}")
    for name, value in (("model_id", model_id), ("error", error), ("data", raw)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} is {type(value).__name__}")
    data = None
    if raw is not None:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise TypeError(f"data is {type(data).__name__}, not an object")
    return Record(
        kind=kind,
        key=key,
        fingerprint=fingerprint,
        status=status,
        job_id=job_id,
        model_id=model_id,
        data=data,
        error=error,
        attempts=attempts,
    )
