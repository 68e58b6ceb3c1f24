"""``RetryPolicy``: which failures are sent again, and after how long.

Read-only calls (check, job and batch queries) are retried on connection errors, timeouts,
5xx, 429 and unreadable answers. Charged calls (train, create) are retried only when the request
provably did not run: the connection could not be made (nothing was sent), a 429, or a 503 that
carries ``Retry-After``. After an ambiguous failure (the connection dropped after sending, or the
answer timed out) a charged call raises :class:`~aiportrait.errors.SubmitOutcomeUnknown` with
what was sent, never a silent second submission.

The waits use exponential backoff with full jitter, honour ``Retry-After`` (seconds or an HTTP
date, capped), and stop at the policy's overall deadline.

:func:`call_with_retries` is the one retry loop: every call of a Session goes through it, and
the job watcher uses the same classifier (:func:`retry_reason`) for its polls, sending each
poll as a single try so that only one layer decides.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio
import attrs

from . import _clock
from ._args import positive_number, whole
from ._sendhook import before_send, not_sent
from .errors import (
    AIPortraitError,
    APIError,
    ConnectError,
    MalformedResponse,
    RateLimited,
    RequestTimeout,
    ResponseError,
    ServerError,
    ServiceError,
    SubmitOutcomeUnknown,
    TransportError,
)
from .hooks import (
    AnswerReceived,
    CallEnded,
    CallOutcome,
    CallStarted,
    CoolDownEnded,
    CoolDownStarted,
    Hook,
    RequestSent,
    RetryScheduled,
    emit,
    within,
)

if TYPE_CHECKING:
    from ._limits import CallKind, Limits

__all__ = ["RetryPolicy", "call_with_retries", "retry_reason"]

log = logging.getLogger("aiportrait")

T = TypeVar("T")

#: The failures a try can end with that the loop classifies (anything else propagates).
CALL_ERRORS = (TransportError, ResponseError, APIError)


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
    """

    attempts: int = attrs.field(default=4, validator=whole(1))
    charged_attempts: int = attrs.field(default=3, validator=whole(1))
    base: float = attrs.field(default=0.5, validator=positive_number)
    cap: float = attrs.field(default=20.0, validator=positive_number)
    max_retry_after: float = attrs.field(default=120.0, validator=positive_number)
    deadline: float | None = attrs.field(default=600.0, validator=positive_number)
    min_try: float = attrs.field(default=1.0, validator=positive_number)

    NEVER: ClassVar[RetryPolicy]
    """One try, no retry (a 429 still waits out the Session's shared cool-down once)."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def tries(self, charged: bool) -> int:
        """Tries in all for a call of this kind."""
        return self.charged_attempts if charged else self.attempts


RetryPolicy.NEVER = RetryPolicy(attempts=1, charged_attempts=1)


def retry_reason(exc: AIPortraitError, *, charged: bool) -> str | None:
    """Why ``exc`` may be retried, or ``None`` when it must be raised.

    For charged calls only failures that prove the call did not run qualify.
    """
    if isinstance(exc, RateLimited):
        return "429"
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


async def call_with_retries(
    try_once: Callable[[], Awaitable[T]],
    *,
    kind: CallKind,
    what: str,
    policy: RetryPolicy,
    limits: Limits,
    request: Mapping[str, Any] | None = None,
    tries: int | None = None,
    hooks: Sequence[Hook] = (),
    origin: tuple[str, int | None, str] = ("", None, ""),
    after: Callable[[T], None] | None = None,
) -> T:
    """Run ``try_once`` under the Session's limits until it succeeds or must not be retried.

    Each try waits out the shared 429 cool-down, takes its limiter slots, and (for a charged
    call) awaits :data:`~aiportrait._sendhook.before_send` right before it is written. The
    whole call, waits included, runs under one cancel scope bounded by ``policy.deadline``; a
    retry that would have less than ``policy.min_try`` left is not started. When the deadline
    ends a run of failures, the last real failure is raised. A charged call whose failure
    leaves open whether it ran raises :class:`~aiportrait.errors.SubmitOutcomeUnknown`
    carrying ``request``; it is never sent again. ``tries`` overrides the policy's count (the
    watcher polls with one try and decides itself). ``hooks`` get a
    :class:`~aiportrait.hooks.CallStarted`, for each try a
    :class:`~aiportrait.hooks.RequestSent` and an :class:`~aiportrait.hooks.AnswerReceived`,
    before a retry a :class:`~aiportrait.hooks.RetryScheduled`, the cool-down's start and end,
    and a :class:`~aiportrait.hooks.CallEnded`; ``origin`` (server address, port, AppId) is
    what :class:`~aiportrait.hooks.CallStarted` says of the service. ``after`` runs on the
    answer before :class:`~aiportrait.hooks.CallEnded` (the Session decodes there when hooks
    listen): an answer that cannot be read ends the call ``failed``, or ``unknown`` for a
    charged call, as the caller will see it.
    """
    charged = kind != "read"
    cooldown = limits.cooldown
    method, _, path = what.partition(" ")
    most = policy.tries(charged) if tries is None else tries
    started = _clock.now()
    last: AIPortraitError | None = None
    attempt = 0
    in_try = False
    got = False
    sent = 0  # tries written (or being written), for the hooks
    if hooks:
        address, port, app_id = origin
        start = CallStarted(method, path, kind, address, port, app_id, within.get())
        await emit(hooks, start)
    # A try without an exception costs nothing: the no-hook path is as fast as before.
    try:
        scope = _new_scope()
        with scope:
            # Cancelled when the deadline passes, by one timer shared by the calls of this event
            # loop (see _Deadlines) rather than a timer armed and disarmed for each call.
            seconds = policy.deadline
            deadlines = None if seconds is None else _deadlines()
            entry = None if deadlines is None or seconds is None else deadlines.add(seconds, scope)
            try:
                while True:
                    attempt += 1
                    # wait() returns at once, without a checkpoint, when there is no cool-down
                    if cooldown.active:
                        await cooldown.wait()
                    # limits.slot(kind), inlined: the tokens are taken without a trip through the
                    # event loop when free, and a cancel while waiting gives back those taken.
                    limiters = limits.limiters(kind)
                    task = asyncio.current_task()
                    held = 0
                    try:
                        for limiter in limiters:
                            try:
                                limiter.acquire_on_behalf_of_nowait(task)
                            except anyio.WouldBlock:
                                await limiter.acquire_on_behalf_of(task)
                            held += 1
                        if cooldown.active:
                            await cooldown.wait()
                        if attempt > 1 and not fits(policy, started, 0.0):
                            # The slot or the cool-down took what was left: this try could not
                            # finish, so it is not sent, and the real failure stands.
                            assert last is not None
                            raise last
                        hook = before_send.get() if charged else None
                        if hook is not None:
                            await hook()
                        if hooks:
                            ended = cooldown.take_ended()
                            if ended is not None:
                                await emit(hooks, CoolDownEnded(method, path, kind, ended))
                            await emit(hooks, RequestSent(method, path, kind, attempt))
                            began = _clock.now()
                        in_try = True  # stays True if the deadline cancels the try
                        sent = attempt
                        try:
                            result = await try_once()
                            cooldown.clear()
                        except CALL_ERRORS as exc:
                            failure = last = exc
                        else:
                            in_try = False  # the answer is here: nothing after this may lose it
                            got = True
                            break
                        in_try = False
                        if hooks:
                            await _answered(hooks, method, path, kind, attempt, began, failure)
                    finally:
                        while held:
                            held -= 1
                            limiters[held].release_on_behalf_of(task)
                    if hooks:
                        episodes = cooldown.episodes
                    delay = _retry_delay(failure, attempt, most, started, policy, limits, charged)
                    if hooks and cooldown.episodes != episodes:
                        retry_after = getattr(failure, "retry_after", None)
                        pause = CoolDownStarted(method, path, kind, cooldown.remaining, retry_after)
                        await emit(hooks, pause)
                    if delay is None:
                        if charged and ambiguous(failure):
                            raise _unknown(failure, what, kind, request) from failure
                        raise failure
                    if charged:
                        # Retried only when it provably did not run: say so (the batch journal
                        # gives its claim back, so a stop now leaves the item new, not unknown).
                        unsent = not_sent.get()
                        if unsent is not None:
                            await unsent()
                    reason = retry_reason(failure, charged=charged) or ""
                    log.debug(
                        "%s: try %d failed (%s), next try in %.2fs",
                        what,
                        attempt,
                        reason,
                        delay + cooldown.remaining,
                        extra={
                            "attempt": attempt,
                            "wait": delay,
                            "aiportrait.method": method,
                            "aiportrait.path": path,
                            "aiportrait.kind": kind,
                            "aiportrait.attempt": attempt,
                            "aiportrait.reason": reason,
                            "aiportrait.wait": delay,
                            "aiportrait.request_id": getattr(failure, "request_id", "") or "",
                        },
                    )
                    if hooks:
                        await emit(
                            hooks, RetryScheduled(method, path, kind, attempt, reason, delay)
                        )
                    await _clock.sleep(delay)
            finally:
                if deadlines is not None:
                    deadlines.discard(entry)
        if not got:
            # The deadline passed: during a try (which may have reached the service) or a wait.
            cut = RequestTimeout(
                f"{what}: no answer within the deadline of {policy.deadline}s",
                method=method,
                path=path,
                sent=None if in_try else False,
            )
            if in_try and charged:
                raise _unknown(cut, what, kind, request) from cut
            if last is not None:
                raise last  # the run of failures the deadline ended
            raise cut
    except BaseException as exc:
        if hooks:
            await _call_ended(hooks, method, path, kind, sent, started, exc, in_try, last)
        raise
    if after is not None:
        try:
            after(result)
        except BaseException as exc:
            if hooks:
                await _answered(hooks, method, path, kind, attempt, began, result)
                await _call_ended(hooks, method, path, kind, sent, started, exc, False, None)
            raise
    if hooks:  # outside the deadline: a slow hook cannot turn an answer into a timeout
        await _answered(hooks, method, path, kind, attempt, began, result)
        await _call_ended(hooks, method, path, kind, sent, started, result, False, None)
    return result


_scope_type: Callable[[], anyio.CancelScope] | None = None


def _new_scope() -> anyio.CancelScope:
    """``anyio.CancelScope()`` without anyio's backend lookup: the backend's class is found
    once (the calls run on asyncio, as aiohttp does)."""
    global _scope_type
    if _scope_type is None:
        _scope_type = type(anyio.CancelScope())
    return _scope_type()


class _Deadlines:
    """The deadlines of the calls in flight on one event loop, and one timer for them all.

    A call registers its cancel scope with its deadline (event loop time, as anyio's deadlines
    are); when the deadline passes, the scope is cancelled, exactly as a scope created with that
    deadline cancels itself. One loop timer is armed for the earliest deadline instead of one
    per call; entries of calls that ended are dropped as they come up, or in a sweep once they
    outnumber the live ones.
    """

    __slots__ = ("_dead", "_heap", "_seq", "_when", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the registry maps each loop to its deadlines, and the loop's pending timer
        # holds these; a strong reference back would keep every loop alive.
        self.loop = weakref.ref(loop)
        self._heap: list[list[Any]] = []  # [deadline, seq, scope or None once ended]
        self._seq = 0
        self._dead = 0
        self._when = math.inf  # when the armed timer fires

    def add(self, seconds: float, scope: anyio.CancelScope) -> list[Any]:
        """Cancel ``scope`` ``seconds`` from now unless :meth:`discard` is called first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._seq += 1
        entry = [deadline, self._seq, scope]
        heapq.heappush(self._heap, entry)
        if deadline < self._when:
            self._arm(loop, deadline)
        return entry

    def discard(self, entry: list[Any] | None) -> None:
        """The call of ``entry`` ended: its scope is not cancelled any more."""
        if entry is None or entry[2] is None:
            return
        entry[2] = None
        self._dead += 1
        if self._dead > 64 and self._dead > 2 * (len(self._heap) - self._dead):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        # A timer armed before for a later time is left to fire: it sees it is not the
        # current one and does nothing.
        self._when = when
        loop.call_at(when, self._fire, when)

    def _fire(self, when: float) -> None:
        if when != self._when:  # superseded by a timer for an earlier deadline
            return
        loop = asyncio.get_running_loop()
        now = loop.time()  # the loop may run a timer a hair early: then it is armed again
        self._when = math.inf
        heap = self._heap
        while heap and (heap[0][2] is None or heap[0][0] <= now):
            entry = heapq.heappop(heap)
            if entry[2] is None:
                self._dead -= 1
            else:
                scope, entry[2] = entry[2], None
                scope.cancel()
        if heap:
            self._arm(loop, heap[0][0])


_deadlines_of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)
_last_deadlines: _Deadlines | None = None


def _deadlines() -> _Deadlines:
    """The deadlines of the running event loop."""
    global _last_deadlines
    loop = asyncio.get_running_loop()
    last = _last_deadlines
    if last is not None and last.loop() is loop:
        return last
    found = _deadlines_of.get(loop)
    if found is None:
        found = _deadlines_of[loop] = _Deadlines(loop)
    _last_deadlines = found
    return found


async def _answered(
    hooks: Sequence[Hook],
    method: str,
    path: str,
    kind: CallKind,
    attempt: int,
    began: float,
    outcome: object,
) -> None:
    error = outcome if isinstance(outcome, BaseException) else None
    status = getattr(outcome, "status", 0) or 0
    request_id = getattr(outcome, "request_id", "") or ""
    seconds = _clock.now() - began
    event = AnswerReceived(method, path, kind, attempt, status, request_id, seconds, error)
    await emit(hooks, event)


async def _call_ended(
    hooks: Sequence[Hook],
    method: str,
    path: str,
    kind: CallKind,
    attempts: int,
    started: float,
    outcome: object,
    in_try: bool,
    last: AIPortraitError | None,
) -> None:
    seconds = _clock.now() - started
    job_id = cost_time = None
    if isinstance(outcome, BaseException):
        if isinstance(outcome, SubmitOutcomeUnknown):
            verdict: CallOutcome = "unknown"
        elif not isinstance(outcome, Exception):  # cancelled (by the caller or the deadline)
            verdict = "unknown" if in_try and kind != "read" else "cancelled"
        else:
            verdict = "failed"
        seen = last if last is not None else outcome
        status = getattr(seen, "status", 0) or 0
        request_id = getattr(seen, "request_id", "") or ""
        error: BaseException | None = outcome
    else:
        verdict, error = "ok", None
        status = getattr(outcome, "status", 0) or 0
        request_id = getattr(outcome, "request_id", "") or ""
        data = getattr(outcome, "data", None)
        if isinstance(data, dict):
            found = data.get("job_id")
            job_id = found if type(found) is int else None
            cost = data.get("cost_time")
            if kind == "create" and isinstance(cost, (int, float)) and not isinstance(cost, bool):
                cost_time = float(cost)
    event = CallEnded(
        method, path, kind, verdict, attempts, seconds, status, request_id, error, job_id,
        cost_time,
    )  # fmt: skip
    await emit(hooks, event)


def _unknown(
    exc: AIPortraitError, what: str, kind: str, request: Mapping[str, Any] | None
) -> SubmitOutcomeUnknown:
    text = str(exc)
    return SubmitOutcomeUnknown(
        f"{text if text.startswith(what) else f'{what}: {text}'}; the service may have run it, "
        "so it was not sent again",
        action=kind,
        request=request,
    )


def _retry_delay(
    exc: AIPortraitError,
    attempt: int,
    most: int,
    started: float,
    policy: RetryPolicy,
    limits: Limits,
    charged: bool,
) -> float | None:
    """Seconds to wait before the next try, or ``None`` to raise ``exc``."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, RateLimited):
        # Every task of the Session waits this out, even when this call gives up now.
        limits.cooldown.trip(
            min(retry_after, policy.max_retry_after) if retry_after else None,
            cap=policy.max_retry_after,
        )
    if retry_reason(exc, charged=charged) is None or attempt >= most:
        return None
    if retry_after is not None and retry_after > policy.max_retry_after:
        return None
    if isinstance(exc, RateLimited):
        delay = 0.0  # the shared cool-down is the wait
    else:
        delay = max(policy.backoff(attempt), retry_after or 0.0)
    if not fits(policy, started, delay + limits.cooldown.remaining):
        return None
    return delay


def fits(policy: RetryPolicy, started: float, wait: float) -> bool:
    """True when, after ``wait`` seconds, at least ``min_try`` is left of the deadline."""
    if policy.deadline is None:
        return True
    return _clock.now() - started + wait + policy.min_try <= policy.deadline
