"""An aiohttp.web backend that holds ONE ``aiportrait.Session`` for its whole lifetime.

Endpoints:

- ``POST /trainings`` with a JSON list of photo URLs (or ``{"photos": [...]}``): starts a
  training and answers ``202`` with the job handle. The handle is stored in a small JSON file,
  so a restarted backend still knows the job.
- ``GET /trainings``: the stored trainings, each with its current state (asked of the service).
- ``GET /trainings/{job_id}/events``: server-sent events, one ``state`` event per state change,
  ending with a ``result`` (the model id) or a ``failed`` event (or ``error``: e.g. a deadline).
  A ``: heartbeat`` comment goes out every few seconds (``--heartbeat``), so a client that left
  is noticed within seconds and its watch ends: the Session polls a job once for all its
  followers, and not at all once none is left.
- ``POST /portraits`` with ``{"model_id": ..., "template": URL, "config": {...}}`` (or
  ``"job_id"`` instead of ``"model_id"``): answers the portrait itself, ``image/jpeg`` or
  ``image/png``. Each create has a *ticket*: the client's own ``X-Ticket`` header (8 to 64
  letters, digits, ``-``, ``_``; hard to guess: a ticket is the password of its portrait),
  else a new random one; every answer carries it in ``X-Ticket``.
- ``GET /portraits/{ticket}``: what became of that create: the portrait (200), ``202`` while it
  runs (with ``Retry-After``), its error, or 404 when nothing was kept.

Money: a client that leaves (a timeout, a closed tab) cancels its request. A create not yet
sent (waiting for a slot, a cool-down, an outage pause) is then never sent: nothing is charged.
A create already sent is not thrown away: it finishes in the background
(``session.with_options(keep=...)``) and its portrait is kept under the ticket. So a client
that timed out fetches ``GET /portraits/{its ticket}`` instead of sending again: 200 with the
portrait; 202 while it may still come; 404 when nothing was sent (the Session tells at once
of a create its client left before it was sent: ``Kept.sent`` False): send it again.

Errors are JSON ``{"error": name, "message": ..., "request_id": ...}``: ``name`` is the
aiportrait error class (``ModelIdError``, ``Overloaded``...) when the service or the library
refused, else the HTTP status name (``BadRequest``, ``NotFound``...); ``request_id`` is the
service's when it answered, else this backend's own id (also in the ``X-Request-Id`` header of
every answer). Statuses (the table is in ``_web.py``): 400 bad request, 404 unknown, **409 may
have run: do not retry blindly** (``SubmitOutcomeUnknown``: its ``advice`` says what to do; or a
ticket already used), 422 the service refused the input, **429/503 with ``Retry-After``: not
run, safe to retry then** (429: the service asked us to slow down; 503: this backend is busy,
``Overloaded``, or could not reach the service), 502 the service failed, 504 a read got no
answer, 500 a bug here.

Run it: with no credentials in the environment it starts the local emulator and uses the
bundled photos; with ``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID`` and ``AIPORTRAIT_TOKEN`` set it
talks to that service (the real one, or an emulator started apart with ``aiportrait
emulator``), and ``--photos URL...`` / ``--templates URL...`` (or ``@FILE``, one argument a
line) give the URLs its printed example commands use::

    python examples/web_backend.py --port 8080 --store trainings.json
    AIPORTRAIT_HOST=... AIPORTRAIT_APP_ID=... AIPORTRAIT_TOKEN=... \\
        python examples/web_backend.py --photos URL1 URL2 ... --templates URL

Busy: the Session's admission bound (``--max-waiting``, default 64 calls waiting for a slot,
``--max-wait``, default 5 s) turns a spike into 503 + ``Retry-After`` at once, never sent,
instead of minutes of queueing and then 504s (``Session(max_waiting=..., max_wait=...)``).

In a browser: ``new EventSource("/trainings/1/events")``; with curl: ``curl -N URL``.

Tracing: with the OpenTelemetry SDK installed (``pip install 'aiportrait[otel]'
opentelemetry-sdk``), ``OTEL_TRACES_EXPORTER=console`` prints a span per web request with the
aiportrait spans (each call, each watched training) below it, and
``OTEL_METRICS_EXPORTER=console`` the metrics when the backend stops (see :func:`setup_tracing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import IO, Any

from _stores import (
    JobStore,
    TicketStore,
    create,
    job_events,
    parse_create,
    portrait_headers,
    stored_job,
    ticket_answer,
    tickets_folder,
    train,
    trainings,
)
from _web import (
    MAX_BODY,
    ErrorAnswer,
    SessionFactory,
    bounded,
    emulator_dir,
    error_answer,
    listen,
    log_to_stderr,
    new_request_id,
    parse_json,
    parse_photos,
    parser,
    print_usage,
    status_answer,
)
from aiohttp import web

import aiportrait

__all__ = ["JobStore", "TicketStore", "Tracing", "make_app", "runner", "setup_tracing"]

log = logging.getLogger("web_backend")

SESSION = web.AppKey("session", aiportrait.Session)
STORE = web.AppKey("store", JobStore)
TICKETS = web.AppKey("tickets", TicketStore)
#: Seconds between two heartbeat comments of an event stream.
HEARTBEAT = web.AppKey("heartbeat", float)
#: The request's own id (used when the service gave none).
REQUEST_ID = web.RequestKey("request_id", str)


def _json(answer: ErrorAnswer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request its id, and answer every error as JSON: aiportrait's, ours, aiohttp's
    own (404, 405, 413...), and bugs."""
    request_id = request[REQUEST_ID] = new_request_id()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own: unknown path, wrong method, body too big
        if exc.status < 400:
            raise  # a redirect is not an error
        return _json(status_answer(exc.status, exc.reason, request_id))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        answer = error_answer(exc, request_id)
        if answer.status == 500:
            log.exception("%s %s failed (request_id %s)", request.method, request.path, request_id)
        return _json(answer)
    if not response.prepared:
        response.headers.setdefault("X-Request-Id", request_id)
    return response


async def start_training(request: web.Request) -> web.Response:
    """``POST /trainings``: start a training on a JSON list of photo URLs."""
    photos = parse_photos(parse_json(await request.read()))
    job = await train(request.app[SESSION], request.app[STORE], photos)
    events = str(request.app.router["events"].url_for(job_id=str(job.job_id)))
    return web.json_response({**job.to_dict(), "events": events}, status=202)


async def list_trainings(request: web.Request) -> web.Response:
    """``GET /trainings``: the stored handles, each with the state the service reports now."""
    listed = await trainings(request.app[SESSION], request.app[STORE], request[REQUEST_ID])
    return web.json_response({"trainings": listed})


def _event(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _next(
    events: AsyncIterator[tuple[str, dict[str, Any]]],
) -> tuple[str, dict[str, Any]] | None:
    """The next event, or ``None`` at the end."""
    return await anext(events, None)


async def training_events(request: web.Request) -> web.StreamResponse:
    """``GET /trainings/{job_id}/events``: each state change as a server-sent event, and a
    heartbeat comment whenever nothing else was sent for ``HEARTBEAT`` seconds.

    A client that left is noticed at once when it closed its connection (handler
    cancellation), else at the next heartbeat, whose write fails: either way the watch ends.
    """
    store = request.app[STORE]
    job = stored_job(store, request.match_info["job_id"])
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers={**headers, "X-Request-Id": request[REQUEST_ID]})
    await response.prepare(request)
    events = job_events(request.app[SESSION], store, job, request[REQUEST_ID])
    step = asyncio.ensure_future(_next(events))
    try:
        while True:
            done, _ = await asyncio.wait({step}, timeout=request.app[HEARTBEAT])
            if not done:
                await response.write(b": heartbeat\n\n")
                continue
            event = step.result()
            if event is None:
                break
            await response.write(_event(*event))
            step = asyncio.ensure_future(_next(events))
    except ConnectionResetError:  # the client went away: the watch ends below
        return response
    finally:
        step.cancel()
        await asyncio.wait({step})
        await events.aclose()
    await response.write_eof()
    return response


async def create_portrait(request: web.Request) -> web.StreamResponse:
    """``POST /portraits``: create a portrait under a ticket and answer the image itself."""
    wanted = parse_create(parse_json(await request.read()), request.app[STORE])
    tickets = request.app[TICKETS]
    ticket = tickets.open(request.headers.get("X-Ticket"))
    session, request_id = request.app[SESSION], request[REQUEST_ID]
    try:
        portrait = await create(session, tickets, ticket, wanted, request_id)
    except aiportrait.AIPortraitError as exc:
        return _json(error_answer(exc, request_id, ticket=ticket))
    return _image(portrait, ticket)


def _image(portrait: aiportrait.Portrait, ticket: str) -> web.Response:
    return web.Response(body=portrait.image, headers=portrait_headers(portrait, ticket))


async def fetch_portrait(request: web.Request) -> web.Response:
    """``GET /portraits/{ticket}``: the portrait kept under a ticket, or what became of it."""
    ticket = request.match_info["ticket"]
    return _image(ticket_answer(request.app[TICKETS], ticket), ticket)


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
    heartbeat: float = 5.0,
) -> web.Application:
    """Build the application: one Session (from ``session_factory``) for its lifetime.

    The Session is opened when the app starts and closed when it stops (``cleanup_ctx``), so
    every request shares its connection pool, limits and 429 cool-down; closing it waits for
    the creates kept for clients that left. Trainings are stored in ``store_path``, portraits
    by ticket in the folder beside it (``<stem>_portraits``). ``heartbeat``: seconds between
    two comments of an event stream. With ``tracing`` (see
    :func:`setup_tracing`), each request gets a server span. Serve it with :func:`runner`, so
    that a client that leaves cancels its handler.
    """
    middlewares = [errors] if tracing is None else [_traced(tracing), errors]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        async with session_factory() as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_context)
    app[STORE] = JobStore(store_path)
    app[TICKETS] = TicketStore(tickets_folder(store_path))
    app[HEARTBEAT] = heartbeat
    app.router.add_post("/trainings", start_training)
    app.router.add_get("/trainings", list_trainings)
    app.router.add_get("/trainings/{job_id}/events", training_events, name="events")
    app.router.add_post("/portraits", create_portrait)
    app.router.add_get("/portraits/{ticket}", fetch_portrait)
    return app


def runner(app: web.Application) -> web.AppRunner:
    """The app's runner, with handler cancellation on: a handler whose client left is
    cancelled (aiohttp's default runs it to the end, sending creates nobody will receive)."""
    return web.AppRunner(app, handler_cancellation=True)


async def main(argv: Sequence[str] | None = None) -> int:
    """Serve the backend until interrupted (Ctrl-C or SIGTERM); 2 when the port is in use."""
    from _local import connect

    args = parser("aiportrait web backend example (aiohttp.web)").parse_args(argv)
    log_to_stderr()
    sock = listen(args.host, args.port, "web_backend")
    if sock is None:
        return 2
    tracing = setup_tracing()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(sock.close)
        if tracing is not None:
            stack.callback(tracing.shutdown)
        target = await stack.enter_async_context(
            connect(
                photos=args.photos,
                templates=args.templates,
                data_dir=emulator_dir(args),
                need_urls=False,
            )
        )
        factory = bounded(target.session, args)
        app = make_app(factory, args.store, tracing=tracing, heartbeat=args.heartbeat)
        serving = runner(app)
        await serving.setup()
        stack.push_async_callback(serving.cleanup)
        await web.SockSite(serving, sock).start()
        stop = asyncio.Event()  # SIGTERM (a service manager) stops it as Ctrl-C does:
        loop = asyncio.get_running_loop()  # cleanly, the creates kept for clients that left
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # finishing first (Session.aclose)
        stack.callback(loop.remove_signal_handler, signal.SIGTERM)
        print_usage(sock, target)
        await stop.wait()
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
