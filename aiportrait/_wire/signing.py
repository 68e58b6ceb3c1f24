"""Request signing, exactly as the official SDKs sign.

``Authorization: <app_id>:<hex(HMAC-SHA256(token, METHOD "\\n" md5hex(body) "\\n" PATH))>``

The signature covers the exact body bytes that go on the wire, so callers encode a body once and
pass those same bytes here and to the HTTP layer. Pure functions; nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping

__all__ = ["PrivateMapping", "Redacted", "authorization", "redacted", "sign", "sign_string"]


class Redacted(str):
    """A secret string (a token, an ``Authorization`` value) whose ``repr`` hides it.

    It is sent as itself; only ``repr`` changes, which is what tracebacks rendered with their
    locals (``capture_locals=True``, pytest ``--showlocals``, error trackers), debuggers and
    ``repr`` of containers show.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


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
