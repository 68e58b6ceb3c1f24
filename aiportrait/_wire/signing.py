"""Request signing, exactly as the official SDKs sign.

``Authorization: <app_id>:<hex(HMAC-SHA256(token, METHOD "\\n" md5hex(body) "\\n" PATH))>``

The signature covers the exact body bytes that go on the wire, so callers encode a body once and
pass those same bytes here and to the HTTP layer. Pure functions; nothing here logs.

Beside it, the secrets' types, sent as themselves and hidden from reprs (:class:`Redacted`,
:class:`PrivateBytes`, :class:`PresignedURL`), and presigned URLs made query-less wherever text
is shown or kept (:func:`public_url`, :func:`public_text`, :func:`public_json`,
:func:`without_signatures`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PresignedURL", "PrivateBytes", "PrivateMapping", "Redacted", "authorization", "presigned",
    "public_json", "public_text", "public_url", "redacted", "sign", "sign_string",
    "without_signatures",
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


class PrivateBytes(bytes):
    """Bytes that may hold a secret (a request body with presigned URLs) whose ``repr`` shows
    only their size: sent as themselves, hidden from tracebacks rendered with their locals."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes, not shown>"


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
        return _without_query(str.__str__(self))

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


def public_url(value: str) -> str:
    """A URL as output shows it: a presigned one (a :class:`PresignedURL`, or a string that
    carries a signature) without its query; any other as it is."""
    if isinstance(value, PresignedURL):
        return value.public
    return _without_query(value) if _signed(value) else value


_URL_IN_TEXT = re.compile(r"https?://[^\s\"'<>]+")


def public_text(text: str) -> str:
    """``text`` (a URL, or a message naming URLs) with each presigned URL in it query-less."""
    if isinstance(text, PresignedURL):
        return text.public
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_public_match, text)


def _public_match(match: re.Match[str]) -> str:
    """A URL found in text, query-less when presigned; the punctuation that ends a sentence
    after it (``.,:;!?)]}``) stays. In a JSON text a Go service wrote, its ``&`` may be
    ``\\u0026``."""
    found = match.group()
    url = found.rstrip(".,:;!?)]}\\")
    plain = url.replace("\\u0026", "&")
    public = public_url(plain)
    return found if public is plain else public + found[len(url) :]


def public_json(value: Any) -> Any:
    """JSON data (dicts, lists, tuples as lists, strings...) with each presigned URL in it
    query-less (:func:`public_text`): what output and stored text hold."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, (list, tuple)):
        return [public_json(item) for item in value]
    if isinstance(value, dict):
        return {key: public_json(item) for key, item in value.items()}
    return value


def _may_be_signed(text: str) -> bool:
    """Whether ``text`` holds what any presigned URL's query holds (see :func:`presigned`): a
    quick test before any parsing."""
    low = text.lower()
    return "signature=" in low or "credential=" in low


def without_signatures(raw: str | None) -> str | None:
    """A job's ``Result`` text with each presigned URL in it query-less (its signature and
    credential gone), so that what keeps the text (``Job.raw_result``, ``JobFailed``, logs,
    pickles) holds no usable URL; text with none is returned as it is. Each URL is replaced
    in the text; JSON whose URLs the text does not show whole (escaped ``&``) is rewritten
    from its values, as the service writes it (``json.dumps`` defaults)."""
    if not raw or not _may_be_signed(raw):
        return raw
    text = public_text(raw)
    if not _may_be_signed(text):
        return text
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return text
    public = public_json(value)
    return text if public == value else json.dumps(public)


_SIGNATURES = ("x-oss-signature=", "signature=", "x-amz-signature=", "x-oss-credential=")


def _signed(url: str) -> bool:
    query = url.partition("?")[2].lower()
    return bool(query) and any(
        part.startswith(_SIGNATURES) for part in query.replace(";", "&").split("&")
    )


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


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
