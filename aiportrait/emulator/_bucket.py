"""An OSS-compatible bucket on the emulator: PUT, HEAD, GET and DELETE of objects.

Path-style addressing (``http://127.0.0.1:PORT/<bucket>/<key>``, what the OSS SDKs use for an IP
endpoint), objects in memory. Every request must carry an OSS V4 signature (``OSS4-HMAC-SHA256``),
in the ``Authorization`` header or as a presigned query string, verified over the request as it
was received (:mod:`._oss_sign`). The access key id is an AppId of the emulator and the secret
its token, so a client that can call the emulator can use its bucket. Errors are OSS's XML
``<Error>`` documents (``SignatureDoesNotMatch`` with status 403 for a bad signature,
``AccessDenied`` "Request has expired." for an expired presigned URL, ``NoSuchKey``...).

Training, check and create name uploaded objects by their presigned URL; the emulator fetches
them from itself over loopback like any other URL, through the same signature check.
:attr:`Bucket.refuse_puts` makes every PUT fail with ``AccessDenied`` (a bucket policy refusing
the upload), for tests of that failure.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from xml.sax.saxutils import escape

from aiohttp import web

from ._media import SANDBOXED
from ._oss_sign import (
    Credential,
    SignatureFormatError,
    canonical_query,
    canonical_request,
    parse_authorization,
    query_value,
    signature,
    string_to_sign,
)

__all__ = ["DEFAULT_BUCKET", "Bucket", "StoredObject", "add_bucket_routes"]

#: The bucket name of an emulator unless told otherwise.
DEFAULT_BUCKET = "aiportrait-local"
#: Largest clock difference accepted for a header-signed request (OSS: 15 minutes).
MAX_SKEW = 15 * 60
#: Longest validity of a presigned URL (OSS V4: 7 days).
MAX_EXPIRES = 7 * 24 * 3600

_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


@dataclass(frozen=True)
class StoredObject:
    """One object of the bucket."""

    data: bytes = field(repr=False)
    content_type: str
    etag: str
    modified: float


@dataclass
class Bucket:
    """The emulator's bucket: its objects, what it did, and whether it refuses uploads.

    ``secret_of`` maps an access key id to its secret (the emulator's apps: AppId to token).
    """

    name: str
    secret_of: Callable[[str], str | None] = field(repr=False)
    objects: dict[str, StoredObject] = field(default_factory=dict, repr=False)
    refuse_puts: bool = False
    changed: Callable[[str, StoredObject | None], None] | None = field(default=None, repr=False)
    """Told of each object stored (with it) or deleted (None): the emulator's dashboard."""
    puts: int = 0
    gets: int = 0
    heads: int = 0
    deletes: int = 0
    refused: int = 0


class OssError(Exception):
    """An OSS error answer: status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_response(method: str, exc: OssError) -> web.Response:
    request_id = uuid.uuid4().hex.upper()[:24]
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{escape(exc.code)}</Code>\n  <Message>{escape(exc.message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>emulator</HostId>\n</Error>\n"
    ).encode()
    headers = {"x-oss-request-id": request_id}
    if method == "HEAD":  # no body: OSS sends the error document in a header instead
        headers["x-oss-err"] = base64.b64encode(xml).decode()
        return web.Response(status=exc.status, headers=headers)
    return web.Response(
        status=exc.status, body=xml, content_type="application/xml", headers=headers
    )


def _timestamp(text: str | None) -> float:
    try:
        moment = datetime.datetime.strptime(text or "", "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise OssError(403, "AccessDenied", "x-oss-date is missing or malformed") from None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _verify(bucket: Bucket, request: web.Request, key: str, now: float) -> None:
    """Check the V4 signature of ``request`` (header or query form), or raise :class:`OssError`."""
    raw_query = request.rel_url.raw_query_string
    headers: Mapping[str, str] = request.headers
    try:
        if query_value(raw_query, "x-oss-signature") is not None:
            if query_value(raw_query, "x-oss-signature-version") != "OSS4-HMAC-SHA256":
                raise OssError(400, "InvalidArgument", "unsupported x-oss-signature-version")
            credential = Credential.parse(query_value(raw_query, "x-oss-credential") or "")
            listed = query_value(raw_query, "x-oss-additional-headers") or ""
            extra = [h for h in listed.split(";") if h]
            sent = query_value(raw_query, "x-oss-signature") or ""
            stamp = query_value(raw_query, "x-oss-date")
            signed_at = _timestamp(stamp)
            try:
                expires = int(query_value(raw_query, "x-oss-expires") or "")
            except ValueError:
                raise OssError(400, "InvalidArgument", "x-oss-expires is not a number") from None
            if expires > MAX_EXPIRES:
                raise OssError(400, "InvalidArgument", "x-oss-expires is longer than 7 days")
            query = canonical_query(raw_query, without=("x-oss-signature",))
            if now > signed_at + expires:
                raise OssError(403, "AccessDenied", "Request has expired.")
        else:
            authorization = headers.get("Authorization")
            if not authorization:
                raise OssError(403, "AccessDenied", "You have no right to access this object.")
            credential, extra, sent = parse_authorization(authorization)
            stamp = headers.get("x-oss-date")
            signed_at = _timestamp(stamp)
            if abs(now - signed_at) > MAX_SKEW:
                raise OssError(
                    403,
                    "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                )
            query = canonical_query(raw_query)
    except SignatureFormatError as exc:
        raise OssError(400, "InvalidArgument", str(exc)) from None
    assert stamp is not None
    if credential.date != stamp[:8] or credential.product != "oss":
        raise OssError(403, "SignatureDoesNotMatch", _MISMATCH)
    secret = bucket.secret_of(credential.access_key_id)
    if secret is None:
        raise OssError(
            403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist."
        )
    payload = headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    canonical = canonical_request(request.method, bucket.name, key, query, headers, extra, payload)
    expected = signature(secret, credential, string_to_sign(stamp, credential.scope, canonical))
    if not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
        raise OssError(403, "SignatureDoesNotMatch", _MISMATCH)


def _object_headers(obj: StoredObject) -> dict[str, str]:
    modified = datetime.datetime.fromtimestamp(obj.modified, datetime.timezone.utc)
    return {
        "ETag": f'"{obj.etag}"',
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Content-Type": obj.content_type,
        "x-oss-object-type": "Normal",
        "x-oss-request-id": uuid.uuid4().hex.upper()[:24],
        **SANDBOXED,
    }


async def _handle(bucket: Bucket, request: web.Request) -> web.Response:
    key = request.match_info["key"]
    _verify(bucket, request, key, time.time())
    method = request.method
    if method == "PUT":
        data = await request.read()
        md5 = request.headers.get("Content-MD5")
        digest = hashlib.md5(data).digest()
        if md5 is not None and md5 != base64.b64encode(digest).decode():
            raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        if bucket.refuse_puts:
            bucket.refused += 1
            raise OssError(403, "AccessDenied", "The bucket policy does not allow this upload.")
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        obj = StoredObject(data, content_type, digest.hex().upper(), time.time())
        bucket.objects.pop(key, None)  # a stored key moves to the end: newest last
        bucket.objects[key] = obj
        bucket.puts += 1
        if bucket.changed is not None:
            bucket.changed(key, obj)
        headers = _object_headers(obj)
        del headers["Content-Type"], headers["Last-Modified"]
        return web.Response(status=200, headers=headers)
    if method == "DELETE":
        if bucket.objects.pop(key, None) is not None and bucket.changed is not None:
            bucket.changed(key, None)
        bucket.deletes += 1
        return web.Response(status=204)
    stored = bucket.objects.get(key)
    if stored is None:
        raise OssError(404, "NoSuchKey", "The specified key does not exist.")
    headers = _object_headers(stored)
    if method == "HEAD":
        bucket.heads += 1
        headers["Content-Length"] = str(len(stored.data))
        return web.Response(status=200, headers=headers)
    bucket.gets += 1
    del headers["Content-Type"]
    return web.Response(
        status=200, body=stored.data, content_type=stored.content_type, headers=headers
    )


def add_bucket_routes(app: web.Application, bucket: Bucket) -> None:
    """Serve ``bucket`` at ``/<bucket.name>/<key>``."""

    async def route(request: web.Request) -> web.StreamResponse:
        try:
            return await _handle(bucket, request)
        except OssError as exc:
            return _error_response(request.method, exc)

    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = route
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        app.router.add_route(method, f"/{bucket.name}/{{key:.+}}", handler)
