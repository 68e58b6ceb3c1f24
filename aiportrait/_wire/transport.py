"""The one place that touches aiohttp: encode once, sign those bytes, send, map the answer.

Nothing here knows what a portrait is. Every aiohttp, JSON or timeout exception is translated
into the :mod:`aiportrait.errors` tree at this boundary. The token lives in a private attribute
and is never logged, shown in a repr or put in an exception message.
"""

from __future__ import annotations

import asyncio
import binascii
import email.utils
import io
import ipaddress
import logging
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from .._version import __version__
from ..errors import (
    ConnectError,
    InvalidArgument,
    MalformedResponse,
    RequestTimeout,
    ResponseTooLarge,
    SessionClosed,
    error_from_response,
)
from .codec import encode_body, loads
from .signing import authorization, redacted

__all__ = ["DEFAULT_TIMEOUT", "Answer", "Transport", "normalise_host"]

log = logging.getLogger("aiportrait")

DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(
    total=300, connect=10, sock_connect=10, sock_read=180
)
"""Connect within 10 s; a create may take tens of seconds, so wait up to 180 s for bytes and
300 s in all (the Java SDK caps at 100 s, which a busy SDXL create can exceed)."""

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024

_SMALL: Final = 64 * 1024
"""An answer of at most this many bytes (and not compressed) is read in one go."""

_NO_BODY_HEADERS: Final = ("Content-Type",)
"""A request without a body carries no Content-Type (the Go SDK's job and batch queries)."""


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


class Answer:
    """A successful envelope: its ``data``, request id and HTTP status.

    ``lifted`` holds the raw bytes of the string field named by ``call(lift=...)`` when it
    could be cut out of the body before parsing (its value in ``data`` is then ``""``);
    ``image`` holds that field base64-decoded as it arrived (see :class:`StreamedString`).
    A plain slotted class: one is built per call, and it is internal.
    """

    __slots__ = ("data", "image", "lifted", "request_id", "status")

    def __init__(
        self,
        data: Any,
        request_id: str,
        status: int,
        lifted: memoryview | None = None,
        image: bytes | None = None,
    ) -> None:
        self.data = data
        self.request_id = request_id
        self.status = status
        self.lifted = lifted
        self.image = image

    def __repr__(self) -> str:
        return f"Answer(data={self.data!r}, request_id={self.request_id!r}, status={self.status})"


def lift_string(raw: bytes | bytearray, name: str) -> tuple[bytes | bytearray, memoryview | None]:
    """Cut the first ``"name": "<value>"`` string out of a JSON body without copying it.

    Returns the body with the value emptied, and a view of the value's bytes; or the body
    unchanged and ``None`` when the value holds escapes or the key is not found as a key.
    A large base64 image then costs its encoded size once, not three times over (body, parsed
    string, ASCII copy for decoding).
    """
    key = b'"' + name.encode() + b'"'
    at = raw.find(key)
    if at < 0 or (at > 0 and raw[at - 1] == 0x5C):  # absent, or inside an escaped string
        return raw, None
    pos = at + len(key)
    while pos < len(raw) and raw[pos] in b" \t\r\n":
        pos += 1
    if raw[pos : pos + 1] != b":":
        return raw, None
    pos += 1
    while pos < len(raw) and raw[pos] in b" \t\r\n":
        pos += 1
    if raw[pos : pos + 1] != b'"':
        return raw, None
    start = pos + 1
    end = raw.find(b'"', start)
    if end < 0 or raw.find(b"\\", start, end) >= 0:
        return raw, None
    return raw[:start] + raw[end:], memoryview(raw)[start:end]


_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_WHITE: Final = b" \t\r\n"
_SNIPPET: Final = 120
"""Bytes of an unreadable answer quoted in its error."""
_PREFIX: Final = 256
"""Bytes at the start of the image string where a ``data:...,`` prefix is looked for."""


class StreamedString:
    """An answer read chunk by chunk, its first ``"name": "<value>"`` string base64-decoded as
    it arrives: the rest of the envelope is kept as bytes, the value never is.

    It reads exactly what :func:`lift_string` followed by the codec's decoding of the lifted
    text read, in one pass and without holding the text: a large portrait then costs its
    decoded size (in a buffer of the final size when the length is known), not its text plus
    its bytes. Whenever the value is not plain base64 (an escape such as ``\\/``, white space,
    a ``data:`` prefix without a comma in its first 256 bytes, padding in the middle, a bad
    length) or the key is not found as a key, it falls back: the body read so far is rebuilt
    byte for byte (the decoded groups re-encoded, which gives back exactly the plain base64
    they came from) and the rest is kept as it comes, for the whole-body path.
    """

    __slots__ = (
        "_carry",
        "_first",
        "_head",
        "_hint",
        "_key",
        "_out",
        "_pad",
        "_plain",
        "_plain_size",
        "_prefix",
        "_searched",
        "_skipped",
        "_state",
        "_tail",
        "_written",
    )

    def __init__(self, name: str, size_hint: int | None = None) -> None:
        self._key = b'"' + name.encode() + b'"'
        self._state = 0  # 0: before the value, 1: its first bytes, 2: decoding, 3: after it
        self._head = bytearray()  # the body up to the value's opening quote, included
        self._searched = 0
        self._prefix = bytearray()  # the value's first bytes, raw, until a data: prefix is read
        self._skipped = b""  # the data:...; prefix
        self._carry = b""  # base64 characters short of a group of four
        self._pad = b""  # '=' read at the end of the value so far
        self._tail = bytearray()  # the body from the value's closing quote on
        self._plain: bytearray | None = None  # after a fallback: the whole body, raw
        self._plain_size = 0  # bytes of it in use (it is allocated at the size announced)
        self._hint = size_hint or 0
        self._first = bytearray()  # the body's first bytes, raw (quoted in errors)
        self._out = io.BytesIO()
        self._written = 0
        if size_hint:
            # One buffer of (at least) the final size: base64 is 4/3 of what it decodes to.
            self._out.seek(size_hint * 3 // 4)
            self._out.write(b"\0")
            self._out.seek(0)

    @property
    def fell_back(self) -> bool:
        """True when the body is kept whole (the value could not be decoded on the way)."""
        return self._plain is not None

    def feed(self, chunk: bytes) -> None:
        """Read the next bytes of the body."""
        if len(self._first) < _SNIPPET:
            self._first += chunk[: _SNIPPET - len(self._first)]
        plain = self._plain
        if plain is not None:
            start = self._plain_size
            self._plain_size = end = start + len(chunk)
            if end <= len(plain):
                plain[start:end] = chunk
            else:
                del plain[start:]
                plain += chunk
        elif self._state == 3:
            self._tail += chunk
        elif self._state == 0:
            self._head += chunk
            self._find_value()
        else:
            self._value(chunk)

    def finish(self) -> tuple[bytes | bytearray, bytes | None, bytes]:
        """``(body, image, first bytes)``: the envelope with the value emptied and the decoded
        value; or, after a fallback (or when the value never ended), the whole body and
        ``None``."""
        if self._plain is None and self._state != 3:
            self._fall_back(b"")
        if self._plain is not None:
            del self._plain[self._plain_size :]
            return self._plain, None, bytes(self._first)
        out = self._out
        out.truncate(self._written)
        image = out.getvalue()  # the buffer itself, trimmed to size: no copy
        out.close()
        return self._head + self._tail, image, bytes(self._first)

    def _find_value(self) -> None:
        head, key = self._head, self._key
        at = head.find(key, self._searched)
        if at < 0:
            self._searched = max(0, len(head) - len(key) + 1)
            return
        self._searched = at  # the first occurrence stays the first one
        if at > 0 and head[at - 1] == 0x5C:  # inside an escaped string: not a key
            self._fall_back(b"")
            return
        pos = at + len(key)
        for expected in (0x3A, 0x22):  # ':' then '"', white space around them
            while pos < len(head) and head[pos] in _WHITE:
                pos += 1
            if pos == len(head):
                return  # wait for more
            if head[pos] != expected:
                self._fall_back(b"")
                return
            pos += 1
        rest = bytes(head[pos:])
        del head[pos:]
        self._state = 1
        if rest:
            self._value(rest)

    def _value(self, piece: bytes) -> None:
        end = piece.find(b'"')
        text = piece if end < 0 else piece[:end]
        if b"\\" in text:  # an escape: the whole-body path reads it
            self._fall_back(piece)
            return
        if self._state == 1:
            self._prefix += text
            if end < 0 and len(self._prefix) < _PREFIX:
                return
            raw = bytes(self._prefix)
            start = raw[:_PREFIX]
            skip = 0
            if start.startswith(b"data:"):
                if b"," not in start:
                    self._fall_back(piece[len(text) :])
                    return
                skip = start.index(b",") + 1
            self._prefix = bytearray()
            self._state = 2
            self._skipped = raw[:skip]
            if not self._decode(raw[skip:]):
                self._fall_back(raw[skip:] + piece[len(text) :])
                return
        elif not self._decode(text):
            self._fall_back(piece)
            return
        if end < 0:
            return
        last = self._carry + self._pad
        if last:
            try:
                self._write(binascii.a2b_base64(last))
            except (binascii.Error, ValueError):
                self._fall_back(piece[end:])
                return
            self._carry = self._pad = b""
        self._state = 3
        self._tail += piece[end:]

    def _decode(self, text: bytes) -> bool:
        """Decode the complete groups of ``text``; False (and nothing read) when it is not
        plain base64 with at most a trailing run of '='."""
        if not text:
            return True
        if self._pad:  # after '=' only more '=' may follow
            if text.strip(b"="):
                return False
            self._pad += text
            return True
        pad = b""
        if text.translate(None, _B64_ALPHABET):
            body = text.rstrip(b"=")
            if body.translate(None, _B64_ALPHABET):
                return False
            text, pad = body, text[len(body) :]
        data = self._carry + text if self._carry else text
        whole = len(data) - len(data) % 4
        if whole:
            self._write(binascii.a2b_base64(memoryview(data)[:whole]))
        self._carry = data[whole:]
        self._pad = pad
        return True

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def _fall_back(self, rest: bytes) -> None:
        """Keep the body whole from here on: what was read, rebuilt, then ``rest``."""
        parts: list[bytes | bytearray] = [self._head]
        if self._state == 1:
            parts.append(self._prefix)
        elif self._state == 2:
            with self._out.getbuffer() as decoded:
                text = binascii.b2a_base64(decoded[: self._written], newline=False)
            parts += (self._skipped, text, self._carry, self._pad)
        parts.append(rest)
        self._out.close()
        size = sum(map(len, parts))
        plain = bytearray(max(size, self._hint))  # the whole body in one buffer, as announced
        at = 0
        for part in parts:
            plain[at : at + len(part)] = part
            at += len(part)
        self._head = self._prefix = self._tail = bytearray()
        self._plain, self._plain_size = plain, at


class Transport:
    """Signs and sends requests for one AppId over one aiohttp session."""

    def __init__(
        self,
        host: str,
        app_id: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        extra_headers: Sequence[Callable[[], Mapping[str, str]]] = (),
    ) -> None:
        token = redacted(token)  # from here on, a traceback's locals show it as '<redacted>'
        if not isinstance(app_id, str) or not app_id or ":" in app_id:
            raise InvalidArgument("app_id must be a non-empty string without ':'")
        if not isinstance(token, str) or not token:
            raise InvalidArgument("token must be a non-empty string")
        if max_response_bytes < 1024:
            raise InvalidArgument("max_response_bytes must be at least 1024")
        self.base_url = normalise_host(host)
        self.app_id = app_id
        self.__token = token
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.user_agent = default_user_agent(user_agent)
        self.max_response_bytes = max_response_bytes
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self.extra_headers = tuple(extra_headers)
        """Called for each request: headers to add outside the signature (a tracing hook's
        ``traceparent``); they never replace a header of the request."""

    def __repr__(self) -> str:
        base, app = self.__dict__.get("base_url", "?"), self.__dict__.get("app_id")
        return f"<Transport {base} app_id={app!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("a Transport holds credentials; it cannot be pickled")

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise SessionClosed("this Session is closed; create a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, raise_for_status=False, auto_decompress=True
            )
        return self._session

    async def aclose(self) -> None:
        """Close the aiohttp session if this transport created it; a borrowed one stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()

    def headers(self, method: str, path: str, body: bytes, accept: str) -> dict[str, str]:
        """The headers of one request, with the signature over exactly ``body``."""
        headers = {
            "Authorization": authorization(self.app_id, self.__token, method, path, body),
            "Accept": accept,
            "User-Agent": self.user_agent,
            "X-Request-Time": str(int(time.time())),
        }
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    async def call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None = None,
        *,
        accept: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
        lift: str | None = None,
    ) -> Answer:
        """Send one signed request and return the ``data`` of an ``OK`` envelope.

        ``lift`` names a (large) base64 string field of a 2xx answer: it is decoded as the answer
        arrives (:class:`StreamedString`, into ``Answer.image``); in a small answer (64 KiB
        at most), or when it is not plain base64, it is cut out of the whole body before JSON
        parsing (:func:`lift_string`).

        Raises an :class:`~aiportrait.errors.APIError` subclass for an error answer,
        :class:`~aiportrait.errors.TransportError` when no answer came, and
        :class:`~aiportrait.errors.ResponseError` when the answer cannot be read.
        """
        body = b"" if payload is None else encode_body(payload)
        headers = self.headers(method, path, body, accept)
        for extra in self.extra_headers:
            _add_headers(headers, extra())
        client = self._session
        if client is None or self._closed:
            client = self._client()
        started = time.monotonic()
        try:
            async with client.request(
                method,
                self.base_url + path,
                # No body at all when empty: aiohttp would add an octet-stream Content-Type
                # (and Content-Length: 0 on a GET) that the official SDKs do not send.
                data=body or None,
                skip_auto_headers=None if body else _NO_BODY_HEADERS,
                headers=headers,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                declared = resp.content_length
                streamed = None
                raw: bytes | bytearray
                if (
                    declared is not None
                    and declared <= _SMALL
                    and declared <= self.max_response_bytes
                    and "Content-Encoding" not in resp.headers
                ):
                    raw = await resp.read()  # the usual small answer: one read
                elif lift is not None and 200 <= status < 300:
                    streamed = await self._stream(resp, method, path, lift)
                    raw = streamed[0]
                else:
                    raw = await self._read(resp, method, path)
                header = resp.headers.get("Retry-After")
                retry_after = parse_retry_after(header) if header else None
        except aiohttp.ConnectionTimeoutError:
            raise RequestTimeout(
                f"{method} {path}: could not connect within {time.monotonic() - started:.1f}s",
                method=method,
                path=path,
                sent=False,
            ) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise RequestTimeout(
                f"{method} {path}: no answer within {time.monotonic() - started:.1f}s",
                method=method,
                path=path,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(
                f"{method} {path}: could not connect: {_safe(exc)}",
                method=method,
                path=path,
                sent=False,
            ) from None
        except aiohttp.ClientError as exc:
            raise ConnectError(
                f"{method} {path}: {type(exc).__name__}: {_safe(exc)}", method=method, path=path
            ) from None
        answer = self._answer(status, raw, method, path, retry_after, lift, streamed=streamed)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %s in %.3fs request_id=%s",
                method,
                path,
                status,
                time.monotonic() - started,
                answer.request_id,
                extra={
                    "request_id": answer.request_id,
                    "http_status": status,
                    "aiportrait.method": method,
                    "aiportrait.path": path,
                    "aiportrait.status": status,
                    "aiportrait.request_id": answer.request_id,
                },
            )
        return answer

    async def _read(
        self, resp: aiohttp.ClientResponse, method: str, path: str
    ) -> bytes | bytearray:
        declared = resp.content_length
        if declared is not None and declared > self.max_response_bytes:
            raise ResponseTooLarge(
                f"{method} {path}: answer of {declared} bytes exceeds the bound of "
                f"{self.max_response_bytes}",
                status=resp.status,
            )
        compressed = "Content-Encoding" in resp.headers
        if declared is not None and declared <= _SMALL and not compressed:
            return await resp.read()  # the common small answer: one read, no buffer juggling
        if declared is not None and not compressed:
            # One buffer of the final size: no growth, no second copy.
            buf = bytearray(declared)
            pos = 0
            async for chunk in resp.content.iter_chunked(256 * 1024):
                buf[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
            del buf[pos:]
            return buf
        buf = bytearray()
        async for chunk in resp.content.iter_chunked(256 * 1024):
            buf += chunk
            if len(buf) > self.max_response_bytes:
                raise ResponseTooLarge(
                    f"{method} {path}: answer exceeds the bound of {self.max_response_bytes} bytes",
                    status=resp.status,
                )
        return buf

    async def _stream(
        self, resp: aiohttp.ClientResponse, method: str, path: str, lift: str
    ) -> tuple[bytes | bytearray, bytes | None, bytes]:
        """Read a 2xx answer through a :class:`StreamedString` for the ``lift`` field."""
        declared = resp.content_length
        if declared is not None and declared > self.max_response_bytes:
            raise ResponseTooLarge(
                f"{method} {path}: answer of {declared} bytes exceeds the bound of "
                f"{self.max_response_bytes}",
                status=resp.status,
            )
        compressed = "Content-Encoding" in resp.headers
        reader = StreamedString(lift, None if compressed else declared)
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > self.max_response_bytes:
                raise ResponseTooLarge(
                    f"{method} {path}: answer exceeds the bound of {self.max_response_bytes} bytes",
                    status=resp.status,
                )
            reader.feed(chunk)
        return reader.finish()

    def _answer(
        self,
        status: int,
        raw: bytes | bytearray,
        method: str,
        path: str,
        retry_after: float | None,
        lift: str | None = None,
        *,
        streamed: tuple[bytes | bytearray, bytes | None, bytes] | None = None,
    ) -> Answer:
        body: bytes | bytearray = raw
        lifted = image = None
        first: bytes | bytearray = raw
        if streamed is not None and streamed[1] is not None:
            body, image, first = streamed  # the value was decoded on the way in
        elif lift is not None and 200 <= status < 300:
            body, lifted = lift_string(raw, lift)
        try:
            envelope = loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            envelope = None
        if not isinstance(envelope, dict):
            snippet = first[:_SNIPPET].decode("utf-8", "replace")
            if 200 <= status < 300:
                raise MalformedResponse(
                    f"{method} {path}: HTTP {status} answer is not a JSON object: {snippet!r}",
                    status=status,
                )
            raise error_from_response(status, "", snippet, retry_after=retry_after)
        request_id = envelope.get("request_id")
        request_id = request_id if isinstance(request_id, str) else ""
        code = envelope.get("code")
        message = envelope.get("message")
        code = code if isinstance(code, str) else ""
        message = message if isinstance(message, str) else ""
        if 200 <= status < 300 and (code == "OK" or code.upper() == "OK"):
            return Answer(envelope.get("data"), request_id, status, lifted, image)
        if 200 <= status < 300 and not code and "data" in envelope:
            raise MalformedResponse(
                f"{method} {path}: HTTP {status} envelope has no code", status=status
            )
        raise error_from_response(
            status, code, message or f"HTTP {status}", request_id, retry_after=retry_after
        )


def _add_headers(headers: dict[str, str], extra: Mapping[str, str]) -> None:
    """Add ``extra`` to ``headers``, leaving every header already there (the signed ones)."""
    if extra:
        taken = {name.lower() for name in headers}
        for name, value in extra.items():
            if name.lower() not in taken:
                headers[name] = value


def _safe(exc: BaseException) -> str:
    # aiohttp connection errors name the host and port only; request headers (where the
    # signature lives) are never part of their text. Keep it short.
    return str(exc)[:300]
