"""Shared by the two web examples (``web_backend.py`` on aiohttp.web, ``fastapi_backend.py`` on
FastAPI): what an error answers, what a request body means, the command line. Their stores, and
what the endpoints do with them, are in ``_stores.py``.

Both examples answer the same API with the same statuses; only the framework differs, so
everything that is not about the framework is here or there, once.

What an error answers (a JSON body ``{"error": name, "message": ..., "request_id": ...}``):

==========  ===========================================================================
status      meaning for the client
==========  ===========================================================================
400         the request is wrong (nothing was sent upstream): fix it; a training takes 1 to
            20 photos here
403         ``QuotaExceeded``: the account's call quota is used up. Not run (nothing
            charged, the ticket is free), but retrying soon will not help: no
            ``Retry-After``; the operator must raise the quota
404         unknown job, ticket or path
409         **may have run, do not retry blindly**: a create whose answer was lost
            (``SubmitOutcomeUnknown``: it may be charged; the body's ``advice`` says what to
            do), a create under way when the backend stopped (``MayHaveRun``, after a
            restart), or a ticket already used (fetch ``GET /portraits/{ticket}``)
413         the body is over 1 MiB (``MAX_BODY``)
422         the service refused the input (no face in the template, model not trained...)
429         the service asked us to slow down (not run): **safe to retry** after
            ``Retry-After`` seconds
500         a bug here (the log has the details)
502         the service answered an error (``ServerError``: an undocumented 5xx;
            ``ServiceError``; a gateway's refusal): **it did not run**. For a create or a
            training, the library has already turned every answer that leaves open whether it
            ran (a gateway's 500/502/504 after the request went out, an unreadable 2xx) into
            ``SubmitOutcomeUnknown`` (409); so a 502 is not charged and its ticket is free.
            For a read, safe to retry
503         **not sent, safe to retry** after ``Retry-After`` seconds: this backend is busy
            (``Overloaded``: too many calls wait already) or could not reach the service
504         the service did not answer a read (reads are safe to retry)
==========  ===========================================================================

``request_id`` is the service's id when it answered, else this backend's own id for the
request; the same id is in the ``X-Request-Id`` header of every answer.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import logging
import math
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiportrait
from aiportrait.config import DOCUMENTED_KEYS, closest_key

__all__ = [
    "BadRequest",
    "bounded",
    "log_to_stderr",
    "ErrorAnswer",
    "Problem",
    "SessionFactory",
    "emulator_dir",
    "error_answer",
    "listen",
    "new_request_id",
    "new_ticket",
    "not_sent",
    "MAX_BODY",
    "parse_config",
    "parse_json",
    "parse_photos",
    "parser",
    "print_usage",
    "retry_after_header",
    "status_answer",
    "too_large",
]

#: What makes the one Session of an app (``make_app``'s first argument).
SessionFactory = Callable[[], aiportrait.Session]

#: ``Retry-After`` for a call that could not reach the service (no connection).
UNREACHABLE_RETRY = 5.0
#: The largest request body either example reads (aiohttp.web's ``client_max_size`` default):
#: beyond, 413 before anything is parsed.
MAX_BODY = 1024**2
#: Photos a training takes here (the service documents 5 to 20; the library warns below 5):
#: a training is charged, so a web API refuses more, or none, with 400 before sending it.
MAX_PHOTOS = 20


class BadRequest(Exception):
    """The request cannot be used as sent (answered 400, as JSON)."""


class Problem(Exception):
    """An answer other than 400 decided here: ``status`` and, in the body, ``name``."""

    def __init__(
        self,
        status: int,
        name: str,
        message: str,
        *,
        retry_after: float | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.retry_after = retry_after
        self.fields = fields


def new_request_id() -> str:
    """This backend's own id for one request (in errors, when the service gave none)."""
    return uuid.uuid4().hex


def new_ticket() -> str:
    """A new ticket: random, since a ticket acts as the password of its portrait."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class ErrorAnswer:
    """What to answer for an error, whatever the framework: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _status_name(status: int) -> str:
    """``NotFound`` for 404: the HTTP status phrase, as one word."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return "".join(word.capitalize() for word in phrase.replace("-", " ").split())


#: Errors of a call that ran nothing upstream. For a charged call the library has already
#: told an answer that leaves the outcome open (a lost answer, a gateway's 500/502/504 after
#: the request went out) as ``SubmitOutcomeUnknown``; a ``ServerError`` it raises instead (a
#: 503, "not taken"), a ``ServiceError`` or a gateway's refusal (``QuotaExceeded``...) is the
#: service answering an error: it did not run.
NOT_RUN = (
    aiportrait.InvalidArgument,
    aiportrait.errors.RateLimited,
    aiportrait.errors.GatewayError,
    aiportrait.errors.ServerError,
    aiportrait.errors.ServiceError,
)


def not_sent(exc: BaseException) -> bool:
    """True when the call provably did not run upstream: sending it again is safe (its
    ticket is freed)."""
    return isinstance(exc, NOT_RUN) or getattr(exc, "sent", None) is False


def _status(exc: aiportrait.AIPortraitError) -> int:
    """The HTTP status this backend answers for an aiportrait error (see the module's table)."""
    if isinstance(exc, aiportrait.errors.Overloaded):
        return 503
    if isinstance(exc, aiportrait.InvalidArgument):
        return 400
    if isinstance(exc, aiportrait.SubmitOutcomeUnknown):
        return 409
    if isinstance(exc, aiportrait.errors.CreateError) and exc.status == 462:
        return 422
    if isinstance(exc, aiportrait.errors.QuotaExceeded):
        return 403  # not run, but retrying soon will not help: no Retry-After
    if isinstance(exc, aiportrait.errors.RateLimited):
        return 429
    if isinstance(exc, aiportrait.TransportError):
        return 503 if exc.sent is False else 504
    return 502


def _retry_after(exc: aiportrait.AIPortraitError) -> float | None:
    """Seconds a client should wait before sending again, for an error that ran nothing."""
    if isinstance(exc, aiportrait.errors.Overloaded):
        return exc.retry_after
    if isinstance(exc, aiportrait.errors.RateLimited):
        return exc.retry_after or 1.0
    if isinstance(exc, aiportrait.TransportError) and exc.sent is False:
        return UNREACHABLE_RETRY
    return None


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def error_answer(exc: BaseException, request_id: str, **fields: Any) -> ErrorAnswer:
    """The answer for ``exc``: an aiportrait error by its class, :class:`Problem` and
    :class:`BadRequest` as they say; ``request_id`` is this backend's, used when the service
    gave none. ``fields`` go into the body (``ticket=...``)."""
    headers: dict[str, str] = {}
    if isinstance(exc, aiportrait.AIPortraitError):
        status, name = _status(exc), type(exc).__name__
        request_id = getattr(exc, "request_id", "") or request_id
        wait = _retry_after(exc)
        if wait is not None:
            headers = retry_after_header(wait)
        if isinstance(exc, aiportrait.SubmitOutcomeUnknown):
            fields["advice"] = (
                "the create may have run and been charged, but its answer was lost: do not "
                "send it again blindly (that may charge twice); quote the request_id to "
                "support, or send it again with a new ticket if a second charge is acceptable"
            )
    elif isinstance(exc, Problem):
        status, name = exc.status, exc.name
        fields = {**fields, **exc.fields}
        if exc.retry_after is not None:
            headers = retry_after_header(exc.retry_after)
    else:
        status = 400 if isinstance(exc, BadRequest) else 500
        name = _status_name(status)
    message = str(exc) if status != 500 else "internal error; the server log has the details"
    body = {"error": name, "message": message, "request_id": request_id, **fields}
    if "ticket" in fields:
        headers["X-Ticket"] = fields["ticket"]
    return ErrorAnswer(status, body, {**headers, "X-Request-Id": body["request_id"]})


def status_answer(status: int, message: str, request_id: str) -> ErrorAnswer:
    """An error named after its HTTP status (the framework's own: 404, 405, 413...)."""
    body = {"error": _status_name(status), "message": message, "request_id": request_id}
    return ErrorAnswer(status, body, {"X-Request-Id": request_id})


# -- what a request means --------------------------------------------------------------------


def too_large() -> Problem:
    """413 for a body over :data:`MAX_BODY` bytes (what aiohttp.web answers by itself)."""
    return Problem(413, _status_name(413), f"the body is larger than {MAX_BODY} bytes")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; 400 when it is not (nested too deep included)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None


def parse_photos(body: Any) -> list[str]:
    """``POST /trainings``: a JSON list of 1 to :data:`MAX_PHOTOS` photo URLs, or
    ``{"photos": [...]}``."""
    photos = body.get("photos") if isinstance(body, dict) else body
    if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
        raise BadRequest('expected a JSON list of photo URLs, or {"photos": [...]}')
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise BadRequest(f"a training takes 1 to {MAX_PHOTOS} photo URLs, not {len(photos)}")
    return photos


def parse_config(value: Any) -> aiportrait.CreateConfig:
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


# -- the command line ------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    """The options both examples take (``@FILE`` reads arguments from a file, one a line)."""
    epilog = (
        "With AIPORTRAIT_HOST, AIPORTRAIT_APP_ID and AIPORTRAIT_TOKEN in the environment it "
        "talks to that service (the real one, or an emulator started apart with `aiportrait "
        "emulator`); without them it starts a local emulator. SIGTERM stops it as Ctrl-C does."
    )
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, fromfile_prefix_chars="@"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--store", type=Path, default=Path("trainings.json"))
    parser.add_argument(
        "--photos",
        nargs="+",
        metavar="URL",
        help="photo URLs to print in the example commands, for the service named by "
        "AIPORTRAIT_HOST (the local emulator serves its own)",
    )
    parser.add_argument("--templates", nargs="+", metavar="URL", help="template URLs, as --photos")
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a comment on every event stream this often, so a gone client is noticed",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=64,
        metavar="N",
        help="calls that may wait for a free slot at once; beyond, 503 with Retry-After "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a call may wait for a slot before 503 with Retry-After "
        "(default: %(default)s)",
    )
    return parser


def log_to_stderr() -> None:
    """Warnings and errors on stderr (the library's among them: a kept result that was lost,
    a ``keep`` callback that failed), for the operator; a deployment configures its own."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def bounded(
    session_factory: Callable[..., aiportrait.Session], args: argparse.Namespace
) -> SessionFactory:
    """``session_factory`` with the command line's admission bound: a web client is told
    "busy, retry in N s" (503 + ``Retry-After``) instead of queueing for minutes."""
    return functools.partial(session_factory, max_waiting=args.max_waiting, max_wait=args.max_wait)


def emulator_dir(args: argparse.Namespace) -> Path:
    """Where the local emulator keeps its jobs: beside the store, so a restart finds them."""
    store: Path = args.store
    return store.with_name(store.stem + "_emulator")


def listen(host: str, port: int, program: str) -> socket.socket | None:
    """A socket listening on ``host:port`` (``0``: a free port), or ``None`` (said on stderr)
    when the port is in use."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"{program}: port {port} is in use: give another --port", file=sys.stderr)
        return None
    sock.listen()
    return sock


def print_usage(sock: socket.socket, target: Any) -> None:
    """Say where the backend serves, and ``curl`` commands to try with the target's URLs."""
    host, port = sock.getsockname()[:2]
    base = f"http://{host}:{port}"
    print(f"serving on {base} (Ctrl-C to stop)", flush=True)
    if target.local:
        print(f"local emulator at {target.emulator.url}")
    else:
        print("the service named by AIPORTRAIT_HOST")
    if not (target.photos and target.templates):
        print("give --photos URL... and --templates URL... for example commands")
        return
    print("try:")
    print(f"  curl -X POST {base}/trainings -d '{json.dumps(target.photos)}'")
    print(f"  curl -N {base}/trainings/JOB_ID/events")
    body = f'{{"job_id": JOB_ID, "template": "{target.templates[0]}"}}'
    ticket = new_ticket()  # hard to guess: a ticket is the password of its portrait
    print(f"  curl -X POST {base}/portraits -H 'X-Ticket: {ticket}' -d '{body}' -o p.jpg")
    print(f"  curl {base}/portraits/{ticket} -o p.jpg    # after a timeout", flush=True)
