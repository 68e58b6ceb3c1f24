"""Request signing, exactly as the official SDKs sign.

``Authorization: <app_id>:<hex(HMAC-SHA256(token, METHOD "\\n" md5hex(body) "\\n" PATH))>``

The signature covers the exact body bytes that go on the wire, so callers encode a body once and
pass those same bytes here and to the HTTP layer. Pure functions; nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PresignedURL", "PrivateMapping", "Redacted", "authorization", "presigned", "redacted", "sign",
    "sign_string", "unsigned", "unsigned_data",
]  # fmt: skip


class Redacted(str):
    """A secret string (a token, an ``Authorization`` value) whose ``repr`` hides it.

    It is sent as itself; only ``repr`` changes, which is what tracebacks rendered with their
    locals (``capture_locals=True``, pytest ``--showlocals``, error trackers), debuggers and
    ``repr`` of containers show.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


class PresignedURL(str):
    """A presigned URL (of an uploaded photo): a key that lets whoever holds it read a person's
    photo until it expires.

    It is sent as itself (a ``str``: JSON and the wire see the whole URL); everywhere else it
    shows without its query, where the signature is: ``repr``, ``str`` and formatting (messages,
    output, tracebacks rendered with their locals, error trackers) show :attr:`public` (or, for
    ``str`` and formatting, :attr:`source`, the user's own name of a local photo, when known),
    and a pickle holds only :attr:`public` (a copy is the same object). :meth:`reveal` is the
    usable URL, for the code that sends it.
    """

    source: str | None

    def __new__(cls, url: str, source: str | None = None) -> PresignedURL:
        if isinstance(url, PresignedURL):  # its str() is the public form: take the usable URL
            source = url.source if source is None else source
            url = url.reveal()
        self = super().__new__(cls, url)
        self.source = source
        return self

    @property
    def public(self) -> str:
        """The URL without its query (no signature, no credential): where the object is."""
        parts = urlsplit(str.__str__(self))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def reveal(self) -> str:
        """The usable URL, as a plain ``str`` (for the code that sends it; never shown)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        source = "" if self.source is None else f", source={self.source!r}"
        return f"PresignedURL({self.public + '?<signature hidden>'!r}{source})"

    def __str__(self) -> str:
        return self.source if self.source is not None else self.public

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (self.public,))

    def __copy__(self) -> PresignedURL:
        return self

    def __deepcopy__(self, memo: Any) -> PresignedURL:
        return self


def presigned(value: Any) -> Any:
    """``value`` as a :class:`PresignedURL` when it is a string that carries a signature in its
    query (OSS, S3 or OSS V1 style); anything else unchanged."""
    if isinstance(value, str) and not isinstance(value, PresignedURL) and _signed(value):
        return PresignedURL(value)
    return value


_SIGNATURES = ("x-oss-signature=", "signature=", "x-amz-signature=", "x-oss-credential=")
_URL: Final = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+""")


def unsigned(text: str) -> str:
    """``text`` with each signed URL in it (whole, or inside a message or a JSON text) cut
    before its query: what may be stored or shown."""
    if isinstance(text, PresignedURL):
        return text.public
    if "?" not in text:  # the usual case: no query, nothing to look for
        return text
    return _URL.sub(_public, text)


def unsigned_data(data: Any) -> Any:
    """JSON data (a training state, a job's result) with every signed URL in it cut before
    its query (:func:`unsigned`), in a copy: what may be written to a file."""
    if isinstance(data, str):
        return unsigned(data)
    if isinstance(data, dict):
        return {k: unsigned_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [unsigned_data(v) for v in data]
    return data


def _public(match: re.Match[str]) -> str:
    text = match.group()
    url = text.rstrip(".,;:)]}")  # the punctuation of the sentence around it stays
    # A JSON text (a raw_result written by a Go service) may escape "&" as "\u0026".
    found = presigned(url.replace("\\u0026", "&"))
    return found.public + text[len(url) :] if isinstance(found, PresignedURL) else text


def _signed(url: str) -> bool:
    query = url.partition("?")[2].lower()
    return bool(query) and any(
        part.startswith(_SIGNATURES) for part in query.replace(";", "&").split("&")
    )


class PrivateMapping(Mapping[str, str]):
    """A read-only view of a mapping (the environment) whose ``repr`` shows no value."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<{len(self._data)} variables, values hidden>"


def redacted(value: str) -> str:
    """``value`` as a :class:`Redacted` string (anything else is returned unchanged)."""
    return Redacted(value) if isinstance(value, str) else value


def sign_string(method: str, path: str, body: bytes) -> str:
    """Return the string that is signed: method, md5 of the body and the resource path."""
    return f"{method.upper()}\n{hashlib.md5(body).hexdigest()}\n{path}"


def sign(token: str, method: str, path: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA256 of :func:`sign_string` keyed with the token."""
    message = sign_string(method, path, body).encode("utf-8")
    return hmac.new(token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def authorization(app_id: str, token: str, method: str, path: str, body: bytes) -> str:
    """Return the ``Authorization`` header value ``"<app_id>:<signature>"`` (redacted repr)."""
    # sign() and sign_string() in one frame: this runs once per request. (hmac.new, not the
    # one-shot hmac.digest: with OpenSSL 3 the latter looks the MAC up by name at every call.)
    message = f"{method.upper()}\n{hashlib.md5(body).hexdigest()}\n{path}".encode()
    return Redacted(f"{app_id}:{hmac.new(token.encode(), message, hashlib.sha256).hexdigest()}")
