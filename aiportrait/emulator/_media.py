"""The emulator's own URLs: files of ``serve_dir`` (``/media/<name>``), the headers of what it
serves but did not write, and what the dashboard shows of an input image URL that points back at
the emulator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ._dashboard_records import object_url
from ._fetch import is_loopback_host

__all__ = [
    "MAX_MEDIA_NAME",
    "SANDBOXED",
    "dashboard_image",
    "local_media",
    "media_file",
    "own_path",
]

#: Headers of a file the emulator serves but did not write (a ``serve_dir`` file, a bucket
#: object): never sniffed into another type, and an HTML or SVG one runs sandboxed, in no origin,
#: so it cannot act as the dashboard (same origin) or read it.
SANDBOXED = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}

#: Longest file name served from ``serve_dir`` (the usual file system limit).
MAX_MEDIA_NAME = 255
MEDIA_PREFIX = "/media/"


def media_file(root: Path, name: str) -> Path | None:
    """The path under ``root`` that the media name ``name`` stands for, or None when the name is
    not one the emulator serves: empty, too long, a dot file, more than one path segment, a
    control character, or a path (a symlink) leading out of ``root``. The file may not exist."""
    if (
        not name
        or len(name) > MAX_MEDIA_NAME
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        return None
    try:
        path = (root / name).resolve()
        inside = path.is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return None
    return path if inside else None


def own_path(url: str, port: int) -> str | None:
    """The path of ``url`` when it is one of the emulator's own (a loopback host, ``port``)."""
    try:
        parts = urlsplit(url)
        url_port = parts.port
    except ValueError:
        return None
    if url_port != port or not is_loopback_host(parts.hostname):
        return None
    return parts.path


def local_media(url: str, port: int, serve_dir: Path | None) -> Path | None:
    """The file of ``serve_dir`` behind one of the emulator's own ``/media/`` URLs."""
    path = own_path(url, port)
    if serve_dir is None or path is None or not path.startswith(MEDIA_PREFIX):
        return None
    return media_file(serve_dir, unquote(path[len(MEDIA_PREFIX) :]))


def dashboard_image(url: str, port: int, bucket: str) -> str | None:
    """Where the dashboard's browser loads the input image ``url``: a file of ``serve_dir``
    or an object of the emulator's ``bucket`` (never with a presigned query), else None."""
    path = own_path(url, port)
    prefix = f"/{bucket}/"
    if path is None or not path.startswith((MEDIA_PREFIX, prefix)):
        return None
    return path if path.startswith(MEDIA_PREFIX) else object_url(unquote(path[len(prefix) :]))
