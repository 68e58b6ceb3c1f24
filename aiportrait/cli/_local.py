"""Local files on the command line: paths and globs where a URL is taken, and their uploader.

An argument with a scheme (``https://...``, ``data:...``) is a URL; anything else is a local
path. A glob the shell did not expand (quoted, or matching nothing) is expanded here, sorted; one
that matches nothing is a usage error. The uploader: ``OSS_BUCKET`` set -> an
:class:`~aiportrait.uploads.OSSUploader` from the standard OSS variables; otherwise, against a
loopback host (the local emulator), its OSS-compatible bucket with the AppId and token as the
key; otherwise none (a local path is then refused before anything is sent).
"""

from __future__ import annotations

import glob
import os
from collections import ChainMap
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from .._local.inputs import is_local
from .._wire.credentials import credentials_from_env
from .._wire.signing import PrivateMapping
from .._wire.transport import normalise_host
from ..uploads import OSSUploader
from ._exit import UsageError
from ._parser import Args

__all__ = ["has_local", "local_inputs", "local_value", "uploader_for"]

_GLOB_CHARS = frozenset("*?[")


def _is_url(text: str) -> bool:
    if text.lower().startswith("data:"):
        return True
    return "://" in text and urlsplit(text).scheme.isalpha()


def local_value(text: str, flag: str) -> str | Path:
    """One argument: the URL as it is, else a local path (a glob must match exactly one)."""
    values = local_inputs([text], flag)
    if len(values) != 1:
        raise UsageError(f"{flag}: {text!r} matches {len(values)} files; give one")
    return values[0]


def local_inputs(texts: Sequence[str], what: str) -> list[str | Path]:
    """URLs kept, paths as ``Path``, unexpanded globs expanded (sorted); nothing matched is an
    error."""
    out: list[str | Path] = []
    for text in texts:
        if _is_url(text):
            out.append(text)
        elif _GLOB_CHARS & set(text) and not os.path.lexists(text):
            matches = sorted(glob.glob(os.path.expanduser(text)))
            if not matches:
                raise UsageError(f"{what}: no file matches {text!r}")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(os.path.expanduser(text)))
    return out


def has_local(values: Sequence[object]) -> bool:
    """Whether any of ``values`` is a local file."""
    return any(is_local(v) for v in values)


def uploader_for(args: Args) -> OSSUploader | None:
    """The uploader for local files (see the module), or None."""
    if os.environ.get("OSS_BUCKET"):
        return OSSUploader()
    flags = {"AIPORTRAIT_HOST": args.host, "AIPORTRAIT_APP_ID": args.app_id}
    flags["AIPORTRAIT_TOKEN"] = args.token
    environ = PrivateMapping(
        ChainMap({k: v for k, v in flags.items() if v is not None}, dict(os.environ))
    )
    flags.clear()
    host, app_id, token = credentials_from_env(environ)
    url = normalise_host(host)
    name = urlsplit(url).hostname or ""
    if name == "localhost" or name.startswith("127.") or name == "::1":
        return OSSUploader.emulated(url, app_id, token)
    return None
