"""An aiohttp.web backend that holds ONE ``aiportrait.Session`` for its whole lifetime.

Endpoints:

- ``POST /trainings`` with a JSON list of photo URLs (or ``{"photos": [...]}``): starts a
  training and answers ``202`` with the job handle. The handle is stored in a small JSON file,
  so a restarted backend still knows the job.
- ``GET /trainings``: the stored trainings, each with its current state (asked of the service).
- ``GET /trainings/{job_id}/events``: server-sent events, one ``state`` event per state change,
  ending with a ``result`` (the model id) or a ``failed`` event (or ``error``: e.g. a deadline).
- ``POST /portraits`` with ``{"model_id": ..., "template": URL, "config": {...}}`` (or
  ``"job_id"`` instead of ``"model_id"``): answers the portrait itself, ``image/jpeg`` or
  ``image/png``.

Every error is JSON ``{"error": name, "message": ..., "request_id": ...}`` with a fitting
status: 400 bad request (also a body that is not JSON), 404 unknown job or path, 405 wrong
method, 422 the service refused the input (no face in the template, model not trained...), 429
rate limited, 502/504 the service failed or did not answer, 500 a bug here. ``name`` is the
aiportrait error class (``ModelIdError``, ``InvalidArgument``...) when the service or the
library refused, else the HTTP status name (``BadRequest``, ``NotFound``...).

Run it (the local emulator and the bundled photos unless credentials are in the environment)::

    python examples/web_backend.py --port 8080 --store trainings.json

In a browser: ``new EventSource("/trainings/1/events")``; with curl: ``curl -N URL``.

Tracing: with the OpenTelemetry SDK installed (``pip install 'aiportrait[otel]'
opentelemetry-sdk``), ``OTEL_TRACES_EXPORTER=console`` prints a span per web request with the
aiportrait spans (each call, each watched training) below it, and
``OTEL_METRICS_EXPORTER=console`` the metrics when the backend stops (see :func:`setup_tracing`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

from aiohttp import web

import aiportrait
from aiportrait.config import DOCUMENTED_KEYS, closest_key

__all__ = ["JobStore", "Tracing", "make_app", "setup_tracing"]

log = logging.getLogger("web_backend")

SessionFactory = Callable[[], aiportrait.Session]


class JobStore:
    """Training handles in a JSON file (``{job_id: {job_id, model_id, state, ...}}``).

    Each change rewrites the file atomically (a temporary file renamed over it), so a crash
    never leaves half a file behind. One process at a time; a real deployment would use its
    database, storing the same ``job.to_dict()`` dictionaries.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every stored training, by job id (as a string)."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def job(self, job_id: int) -> aiportrait.TrainJob | None:
        """The stored handle of a job, or ``None``."""
        entry = self.entries().get(str(job_id))
        if entry is None:
            return None
        return aiportrait.TrainJob.from_dict(
            {"job_id": entry["job_id"], "model_id": entry["model_id"]}
        )

    async def put(self, job: aiportrait.TrainJob, **fields: Any) -> None:
        """Store a handle (``job.to_dict()``) with extra fields, or update them."""
        async with self._lock:
            data = self.entries()
            entry = data.setdefault(str(job.job_id), job.to_dict())
            entry.update(fields)
            await asyncio.to_thread(self._write, data)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, self.path)


SESSION = web.AppKey("session", aiportrait.Session)
STORE = web.AppKey("store", JobStore)


def _status_name(status: int) -> str:
    """``NotFound`` for 404: the HTTP status phrase, as one word."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return "".join(word.capitalize() for word in phrase.replace("-", " ").split())


def _error(status: int, exc: BaseException | str, **fields: Any) -> web.Response:
    """A JSON error: an aiportrait error by its class, anything else by the status's name."""
    body: dict[str, Any] = {"error": _status_name(status), "message": str(exc)}
    if isinstance(exc, aiportrait.AIPortraitError):
        body["error"] = type(exc).__name__
        request_id = getattr(exc, "request_id", "")
        if request_id:
            body["request_id"] = request_id
    return web.json_response({**body, **fields}, status=status)


class BadRequest(Exception):
    """The request cannot be used as sent (answered 400, as JSON)."""


def _status(exc: aiportrait.AIPortraitError) -> int:
    """The HTTP status this backend answers for an aiportrait error."""
    if isinstance(exc, aiportrait.InvalidArgument):
        return 400  # our caller sent something wrong; nothing reached the service
    if isinstance(exc, aiportrait.errors.CreateError) and exc.status == 462:
        return 422  # the service refused the input: a new template or a trained model helps
    if isinstance(exc, (aiportrait.errors.RateLimited, aiportrait.errors.QuotaExceeded)):
        return 429
    if isinstance(exc, aiportrait.TransportError):
        return 504  # the service did not answer (it was retried where safe)
    return 502  # the service failed, or answered something unreadable


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as JSON: aiportrait's, aiohttp's own (404, 405, 413...), and bugs."""
    try:
        return await handler(request)
    except aiportrait.AIPortraitError as exc:
        return _error(_status(exc), exc)
    except BadRequest as exc:
        return _error(400, str(exc))
    except web.HTTPException as exc:  # aiohttp's own: unknown path, wrong method, body too big
        if exc.status < 400:
            raise  # a redirect is not an error
        return _error(exc.status, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, "internal error; the server log has the details")


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _config(value: Any) -> aiportrait.CreateConfig:
    """A ``CreateConfig`` from the request's ``config`` object (400 for an unknown key)."""
    if value is None:
        return aiportrait.CreateConfig()
    if not isinstance(value, dict):
        raise BadRequest("config must be a JSON object of CreateConfig keys")
    for key in value:
        if key not in DOCUMENTED_KEYS:
            closest = closest_key(key)
            hint = f" (did you mean {closest!r}?)" if closest else ""
            raise BadRequest(f"config key {key!r} is not a documented key{hint}")
    return aiportrait.CreateConfig(**value)  # values are validated: InvalidArgument


async def start_training(request: web.Request) -> web.Response:
    """``POST /trainings``: start a training on a JSON list of photo URLs."""
    body = await _body(request)
    photos = body.get("photos") if isinstance(body, dict) else body
    if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
        return _error(400, 'expected a JSON list of photo URLs, or {"photos": [...]}')
    job = await request.app[SESSION].train(photos)
    await request.app[STORE].put(job, state="INIT", photos=len(photos))
    events = str(request.app.router["events"].url_for(job_id=str(job.job_id)))
    return web.json_response({**job.to_dict(), "events": events}, status=202)


async def list_trainings(request: web.Request) -> web.Response:
    """``GET /trainings``: the stored handles, each with the state the service reports now."""
    session, store = request.app[SESSION], request.app[STORE]
    entries = list(store.entries().values())
    jobs = await asyncio.gather(
        *(session.get_job(entry["job_id"]) for entry in entries), return_exceptions=True
    )
    listed = []
    for entry, job in zip(entries, jobs, strict=True):
        if isinstance(job, aiportrait.Job):
            entry = {**entry, "state": job.state.name, "message": job.message}
        else:  # the service could not be asked: show what we stored, and why
            entry = {**entry, "error": f"{type(job).__name__}: {job}"}
        listed.append(entry)
    return web.json_response({"trainings": listed})


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


async def training_events(request: web.Request) -> web.StreamResponse:
    """``GET /trainings/{job_id}/events``: each state change as a server-sent event."""
    try:
        job_id = int(request.match_info["job_id"])
    except ValueError:
        return _error(400, "job_id must be a number")
    store = request.app[STORE]
    job = store.job(job_id)
    if job is None:
        return _error(404, f"no training {job_id} was started here")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        async for update in request.app[SESSION].watch(job):
            await store.put(job, state=update.state.name)
            state = {
                "job_id": job.job_id,
                "state": update.state.name,
                "previous": update.previous.name if update.previous is not None else None,
                "elapsed": round(update.elapsed, 3),
            }
            await _send(response, "state", state)
            if update.state is aiportrait.JobState.FAILED:
                await _send(response, "failed", {"job_id": job.job_id, "message": update.message})
            elif update.state is aiportrait.JobState.SUCCESS:
                result = update.result or aiportrait.TrainResult(model_id=job.model_id)
                await _send(
                    response,
                    "result",
                    {"model_id": result.model_id, "cost_time": result.cost_time},
                )
    except aiportrait.AIPortraitError as exc:  # a deadline, or an error retrying cannot fix
        await _send(response, "error", {"error": type(exc).__name__, "message": str(exc)})
    except ConnectionResetError:  # the browser went away; the watch holds nothing to release
        return response
    await response.write_eof()
    return response


async def create_portrait(request: web.Request) -> web.StreamResponse:
    """``POST /portraits``: create a portrait and answer the image itself."""
    body = await _body(request)
    if not isinstance(body, dict):
        return _error(400, 'expected {"model_id" or "job_id": ..., "template": URL}')
    model_id = body.get("model_id")
    if model_id is None and "job_id" in body:
        job_id = body["job_id"]
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            return _error(400, "job_id must be a number")
        job = request.app[STORE].job(job_id)
        if job is None:
            return _error(404, f"no training {job_id} was started here")
        model_id = job.model_id
    template = body.get("template")
    if not isinstance(model_id, str) or not isinstance(template, str):
        return _error(400, 'expected {"model_id" or "job_id": ..., "template": URL}')
    config = _config(body.get("config"))
    portrait = await request.app[SESSION].create(model_id, template, config=config)
    return web.Response(
        body=portrait.image,
        content_type=f"image/{portrait.format}",
        headers={"X-Request-Id": portrait.request_id, "X-Cost-Time": str(portrait.cost_time)},
    )


class Tracing:
    """The OpenTelemetry providers :func:`setup_tracing` made (the SDK's)."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def shutdown(self) -> None:
        """Flush and stop: the console metric exporter prints here; stop tracing aiportrait."""
        import aiportrait.otel

        aiportrait.otel.uninstrument()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_tracing(
    environ: Mapping[str, str] | None = None, *, out: IO[str] | None = None
) -> Tracing | None:
    """Trace to the console when the standard variables ask for it, else do nothing.

    ``OTEL_TRACES_EXPORTER=console`` prints each span as it ends; ``OTEL_METRICS_EXPORTER=console``
    prints the metrics at :meth:`Tracing.shutdown`. ``OTEL_SERVICE_NAME`` (and
    ``OTEL_RESOURCE_ATTRIBUTES``) name the service. Nothing happens without the OpenTelemetry
    SDK, or with other exporters (a real deployment configures its own providers and then calls
    ``aiportrait.otel.instrument()``). No global provider is set: the providers are handed to
    ``aiportrait.otel.instrument`` and to :func:`make_app`.
    """
    env = os.environ if environ is None else environ
    traces = "console" in env.get("OTEL_TRACES_EXPORTER", "").lower().split(",")
    metrics = "console" in env.get("OTEL_METRICS_EXPORTER", "").lower().split(",")
    if not (traces or metrics):
        return None
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        import aiportrait.otel
    except ImportError:
        log.warning("OTEL_*_EXPORTER=console needs opentelemetry-sdk; not tracing")
        return None
    stream = out or sys.stdout
    name = env.get("OTEL_SERVICE_NAME", "aiportrait-web-backend")
    resource = Resource.create({"service.name": name})
    tracer_provider = TracerProvider(resource=resource)
    if traces:
        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=stream)))
    readers = []
    if metrics:
        exporter = ConsoleMetricExporter(out=stream)
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=60_000))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    aiportrait.otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return Tracing(tracer_provider, meter_provider)


def _traced(tracing: Tracing) -> Any:
    """A middleware making a SERVER span per request: the aiportrait spans become its children."""
    from opentelemetry.trace import SpanKind

    tracer = tracing.tracer_provider.get_tracer("web_backend")

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        template = info.canonical if info is not None else request.path
        name = f"{request.method} {template}"
        with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("http.route", template)
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            return response

    return traced


def make_app(
    session_factory: SessionFactory,
    store_path: str | os.PathLike[str],
    *,
    tracing: Tracing | None = None,
) -> web.Application:
    """Build the application: one Session (from ``session_factory``) for its lifetime.

    The Session is opened when the app starts and closed when it stops (``cleanup_ctx``), so
    every request shares its connection pool, limits and 429 cool-down. With ``tracing`` (see
    :func:`setup_tracing`), each request gets a server span.
    """
    middlewares = [errors] if tracing is None else [_traced(tracing), errors]
    app = web.Application(middlewares=middlewares)

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        async with session_factory() as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_context)
    app[STORE] = JobStore(store_path)
    app.router.add_post("/trainings", start_training)
    app.router.add_get("/trainings", list_trainings)
    app.router.add_get("/trainings/{job_id}/events", training_events, name="events")
    app.router.add_post("/portraits", create_portrait)
    return app


async def main(argv: Sequence[str] | None = None) -> int:
    """Serve the backend until interrupted (Ctrl-C); 2 when the port is in use."""
    from _local import connect

    parser = argparse.ArgumentParser(description="aiportrait web backend example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--store", type=Path, default=Path("trainings.json"))
    args = parser.parse_args(argv)
    # The local emulator keeps its jobs beside the store, so a restart finds them again.
    emulator_dir = args.store.with_name(args.store.stem + "_emulator")
    tracing = setup_tracing()
    async with contextlib.AsyncExitStack() as stack:
        if tracing is not None:
            stack.callback(tracing.shutdown)
        target = await stack.enter_async_context(connect(data_dir=emulator_dir))
        runner = web.AppRunner(make_app(target.session, args.store, tracing=tracing))
        await runner.setup()
        try:
            await web.TCPSite(runner, args.host, args.port).start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno != errno.EADDRINUSE:
                raise
            print(f"web_backend: port {args.port} is in use: give another --port", file=sys.stderr)
            return 2
        base = f"http://{args.host}:{args.port}"
        print(f"serving on {base} (Ctrl-C to stop)")
        if target.local:
            print(f"local emulator at {target.emulator.url}; try:")
            print(f"  curl -X POST {base}/trainings -d '{json.dumps(target.photos)}'")
            print(f"  curl -N {base}/trainings/JOB_ID/events")
            body = f'{{"job_id": JOB_ID, "template": "{target.templates[0]}"}}'
            print(f"  curl -X POST {base}/portraits -d '{body}' -o portrait.jpg")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
