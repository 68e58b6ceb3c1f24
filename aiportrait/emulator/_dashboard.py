"""The dashboard's routes: the page, its JSON twin, its event stream, fault control, images.

``GET /`` redirects to ``/_dashboard/``, the page (server-rendered by :mod:`._dashboard_page`);
``/_dashboard/api/state`` is the JSON twin (:meth:`.Activity.state`); ``/_dashboard/events`` the
server-sent events (``hello`` first, with the state as the subscription starts, then ``job``,
``portrait``, ``object``, ``request``, ``charges`` and ``faults`` as they happen, a
``: keepalive`` comment every
:data:`KEEPALIVE` seconds, and ``resync`` to a subscriber that fell behind, whose stream then
ends; what gathered in :data:`FLUSH_EVERY` seconds goes out in one write: the events queued, in
order, then the requests recorded since the last write (at most the last
:data:`~._activity.REQUESTS_KEPT`, built then) and the ``charges`` once); ``PUT
/_dashboard/api/faults`` changes the fault injection for the next request;
``/_dashboard/static/<file>`` serves the page's script and style sheet (package data, nothing
else), ``/_dashboard/portraits/<id>`` the images creations made and ``/_dashboard/objects/<key>``
the bucket's objects.

Only loopback by default: when the emulator listens elsewhere (see :func:`needs_auth`), every
``/_dashboard`` path needs HTTP Basic with an AppId and its token. Without credentials, a
request that reached the emulator on a loopback address must name it in its ``Host``
(``localhost``, ``127.x.y.z`` or ``[::1]``, any port: ``ssh -L`` and container port
forwards change it), else it is refused with 421: a page of another site whose name was made
to point at 127.0.0.1 (DNS rebinding) cannot read the dashboard. The fault control also refuses
a body that is not ``application/json`` and a request whose ``Origin`` is not the emulator's
own (on loopback: ``http://`` and a loopback name, any port; a page of another origin cannot
send a JSON ``PUT`` without a CORS preflight, which the emulator never grants), so a page
elsewhere cannot change the faults through the developer's browser.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web
from yarl import URL

from ._activity import Activity
from ._auth import basic_auth_app
from ._bucket import Bucket
from ._dashboard_events import Subscriber, event_json, sse_event
from ._dashboard_page import render_page
from ._dashboard_records import DASHBOARD_PATH, iso_time
from ._faults import faults_from_json, faults_json
from ._fetch import is_loopback_host
from ._media import SANDBOXED
from ._service import Service

__all__ = [
    "KEEPALIVE",
    "MAX_STREAMS",
    "STATIC_FILES",
    "WRITE_TIMEOUT",
    "add_dashboard_routes",
    "needs_auth",
    "refused_host",
]

#: Seconds between keepalive comments on an idle event stream.
KEEPALIVE = 15.0
#: The page's files served at ``/_dashboard/static/`` (package data of ``dashboard/``).
STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
#: Seconds an event stream waits after a write, so that a busy emulator's events go out in a
#: few writes a second rather than one per request.
FLUSH_EVERY = 0.25
#: Seconds one write to an event stream may take; a page that reads nothing for longer (a
#: stalled tab, a client that never reads) is disconnected.
WRITE_TIMEOUT = 30.0
#: Event streams open at once; one more is answered 503.
MAX_STREAMS = 32
#: Faults PUT bodies larger than this are refused.
MAX_FAULTS_BODY = 64 * 1024

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# An object of the bucket is whatever a client uploaded: shown as an image only when it says it
# is one (never SVG), never run as a page of the dashboard's origin.
_OBJECT_HEADERS = {**SANDBOXED, "Cache-Control": "no-store"}
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp")
_NOT_LOOPBACK = (
    "on loopback, the dashboard and /media/ answer only to a loopback name in Host (localhost, "
    "127.x.y.z or [::1], any port); to reach the dashboard by another name, start the emulator "
    "with --dashboard-auth (Emulator(dashboard_auth=True)) and send an AppId and its token"
)
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="aiportrait emulator", charset="UTF-8"'}

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def needs_auth(bind: str) -> bool:
    """Whether the dashboard of an emulator listening on ``bind`` asks for credentials: yes
    unless ``bind`` is a loopback address (or ``localhost``); ``0.0.0.0``, ``::`` and ``""``
    listen on every interface."""
    return not is_loopback_host(bind)


def _loopback_authority(authority: str) -> bool:
    """Whether ``authority`` (a ``Host`` header, or an origin without its scheme) names a
    loopback name or address, with any port (a port forwarded by ``ssh -L`` or a container
    differs from the emulator's; the name is what DNS rebinding changes)."""
    try:
        return is_loopback_host(URL("http://" + authority).host)
    except ValueError:
        return False


def _reached_on_loopback(request: web.Request) -> bool:
    """Whether ``request``'s connection reached a loopback address."""
    sockname = None if request.transport is None else request.transport.get_extra_info("sockname")
    return sockname is not None and len(sockname) > 0 and is_loopback_host(str(sockname[0]))


def refused_host(request: web.Request) -> web.Response | None:
    """The 421 answer to ``request`` when it reached a loopback address with a ``Host`` that
    is not a loopback name (DNS rebinding), else None. The dashboard (without credentials) and
    ``/media/`` answer only after it."""
    if _reached_on_loopback(request) and not _loopback_authority(request.host):
        return _error(421, _NOT_LOOPBACK)
    return None


def _package_file(name: str) -> bytes:
    return resources.files("aiportrait.emulator").joinpath("dashboard").joinpath(name).read_bytes()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class _Dashboard:
    """The handlers, over one emulator's service and bucket."""

    def __init__(self, service: Service, bucket: Bucket | None, *, auth: bool) -> None:
        self.service = service
        self.activity: Activity = service.activity
        self.bucket = bucket
        self.auth = auth
        self.streams: dict[Subscriber, web.Request] = {}  # the open event streams' requests

    def guarded(self, handler: Route) -> Route:
        """``handler`` behind the credentials when they are needed, else behind the ``Host``
        check of a loopback connection."""

        async def route(request: web.Request) -> web.StreamResponse:
            if self.auth:
                if basic_auth_app(self.service.apps, request.headers.get("Authorization")) is None:
                    return _error(401, "the dashboard needs an AppId and its token", _CHALLENGE)
            elif (refused := refused_host(request)) is not None:
                return refused
            return await handler(request)

        return route

    def own_origin(self, request: web.Request, authority: str) -> bool:
        """Whether ``authority`` (the ``Host``, or the ``Origin`` without its scheme) names the
        emulator as ``request`` reached it: without credentials on a loopback connection, a
        loopback name (any port); else the request's own ``Host``."""
        if self.auth or not _reached_on_loopback(request):
            return authority == request.host
        return _loopback_authority(authority)

    def state(self) -> dict[str, object]:
        objects = {} if self.bucket is None else self.bucket.objects
        return self.activity.state(faults=self.service.injector.faults, objects=objects)

    async def page(self, request: web.Request) -> web.StreamResponse:
        template = _package_file("index.html").decode("utf-8")
        # Recorded text is whatever clients sent: a lone surrogate (valid JSON) becomes "?".
        body = render_page(template, self.state()).encode("utf-8", "replace")
        return web.Response(
            body=body, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
        )

    async def state_json(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state(), headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            return _error(404, "no such file")
        try:
            body = _package_file(name)
        except FileNotFoundError:
            return _error(404, "no such file")
        return web.Response(body=body, content_type=kind, headers=_PAGE_HEADERS)

    async def portrait(self, request: web.Request) -> web.StreamResponse:
        kept = self.activity.portrait(request.match_info["job_id"])
        if kept is None:
            return _error(404, "no such portrait (only the latest are kept)")
        image, kind = kept
        return web.Response(body=image, content_type=kind, headers=_OBJECT_HEADERS)

    async def stored_object(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        stored = None if self.bucket is None else self.bucket.objects.get(key)
        if stored is None:
            return _error(404, "no such object")
        kind = stored.content_type.split(";")[0].strip().lower()
        headers = dict(_OBJECT_HEADERS)
        if kind not in _IMAGE_TYPES:
            kind = "application/octet-stream"
            headers["Content-Disposition"] = "attachment"
        return web.Response(body=stored.data, content_type=kind, headers=headers)

    async def events(self, request: web.Request) -> web.StreamResponse:
        activity = self.activity
        if activity.streams >= MAX_STREAMS:
            self.drop_closed_streams()
        if activity.streams >= MAX_STREAMS:
            return _error(503, f"{MAX_STREAMS} dashboard event streams are open: close one")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        subscriber = activity.subscribe()
        self.streams[subscriber] = request
        # hello holds the state as of now, when the subscription starts: every event after it
        # is a change since, none is already in it (a page that read the state on its own
        # could read it after some of the events it then gets, and apply them twice).
        seen = activity.requests_recorded
        hello = event_json({"started_at": iso_time(activity.started_at), "state": self.state()})

        async def send(data: bytes) -> None:
            await asyncio.wait_for(response.write(data), WRITE_TIMEOUT)

        try:
            await response.prepare(request)
            await send(sse_event("hello", hello))
            while not subscriber.closed:
                events, moved = await subscriber.next_events(KEEPALIVE)
                if subscriber.behind:
                    await send(sse_event("resync", "{}"))
                    break
                if "request" in moved:
                    texts, seen = activity.requests_after(seen)
                    events += [("request", text) for text in texts]
                if moved:  # the requests moved the counters (the requests, the faults fired...)
                    events.append(("charges", event_json(activity.charges())))
                if events:
                    await send(b"".join(sse_event(n, d) for n, d in events))
                    await asyncio.sleep(FLUSH_EVERY)  # the events of the next moment, in one write
                elif not subscriber.closed:
                    await send(b": keepalive\n\n")
        except ConnectionError:
            pass  # the page went away
        except asyncio.TimeoutError:  # the page reads nothing: its connection is closed
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.activity.unsubscribe(subscriber)
            self.streams.pop(subscriber, None)
        return response

    def drop_closed_streams(self) -> None:
        """Free the slots of the streams whose page went away: a stream learns it only when it
        next writes (at most :data:`KEEPALIVE` seconds later); each is closed (its handler ends
        when it wakes) and forgotten now."""
        for subscriber, request in list(self.streams.items()):
            if request.transport is None or request.transport.is_closing():
                subscriber.close()
                self.activity.unsubscribe(subscriber)
                del self.streams[subscriber]

    async def put_faults(self, request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return _error(415, "send the faults as application/json")
        origin = request.headers.get("Origin")
        scheme = f"{request.scheme}://"
        if origin is not None and not (
            origin.startswith(scheme) and self.own_origin(request, origin.removeprefix(scheme))
        ):
            return _error(403, "the faults can only be changed from the dashboard's own page")
        if request.content_length is not None and request.content_length > MAX_FAULTS_BODY:
            return _error(413, "the body is too large")
        raw = await request.content.read(MAX_FAULTS_BODY + 1)
        if len(raw) > MAX_FAULTS_BODY:
            return _error(413, "the body is too large")
        try:
            changes = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return _error(400, "the body is not JSON")
        if not isinstance(changes, dict):
            return _error(400, "the body must be a JSON object of fault settings")
        injector = self.service.injector
        try:
            faults = faults_from_json(injector.faults, changes)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        injector.configure(faults)
        self.activity.faults_changed(faults)
        return web.json_response(faults_json(faults))


async def _to_dashboard(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(DASHBOARD_PATH)


def add_dashboard_routes(
    app: web.Application, service: Service, bucket: Bucket | None, *, auth: bool
) -> None:
    """Serve the dashboard of ``service`` (and ``bucket``), behind credentials when ``auth``."""
    board = _Dashboard(service, bucket, auth=auth)
    guarded = board.guarded
    app.router.add_get("/", guarded(_to_dashboard))
    app.router.add_get(DASHBOARD_PATH.rstrip("/"), guarded(_to_dashboard))
    app.router.add_get(DASHBOARD_PATH, guarded(board.page))
    app.router.add_get(DASHBOARD_PATH + "api/state", guarded(board.state_json))
    app.router.add_put(DASHBOARD_PATH + "api/faults", guarded(board.put_faults))
    app.router.add_get(DASHBOARD_PATH + "events", guarded(board.events))
    app.router.add_get(DASHBOARD_PATH + "static/{name}", guarded(board.static))
    app.router.add_get(DASHBOARD_PATH + "portraits/{job_id}", guarded(board.portrait))
    app.router.add_get(DASHBOARD_PATH + "objects/{key:.+}", guarded(board.stored_object))
