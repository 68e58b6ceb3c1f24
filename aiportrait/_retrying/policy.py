"""``RetryPolicy`` and the one retry decision: whether a failed try is sent again, and when.

Read-only calls (check, job and batch queries) are retried on connection errors, timeouts,
5xx, 429 and unreadable answers. Charged calls (train, create) are retried only when the request
provably did not run: the connection could not be made (nothing was sent), a 429, or a 503 that
carries ``Retry-After``. After an ambiguous failure (the connection dropped after sending, or the
answer timed out) a charged call raises :class:`~aiportrait.errors.SubmitOutcomeUnknown` with
what was sent, never a silent second submission.

:func:`decide` is pure: given the failure, the try's number, the policy, the time already spent
and a random source, it says whether to try again and after how long. The Session's call loop
(:mod:`aiportrait._retrying.loop`), the job watcher and the Temporal workflows (which pass
``workflow.random()``, so that a replay decides the same) all ask it; none has rules of its own.
"""

from __future__ import annotations

import random
from typing import ClassVar

import attrs

from .._args import flag, positive_number, whole
from ..errors import (
    AIPortraitError,
    ConnectError,
    MalformedResponse,
    Overloaded,
    RateLimited,
    RequestTimeout,
    ResponseError,
    ServerError,
    ServiceError,
    TransportError,
)

__all__ = [
    "Decision",
    "OutagePolicy",
    "RetryPolicy",
    "ambiguous",
    "decide",
    "outage_reason",
    "retry_reason",
]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a Session retries a failed call.

    Attributes:
        attempts: tries in all for a read-only call (the first one included).
        charged_attempts: tries in all for a train or create call, counting only failures
            that prove the call did not run.
        base: the first backoff, seconds; it doubles with each try.
        cap: the longest backoff, seconds.
        max_retry_after: the longest ``Retry-After`` honoured, seconds; a longer one ends
            the retries and the error is raised.
        deadline: the longest time one call may take with all its tries and waits, seconds
            (``None``: no bound beyond the per-try timeout). It is enforced with a cancel
            scope; when it ends a run of failures, the last real failure is raised.
        min_try: the least time worth a new try, seconds: a retry is not started when less
            than this would be left of the deadline after its wait.
        hold: a train or create that the outage breaker holds back (:class:`OutagePolicy`)
            waits, until a probe finds the service answering or its deadline ends it.
            ``False``: it waits for one probe at most, sent at once, and while the service
            still seems down it fails not sent (a ``TransportError`` with ``sent=False``),
            for a caller that waits elsewhere (the Temporal batch workflow: an activity must
            not be held past its timeout).
    """

    attempts: int = attrs.field(default=4, validator=whole(1))
    charged_attempts: int = attrs.field(default=3, validator=whole(1))
    base: float = attrs.field(default=0.5, validator=positive_number)
    cap: float = attrs.field(default=20.0, validator=positive_number)
    max_retry_after: float = attrs.field(default=120.0, validator=positive_number)
    deadline: float | None = attrs.field(default=600.0, validator=positive_number)
    min_try: float = attrs.field(default=1.0, validator=positive_number)
    hold: bool = attrs.field(default=True, validator=flag(optional=False))

    NEVER: ClassVar[RetryPolicy]
    """One try, no retry (a 429 still waits out the Session's shared cool-down once)."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def tries(self, charged: bool) -> int:
        """Tries in all for a call of this kind."""
        return self.charged_attempts if charged else self.attempts

    def fits(self, elapsed: float, wait: float) -> bool:
        """True when, after ``wait`` more seconds, at least ``min_try`` is left of the
        deadline of a call that has run ``elapsed`` seconds."""
        return self.deadline is None or elapsed + wait + self.min_try <= self.deadline


RetryPolicy.NEVER = RetryPolicy(attempts=1, charged_attempts=1)


@attrs.frozen(kw_only=True)
class OutagePolicy:
    """When a Session holds back its charged calls because the service seems down.

    A failure that says the service is down (:func:`outage_reason`: no connection, no answer
    in time, an undocumented 5xx; a refused connection only once the service has answered
    the Session) makes the Session doubt the service: from then on a train or
    create is not sent until a probe (a free batch query) or any other call sent after that
    failure gets an answer from the service. Each failure in a row counts; at ``threshold``
    the Session is *paused* (the hooks' :class:`~aiportrait.hooks.OutagePause`, a batch's
    status line) and probes on a backoff schedule. Read-only calls are never held back (they
    are retried as :class:`RetryPolicy` says, and their answers count as probes).

    Attributes:
        pause: ``False`` turns it off: charged calls are sent whatever failed before.
        threshold: failures in a row that make a pause (before it, each probe goes at once).
        probe_interval: seconds between the probes of a pause at first; doubled after each
            failed probe.
        probe_cap: the longest wait between two probes, seconds.
        probe_timeout: seconds one probe may take (no answer by then is a failed probe).
    """

    pause: bool = attrs.field(default=True, validator=flag(optional=False))
    threshold: int = attrs.field(default=3, validator=whole(1))
    probe_interval: float = attrs.field(default=1.0, validator=positive_number)
    probe_cap: float = attrs.field(default=30.0, validator=positive_number)
    probe_timeout: float = attrs.field(default=10.0, validator=positive_number)

    OFF: ClassVar[OutagePolicy]
    """Never hold charged calls back (what the library did before it had a breaker)."""

    def probe_wait(self, failures: int) -> float:
        """Seconds before the next probe after ``failures`` outage failures in a row."""
        if failures < self.threshold:
            return 0.0
        doublings = min(failures - self.threshold, 64)  # past the cap long before: no overflow
        return min(self.probe_cap, self.probe_interval * 2.0**doublings)


OutagePolicy.OFF = OutagePolicy(pause=False)


@attrs.frozen
class Decision:
    """What :func:`decide` says after a failed try.

    Attributes:
        retry: send it again.
        wait: seconds to wait before the next try (0 when not retrying, or when a shared
            429 cool-down is the wait).
        reason: why it may be sent again (``"429"``, ``"timeout"``, ...), or ``""``.
        retry_after: the service's ``Retry-After``, seconds (0 without one).
        unknown: it is not retried and, being charged, it may have run: the caller raises
            :class:`~aiportrait.errors.SubmitOutcomeUnknown`, never sends it again.
    """

    retry: bool
    wait: float = 0.0
    reason: str = ""
    retry_after: float = 0.0
    unknown: bool = False


def decide(
    exc: AIPortraitError,
    *,
    charged: bool,
    attempt: int | None,
    policy: RetryPolicy,
    elapsed: float = 0.0,
    cooling: float = 0.0,
    rng: random.Random | None = None,
) -> Decision:
    """Whether to send again after try ``attempt`` failed with ``exc``, and when.

    ``attempt`` counts from 1; ``None`` means the caller keeps its own schedule and deadline
    (the job watcher: only whether, and the ``Retry-After`` to honour). ``elapsed`` is the time
    the call has run, checked against ``policy.deadline``; ``cooling`` is what a shared 429
    cool-down will wait before the next try anyway (then a 429's own wait is that cool-down).
    ``rng`` draws the jitter (a workflow passes ``workflow.random()``).
    """
    reason = retry_reason(exc, charged=charged)
    retry_after = getattr(exc, "retry_after", None) or 0.0
    if (
        reason is None
        or (attempt is not None and attempt >= policy.tries(charged))
        or retry_after > policy.max_retry_after
    ):
        return Decision(False, retry_after=retry_after, unknown=charged and ambiguous(exc))
    if attempt is None:
        wait = retry_after
    elif isinstance(exc, RateLimited) and cooling > 0:
        wait = 0.0  # the shared cool-down is the wait
    else:
        wait = max(policy.backoff(attempt, rng), retry_after)
    if attempt is not None and not policy.fits(elapsed, wait + cooling):
        return Decision(False, retry_after=retry_after)  # provably not run: the error stands
    return Decision(True, wait, reason, retry_after)


def retry_reason(exc: AIPortraitError, *, charged: bool) -> str | None:
    """Why ``exc`` may be retried, or ``None`` when it must be raised.

    For charged calls only failures that prove the call did not run qualify.
    """
    if isinstance(exc, RateLimited):
        return "429"
    if isinstance(exc, Overloaded):
        return "the Session's queue was full: nothing was sent"
    if isinstance(exc, TransportError) and exc.sent is False:
        return "could not connect: nothing was sent"
    if isinstance(exc, ServerError) and exc.status == 503 and exc.retry_after is not None:
        return "503 with Retry-After"
    if charged:
        return None
    if isinstance(exc, ConnectError):
        return "connection dropped"
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, (ServerError, ServiceError)):
        return f"HTTP {exc.status} {exc.code}".rstrip()
    if isinstance(exc, MalformedResponse):
        return "unreadable answer"
    return None


def outage_reason(exc: AIPortraitError) -> str | None:
    """Why ``exc`` says the service is down (no connection, no answer in time, an
    undocumented 5xx), in :func:`retry_reason`'s words; ``None`` when the service answered
    (an error it documents, a 429, an unreadable answer) and so is up."""
    if isinstance(exc, (TransportError, ServerError)):
        return retry_reason(exc, charged=False) or "no answer"
    return None


def ambiguous(exc: AIPortraitError) -> bool:
    """True when a charged call failed in a way that leaves open whether it ran.

    The request may have reached the service (the connection dropped or timed out after it
    was sent, or a gateway answered 500, 502 or 504), or the service answered 2xx in a way we
    cannot read (a job id or a portrait lost on the way back).
    """
    if isinstance(exc, TransportError):
        return exc.sent is not False
    if isinstance(exc, ServerError):
        # An undocumented 500, 502 or 504: a gateway or the backend failed, possibly after the
        # work started. (503 means "not taken"; the documented 500 is a CreateError.)
        return exc.status != 503
    return isinstance(exc, ResponseError) and 200 <= exc.status < 300
