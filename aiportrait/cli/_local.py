"""Local files on the command line: paths and globs where a URL is taken.

An argument with a scheme (``https://...``, ``data:...``) is a URL; anything else is a local
path. A glob the shell did not expand (quoted, or matching nothing) is expanded here, sorted; one
that matches nothing is a usage error. Where they are uploaded: ``Common.uploader``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from .._requests import is_local
from ._exit import UsageError

__all__ = ["PHOTO_FIELDS", "has_local", "is_url", "local_inputs", "local_value"]

PHOTO_FIELDS: Final = frozenset({"images", "template", "reference"})
"""The request arguments that take photos."""

_GLOB_CHARS = frozenset("*?[")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (it has a scheme), not a local path."""
    if text.lower().startswith("data:"):
        return True
    try:
        return "://" in text and urlsplit(text).scheme.isalpha()
    except ValueError:  # "http://[x": meant as a URL; the request's check says what is wrong
        return True


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
