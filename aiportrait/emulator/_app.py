"""The aiohttp application: routes, the gateway in front of every API call, faults, media files.

Every API request goes through :func:`_gateway` in this order: added latency, an outcome fault
drawn *before* processing (drop, 5xx, 429), reading the body (size-limited), the signature over
those raw bytes, the ``X-Request-Time`` skew, the call quota, the handler, and finally an outcome
fault drawn *after* processing (drop, malformed body). Error answers use the normal envelope.
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

from ._auth import AppConfig, verify
from ._errors import BAD_BODY, BODY_TOO_LARGE, INTERNAL_ERROR, JOB_NOT_FOUND, ApiError
from ._faults import Fault
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
NOT_FOUND = (404, "NOT_FOUND", "not found")
METHOD_NOT_ALLOWED = (405, "METHOD_NOT_ALLOWED", "method not allowed")

Handler = Callable[[AppConfig, bytes, str, web.Request], Awaitable[dict[str, Any]]]


class Settings:
    """HTTP-level settings of one emulator."""

    def __init__(self, *, time_skew: float | None, serve_dir: Path | None) -> None:
        self.time_skew = time_skew
        self.serve_dir = serve_dir


SERVICE_KEY: web.AppKey[Service] = web.AppKey("service", Service)
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)


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


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


async def _gateway(request: web.Request, handler: Handler, *, aigc: bool) -> web.Response:
    service = request.app[SERVICE_KEY]
    settings = request.app[SETTINGS_KEY]
    counters = service.counters
    injector = service.injector
    path = request.path
    counters.requests += 1
    delay = injector.delay(path)
    if delay:
        counters.faults["latency"] += 1
        await asyncio.sleep(delay)
    fault = injector.outcome(path)
    if fault is not Fault.NONE:
        counters.faults[fault.value] += 1
    if fault is Fault.DROP_BEFORE:
        return _drop(request)
    if fault is Fault.ERROR_5XX:
        return _error((injector.faults.status_5xx, *INJECTED_5XX))
    if fault is Fault.TOO_MANY:
        response = _error(THROTTLED)
        response.headers["Retry-After"] = _retry_after(injector.faults.retry_after)
        return response

    request_id = str(uuid.uuid4())
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        # No official SDK compresses request bodies; inflating one before the size check
        # would let a small request take a lot of memory.
        return _error(BAD_BODY, request_id)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(BODY_TOO_LARGE, request_id)
    except web.RequestPayloadError:
        return _error(BAD_BODY, request_id)
    try:
        try:
            app = verify(
                service.apps,
                method=request.method,
                path=path,
                body=raw,
                authorization=request.headers.get("Authorization"),
                request_time=request.headers.get("X-Request-Time"),
                now=time.time(),
                skew=settings.time_skew,
            )
            if aigc:
                if app.exhausted:
                    raise ApiError.of(EXCEEDED_QUOTA)
                app.used += 1
        except ApiError:
            counters.gateway_errors += 1
            raise
        counters.fingerprints[(path, hashlib.md5(raw).hexdigest())] += 1
        data = await handler(app, raw, request_id, request)
        body = envelope_bytes(request_id, "OK", "success", data)
        status = 200
    except ApiError as exc:
        status, body = exc.status, envelope_bytes(request_id, exc.code, exc.message, {})
    except Exception:
        log.exception("unexpected error on %s %s", request.method, path)
        status, code, message = INTERNAL_ERROR
        body = envelope_bytes(request_id, code, message, {})

    if fault is Fault.DROP_AFTER:
        return _drop(request)
    if fault is Fault.MALFORMED:
        return _json_response(200, body[: max(1, len(body) // 2)])
    return _json_response(status, body)


def _api(handler: Handler, *, aigc: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        return await _gateway(request, handler, aigc=aigc)

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
    """Serve a file of ``--serve-dir``: unsigned, read-only, one path segment, no dot files."""
    root = request.app[SETTINGS_KEY].serve_dir
    name = request.match_info["name"]
    if root is None or not name or name.startswith(".") or "/" in name or "\\" in name:
        return _error(NOT_FOUND)
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return _error(NOT_FOUND)
    return web.FileResponse(path)


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
) -> web.Application:
    """Build the web application for ``service``."""
    app = web.Application(client_max_size=max_body, middlewares=[_envelope_errors])
    app[SERVICE_KEY] = service
    app[SETTINGS_KEY] = Settings(time_skew=time_skew, serve_dir=serve_dir)
    app.router.add_post(CHECK_PATH, _api(_check, aigc=True))
    app.router.add_post(TRAIN_PATH, _api(_train, aigc=True))
    app.router.add_post(CREATE_PATH, _api(_create, aigc=True))
    job = _api(_job, aigc=False)
    app.router.add_post(JOB_PATH_PREFIX + "{job_id}", job)
    app.router.add_get(JOB_PATH_PREFIX + "{job_id}", job, allow_head=False)
    app.router.add_get(BATCH_PATH_PREFIX + "{batch_id}", _api(_batch, aigc=False), allow_head=False)
    app.router.add_get("/media/{name}", _media)
    app.router.add_get("/healthz", _healthz)
    return app
