"""The web backend of ``web_backend.py`` with FastAPI: the same API, statuses and stores.

Endpoints, error bodies and statuses are those of ``web_backend.py`` (its docstring; the table
of statuses is in ``_web.py``): ``POST /trainings``, ``GET /trainings``, ``GET
/trainings/{job_id}/events`` (server-sent events), ``POST /portraits`` (``X-Ticket``), ``GET
/portraits/{ticket}``.

How it is done with FastAPI:

- **One Session for the app's lifetime**, opened and closed by the app's ``lifespan`` (closing
  it waits for the creates kept for clients that left), and handed to each route through a
  dependency (``SessionDep``): routes never build a Session of their own.
- **A client that leaves cancels its train or create.** Starlette does not cancel a handler
  when its client disconnects: it runs to the end, so a call still waiting for a slot would be
  sent, and charged, for nobody. ``POST /trainings`` and ``POST /portraits`` run the call in a
  task beside one waiting for the client's ``http.disconnect`` (what
  ``request.is_disconnected()`` looks for, awaited instead of polled) and cancel the call when
  the client goes first. Not yet sent: never sent, nothing charged. Already sent: it finishes
  in the background (``session.with_options(keep=...)``): the training's handle is stored,
  the portrait kept under the ticket.
- **Server-sent events through sse-starlette** (``EventSourceResponse``): it sends a ping
  comment every ``heartbeat`` seconds and ends the stream, and with it the watch, when the
  client disconnects.

Run it (uvicorn; the same options as ``web_backend.py``)::

    python examples/fastapi_backend.py --port 8080 --store trainings.json

Needs ``pip install fastapi uvicorn sse-starlette`` (the project's ``test`` extra has them).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import uvicorn
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
    BadRequest,
    ErrorAnswer,
    Problem,
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
    too_large,
)
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import aiportrait

__all__ = ["Backend", "make_app", "server"]

log = logging.getLogger("fastapi_backend")

T = TypeVar("T")
#: The status logged for a request whose client left before its answer (nginx's 499).
CLIENT_GONE = 499


@dataclass
class Backend:
    """What the lifespan holds for the routes: the Session and the stores."""

    session: aiportrait.Session
    store: JobStore
    tickets: TicketStore
    heartbeat: float
    working: set[asyncio.Future[Any]] = field(default_factory=set)
    """The calls of requests in progress: the lifespan waits for them before it closes the
    Session (uvicorn cancels requests at its graceful-shutdown timeout and goes on to the
    lifespan's end at once; a create cancelled after it was sent must reach ``keep`` first)."""


def backend(request: Request) -> Backend:
    """Dependency: the app's :class:`Backend` (set by its lifespan)."""
    held: Backend = request.app.state.backend
    return held


def session(held: Annotated[Backend, Depends(backend)]) -> aiportrait.Session:
    """Dependency: the app's one Session."""
    return held.session


BackendDep = Annotated[Backend, Depends(backend)]
SessionDep = Annotated[aiportrait.Session, Depends(session)]


def request_id(request: Request) -> str:
    """This backend's id for the request (set by :class:`RequestIds`)."""
    rid: str = request.state.request_id
    return rid


class RequestIds:
    """ASGI middleware: an id per request, in ``request.state.request_id`` and in the
    ``X-Request-Id`` header of an answer that has none (the service's) already. Plain ASGI:
    Starlette's ``BaseHTTPMiddleware`` would stand between the routes and the client's
    disconnect. A bug is answered 500 and logged (with the request id) here, once: left to
    Starlette's server-error middleware, the server would log it again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-Id", rid)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # a bug: answered and logged here, once (not by Starlette)
            if started:
                raise
            method, path = scope["method"], scope["path"]
            log.error("%s %s failed (request_id %s)", method, path, rid, exc_info=exc)
            await _json(error_answer(exc, rid))(scope, receive, send)


def _json(answer: ErrorAnswer) -> JSONResponse:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def _error(request: Request, exc: Exception) -> Response:
    return _json(error_answer(exc, request_id(request)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _json(status_answer(exc.status_code, str(exc.detail), request_id(request)))


async def _body(request: Request) -> Any:
    """The request's JSON body: 413 beyond ``MAX_BODY`` bytes (Starlette has no bound)."""
    size = request.headers.get("content-length", "")
    if size.isdigit() and int(size) > MAX_BODY:
        raise too_large()
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise too_large()
    return parse_json(bytes(raw))


routes = APIRouter()


@routes.post("/trainings", status_code=202)
async def start_training(request: Request, held: BackendDep, session: SessionDep) -> Any:
    """``POST /trainings``: start a training on a JSON list of photo URLs; cancelled when the
    client disconnects first."""
    photos = parse_photos(await _body(request))
    job = await _unless_gone(request, held, train(session, held.store, photos))
    if job is None:  # nobody to answer: a training already sent is stored (GET /trainings)
        return Response(status_code=CLIENT_GONE)
    events = request.app.url_path_for("events", job_id=str(job.job_id))
    return {**job.to_dict(), "events": events}


@routes.get("/trainings")
async def list_trainings(request: Request, held: BackendDep, session: SessionDep) -> Any:
    """``GET /trainings``: the stored handles, each with the state the service reports now."""
    return {"trainings": await trainings(session, held.store, request_id(request))}


@routes.get("/trainings/{job_id}/events", name="events")
async def training_events(
    request: Request, job_id: str, held: BackendDep, session: SessionDep
) -> Any:
    """``GET /trainings/{job_id}/events``: each state change as a server-sent event."""
    job = stored_job(held.store, job_id)

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for event, data in job_events(session, held.store, job, request_id(request)):
            yield {"event": event, "data": json.dumps(data)}

    return EventSourceResponse(stream(), ping=held.heartbeat, headers={"Cache-Control": "no-cache"})


async def _disconnected(request: Request) -> None:
    """Return when the client has disconnected (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(
    request: Request,
    held: Backend,
    work: Coroutine[Any, Any, T],
    unstarted: Callable[[], None] = lambda: None,
) -> T | None:
    """``work``'s result (or error), or ``None`` when the client disconnected first: ``work``
    is then cancelled, as aiohttp.web's handler cancellation does (Starlette runs a handler
    to the end, and a call still waiting for a slot would be sent, and charged, for nobody).
    ``unstarted`` is called when ``work`` was cancelled before its first step (its own
    cleanup never ran)."""
    task = asyncio.ensure_future(work)
    held.working.add(task)
    task.add_done_callback(held.working.discard)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():  # the client left (or we stop)
            never_ran = inspect.getcoroutinestate(work) == inspect.CORO_CREATED
            task.cancel()
            if never_ran:
                unstarted()
        await asyncio.wait({task, gone})
    return None if task.cancelled() else task.result()


@routes.post("/portraits")
async def create_portrait(
    request: Request,
    held: BackendDep,
    session: SessionDep,
    x_ticket: Annotated[str | None, Header()] = None,
) -> Response:
    """``POST /portraits``: create a portrait under a ticket and answer the image itself;
    cancelled when the client disconnects first."""
    wanted = parse_create(await _body(request), held.store)
    ticket = held.tickets.open(x_ticket)
    rid = request_id(request)
    try:
        work = create(session, held.tickets, ticket, wanted, rid)
        portrait = await _unless_gone(request, held, work, lambda: held.tickets.close(ticket))
    except aiportrait.AIPortraitError as exc:
        return _json(error_answer(exc, rid, ticket=ticket))
    if portrait is None:  # nobody to answer: what was sent is kept under the ticket
        return Response(status_code=CLIENT_GONE)
    return Response(portrait.image, headers=portrait_headers(portrait, ticket))


@routes.get("/portraits/{ticket}")
async def fetch_portrait(ticket: str, held: BackendDep) -> Response:
    """``GET /portraits/{ticket}``: the portrait kept under a ticket, or what became of it."""
    portrait = ticket_answer(held.tickets, ticket)
    return Response(portrait.image, headers=portrait_headers(portrait, ticket))


def make_app(
    session_factory: SessionFactory,
    store_path: str | os.PathLike[str],
    *,
    heartbeat: float = 5.0,
) -> FastAPI:
    """Build the application: one Session (from ``session_factory``) for its lifetime, opened
    and closed by the lifespan; the arguments are :func:`web_backend.make_app`'s."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with session_factory() as opened:
            tickets = TicketStore(tickets_folder(store_path))
            held = app.state.backend = Backend(opened, JobStore(store_path), tickets, heartbeat)
            yield
            if held.working:  # cancelled at shutdown: each hands what was sent to keep first
                await asyncio.wait(held.working)

    app = FastAPI(title="aiportrait web backend example", lifespan=lifespan)
    app.include_router(routes)
    for kind in (aiportrait.AIPortraitError, BadRequest, Problem):  # bugs: RequestIds
        app.add_exception_handler(kind, _error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(RequestIds)
    return app


def server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for the app (serve it with ``server.serve(sockets=[...])``)."""
    config = uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


async def main(argv: Sequence[str] | None = None) -> int:
    """Serve the backend until interrupted (Ctrl-C or SIGTERM); 2 when the port is in use."""
    from _local import connect

    args = parser("aiportrait web backend example (FastAPI)").parse_args(argv)
    log_to_stderr()
    sock = listen(args.host, args.port, "fastapi_backend")
    if sock is None:
        return 2
    # SIGTERM (a service manager) stops it as Ctrl-C does: uvicorn shuts down gracefully (the
    # lifespan's Session.aclose finishes the creates kept for clients that left), then raises
    # the signal again, which must not kill the process before the emulator is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with sock:
        async with connect(
            photos=args.photos,
            templates=args.templates,
            data_dir=emulator_dir(args),
            need_urls=False,
        ) as target:
            app = make_app(bounded(target.session, args), args.store, heartbeat=args.heartbeat)
            print_usage(sock, target)  # clients wait in the socket's backlog until it serves
            await server(app).serve(sockets=[sock])
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
