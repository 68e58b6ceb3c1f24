"""Image sources: ``data:`` URLs, ``file://`` under a root, and http(s) (loopback unless allowed).

Every source is bounded in size and time. Nothing is resolved through DNS to decide whether a
host is local: only ``localhost`` and loopback IP literals count as loopback, so a name that
resolves to another machine is refused unless remote fetching is allowed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import aiohttp

__all__ = ["FetchError", "FetchPolicy", "Fetcher", "is_loopback_host"]


class FetchError(Exception):
    """The image could not be fetched (refused, missing, too large, too slow or unreachable)."""


@dataclass(frozen=True)
class FetchPolicy:
    """Where images may come from and how much of them.

    Attributes:
        allow_remote: fetch http(s) from any host, not only loopback.
        file_root: directory that ``file://`` URLs may read from; None refuses ``file://``.
        max_bytes: largest accepted image, in bytes, after any transfer decoding.
        timeout: seconds allowed for one download, connection included.
    """

    allow_remote: bool = False
    file_root: Path | None = None
    max_bytes: int = 20 * 1024 * 1024
    timeout: float = 10.0


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP literal (no DNS lookup)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Fetcher:
    """Fetches image bytes under a :class:`FetchPolicy`.

    ``local`` maps a URL to a file the emulator itself serves (its ``/media/`` files), so those
    are read from disk instead of through a request to itself.
    """

    def __init__(
        self, policy: FetchPolicy, *, local: Callable[[str], Path | None] | None = None
    ) -> None:
        self.policy = policy
        self._local = local
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> bytes:
        """Return the bytes behind ``url`` or raise :class:`FetchError`."""
        if not isinstance(url, str) or not url:
            raise FetchError("empty URL")
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return self._data(url)
        if scheme == "file":
            return await self._file(url)
        if scheme in ("http", "https"):
            local = self._local(url) if self._local is not None else None
            if local is not None:
                return await self._read_path(local)
            return await self._http(url)
        raise FetchError(f"unsupported URL scheme {scheme!r}")

    def _data(self, url: str) -> bytes:
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise FetchError("malformed data URL")
        limit = self.policy.max_bytes
        if header.endswith(";base64"):
            if len(payload) * 3 // 4 > limit:
                raise FetchError("data URL too large")
            try:
                data = base64.b64decode(unquote(payload), validate=False)
            except (binascii.Error, ValueError) as exc:
                raise FetchError("malformed base64 in data URL") from exc
        else:
            data = unquote_to_bytes(payload)
        if len(data) > limit:
            raise FetchError("data URL too large")
        return data

    async def _file(self, url: str) -> bytes:
        root = self.policy.file_root
        if root is None:
            raise FetchError("file:// URLs are not enabled")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise FetchError("file:// URL names another host")
        return await self._read_path(Path(unquote(parts.path)), root=root)

    async def _read_path(self, path: Path, *, root: Path | None = None) -> bytes:
        limit = self.policy.max_bytes

        def read() -> bytes:
            try:
                resolved = path.resolve()
                if root is not None and not resolved.is_relative_to(root.resolve()):
                    raise FetchError("file is outside the allowed root")
                if not resolved.is_file():
                    raise FetchError("no such file")
                if resolved.stat().st_size > limit:
                    raise FetchError("file too large")
                return resolved.read_bytes()
            except (OSError, RuntimeError, ValueError) as exc:
                raise FetchError("file could not be read") from exc

        return await asyncio.to_thread(read)

    async def _http(self, url: str) -> bytes:
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise FetchError("malformed URL") from exc
        if not self.policy.allow_remote and not is_loopback_host(host):
            raise FetchError("only loopback hosts may be fetched (see --allow-remote)")
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        limit = self.policy.max_bytes
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        try:
            async with self._session.get(url, allow_redirects=False, timeout=timeout) as resp:
                if resp.status != 200:
                    raise FetchError(f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > limit:
                    raise FetchError("image too large")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        raise FetchError("image too large")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise FetchError(f"download failed: {type(exc).__name__}") from exc
