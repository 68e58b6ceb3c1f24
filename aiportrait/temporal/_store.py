"""Where portraits (and batch item lists and outcomes) live while Temporal carries references.

Temporal refuses payloads over about 2 MB and a portrait can be 8 MB, so a create activity
writes the image to a :class:`PortraitStore` and returns a small :class:`PortraitRef`.
:class:`LocalPortraitStore` is a directory (shared by the workers of one machine, or a shared
file system); object storage implements the same two methods.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlparse

import anyio

from .._files import write_atomic
from ..models import EXTENSIONS
from ._values import PortraitRef

__all__ = [
    "MAX_NAME",
    "FindingStore",
    "LocalPortraitStore",
    "PortraitStore",
    "batch_portrait",
    "find_portrait",
    "safe_name",
]


@runtime_checkable
class PortraitStore(Protocol):
    """Stores bytes under a name and reads them back by the address it gave.

    ``put`` must be idempotent (writing the same name again replaces the object whole) and
    atomic (a reader never sees half an object): an activity may be run again after a crash.
    """

    async def put(self, name: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``name`` (a relative, ``/``-separated name); return its address."""
        ...

    async def get(self, uri: str) -> bytes:
        """The bytes stored at ``uri`` (an address ``put`` returned)."""
        ...


@runtime_checkable
class FindingStore(PortraitStore, Protocol):
    """A :class:`PortraitStore` that can also say where a name is stored, if it is.

    With one, a batch item whose create may have run (``unknown``) but whose portrait is in
    the store ends ``succeeded``: the worker stored it, and only its report was lost.
    """

    async def find(self, name: str) -> str | None:
        """The address of the object stored under ``name``, or ``None`` when there is none."""
        ...


async def find_portrait(store: PortraitStore, name: str) -> PortraitRef | None:
    """The portrait a create stored under ``name`` (with any extension of
    :data:`aiportrait.models.EXTENSIONS`), if ``store`` has it and can say so (a
    :class:`FindingStore`); else ``None``."""
    if not isinstance(store, FindingStore):
        return None
    for format, extension in EXTENSIONS.items():
        uri = await store.find(f"{name}{extension}")
        if uri is not None:
            return PortraitRef(uri, format, len(await store.get(uri)))
    return None


def batch_portrait(workflow_id: str, key: str) -> str:
    """The store name (without its extension) of the portrait of a batch's item."""
    return f"portraits/{safe_name(workflow_id)}/{safe_name(key)}"


#: The longest name :func:`safe_name` gives: well within a file name's 255 bytes and
#: Temporal's 1,000-character ids, with room for a prefix and an extension.
MAX_NAME = 96


def safe_name(key: str) -> str:
    """``key`` as one short path segment; distinct keys give distinct names.

    Percent-encoding (``~`` included) keeps short keys readable; a longer one is cut at
    ``MAX_NAME - 17`` characters (never inside a ``%XX``) and ends with ``~`` and 16 hex digits
    of its SHA-256, a form no encoded key can take (a key's own ``~`` is encoded).
    """
    name = quote(key, safe="-_.@+=,").replace("~", "%7E")  # quote() keeps "~" as it is
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) <= MAX_NAME:
        return name
    cut = MAX_NAME - 17
    while "%" in name[cut - 2 : cut]:  # do not split an escape
        cut -= 1
    return f"{name[:cut]}~{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class LocalPortraitStore:
    """A :class:`PortraitStore` in a local directory (``file://`` addresses).

    Files are written to a temporary name, flushed, and renamed into place.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalPortraitStore({str(self.root)!r})"

    def path(self, name: str) -> Path:
        """The file for ``name`` (refused when it would leave the root)."""
        target = (self.root / name).resolve()
        if self.root not in target.parents:
            raise ValueError(f"store name outside the store: {name!r}")
        return target

    async def put(self, name: str, data: bytes, content_type: str) -> str:
        """Write ``data`` to ``root/name`` atomically; return its ``file://`` address."""
        target = self.path(name)
        await anyio.to_thread.run_sync(write_atomic, target, data)
        return target.as_uri()

    async def find(self, name: str) -> str | None:
        """The ``file://`` address of ``root/name``, or ``None`` when it is not there."""
        target = self.path(name)
        return target.as_uri() if await anyio.to_thread.run_sync(target.is_file) else None

    async def get(self, uri: str) -> bytes:
        """The bytes of a ``file://`` address under the root."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"not a file:// address: {uri!r}")
        return await anyio.to_thread.run_sync(self._read, unquote(parsed.path), uri)

    def _read(self, path: str, uri: str) -> bytes:
        target = Path(path).resolve()
        if self.root not in target.parents:
            raise ValueError(f"address outside the store: {uri!r}")
        return target.read_bytes()
