"""Local files on the command line: paths and globs where a URL is taken.

An argument with a scheme (``https://...``, ``data:...``) is a URL; anything else is a local
path. A glob the shell did not expand (quoted, or matching nothing) is expanded here, sorted; one
that matches nothing is a usage error. Where they are uploaded: ``Common.uploader``.
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

from .. import AnyCreateRequest, TrainRequest
from .._local.inputs import Uploader, as_upload, is_local
from .._local.localrequest import LocalRequest, ReadInputs
from ._exit import UsageError

__all__ = [
    "PHOTO_FIELDS",
    "Item",
    "has_local",
    "is_url",
    "local_inputs",
    "local_value",
    "read_files",
    "request_of",
    "resolved",
]

PHOTO_FIELDS: Final = frozenset({"images", "template", "reference"})
"""The request arguments that take photos."""

_GLOB_CHARS = frozenset("*?[")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (it has a scheme), not a local path."""
    if text.lower().startswith("data:"):
        return True
    return "://" in text and urlsplit(text).scheme.isalpha()


def local_value(text: str, flag: str) -> str | Path:
    """One argument: the URL as it is, else a local path (a glob must match exactly one)."""
    values = local_inputs([text], flag)
    if len(values) != 1:
        raise UsageError(f"{flag}: {text!r} matches {len(values)} files; give one")
    return values[0]


def local_inputs(texts: Sequence[str], what: str, base: Path | None = None) -> list[str | Path]:
    """URLs kept, paths as ``Path`` (relative to ``base``, ``~`` expanded), unexpanded globs
    expanded (sorted); nothing matched is an error."""
    out: list[str | Path] = []
    for text in texts:
        if is_url(text):
            out.append(text)
            continue
        path = Path(os.path.expanduser(text))
        path = path if base is None else base / path  # an absolute path stays as it is
        if _GLOB_CHARS & set(text) and not os.path.lexists(path):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise UsageError(f"{what}: no file matches {text!r}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(path)
    return out


def has_local(values: Sequence[object]) -> bool:
    """Whether any of ``values`` is a local file."""
    return any(is_local(v) for v in values)


Item: TypeAlias = "TrainRequest | AnyCreateRequest | LocalRequest"
"""A request as the command line builds it: with local files, a :class:`LocalRequest`."""


def request_of(cls: type[Any], arguments: Mapping[str, Any], *, force: bool = False) -> Item:
    """``cls(**arguments)``; a :class:`LocalRequest` of it when a photo argument is a local
    file (validated now; its files are read, checked and uploaded when it is sent)."""
    values = [v for k, v in arguments.items() if k in PHOTO_FIELDS]
    if has_local([p for v in values for p in (v if isinstance(v, (list, tuple)) else [v])]):
        return LocalRequest(cls, arguments, force=force)
    request: Item = cls(**arguments)
    return request


async def read_files(item: Item) -> ReadInputs | None:
    """Read and check a :class:`LocalRequest`'s files, off the event loop (a bad file:
    :class:`~aiportrait.errors.LocalPhotoError`); None for a request of URLs."""
    if not isinstance(item, LocalRequest):
        return None
    return await asyncio.to_thread(item.read)


async def resolved(
    item: Item, uploader: Uploader | None, read: ReadInputs | None = None
) -> TrainRequest | AnyCreateRequest:
    """The request to send: a :class:`LocalRequest`'s files (``read``, else read now)
    checked, cleaned and uploaded with ``uploader``, their URLs in the request."""
    if not isinstance(item, LocalRequest):
        return item
    if read is None:
        read = await asyncio.to_thread(item.read)
    return await item.resolve(as_upload(uploader), read)
