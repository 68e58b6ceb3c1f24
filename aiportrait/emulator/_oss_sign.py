"""OSS V4 signatures (``OSS4-HMAC-SHA256``), as the emulator's bucket verifies them.

The emulator's own copy of Alibaba Cloud OSS's V4 signing (the emulator never imports a client,
neither aiportrait's nor the OSS SDK): a canonical request of method, ``/bucket/key``, the sorted
query, the signed headers (every ``x-oss-*`` header, ``content-type``, ``content-md5`` and the
``AdditionalHeaders``), the additional header names and the payload hash; a string to sign of
the algorithm, the timestamp, the scope ``date/region/oss/aliyun_v4_request`` and the hash of the
canonical request; and a key derived from ``"aliyun_v4" + secret`` through date, region, product
and ``aliyun_v4_request``. Pure functions; nothing here logs, and no secret is ever returned.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "UNSIGNED_PAYLOAD",
    "Credential",
    "SignatureFormatError",
    "canonical_query",
    "canonical_request",
    "parse_authorization",
    "query_value",
    "signature",
    "string_to_sign",
]

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_CREDENTIAL = re.compile(r"^([^/]+)/(\d{8})/([^/]*)/([^/]+)/aliyun_v4_request$")


class SignatureFormatError(ValueError):
    """The ``Authorization`` header or the presigned query is not a V4 signature."""


@dataclass(frozen=True)
class Credential:
    """The ``Credential`` of a V4 signature: the key id and the scope it signed for."""

    access_key_id: str
    date: str
    region: str
    product: str

    @property
    def scope(self) -> str:
        """``date/region/product/aliyun_v4_request``."""
        return f"{self.date}/{self.region}/{self.product}/aliyun_v4_request"

    @classmethod
    def parse(cls, text: str) -> Credential:
        """Read ``AKID/20240101/cn-hangzhou/oss/aliyun_v4_request``."""
        match = _CREDENTIAL.match(text)
        if match is None:
            raise SignatureFormatError("malformed credential")
        return cls(*match.groups())


def parse_authorization(value: str) -> tuple[Credential, list[str], str]:
    """The credential, the additional header names and the signature of an ``Authorization``
    header ``OSS4-HMAC-SHA256 Credential=...,AdditionalHeaders=a;b,Signature=hex``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureFormatError("not an OSS4-HMAC-SHA256 signature")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, text = part.strip().partition("=")
        if not sep:
            raise SignatureFormatError("malformed Authorization header")
        fields[name] = text
    if "Credential" not in fields or "Signature" not in fields:
        raise SignatureFormatError("the Authorization header lacks Credential or Signature")
    extra = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
    return Credential.parse(fields["Credential"]), extra, fields["Signature"]


def canonical_query(raw_query: str, *, without: Iterable[str] = ()) -> str:
    """The query pairs, each name and value percent-encoded the canonical way (RFC 3986: only
    ``A-Z a-z 0-9 - _ . ~`` left as they are, whatever encoding the sender's HTTP library
    chose), sorted, ``without`` some names."""
    skip = set(without)
    pairs = []
    for pair in raw_query.split("&") if raw_query else []:
        raw_key, _, raw_value = pair.partition("=")
        key, value = quote(unquote(raw_key), safe=""), quote(unquote(raw_value), safe="")
        if key and unquote(raw_key) not in skip:
            pairs.append((key, value))
    return "&".join(f"{k}={v}" if v else k for k, v in sorted(pairs))


def _signed(name: str, additional: Iterable[str]) -> bool:
    return (
        name.startswith("x-oss-") or name in ("content-type", "content-md5") or (name in additional)
    )


def canonical_request(
    method: str,
    bucket: str,
    key: str,
    query: str,
    headers: Mapping[str, str],
    additional: list[str],
    payload_hash: str,
) -> str:
    """The V4 canonical request; ``key`` is the decoded object key, ``query`` the output of
    :func:`canonical_query`, ``headers`` the received headers (any case)."""
    uri = quote(f"/{bucket}/{key}", safe="/")
    signed = sorted(
        (name.lower(), value)
        for name, value in headers.items()
        if _signed(name.lower(), additional)
    )
    lines = "".join(f"{name}:{value}\n" for name, value in signed)
    return f"{method}\n{uri}\n{query}\n{lines}\n{';'.join(additional)}\n{payload_hash}"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    """Algorithm, timestamp, scope and the hex SHA-256 of the canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret: str, credential: Credential, to_sign: str) -> str:
    """The hex signature of ``to_sign`` with the key derived from ``secret`` for the scope."""
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (credential.date, credential.region, credential.product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def query_value(raw_query: str, name: str) -> str | None:
    """The decoded value of ``name`` in a raw query string (None when absent)."""
    for pair in raw_query.split("&") if raw_query else []:
        key, _, value = pair.partition("=")
        if key == name:
            return unquote(value)
    return None
