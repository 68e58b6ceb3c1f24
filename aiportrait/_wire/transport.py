"""The one place that touches aiohttp: encode once, sign those bytes, send, map the answer.

Nothing here knows what a portrait is. Every aiohttp, JSON or timeout exception is translated
into the :mod:`aiportrait.errors` tree at this boundary. The token lives in a private attribute
and is never logged, shown in a repr or put in an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import aiohttp

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
from .http import default_user_agent, normalise_host, parse_retry_after
from .signing import authorization, public_text, redacted
from .streamed import _SNIPPET, StreamedString, lift_string

__all__ = ["DEFAULT_READ_TIMEOUT", "DEFAULT_TIMEOUT", "Answer", "Transport", "client_timeout"]

log = logging.getLogger("aiportrait")

DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(
    total=300, connect=10, sock_connect=10, sock_read=180
)
"""Connect within 10 s; a create may take tens of seconds, so wait up to 180 s for bytes and
300 s in all (the Java SDK caps at 100 s, which a busy SDXL create can exceed)."""

DEFAULT_READ_TIMEOUT: Final = aiohttp.ClientTimeout(total=180, connect=10, sock_connect=10)
"""What :data:`DEFAULT_TIMEOUT` means for a try of a read-only call (check, job and batch
queries): 180 s in all. Their answers are a few kilobytes, so a whole try of 180 s cuts a
stalled server no later than 180 s between bytes did, without the read timer that aiohttp
arms and re-arms at every read (about 36 k instructions a call, 6-8 % of a bare client's)."""


def client_timeout(timeout: aiohttp.ClientTimeout | float) -> aiohttp.ClientTimeout:
    """A Session's ``timeout`` argument as a ``ClientTimeout`` (seconds: each try in all)."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidArgument(f"timeout must be a ClientTimeout or seconds > 0, not {timeout!r}")
    # Seconds bound the whole try; a create may send nothing until its portrait is done.
    return aiohttp.ClientTimeout(total=timeout, connect=min(10.0, timeout))


DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024

_SMALL: Final = 64 * 1024
"""An answer of at most this many bytes (and not compressed) is read in one go."""

_NO_BODY_HEADERS: Final = ("Content-Type",)
"""A request without a body carries no Content-Type (the Go SDK's job and batch queries)."""


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
        # The data is not shown: it may hold the presigned URLs a check or a job echoes.
        data = f"<{type(self.data).__name__}, not shown>"
        return f"Answer(data={data}, request_id={self.request_id!r}, status={self.status})"


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

    def _declared(self, resp: aiohttp.ClientResponse, method: str, path: str) -> int | None:
        """The answer's declared length; refused at once when it is over the bound."""
        declared = resp.content_length
        if declared is not None and declared > self.max_response_bytes:
            raise ResponseTooLarge(
                f"{method} {path}: answer of {declared} bytes exceeds the bound of "
                f"{self.max_response_bytes}",
                status=resp.status,
            )
        return declared

    def _too_large(self, resp: aiohttp.ClientResponse, method: str, path: str) -> ResponseTooLarge:
        """An answer that went over the bound while it was read."""
        return ResponseTooLarge(
            f"{method} {path}: answer exceeds the bound of {self.max_response_bytes} bytes",
            status=resp.status,
        )

    async def _read(
        self, resp: aiohttp.ClientResponse, method: str, path: str
    ) -> bytes | bytearray:
        declared = self._declared(resp, method, path)
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
                raise self._too_large(resp, method, path)
        return buf

    async def _stream(
        self, resp: aiohttp.ClientResponse, method: str, path: str, lift: str
    ) -> tuple[bytes | bytearray, bytes | None, bytes]:
        """Read a 2xx answer through a :class:`StreamedString` for the ``lift`` field."""
        declared = self._declared(resp, method, path)
        compressed = "Content-Encoding" in resp.headers
        reader = StreamedString(lift, None if compressed else declared)
        received = 0
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > self.max_response_bytes:
                raise self._too_large(resp, method, path)
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
            # the server's text, a presigned URL in it query-less (it goes into the error)
            snippet = public_text(first[:_SNIPPET].decode("utf-8", "replace"))
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
        message = public_text(message) if isinstance(message, str) else ""
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
