"""Instrumentation hooks: see every call, try, retry, cool-down, watched job and batch.

A hook is any callable taking one event; an ``async def`` hook is awaited. Register it for one
Session (``Session(..., hooks=[my_hook])``) or for every Session built after it
(:func:`add_hook`). A hook that also has a ``headers()`` method (as
:class:`aiportrait.otel.Instrumentation`) gives headers to add to each request, outside the
signature. A hook can never break a call: one that raises is logged once (a warning on
the ``aiportrait`` logger, the first time only) and its error ignored; it is still called with
later events. No event holds the token, a signature or
image data: only the method, the resource path, the call's kind and what happened::

    def log_retries(event):
        if isinstance(event, aiportrait.hooks.RetryScheduled):
            print(f"{event.method} {event.path}: retry in {event.wait:.1f}s ({event.reason})")

    aiportrait.hooks.add_hook(log_retries)

The events, in the order a call makes them: :class:`CallStarted`, then for each try
:class:`RequestSent` and :class:`AnswerReceived` (and :class:`RetryScheduled` before another
try, :class:`CoolDownStarted` after a 429 that starts the shared pause,
:class:`CoolDownEnded` when a call goes on after it), and :class:`CallEnded` with the call's
outcome. A watch (``session.watch`` / ``session.wait``) makes :class:`JobWatchStarted`, one
:class:`JobStateChanged` per state change and :class:`JobEnded`; a batch (``create_many``,
``train_many``) makes :class:`BatchStarted`, one :class:`BatchItemEnded` per item and
:class:`BatchEnded`. A call made for a watch or a batch names it in ``within`` (the watch's or
batch's ``id``), so a hook can nest them (:mod:`aiportrait.otel` makes child spans that way).
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import urlsplit

import attrs

if TYPE_CHECKING:
    from .models import JobState

__all__ = [
    "AnswerReceived",
    "BatchEnded",
    "BatchItemEnded",
    "BatchStarted",
    "CallEnded",
    "CallStarted",
    "CoolDownEnded",
    "CoolDownStarted",
    "Event",
    "Hook",
    "JobEnded",
    "JobStateChanged",
    "JobWatchStarted",
    "RequestSent",
    "RetryScheduled",
    "add_hook",
    "remove_hook",
]

log = logging.getLogger("aiportrait")

Kind = Literal["read", "train", "create"]
CallOutcome = Literal["ok", "failed", "unknown", "cancelled"]
JobOutcome = Literal["succeeded", "failed", "timeout", "error", "closed"]
ItemOutcome = Literal["ok", "failed", "unknown", "resumed"]
BatchKind = Literal["create", "train"]


@attrs.frozen
class CallStarted:
    """A call (all its tries) begins: nothing is sent yet.

    Attributes:
        method: the HTTP method.
        path: the resource path (no host, no query).
        kind: ``read``, ``train`` or ``create``.
        server_address: the service's host name (no scheme, no credentials).
        server_port: the service's port.
        app_id: the AppId the call is signed for (never the token).
        within: the ``id`` of the watch or batch the call is made for, else ``None``.
    """

    method: str
    path: str
    kind: Kind
    server_address: str = ""
    server_port: int | None = None
    app_id: str = ""
    within: int | None = None


@attrs.frozen
class CallEnded:
    """A call ended, after its last try.

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        outcome: ``ok``; ``failed`` (an error answer, or no answer to a read: it did not
            run, or running it again is harmless); ``unknown`` (a train or create that may
            have run: :class:`~aiportrait.errors.SubmitOutcomeUnknown`, or cancelled while
            on the wire); ``cancelled`` (cancelled before it could have run).
        attempts: tries made (requests written, or about to be, when it ended).
        seconds: how long the call took, waits included (on the library's clock).
        status: the HTTP status of the last answer (0 when none came).
        request_id: the service's request id of the last answer, when one was read.
        error: the error the call raises, or ``None``.
        job_id: the job id a training answer carries, else ``None``.
        cost_time: the service's ``cost_time`` of a create answer (seconds), else ``None``.
    """

    method: str
    path: str
    kind: Kind
    outcome: CallOutcome
    attempts: int
    seconds: float
    status: int = 0
    request_id: str = ""
    error: BaseException | None = None
    job_id: int | None = None
    cost_time: float | None = None


@attrs.frozen
class RequestSent:
    """A try of a call is about to be written (its slot taken, any cool-down waited out).

    Attributes:
        method: the HTTP method.
        path: the resource path (no host, no query).
        kind: ``read``, ``train`` or ``create``.
        attempt: the try's number, from 1.
    """

    method: str
    path: str
    kind: Kind
    attempt: int


@attrs.frozen
class AnswerReceived:
    """A try ended: an answer was read, or it failed.

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        attempt: the try's number, from 1.
        status: the HTTP status (0 when no answer came).
        request_id: the service's request id, when one was read.
        seconds: how long the try took (on the library's clock).
        error: the try's error (an :class:`~aiportrait.errors.AIPortraitError`), or ``None``.
    """

    method: str
    path: str
    kind: Kind
    attempt: int
    status: int
    request_id: str
    seconds: float
    error: BaseException | None = None


@attrs.frozen
class RetryScheduled:
    """A failed try will be followed by another after ``wait`` seconds.

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        attempt: the number of the try that failed.
        reason: why it may be retried (``"429"``, ``"timeout"``, ``"HTTP 500 ..."``).
        wait: seconds until the next try (the shared 429 cool-down comes on top).
    """

    method: str
    path: str
    kind: Kind
    attempt: int
    reason: str
    wait: float


@attrs.frozen
class CoolDownStarted:
    """A 429 started the Session's shared cool-down: every call waits until it is over.

    A 429 that comes while a cool-down runs extends it without a new event.

    Attributes:
        method: the HTTP method of the call that got the 429.
        path: its resource path.
        kind: its kind.
        seconds: the pause, seconds from now.
        retry_after: the ``Retry-After`` the service sent (seconds), if any.
    """

    method: str
    path: str
    kind: Kind
    seconds: float
    retry_after: float | None = None


@attrs.frozen
class CoolDownEnded:
    """The shared cool-down is over: a call goes on (sent once per cool-down).

    Attributes:
        method: the HTTP method of the first call to go on.
        path: its resource path.
        kind: its kind.
        seconds: the cool-down's whole length (extensions included).
    """

    method: str
    path: str
    kind: Kind
    seconds: float


@attrs.frozen
class JobWatchStarted:
    """A watch of a job starts (its first poll is next).

    Attributes:
        job_id: the job's id.
        id: this watch's id (unique in the process), named by the ``within`` of its polls.
        within: the ``id`` of the batch the watch is made for, else ``None``.
    """

    job_id: int
    id: int
    within: int | None = None


@attrs.frozen
class JobStateChanged:
    """A watched job changed state (the first state seen counts as a change).

    Attributes:
        job_id: the job's id.
        id: the watch's id.
        previous: the state before (``None`` for the first state seen).
        state: the new state.
        elapsed: seconds since the watch started.
        polls: polls made so far (each one HTTP request).
    """

    job_id: int
    id: int
    previous: JobState | None
    state: JobState
    elapsed: float
    polls: int


@attrs.frozen
class JobEnded:
    """A watch ended: the job ended, or the watch stopped first.

    Attributes:
        job_id: the job's id.
        id: the watch's id.
        outcome: ``succeeded`` or ``failed`` (the job ended so), ``timeout`` (the watch's
            deadline passed), ``error`` (a poll failed in a way polling again cannot fix) or
            ``closed`` (the watch was closed, or dropped, before the job ended).
        state: the job's last state seen (``None`` when none was).
        seconds: seconds since the watch started.
        polls: polls made (each one HTTP request, failed ones included).
        error: the error the watch raised (``JobTimeout``, a poll's error), or ``None``; a
            failed job's message is :attr:`message`.
        message: the service's message (for a failed job: why).
    """

    job_id: int
    id: int
    outcome: JobOutcome
    state: JobState | None
    seconds: float
    polls: int
    error: BaseException | None = None
    message: str = ""


@attrs.frozen
class BatchStarted:
    """A batch (``create_many`` or ``train_many``) starts running its items.

    Attributes:
        id: the batch's id (unique in the process), named by the ``within`` of its calls.
        kind: ``create`` or ``train``.
        limit: items in flight at once.
        within: the ``id`` of an enclosing batch or watch, else ``None``.
    """

    id: int
    kind: BatchKind
    limit: int
    within: int | None = None


@attrs.frozen
class BatchItemEnded:
    """One item of a batch ended (in completion order, as the batch yields it).

    Attributes:
        id: the batch's id.
        kind: ``create`` or ``train``.
        key: the item's key, as the caller gave it.
        outcome: ``ok``; ``resumed`` (its end was in the journal already); ``unknown`` (a
            charged call that may have run: :class:`~aiportrait.errors.SubmitOutcomeUnknown`);
            ``failed``.
        error_type: the error's class name (``""`` on success).
        error: the item's error, or ``None``.
    """

    id: int
    kind: BatchKind
    key: Any
    outcome: ItemOutcome
    error_type: str = ""
    error: BaseException | None = None


@attrs.frozen
class BatchEnded:
    """A batch ended: every item ran, or it stopped (``fail_fast``, an error, a cancel).

    Attributes:
        id: the batch's id.
        kind: ``create`` or ``train``.
        items: items that ended (the sum of the four counts).
        ok: items that succeeded.
        failed: items that failed.
        unknown: charged items whose outcome is unknown.
        resumed: items whose end was in the journal already.
        seconds: how long the batch ran (on the library's clock).
        error: what stopped the batch early, or ``None``.
    """

    id: int
    kind: BatchKind
    items: int
    ok: int
    failed: int
    unknown: int
    resumed: int
    seconds: float
    error: BaseException | None = None


Event: TypeAlias = (
    CallStarted
    | CallEnded
    | RequestSent
    | AnswerReceived
    | RetryScheduled
    | CoolDownStarted
    | CoolDownEnded
    | JobWatchStarted
    | JobStateChanged
    | JobEnded
    | BatchStarted
    | BatchItemEnded
    | BatchEnded
)
Hook: TypeAlias = Callable[[Event], "Awaitable[None] | None"]

_GLOBAL: list[Hook] = []
_LOGGED: set[int] = set()  # hooks whose failure was logged already

_ids = itertools.count(1)


def next_id() -> int:
    """A new watch or batch id (unique in the process)."""
    return next(_ids)


def add_hook(hook: Hook) -> None:
    """Call ``hook`` with the events of every Session built after this (a Session takes the
    hooks added so far when it is built, as it takes its other settings)."""
    if not callable(hook):
        raise TypeError(f"a hook must be callable, not {type(hook).__name__}")
    _GLOBAL.append(hook)


def remove_hook(hook: Hook) -> None:
    """Stop calling ``hook`` (added with :func:`add_hook`); nothing happens if it was not."""
    if hook in _GLOBAL:
        _GLOBAL.remove(hook)


def installed() -> tuple[Hook, ...]:
    """The hooks added with :func:`add_hook`, in order (what a new Session takes)."""
    return tuple(_GLOBAL)


def header_sources(hooks: Sequence[Hook]) -> tuple[Callable[[], Mapping[str, str]], ...]:
    """The ``headers`` methods of the hooks that have one (a tracing hook's ``traceparent``):
    the transport calls them for each request and adds what they give outside the signature.
    One that raises is logged (once) and adds nothing, as for events."""
    sources: list[Callable[[], Mapping[str, str]]] = []
    for hook in hooks:
        headers = getattr(hook, "headers", None)
        if callable(headers):
            sources.append(_guarded(hook, headers))
    return tuple(sources)


def _guarded(
    hook: Hook, headers: Callable[[], Mapping[str, str]]
) -> Callable[[], Mapping[str, str]]:
    def guarded() -> Mapping[str, str]:
        try:
            return headers()
        except Exception:
            _failed(hook)
            return {}

    return guarded


async def emit(hooks: Sequence[Hook], event: Event) -> None:
    """Give ``event`` to each hook; a hook that raises is logged (once) and the call goes on."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            _failed(hook)


def emit_now(hooks: Sequence[Hook], event: Event) -> None:
    """Give ``event`` to each hook without awaiting: for a watch dropped unfinished, where no
    event loop may run. An ``async`` hook's coroutine is closed unrun."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.iscoroutine(outcome):
                outcome.close()
        except Exception:
            _failed(hook)


def _failed(hook: Hook) -> None:
    if id(hook) not in _LOGGED:
        _LOGGED.add(id(hook))
        log.warning("hook %r raised; its errors are ignored", hook, exc_info=True)


def origin(base_url: str, app_id: str) -> tuple[str, int | None, str]:
    """What :class:`CallStarted` says of the service: host name, port and AppId."""
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.hostname or "", port, app_id
