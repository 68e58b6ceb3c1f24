"""The gateway: apps, signature check over the raw body, request-time skew and call quotas.

The check has two halves. :func:`identify` needs only the ``Authorization`` header: it names the
app and checks that the signature has the shape of one (64 hex digits), so a request that no app
sent, or that carries no possible signature, is refused before its body is read. The signature
itself (:func:`check_signature`) is then verified over the exact bytes received, before any
parsing, because the four official SDKs send the same request as four different byte strings
(see ``PROTOCOL.md`` 1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import ApiError
from ._wire import NOT_FOUND_APPID, SIGN_ERROR

__all__ = [
    "REQUEST_TIME_ERROR",
    "AppConfig",
    "basic_auth_app",
    "check_signature",
    "identify",
    "named_app",
    "signature",
]

# Emulator choice (undocumented upstream): a present X-Request-Time that is not a number or is
# outside the skew window is refused like a bad signature, with its own message.
REQUEST_TIME_ERROR = (401, "PARAMETER_ERROR", "request time expired")

# What every official SDK sends after the colon: a lowercase hex HMAC-SHA256 (PROTOCOL.md 1.1).
# Upper case is let through to the comparison (which refuses it) rather than named here.
_SIGNATURE_SHAPE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class AppConfig:
    """One application the emulator accepts.

    Attributes:
        app_id: the AppId clients put before the colon in ``Authorization``.
        token: the secret key of the HMAC.
        sdxl: whether ``train_xl`` and ``create_xl`` are enabled (otherwise 404 model not found).
        quota: how many ``aigc_images`` calls (check, train, create) the app may make; None is
            unlimited. Job and batch queries are free.
        used: calls counted against the quota so far.
    """

    app_id: str
    token: str
    sdxl: bool = True
    quota: int | None = None
    used: int = 0

    def __repr__(self) -> str:
        return f"AppConfig(app_id={self.app_id!r}, sdxl={self.sdxl}, quota={self.quota})"

    @property
    def exhausted(self) -> bool:
        """Whether the call quota is used up."""
        return self.quota is not None and self.used >= self.quota


def signature(token: str, method: str, path: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 the official SDKs send for this request."""
    sign_str = f"{method.upper()}\n{hashlib.md5(body).hexdigest()}\n{path}"
    return hmac.new(token.encode("utf-8"), sign_str.encode("utf-8"), hashlib.sha256).hexdigest()


def named_app(apps: Mapping[str, AppConfig], authorization: str | None) -> AppConfig | None:
    """The known app an ``Authorization`` value names before its last colon, if any."""
    if not authorization or ":" not in authorization:
        return None
    return apps.get(authorization.strip().rpartition(":")[0])


def identify(apps: Mapping[str, AppConfig], authorization: str | None) -> tuple[AppConfig, str]:
    """The app named by ``Authorization`` and the signature it sent, or :class:`ApiError`.

    Needs no body. A missing or colon-less header, or an unknown AppId, names no app: "not found
    appid". A signature that is not 64 hex digits (including one with bytes that are not UTF-8,
    which aiohttp hands over as surrogates) can match no body: "sign error".
    """
    app = named_app(apps, authorization)
    if app is None or authorization is None:
        raise ApiError.of(NOT_FOUND_APPID)
    sent = authorization.strip().rpartition(":")[2].strip()
    if not _SIGNATURE_SHAPE.fullmatch(sent):
        raise ApiError.of(SIGN_ERROR)
    return app, sent


def check_signature(
    app: AppConfig,
    sent: str,
    *,
    method: str,
    path: str,
    body: bytes,
    request_time: str | None,
    now: float,
    skew: float | None,
) -> None:
    """Verify ``sent`` (from :func:`identify`) over ``body``, then ``X-Request-Time``.

    The signature is compared in constant time. ``X-Request-Time`` is checked only when present
    and ``skew`` is not None.
    """
    expected = signature(app.token, method, path, body)
    if not hmac.compare_digest(expected.encode("ascii"), sent.encode("ascii")):
        raise ApiError.of(SIGN_ERROR)
    if request_time is not None and skew is not None:
        try:
            sent_time = float(request_time.strip())
        except ValueError:
            raise ApiError.of(REQUEST_TIME_ERROR) from None
        if not abs(now - sent_time) <= skew:  # also refuses nan
            raise ApiError.of(REQUEST_TIME_ERROR)


def basic_auth_app(apps: Mapping[str, AppConfig], authorization: str | None) -> AppConfig | None:
    """The app whose AppId and token an HTTP Basic ``Authorization`` value carries, or None.

    The token is compared in constant time (the dashboard's credentials are the apps' own).
    """
    scheme, _, encoded = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (ValueError, UnicodeDecodeError):
        return None
    app = apps.get(user)
    if not sep or app is None:
        return None
    return app if hmac.compare_digest(password.encode(), app.token.encode()) else None
