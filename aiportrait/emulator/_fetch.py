"""Image sources: ``data:`` URLs, ``file://`` under a root, and http(s) (loopback unless allowed).

Every source is bounded in size and time. Nothing is resolved through DNS to decide whether a
host is local: only ``localhost`` and loopback IP literals count as loopback, so a name that
resolves to another machine is refused unless remote fetching is allowed.

A refusal or failure is a :class:`FetchError` whose text is a short sentence for people (it ends
up in the check's ``emulator_detail``); URLs in it are shown without their query string, which
may hold a signature (:func:`describe_url`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import aiohttp

from .._vision.limits import MAX_PHOTO_BYTES
from .._vision.sources import Fetched

__all__ = ["FetchError", "FetchPolicy", "Fetcher", "describe_url", "is_loopback_host"]

#: Longest URL shown in a message.
_SHOWN_URL = 80


class FetchError(Exception):
    """The image could not be fetched (refused, missing, too large, too slow or unreachable).

    ``str(error)`` is a short human sentence saying why.
    """


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
    max_bytes: int = MAX_PHOTO_BYTES
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


def describe_url(url: str) -> str:
    """``url`` as shown in messages and logs: no query or fragment, at most 80 characters.

    A ``data:`` URL is shown by its header and size, never its payload.
    """
    if url[:5].lower() == "data:":
        header = url[5:].partition(",")[0][:40]
        return f"data:{header},... ({len(url)} characters)"
    shown = url.split("?", 1)[0].split("#", 1)[0]
    shown = shown.encode("ascii", "backslashreplace").decode("ascii")
    return shown if len(shown) <= _SHOWN_URL else shown[: _SHOWN_URL - 3] + "..."


def _media_type(value: str | None) -> str | None:
    kind = (value or "").split(";", 1)[0].strip().lower()
    return kind or None


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit} bytes"


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

    async def fetch_source(self, url: str) -> Fetched:
        """Return the bytes behind ``url`` and their declared type, or raise :class:`FetchError`."""
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
                return await self._read_path(local, shown=describe_url(url))
            return await self._http(url)
        if not scheme:
            raise FetchError(f"not a URL: {describe_url(url)}")
        raise FetchError(f"unsupported URL scheme {scheme[:20]!r} (use http, https, data or file)")

    def _data(self, url: str) -> Fetched:
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise FetchError("malformed data URL (no comma before the data)")
        limit = self.policy.max_bytes
        too_large = f"data URL larger than the {_size(limit)} image limit"
        if header.endswith(";base64"):
            if len(payload) * 3 // 4 > limit:
                raise FetchError(too_large)
            try:
                data = base64.b64decode(unquote(payload), validate=False)
            except (binascii.Error, ValueError) as exc:
                raise FetchError("malformed base64 in data URL") from exc
            header = header[: -len(";base64")]
        else:
            data = unquote_to_bytes(payload)
        if len(data) > limit:
            raise FetchError(too_large)
        return Fetched(data, _media_type(header) or "text/plain")  # RFC 2397's default

    async def _file(self, url: str) -> Fetched:
        root = self.policy.file_root
        if root is None:
            raise FetchError(
                "file:// URLs are refused; start the emulator with --file-root DIR to read "
                "files under DIR"
            )
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchError("malformed file:// URL") from exc
        if parts.netloc not in ("", "localhost"):
            raise FetchError("file:// URL names another host")
        return await self._read_path(Path(unquote(parts.path)), root=root, shown=describe_url(url))

    async def _read_path(self, path: Path, *, shown: str, root: Path | None = None) -> Fetched:
        limit = self.policy.max_bytes

        def read() -> Fetched:
            try:
                resolved = path.resolve()
                if root is not None and not resolved.is_relative_to(root.resolve()):
                    raise FetchError(f"{shown} is outside --file-root")
                if not resolved.is_file():
                    raise FetchError(f"no such file: {shown}")
                if resolved.stat().st_size > limit:
                    raise FetchError(f"{shown} is larger than the {_size(limit)} image limit")
                data = resolved.read_bytes()
            except (OSError, RuntimeError, ValueError) as exc:
                raise FetchError(f"{shown} could not be read ({type(exc).__name__})") from exc
            return Fetched(data, mimetypes.guess_type(resolved.name)[0])

        return await asyncio.to_thread(read)

    async def _http(self, url: str) -> Fetched:
        shown = describe_url(url)
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            raise FetchError(f"malformed URL: {shown}") from exc
        if not self.policy.allow_remote and not is_loopback_host(host):
            raise FetchError(
                "remote URLs are refused; start the emulator with --allow-remote to fetch them"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False)
        limit = self.policy.max_bytes
        too_large = f"{shown} is larger than the {_size(limit)} image limit"
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        try:
            async with self._session.get(url, allow_redirects=False, timeout=timeout) as resp:
                if 300 <= resp.status < 400:
                    raise FetchError(
                        f"HTTP {resp.status} from {shown} (redirects are not followed)"
                    )
                if resp.status != 200:
                    raise FetchError(f"HTTP {resp.status} from {shown}")
                if resp.content_length is not None and resp.content_length > limit:
                    raise FetchError(too_large)
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(too_large)
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), _media_type(resp.headers.get("Content-Type")))
        except asyncio.TimeoutError as exc:
            raise FetchError(f"{shown} did not arrive within {self.policy.timeout:g} s") from exc
        except aiohttp.ClientConnectionError as exc:
            raise FetchError(f"cannot connect to {shown} ({type(exc).__name__})") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise FetchError(f"download of {shown} failed ({type(exc).__name__})") from exc
