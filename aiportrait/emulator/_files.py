"""The files of a stored model or scene: written so that a reader never sees half of one.

Each file is written under a temporary name and renamed into place; arrays go into an ``.npz``
archive that is read back with ``allow_pickle=False``. Files are private (``0600``), like all of
the emulator's data (its folder ``0700``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._files import open_new

__all__ = ["atomic_write", "load_npz", "npz_bytes"]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename (created ``0600``:
    a model holds a face)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{id(data):x}.tmp")
    with os.fdopen(open_new(temporary, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
        fh.write(data)
    os.replace(temporary, path)


def npz_bytes(**arrays: Any) -> bytes:
    """The ``.npz`` archive of ``arrays``, as bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_npz(path: Path) -> dict[str, Any]:
    """The arrays of an ``.npz`` archive (no pickled objects are loaded)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
