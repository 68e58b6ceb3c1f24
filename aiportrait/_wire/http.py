"""HTTP details around a request: the service's address, the User-Agent, ``Retry-After``."""

from __future__ import annotations

import email.utils
import ipaddress
import math
import platform
import time
from urllib.parse import urlsplit

import aiohttp

from .._version import __version__
from ..errors import InvalidArgument

__all__ = ["default_user_agent", "normalise_host", "parse_retry_after"]


def _is_local(host: str) -> bool:
    name = host.rsplit("@", 1)[-1]
    name = name[1 : name.find("]")] if name.startswith("[") else name.split(":", 1)[0]
    if name in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalise_host(host: str) -> str:
    """Return ``scheme://host[:port][/prefix]`` without a trailing slash.

    A host without a scheme gets ``https://``, except loopback hosts (``localhost``,
    ``127.0.0.1``, ``[::1]``), which get ``http://`` as local emulators speak plain HTTP.
    """
    if not isinstance(host, str) or not host.strip():
        raise InvalidArgument(
            "host must be a non-empty string such as 'https://ai-service.example'"
        )
    value = host.strip()
    if "://" not in value:
        scheme = "http" if _is_local(value.split("/", 1)[0]) else "https"
        value = f"{scheme}://{value}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"host {host!r} is not an http(s) address")
    if "@" in parts.netloc:
        raise InvalidArgument("host must not carry credentials (user:password@); use the token")
    if parts.query or parts.fragment:
        raise InvalidArgument(f"host {host!r} must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def default_user_agent(extra: str | None = None) -> str:
    """``[extra ]aiportrait/<v> Python/<v> aiohttp/<v>``; ``extra`` must be printable text."""
    if extra is not None and (
        not isinstance(extra, str) or not extra.isascii() or not extra.isprintable()
    ):
        raise InvalidArgument(
            f"user_agent must be printable ASCII text (no line breaks), not {extra!r:.80}"
        )
    base = (
        f"aiportrait/{__version__} Python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
    )
    return f"{extra.strip()} {base}" if extra and extra.strip() else base


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delta seconds or an HTTP date; ``None`` when unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
