"""The aiohttp application: routes, the gateway in front of every API call, faults, media files.

Every API request goes through :func:`_gateway` in this order: added latency, an outcome fault
drawn *before* processing (drop, 5xx, 429), the ``Authorization`` header (a known AppId and a
signature-shaped value, see :func:`._auth.identify`), ``Content-Encoding`` and the declared
length, and only then reading the body (size- and time-limited), the signature over those raw
bytes, the ``X-Request-Time`` skew, the call quota, the handler, and finally an outcome fault
drawn *after* processing (drop, malformed body). Error answers use the normal envelope.

A request refused before its body is read is answered at once; aiohttp then discards whatever
body still arrives (for at most the read timeout) and closes the connection if it does not end.
A body that does not arrive within the read timeout is answered 408 and its connection closed.
Nothing of a request outlives it: the body is read into a local of the gateway (not cached on the
request), and the tracebacks of the exceptions it answers are cleared.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ._auth import AppConfig, check_signature, identify, named_app
from ._bucket import Bucket, add_bucket_routes
from ._dashboard import add_dashboard_routes, refused_host
from ._errors import (
    BODY_TIMEOUT,
    BODY_TOO_LARGE,
    BROKEN_BODY,
    ENCODED_BODY,
    INTERNAL_ERROR,
    JOB_NOT_FOUND,
    ApiError,
    forget_traceback,
)
from ._faults import Fault
from ._media import SANDBOXED, media_file
from ._service import Service
from ._wire import (
    BATCH_PATH_PREFIX,
    CHECK_PATH,
    CREATE_PATH,
    EXCEEDED_QUOTA,
    JOB_PATH_PREFIX,
    TRAIN_PATH,
)

__all__ = ["THROTTLED", "build_app", "envelope_bytes"]

log = logging.getLogger("aiportrait.emulator")

# Emulator choices for injected faults and unknown routes (status, code, message).
THROTTLED = (429, "THROTTLING_ERROR", "too many requests")
INJECTED_5XX = ("SERVICE_ERROR", "injected server error")
INJECTED_OUTAGE = ("SERVICE_UNAVAILABLE", "injected outage: the service is down")
NOT_FOUND = (404, "NOT_FOUND", "not found")
METHOD_NOT_ALLOWED = (405, "METHOD_NOT_ALLOWED", "method not allowed")

Handler = Callable[[AppConfig, bytes, str, web.Request], Awaitable[dict[str, Any]]]


class Settings:
    """HTTP-level settings of one emulator."""

    def __init__(
        self,
        *,
        time_skew: float | None,
        serve_dir: Path | None,
        max_body: int,
        read_timeout: float,
    ) -> None:
        self.time_skew = time_skew
        self.serve_dir = serve_dir
        self.max_body = max_body
        self.read_timeout = read_timeout


SERVICE_KEY: web.AppKey[Service] = web.AppKey("service", Service)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)


class _BodyTimeout(Exception):
    """The body did not arrive within the read timeout."""


def envelope_bytes(request_id: str, code: str, message: str, data: Any) -> bytes:
    """Encode an envelope the way the service does (Python ``json.dumps`` defaults)."""
    return json.dumps(
        {"request_id": request_id, "code": code, "message": message, "data": data}
    ).encode("utf-8")


def _json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _error(error: tuple[int, str, str], request_id: str = "") -> web.Response:
    status, code, message = error
    return _json_response(
        status, envelope_bytes(request_id or str(uuid.uuid4()), code, message, {})
    )


def _drop(request: web.Request) -> web.Response:
    """Abort the connection; the returned response is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


async def _answer_and_close(request: web.Request, response: web.Response) -> web.Response:
    """Send ``response`` now, then close the connection without waiting for the rest of the
    request (aiohttp would otherwise keep reading it for a while)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


async def _read_body(request: web.Request, settings: Settings) -> bytes:
    """The raw body, read within the size limit and the read timeout.

    The bytes stay in a local of the caller: ``request.read()`` would also keep them on the
    request, which aiohttp holds until the connection's next request.
    """
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        # No official SDK compresses request bodies; inflating one before the size check
        # would let a small request take a lot of memory.
        raise ApiError.of(ENCODED_BODY)
    limit = settings.max_body
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ApiError.of(BODY_TOO_LARGE)
    # One growing buffer rather than a list of chunks: freed, it goes back to the system at once
    # (many chunk-sized blocks would stay in the allocator's arenas, the process never shrinking).
    received = bytearray()

    async def receive() -> None:
        while chunk := await request.content.readany():
            if len(received) + len(chunk) > limit:
                raise ApiError.of(BODY_TOO_LARGE)
            received.extend(chunk)

    try:
        await asyncio.wait_for(receive(), settings.read_timeout)
    except asyncio.TimeoutError:
        raise _BodyTimeout from None
    except web.RequestPayloadError:
        raise ApiError.of(BROKEN_BODY) from None
    return bytes(received)


async def _answer(
    request: web.Request, handler: Handler, request_id: str, *, aigc: bool
) -> tuple[int, bytes]:
    """Status and envelope for one API request that got past the injected faults."""
    service = request.app[SERVICE_KEY]
    settings = request.app[SETTINGS_KEY]
    counters = service.counters
    charged: AppConfig | None = None
    try:
        try:
            app, sent = identify(service.apps, request.headers.get("Authorization"))
        except ApiError:
            counters.gateway_errors += 1
            raise
        raw = await _read_body(request, settings)
        try:
            check_signature(
                app,
                sent,
                method=request.method,
                path=request.path,
                body=raw,
                request_time=request.headers.get("X-Request-Time"),
                now=time.time(),
                skew=settings.time_skew,
            )
            if aigc:
                if app.exhausted:
                    raise ApiError.of(EXCEEDED_QUOTA)
                app.used += 1
                charged = app
                service.activity.charged(app.app_id, request.path)
        except ApiError:
            counters.gateway_errors += 1
            raise
        fingerprint = hashlib.md5(raw).hexdigest()
        counters.fingerprints[(request.path, fingerprint)] += 1
        service.activity.body_seen(request.path, fingerprint, raw, app.app_id)
        if service.hold is not None:
            await service.hold.passing(request.path)
        data = await handler(app, raw, request_id, request)
        return 200, envelope_bytes(request_id, "OK", "success", data)
    except ApiError as exc:
        forget_traceback(exc)
        return exc.status, envelope_bytes(request_id, exc.code, exc.message, {})
    except (_BodyTimeout, ConnectionError) as exc:
        forget_traceback(exc)  # its frames hold the part of the body that did arrive
        raise
    except Exception as exc:
        log.exception("unexpected error on %s %s", request.method, request.path)
        forget_traceback(exc)
        if charged is not None:  # the emulator failed: the call is not counted against the quota
            charged.used -= 1
            service.activity.charged(charged.app_id, request.path, -1)
        status, code, message = INTERNAL_ERROR
        return status, envelope_bytes(request_id, code, message, {})


async def _gateway(
    request: web.Request, handler: Handler, *, aigc: bool
) -> tuple[web.Response, str | None]:
    """The answer to one API request and the fault that fired on it (its name), if one did."""
    service = request.app[SERVICE_KEY]
    counters = service.counters
    injector = service.injector
    path = request.path
    counters.requests += 1
    counters.arrivals.append((time.monotonic(), path))
    delay = injector.delay(path)
    if delay:
        counters.faults["latency"] += 1
        await asyncio.sleep(delay)
    fault = injector.outcome(path)
    fired = "latency" if delay else None
    if fault is not Fault.NONE:
        counters.faults[fault.value] += 1
        fired = fault.value
    if fault is Fault.DROP_BEFORE:
        return _drop(request), fired
    if fault is Fault.ERROR_5XX:
        return _error((injector.faults.status_5xx, *INJECTED_5XX)), fired
    if fault in (Fault.TOO_MANY, Fault.OUTAGE):
        response = _error(THROTTLED if fault is Fault.TOO_MANY else (503, *INJECTED_OUTAGE))
        response.headers["Retry-After"] = _retry_after(injector.faults.retry_after)
        return response, fired

    request_id = str(uuid.uuid4())
    try:
        status, body = await _answer(request, handler, request_id, aigc=aigc)
    except _BodyTimeout:
        counters.read_timeouts += 1
        log.info("%s %s: body not received in time; connection closed", request.method, path)
        return await _answer_and_close(request, _error(BODY_TIMEOUT, request_id)), fired
    if fault is Fault.DROP_AFTER:
        return _drop(request), fired
    if fault is Fault.MALFORMED:
        return _json_response(200, body[: max(1, len(body) // 2)]), fired
    return _json_response(status, body), fired


def _api(handler: Handler, *, aigc: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        started = time.perf_counter()
        response, fired = await _gateway(request, handler, aigc=aigc)
        service = request.app[SERVICE_KEY]
        dropped = fired in (Fault.DROP_BEFORE.value, Fault.DROP_AFTER.value)
        app = named_app(service.apps, request.headers.get("Authorization"))
        service.activity.request(
            request.method,
            request.path,
            None if dropped else response.status,
            time.perf_counter() - started,
            fired,
            None if app is None else app.app_id,
        )
        return response

    return route


def _int_param(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise ApiError.of(JOB_NOT_FOUND) from None
    if not 0 < value < 2**63:
        raise ApiError.of(JOB_NOT_FOUND)
    return value


async def _check(app: AppConfig, raw: bytes, request_id: str, request: web.Request) -> Any:
    return await request.app[SERVICE_KEY].check(app, raw, request_id)


async def _train(app: AppConfig, raw: bytes, request_id: str, request: web.Request) -> Any:
    return await request.app[SERVICE_KEY].train(app, raw, request_id)


async def _create(app: AppConfig, raw: bytes, request_id: str, request: web.Request) -> Any:
    return await request.app[SERVICE_KEY].create(app, raw, request_id)


async def _job(app: AppConfig, raw: bytes, request_id: str, request: web.Request) -> Any:
    data = request.app[SERVICE_KEY].job(app, _int_param(request, "job_id"))
    if data is None:
        raise ApiError.of(JOB_NOT_FOUND)
    return data


async def _batch(app: AppConfig, raw: bytes, request_id: str, request: web.Request) -> Any:
    return request.app[SERVICE_KEY].batch(app, _int_param(request, "batch_id"))


async def _media(request: web.Request) -> web.StreamResponse:
    """Serve a file of ``--serve-dir``: unsigned, read-only, one path segment, no dot files;
    on loopback, only to a loopback name in ``Host`` (as the dashboard)."""
    refused = refused_host(request)
    if refused is not None:
        return refused
    root = request.app[SETTINGS_KEY].serve_dir
    path = None if root is None else media_file(root, request.match_info["name"])
    try:
        found = path is not None and path.is_file()
    except (OSError, ValueError):
        found = False
    if path is None or not found:
        return _error(NOT_FOUND)
    return web.FileResponse(path, headers=SANDBOXED)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "stand_in": True})


@web.middleware
async def _envelope_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer unknown routes and methods with an envelope instead of aiohttp's text page.

    A client that hangs up while its request is being read (a timeout on its side) is normal
    traffic for a service: it ends the request quietly instead of logging a traceback.
    """
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        return _error(METHOD_NOT_ALLOWED)
    except web.HTTPNotFound:
        return _error(NOT_FOUND)
    except ConnectionResetError:
        log.debug("client went away during %s %s", request.method, request.path)
        raise web.HTTPBadRequest() from None


def build_app(
    service: Service,
    *,
    max_body: int,
    time_skew: float | None,
    serve_dir: Path | None,
    read_timeout: float,
    bucket: Bucket | None = None,
    dashboard_auth: bool = False,
) -> web.Application:
    """Build the web application for ``service`` (with ``bucket``: its OSS-compatible routes),
    its dashboard behind credentials when ``dashboard_auth``."""
    app = web.Application(client_max_size=max_body, middlewares=[_envelope_errors])
    app[SERVICE_KEY] = service
    app[SETTINGS_KEY] = Settings(
        time_skew=time_skew, serve_dir=serve_dir, max_body=max_body, read_timeout=read_timeout
    )
    app.router.add_post(CHECK_PATH, _api(_check, aigc=True))
    app.router.add_post(TRAIN_PATH, _api(_train, aigc=True))
    app.router.add_post(CREATE_PATH, _api(_create, aigc=True))
    job = _api(_job, aigc=False)
    app.router.add_post(JOB_PATH_PREFIX + "{job_id}", job)
    app.router.add_get(JOB_PATH_PREFIX + "{job_id}", job, allow_head=False)
    app.router.add_get(BATCH_PATH_PREFIX + "{batch_id}", _api(_batch, aigc=False), allow_head=False)
    app.router.add_get("/media/{name}", _media)
    app.router.add_get("/healthz", _healthz)
    add_dashboard_routes(app, service, bucket, auth=dashboard_auth)
    if bucket is not None:
        add_bucket_routes(app, bucket)
    return app
