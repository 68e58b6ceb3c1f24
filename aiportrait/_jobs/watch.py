"""Watching asynchronous jobs: ``PollPolicy`` and the ``async for`` watcher.

The watcher polls ``async_jobs/{id}`` on a schedule shaped for jobs of minutes and yields one
:class:`JobUpdate` per state *change*. Each poll is one HTTP request (a single try: the
watcher is the only layer that retries polls). A failed poll that the shared classifier calls
retryable (connection error, timeout, 5xx, 429, unreadable answer) is retried on the poll
schedule within the deadline and never ends the watch on its own; ``Retry-After`` is honoured
up to the Session's ``RetryPolicy.max_retry_after`` (a longer one raises, as for calls);
errors that retrying cannot fix (bad signature, unknown app) are raised at once. The watcher owns no
task, timer or connection between polls: cancelling it (task cancel, anyio cancel scope,
timeout) leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from .._retrying import clock as _clock
from .._retrying.loop import CALL_ERRORS
from .._retrying.policy import RetryPolicy, decide
from ..errors import AIPortraitError, InvalidArgument, JobFailed, JobTimeout, MalformedResponse
from ..hooks import JobOutcome, emit, emit_now, next_id
from ..models import Job, JobState, TrainResult

if TYPE_CHECKING:
    from ..hooks.events import Hook, JobEnded
from .schedule import PollPolicy

__all__ = ["JobUpdate", "JobWatch"]

log = logging.getLogger("aiportrait")

#: One generator for every watcher's jitter: a Random each would cost ~3 KB per watched job.
_JITTER = random.Random()


@attrs.frozen
class JobUpdate:
    """One state change of a watched job.

    Attributes:
        job_id: the job's id.
        state: the new state.
        previous: the state before (``None`` for the first state seen).
        elapsed: seconds since the watch started.
        polls: polls made so far, failed ones included: each one HTTP request.
        job: the full job answer that showed the change.
        remaining: the expected time left in seconds, when the watch has an expected
            duration (given, or learned from jobs of the same kind); ``None`` otherwise and
            once the job has ended.
    """

    job_id: int
    state: JobState
    previous: JobState | None
    elapsed: float
    polls: int
    job: Job
    remaining: float | None = None

    @property
    def done(self) -> bool:
        """True for the terminal update (success or failure)."""
        return self.state.terminal

    @property
    def result(self) -> TrainResult | None:
        """The parsed training result, on success."""
        return self.job.result

    @property
    def message(self) -> str:
        """The service's message (on failure: why)."""
        return self.job.message


Poll = Callable[[int], Awaitable[Job]]


def result_of(last: JobUpdate, model_id: str | None = None) -> TrainResult:
    """The training result a finished watch ends with, as :meth:`Session.wait` returns it.

    Raises :class:`~aiportrait.errors.JobFailed` for a failed job. A success whose ``Result``
    cannot be read falls back to ``model_id`` (known from the ``TrainJob``) when given.
    """
    if last.state is JobState.FAILED:
        raise JobFailed(last.job_id, last.message, last.job.raw_result)
    if last.result is not None:
        return last.result
    if model_id is not None:
        return TrainResult(model_id=model_id)
    raise MalformedResponse(f"job {last.job_id} succeeded but its Result is not a training result")


class JobWatch(AsyncIterator[JobUpdate]):
    """Async iterator over a job's state changes; made by :meth:`Session.watch`."""

    def __init__(
        self,
        poll: Poll,
        job_id: int,
        policy: PollPolicy,
        *,
        retry: RetryPolicy | None = None,
        model_id: str | None = None,
        on_end: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        hooks: Sequence[Hook] = (),
        within: int | None = None,
        watch_id: int = 0,
    ) -> None:
        self.job_id = job_id
        self.model_id = model_id
        """The training's model id when the watch started from a :class:`TrainJob`."""
        self.last: JobUpdate | None = None
        """The last update yielded (``None`` before the first)."""
        self._on_end = on_end
        self._pending_at = 0.0
        self.policy = policy
        self._poll = poll
        self._clock = clock or _clock.now
        self._rng = rng or _JITTER
        self._started: float | None = None
        self._last: JobState | None = None
        self._finished = False
        self.polls = 0
        """Polls made so far: each one HTTP request."""
        self.failures = 0
        """Failed polls so far."""
        self.consecutive_failures = 0
        """Failed polls since the last answer (0 while polls succeed)."""
        self.last_error: Exception | None = None
        """The last poll's error while polls keep failing, else ``None``."""
        self._retry_after = 0.0
        self._retry = retry or RetryPolicy()
        self._hooks = tuple(hooks)
        self._within = within
        self.id = watch_id
        """The watch's id in :mod:`aiportrait.hooks` events (0 without hooks): ``watch_id``
        when given (the id its ``poll`` names its calls with), else one drawn when it starts."""
        self._dropped: weakref.finalize[..., JobWatch] | None = None
        self._box: list[object] | None = None  # with hooks: last state and polls, for _dropped

    def __aiter__(self) -> JobWatch:
        return self

    @property
    def elapsed(self) -> float:
        """Seconds since the first poll started (0 before it)."""
        return 0.0 if self._started is None else self._clock() - self._started

    async def __anext__(self) -> JobUpdate:
        if self._finished:
            raise StopAsyncIteration
        if self._started is None:
            self._started = self._clock()
            if self._hooks:
                await self._watch_started()
        while True:
            try:
                job = await self._next_answer()
            except Exception as exc:
                if self._hooks:  # a timeout, or a failure polling again cannot fix
                    outcome: JobOutcome = "timeout" if isinstance(exc, JobTimeout) else "error"
                    await self._ended(outcome, exc)
                raise
            if not job.state.terminal:
                self._pending_at = self.elapsed
            if job.state == self._last:
                continue
            update = JobUpdate(
                job_id=self.job_id,
                state=job.state,
                previous=self._last,
                elapsed=self.elapsed,
                polls=self.polls,
                job=job,
                remaining=None if job.state.terminal else self.expected_remaining,
            )
            if job.state.terminal and self._last is not None and self._on_end is not None:
                # Seen from pending to its end: it ended between the last pending answer and
                # this one; the middle is the best guess of its duration.
                self._on_end((self._pending_at + update.elapsed) / 2)
            self._last = job.state
            self._finished = job.state.terminal
            self.last = update
            log.debug(
                "job %s: %s after %.1fs and %d polls",
                self.job_id,
                job.state.name,
                update.elapsed,
                self.polls,
                extra={
                    "job_id": self.job_id,
                    "aiportrait.job_id": self.job_id,
                    "aiportrait.state": job.state.name,
                    "aiportrait.previous_state": None
                    if update.previous is None
                    else update.previous.name,
                    "aiportrait.elapsed": update.elapsed,
                    "aiportrait.polls": self.polls,
                    "aiportrait.request_id": job.request_id,
                },
            )
            if self._hooks:
                from ..hooks.events import JobStateChanged  # built on first use (with hooks)

                await emit(
                    self._hooks,
                    JobStateChanged(
                        self.job_id, self.id, update.previous, job.state, update.elapsed,
                        self.polls,
                    ),
                )  # fmt: skip
                if self._finished:
                    failed = job.state is JobState.FAILED
                    await self._ended("failed" if failed else "succeeded", None)
            return update

    async def _watch_started(self) -> None:
        from ..hooks.events import JobEnded, JobWatchStarted  # built on first use (with hooks)

        self.id = self.id or next_id()
        await emit(self._hooks, JobWatchStarted(self.job_id, self.id, self._within))
        # A watch dropped before its end (a ``break`` out of ``async for``) still ends its
        # span: the event is given to the hooks when it is garbage-collected (the class is
        # handed over now: nothing is imported in a finalizer).
        box = self._box = [None, 0]
        self._dropped = weakref.finalize(
            self,
            _dropped,
            self._hooks,
            JobEnded,
            (self.job_id, self.id),
            self._clock,
            self._started,
            box,
        )

    async def _ended(self, outcome: JobOutcome, error: BaseException | None) -> None:
        from ..hooks.events import JobEnded  # built on first use (with hooks)

        if self._dropped is None or not self._dropped.detach():
            return  # told already
        state = None if self.last is None else self.last.state
        message = "" if self.last is None else self.last.message
        event = JobEnded(
            self.job_id, self.id, outcome, state, self.elapsed, self.polls, error, message
        )
        await emit(self._hooks, event)

    @property
    def expected_remaining(self) -> float | None:
        """Seconds the job is expected to run still (``None`` without an expected duration)."""
        expected = self.policy.expected
        return None if expected is None else max(0.0, expected - self.elapsed)

    async def result(self) -> TrainResult:
        """Follow the job to its end and return the training result.

        Consumes the rest of the watch. Raises :class:`~aiportrait.errors.JobFailed` for a
        failed job and :class:`~aiportrait.errors.JobTimeout` at the deadline.
        """
        async for _ in self:
            pass
        if self.last is None or not self.last.done:
            raise InvalidArgument(f"job {self.job_id}: the watch was closed before the job ended")
        return result_of(self.last, self.model_id)

    async def aclose(self) -> None:
        """Stop watching (nothing to release: the watcher holds nothing between polls)."""
        self._finished = True
        if self._hooks:
            await self._ended("closed", None)

    def _remaining(self) -> float:
        timeout = self.policy.timeout
        return math.inf if timeout is None else timeout - self.elapsed

    def _timeout(self) -> JobTimeout:
        self._finished = True
        last = None if self._last is None else int(self._last)
        error = JobTimeout(self.job_id, last, self.elapsed)
        if self.last_error is not None:
            # The deadline ended a run of failed polls: keep the real failure in the chain.
            error.__cause__ = self.last_error
        return error

    def _failed(self, exc: AIPortraitError) -> None:
        """Record a failed poll, or raise ``exc`` when polling again cannot help."""
        decision = decide(exc, charged=False, attempt=None, policy=self._retry)
        if not decision.retry:
            self._finished = True
            raise exc
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = exc
        self._retry_after = decision.wait
        log.debug(
            "job %s: poll %d failed, will poll again: %s",
            self.job_id,
            self.polls,
            exc,
            extra={
                "job_id": self.job_id,
                "aiportrait.job_id": self.job_id,
                "aiportrait.polls": self.polls,
                "aiportrait.error_type": type(exc).__name__,
                "aiportrait.request_id": getattr(exc, "request_id", "") or "",
            },
        )

    async def _next_answer(self) -> Job:
        while True:
            if self.polls:
                wait = self.policy.next_wait(self.elapsed, self._rng, self._retry_after)
                if wait is None:
                    await _clock.sleep(max(0.0, self._remaining()))
                    raise self._timeout()
                await _clock.sleep(wait)
            self._retry_after = 0.0
            self.polls += 1
            if self._box is not None:
                self._box[1] = self.polls
            with _clock.deadline(self._remaining()) as scope:
                try:
                    job = await self._poll(self.job_id)
                except CALL_ERRORS as exc:
                    self._failed(exc)
                else:
                    self.consecutive_failures = 0
                    self.last_error = None
                    if self._box is not None:
                        self._box[0] = job.state
                    return job
            if scope.cancelled_caught:
                raise self._timeout()


def _dropped(
    hooks: tuple[Hook, ...],
    ended: type[JobEnded],
    ids: tuple[int, int],
    clock: Callable[[], float],
    started: float | None,
    box: list[object],
) -> None:
    """A watch was garbage-collected before its end: tell the hooks (without awaiting)."""
    state = box[0] if isinstance(box[0], JobState) else None
    polls = box[1] if isinstance(box[1], int) else 0
    seconds = 0.0 if started is None else clock() - started
    job_id, watch_id = ids
    emit_now(hooks, ended(job_id, watch_id, "closed", state, seconds, polls))
