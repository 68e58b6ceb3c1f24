"""Watching asynchronous jobs: the ``async for`` watcher and its updates.

The watcher polls ``async_jobs/{id}`` on a schedule shaped for jobs of minutes and yields one
:class:`JobUpdate` per state *change*. Each poll is one HTTP request (a single try: the
watcher is the only layer that retries polls). A failed poll that the shared classifier calls
retryable (connection error, timeout, 5xx, 429, unreadable answer) is retried on the poll
schedule within the deadline and never ends the watch on its own; ``Retry-After`` is honoured
up to the Session's ``RetryPolicy.max_retry_after`` (a longer one raises, as for calls);
errors that retrying cannot fix (bad signature, unknown app) are raised at once. Concurrent
watches of one job in a Session share one poll schedule (:mod:`.feed`): one poll at a time,
its answer read by all. The watcher owns no task, timer or connection between polls:
cancelling it (task cancel, anyio cancel scope, timeout) leaves nothing behind.
"""

from __future__ import annotations

import math
import random
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from .._retrying.policy import RetryPolicy
from ..errors import InvalidArgument, JobFailed, JobTimeout, MalformedResponse
from ..hooks import JobOutcome, emit, emit_now, next_id
from ..models import Job, JobState, TrainResult
from .feed import Feed, Poll
from .schedule import PollPolicy

if TYPE_CHECKING:
    from ..hooks.events import Hook, JobEnded

__all__ = ["JobUpdate", "JobWatch"]


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
    """Async iterator over a job's state changes; made by :meth:`Session.watch`.

    Concurrent watches of one job in one Session (and its ``with_options`` views) with the
    same poll policy, its ``timeout`` aside, share one poll schedule: one request at a time,
    made by whichever of them finds nobody polling, its answer read by all; no task is kept
    between polls. Each has its own deadline and ``elapsed``, and gets every state change
    from where it started (its first update is the state seen then, ``previous=None``);
    ``polls`` and ``failures`` are the job's. One that ends, is closed, cancelled (it comes
    back if iterated again) or dropped leaves the others undisturbed; with none left,
    nothing polls. A failure polling cannot fix reaches all of them. Watches with another
    poll policy follow a schedule of their own.
    """

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
        schedule = attrs.evolve(policy, timeout=None)  # a feed of its own: ``policy``'s
        feed = Feed(
            job_id, lambda: schedule, retry or RetryPolicy(), on_end=on_end, clock=clock, rng=rng
        )
        self._start(feed, poll, policy.timeout, model_id, hooks, within, watch_id)

    @classmethod
    def _following(
        cls,
        feed: Feed,
        poll: Poll,
        timeout: float | None,
        model_id: str | None,
        hooks: Sequence[Hook],
        within: int | None,
        watch_id: int,
    ) -> JobWatch:
        """A watch of the Session's ``feed`` (shared with its other watches of the job)."""
        watch = cls.__new__(cls)
        watch._start(feed, poll, timeout, model_id, hooks, within, watch_id)
        return watch

    def _start(
        self,
        feed: Feed,
        poll: Poll,
        timeout: float | None,
        model_id: str | None,
        hooks: Sequence[Hook],
        within: int | None,
        watch_id: int,
    ) -> None:
        self.job_id = feed.job_id
        self.model_id = model_id
        """The training's model id when the watch started from a :class:`TrainJob`."""
        self.last: JobUpdate | None = None
        """The last update yielded (``None`` before the first)."""
        self._feed = feed
        self._limit = timeout
        self._poll = poll
        self._started: float | None = None
        self._deadline = math.inf
        self._last: JobState | None = None
        self._index: int | None = None  # the next change of the feed to read (None: unplaced)
        self._after: int | None = None  # unplaced: it starts from the state after this answer
        self._finished = False
        self._hooks = tuple(hooks)
        self._within = within
        self.id = watch_id
        """The watch's id in :mod:`aiportrait.hooks` events (0 without hooks): ``watch_id``
        when given (the id its ``poll`` names its calls with), else one drawn when it starts."""
        self._dropped: weakref.finalize[..., JobWatch] | None = None
        self._member: weakref.finalize[..., JobWatch] | None = None
        self._join()

    def __aiter__(self) -> JobWatch:
        return self

    @property
    def policy(self) -> PollPolicy:
        """The poll policy now: the feed's (with a learned duration once there is one) and
        this watch's deadline."""
        return attrs.evolve(self._feed.policy(), timeout=self._limit)

    @property
    def polls(self) -> int:
        """Polls of the job so far (by every watch of its feed): each one HTTP request."""
        return self._feed.polls

    @property
    def failures(self) -> int:
        """Failed polls so far."""
        return self._feed.failures

    @property
    def consecutive_failures(self) -> int:
        """Failed polls since the last answer (0 while polls succeed)."""
        return self._feed.consecutive_failures

    @property
    def last_error(self) -> Exception | None:
        """The last poll's error while polls keep failing, else ``None``."""
        return self._feed.last_error

    @property
    def elapsed(self) -> float:
        """Seconds since this watch started (its first ``__anext__``; 0 before it)."""
        return 0.0 if self._started is None else self._feed.clock() - self._started

    async def __anext__(self) -> JobUpdate:
        if self._finished:
            raise StopAsyncIteration
        if self._member is None:  # cancelled before: back to the feed
            self._join()
        if self._started is None:
            self._started = self._feed.clock()
            if self._limit is not None:
                self._deadline = self._started + self._limit
            if self._hooks:
                await self._watch_started()
        while True:
            try:
                job = await self._next_change()
            except Exception as exc:  # a timeout, or a failure polling again cannot fix
                outcome: JobOutcome = "timeout" if isinstance(exc, JobTimeout) else "error"
                await self._end(outcome, exc)
                raise
            except BaseException:  # cancelled: this watch leaves the feed for now
                self._leave()
                raise
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
            self._last = job.state
            self.last = update
            if self._hooks:
                from ..hooks.events import JobStateChanged  # built on first use (with hooks)

                await emit(
                    self._hooks,
                    JobStateChanged(
                        self.job_id, self.id, update.previous, job.state, update.elapsed,
                        update.polls,
                    ),
                )  # fmt: skip
            if job.state.terminal:
                failed = job.state is JobState.FAILED
                await self._end("failed" if failed else "succeeded", None)
            return update

    async def _next_change(self) -> Job:
        """The feed's next state change for this watch (the state now, for its first)."""
        feed = self._feed
        while True:
            if feed.error is not None:
                raise feed.error
            if self._index is None:  # its first update: the state now
                if self._after is None:
                    self._after = feed.answers - 1 if feed.fresh else feed.answers
                if feed.answers > self._after:
                    self._index = feed.seen - 1
            if self._index is not None:
                found = feed.change(self._index)
                if found is not None:
                    job, self._index = found
                    return job
            if not await feed.step(self._deadline, self._poll):
                raise self._timeout()

    def _join(self) -> None:
        self._feed.join()
        self._member = weakref.finalize(self, self._feed.leave)  # dropped: it leaves too
        self._member.atexit = False

    def _leave(self) -> None:
        if self._member is not None:
            self._member()  # feed.leave, once
            self._member = None

    async def _watch_started(self) -> None:
        from ..hooks.events import JobEnded, JobWatchStarted  # built on first use (with hooks)

        self.id = self.id or next_id()
        await emit(self._hooks, JobWatchStarted(self.job_id, self.id, self._within))
        # A watch dropped before its end (a ``break`` out of ``async for``) still ends its
        # span: the event is given to the hooks when it is garbage-collected (the class is
        # handed over now: nothing is imported in a finalizer).
        self._dropped = weakref.finalize(
            self,
            _dropped,
            self._hooks,
            JobEnded,
            (self.job_id, self.id),
            self._feed,
            self._started,
        )

    async def _end(self, outcome: JobOutcome, error: BaseException | None) -> None:
        """The watch is over: it leaves the feed, and the hooks are told (once)."""
        self._finished = True
        self._leave()
        if self._dropped is None or not self._dropped.detach():
            return  # no hooks, or told already
        from ..hooks.events import JobEnded  # built on first use (with hooks)

        state = None if self.last is None else self.last.state
        message = "" if self.last is None else self.last.message
        event = JobEnded(
            self.job_id, self.id, outcome, state, self.elapsed, self.polls, error, message
        )
        await emit(self._hooks, event)

    @property
    def expected_remaining(self) -> float | None:
        """Seconds the job is expected to run still (``None`` without an expected duration),
        counted from the first poll of its feed."""
        expected = self._feed.policy().expected
        return None if expected is None else max(0.0, expected - self._feed.elapsed)

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
        await self._end("closed", None)

    def _timeout(self) -> JobTimeout:
        last = None if self._last is None else int(self._last)
        error = JobTimeout(self.job_id, last, self.elapsed)
        if self._feed.last_error is not None:
            # The deadline ended a run of failed polls: keep the real failure in the chain.
            error.__cause__ = self._feed.last_error
        return error


def _dropped(
    hooks: tuple[Hook, ...],
    ended: type[JobEnded],
    ids: tuple[int, int],
    feed: Feed,
    started: float | None,
) -> None:
    """A watch was garbage-collected before its end: tell the hooks (without awaiting)."""
    seconds = 0.0 if started is None else feed.clock() - started
    job_id, watch_id = ids
    emit_now(hooks, ended(job_id, watch_id, "closed", feed.state, seconds, feed.polls))
