"""What a batch item is known by: its request's fingerprint (over its local inputs' content),
its portrait's file name, and the folder its portraits go to."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .._local.resolve import ReadInputs, read_local
from .._requests import Request
from ..models import EXTENSIONS
from .journal import key_text

__all__ = ["find_portrait", "file_stem", "fingerprint", "portraits_dir", "read_item"]


def fingerprint(request: object) -> str:
    """A stable digest of a request's content, to detect a key reused for another request.

    ``force`` (whether the check on this machine may be skipped) is not part of it: it is not
    sent, and a re-run with it is the same item.
    """
    data = request.to_dict() if isinstance(request, Request) else {"repr": repr(request)}
    data.pop("force", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_READABLE = re.compile(r"[a-z0-9_][a-z0-9._-]{0,79}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(key: object) -> str:
    """A file-name stem for a key: readable where possible, and distinct keys never share one.

    A non-negative ``int`` is its own stem (``7``); so is a ``str`` of lower-case letters,
    digits, ``.``, ``_`` and ``-`` (at most 80, not starting with ``.`` or ``-``) that is not
    a decimal number (those belong to ints). Any other key gets a readable prefix, ``~`` and a
    digest of the key with its type (``Alice~3f2a...``, ``1~9c1e...`` for the string ``"1"``).
    A readable stem never holds ``~`` and is lower-case, so stems stay distinct even on a
    case-insensitive file system.
    """
    if type(key) is int and key >= 0:
        return str(key)
    if type(key) is str and _READABLE.fullmatch(key) and not _DECIMAL.fullmatch(key):
        return key
    prefix = _UNSAFE.sub("_", key if isinstance(key, str) else str(key))[:40].lstrip(".-")
    return f"{prefix}~{hashlib.sha256(key_text(key).encode()).hexdigest()[:16]}"


async def read_item(request: Request) -> tuple[str, ReadInputs | None]:
    """An item's fingerprint, and its local inputs read (``LocalPhotoError`` for a bad one).

    A request with local inputs is fingerprinted over their content, not their URLs (which
    change when presigned again); a request of URLs as it always was.
    """
    read = await read_local(request)
    return fingerprint(request if read is None else read.known), read


def portraits_dir(
    journal: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str] | None
) -> Path | None:
    """Where a batch writes its portraits: ``out_dir``, else beside the journal
    (``<journal stem>_portraits``), else nowhere."""
    if out_dir is None and journal is not None:
        return Path(journal).with_name(Path(journal).stem + "_portraits")
    return None if out_dir is None else Path(out_dir)


def find_portrait(out_dir: Path | None, stem: str) -> Path | None:
    """The finished portrait of an item, by its exact name (``<stem>.<ext>``), if it is there
    (blocking: run it in a thread)."""
    if out_dir is None:
        return None
    for ext in EXTENSIONS.values():
        path = out_dir / (stem + ext)
        if path.is_file():
            return path
    return None
