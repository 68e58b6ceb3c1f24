"""The events a hook is given, and the vocabularies they share with the rest of the library.

Each event is a frozen value holding what happened: the method, the resource path, the call's
kind, counts and times, never the token, a signature or image data. :mod:`aiportrait.hooks`
says when each one comes.
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import attrs

from .._states import CallKind
from .kinds import BatchKind, CallOutcome, JobOutcome, OutcomeStatus

if TYPE_CHECKING:
    from ..models import JobState

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
    "OutagePause",
    "RequestSent",
    "RetryScheduled",
]


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
    kind: CallKind
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
    kind: CallKind
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
    kind: CallKind
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
    kind: CallKind
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
    kind: CallKind
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
    kind: CallKind
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
    kind: CallKind
    seconds: float


@attrs.frozen
class OutagePause:
    """The Session's trains and creates pause because the service seems down, or go on again.

    A pause starts when ``OutagePolicy.threshold`` failures in a row said the service is down
    (no connection, a timeout, an undocumented 5xx): no train or create is sent until the
    service answers a probe (a free batch query) or another call again. The end is told by
    the first call that goes on after it (once per pause).

    Attributes:
        paused: True when the pause starts, False when it is over.
        reason: why the service seems down (the last failure's reason, as
            :class:`RetryScheduled` words it: ``"HTTP 500 SERVICE_ERROR"``, ``"timeout"``).
        failures: the failures in a row that made the pause (0 when it is over).
        seconds: when it is over, how long it lasted (on the library's clock); else 0.
    """

    paused: bool
    reason: str
    failures: int
    seconds: float = 0.0


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
        status: ``succeeded``, ``failed`` or ``unknown`` (a charged call that may have run:
            :class:`~aiportrait.errors.SubmitOutcomeUnknown`): the item's
            :attr:`aiportrait.Outcome.status`.
        resumed: True when the journal already held this item's end (nothing was sent).
        error_type: the error's class name (``""`` on success).
        error: the item's error, or ``None``.
    """

    id: int
    kind: BatchKind
    key: Any
    status: OutcomeStatus
    resumed: bool = False
    error_type: str = ""
    error: BaseException | None = None

    @property
    def outcome(self) -> Literal["ok", "failed", "unknown", "resumed"]:
        """Deprecated: :attr:`status` and :attr:`resumed` (``ok`` is ``succeeded``; ``resumed``
        was a success the journal held)."""
        warnings.warn(
            "BatchItemEnded.outcome is BatchItemEnded.status (succeeded, failed, unknown) and"
            " .resumed; outcome will go away",
            DeprecationWarning,
            stacklevel=2,
        )
        return tally_word(self.status, self.resumed)


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
    | OutagePause
    | JobWatchStarted
    | JobStateChanged
    | JobEnded
    | BatchStarted
    | BatchItemEnded
    | BatchEnded
)
"""Any of the events."""

Hook: TypeAlias = Callable[[Event], "Awaitable[None] | None"]
"""A hook: any callable taking one event; what an ``async def`` hook returns is awaited."""


def tally_word(
    status: OutcomeStatus, resumed: bool
) -> Literal["ok", "failed", "unknown", "resumed"]:
    """Which of :class:`BatchEnded`'s counts an item adds to (a success the journal held is
    ``resumed``, any other success ``ok``): the word the deprecated
    :attr:`BatchItemEnded.outcome` gave, and the OpenTelemetry metric
    ``aiportrait.batch.items`` keeps in its ``aiportrait.outcome`` attribute."""
    if status != "succeeded":
        return status
    return "resumed" if resumed else "ok"
