"""The batch journal's file format: its tables (SQLite ``user_version`` :data:`FORMAT`), how
a batch key is stored (:func:`key_text`), and a row read back as a :class:`Record`."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

import attrs

from ..errors import InvalidArgument

__all__ = [
    "DURATIONS_TABLE",
    "FORMAT",
    "ITEMS_TABLE",
    "UPLOADS_TABLE",
    "Record",
    "Status",
    "key_text",
    "read_row",
]

Status = Literal["submitting", "submitted", "done", "failed"]
_STATUSES = frozenset(get_args(Status))

FORMAT = 2
"""The journal's format (SQLite ``user_version``); 2: keys stored with their type."""

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
    url TEXT NOT NULL,
    expires REAL NOT NULL
)
"""
"""Local photos uploaded for the batch's items (a table added in format 2: older versions of
aiportrait ignore it)."""


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
