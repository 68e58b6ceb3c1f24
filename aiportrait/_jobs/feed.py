"""``Feed``: one job's poll schedule, shared by every watch of that job in a Session.

Concurrent watches of one job (:class:`~aiportrait._jobs.watch.JobWatch`, its *followers*)
follow one feed: one poll at a time, each answer read by all of them. The feed owns no task,
timer or connection: a follower that finds nobody polling takes the lead in its own task, waits
out the schedule, polls once (with its own poll callable, so the request is named after its
watch) and tells the others; the others wait for that news, each within its own deadline. A
leader that leaves (cancelled, or its deadline passed) hands over: the next follower to wake
polls at the feed's scheduled time (at once, when the poll it left was cut on the wire). A
follower leads only inside ``__anext__``: with none there, nothing polls.

The schedule is the feed's: the time since its first poll, the service's ``Retry-After``, the
failed polls. Its :class:`PollPolicy` is asked for before every wait (a callable), so a watch
started before a duration was learned uses what is learned later. The feed keeps the job's last
state changes (a handful: a job has four states), so a slow follower still reads each one.

A Session holds its feeds in a dict (:func:`follow`), by job id, poll policy (without its
timeout: each follower keeps its own) and retry policy (a failed poll is judged by one, the
feed's): watches of one job with different schedules follow different feeds. A feed is
forgotten when its last follower leaves, and replaced when a failure that polling cannot fix
ended it; a follower that comes back (:meth:`Feed.join`) follows the feed held then.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Final

import anyio

from .._retrying import clock as _clock
from .._retrying.call import request_id_of
from .._retrying.loop import CALL_ERRORS
from .._retrying.policy import RetryPolicy, decide
from ..errors import AIPortraitError
from ..models import Job, JobState
from .schedule import PollPolicy

__all__ = ["Feed", "FeedKey", "Poll", "follow"]

log = logging.getLogger("aiportrait")

#: One generator for every feed's jitter: a Random each would cost ~3 KB per watched job.
_JITTER = random.Random()

KEEP_CHANGES: Final = 16
"""State changes a feed keeps for its slowest follower."""

Poll = Callable[[int], Awaitable[Job]]
"""One poll of a job: its id in, the job's answer out (one request)."""

FeedKey = tuple[int, PollPolicy, RetryPolicy]
"""A feed's key in its Session: the job id, the schedule (no timeout), the retry policy."""


class Feed:
    """One job's poll schedule and the state changes it saw, for all its followers."""

    __slots__ = (
        "_changes", "_due", "_followers", "_home", "_leading", "_news", "_on_end",
        "_pending_at", "_retry", "_rng", "_started", "answers", "clock", "consecutive_failures",
        "error", "failures", "job_id", "last_error", "policy", "polls", "seen",
    )  # fmt: skip

    def __init__(
        self,
        job_id: int,
        policy: Callable[[], PollPolicy],
        retry: RetryPolicy,
        *,
        on_end: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        home: tuple[dict[FeedKey, Feed], FeedKey] | None = None,
    ) -> None:
        self.job_id = job_id
        self.policy = policy
        """The poll policy now (asked before every wait: it may learn a duration)."""
        self.clock = clock or _clock.now
        self.polls = 0
        """Polls made so far: each one HTTP request."""
        self.failures = 0
        """Failed polls so far."""
        self.consecutive_failures = 0
        """Failed polls since the last answer."""
        self.last_error: Exception | None = None
        """The last poll's error while polls keep failing, else ``None``."""
        self.error: Exception | None = None
        """The failure polling cannot fix that ended the feed, for every follower."""
        self.seen = 0
        """State changes seen in all (the index after the last one)."""
        self.answers = 0
        """Polls answered in all."""
        self._changes: list[Job] = []  # the last KEEP_CHANGES (a list: most jobs have 3)
        self._retry = retry
        self._on_end = on_end
        self._rng = rng or _JITTER
        self._home = home  # the Session's feeds, and this one's key in them
        self._started: float | None = None
        self._pending_at = 0.0
        self._due: float | None = None  # when the next poll is due (None: the first, now)
        self._leading = False  # a follower is polling, or waiting to poll
        self._news: anyio.Event | None = None  # set when the leader answers or leaves
        self._followers = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the feed's first poll started (0 before it)."""
        return 0.0 if self._started is None else self.clock() - self._started

    @property
    def state(self) -> JobState | None:
        """The last state seen (``None`` before the first answer)."""
        return self._changes[-1].state if self._changes else None

    @property
    def fresh(self) -> bool:
        """True when the last state seen is the job's state now, as far as the schedule
        knows: the job ended, or the next poll is not due yet. A new follower starts from it;
        otherwise from the next answer."""
        if not self._changes:
            return False
        ended = self._changes[-1].state.terminal
        return ended or (self._due is not None and self._due >= self.clock())

    def change(self, index: int) -> tuple[Job, int] | None:
        """The state change at ``index`` (the oldest kept, when it is gone) and the index
        after it, or ``None`` when there is none there yet."""
        if index >= self.seen:
            return None
        first = self.seen - len(self._changes)
        index = max(index, first)
        return self._changes[index - first], index + 1

    def join(self) -> Feed:
        """A follower comes (back) to the job: the feed the Session follows it with now, one
        follower more. That is this one, unless it was forgotten (its followers all left) and
        a new watch made another; a feed that ended with :attr:`error` keeps its followers."""
        feed = self
        if self._home is not None and self.error is None:
            feeds, key = self._home
            feed = feeds.setdefault(key, self)
        feed._followers += 1
        return feed

    def leave(self) -> None:
        """A follower leaves; with the last one, the Session forgets the feed."""
        self._followers -= 1
        if not self._followers and self._home is not None:
            feeds, key = self._home
            if feeds.get(key) is self:
                del feeds[key]

    async def step(self, deadline: float, poll: Poll) -> bool:
        """Wait for the feed's next news, until ``deadline`` (on the feed's clock): poll when
        no follower does (single flight), else wait for the one that does. ``False`` when the
        deadline came first. A failure polling cannot fix is left in :attr:`error`."""
        if self.clock() >= deadline:  # it passed while an answer woke this follower
            return False
        if self._leading:
            if self._news is None:
                self._news = anyio.Event()
            news = self._news
            with _clock.deadline(deadline - self.clock()) as scope:
                await news.wait()
            return not scope.cancelled_caught
        self._leading = True
        try:
            return await self._poll(deadline, poll)
        finally:  # an answer, a deadline, a cancel: the others wake, one of them leads next
            self._leading = False
            if self._news is not None:
                self._news.set()
                self._news = None

    async def _poll(self, deadline: float, poll: Poll) -> bool:
        now = self.clock()
        if self._due is not None and self._due > now:
            if self._due >= deadline:  # the follower's deadline comes first
                await _clock.sleep(max(0.0, deadline - now))
                return False
            await _clock.sleep(self._due - now)
        if self._started is None:
            self._started = self.clock()
        self.polls += 1
        with _clock.deadline(deadline - self.clock()) as scope:
            try:
                job = await poll(self.job_id)
            except CALL_ERRORS as exc:
                retry_after = self._failed(exc)
            else:
                retry_after = 0.0
                self._answered(job)
        if scope.cancelled_caught:
            return False  # the poll was cut: the next leader polls again at once
        if self.error is None and not (self.state is not None and self.state.terminal):
            wait = self.policy().next_wait(self.elapsed, self._rng, retry_after)
            self._due = self.clock() + (math.inf if wait is None else wait)
        return True

    def _answered(self, job: Job) -> None:
        self.answers += 1
        self.consecutive_failures = 0
        self.last_error = None
        last = self.state
        if job.state != last:
            if job.state.terminal and last is not None and self._on_end is not None:
                # Seen from pending to its end: it ended between the last pending answer and
                # this one; the middle is the best guess of its duration (recorded once a job).
                self._on_end((self._pending_at + self.elapsed) / 2)
            self._changes.append(job)
            if len(self._changes) > KEEP_CHANGES:
                del self._changes[0]
            self.seen += 1
            log.debug(
                "job %s: %s after %.1fs and %d polls",
                self.job_id,
                job.state.name,
                self.elapsed,
                self.polls,
                extra={
                    "job_id": self.job_id,
                    "aiportrait.job_id": self.job_id,
                    "aiportrait.state": job.state.name,
                    "aiportrait.previous_state": None if last is None else last.name,
                    "aiportrait.elapsed": self.elapsed,
                    "aiportrait.polls": self.polls,
                    "aiportrait.request_id": job.request_id,
                },
            )
        if not job.state.terminal:
            self._pending_at = self.elapsed

    def _failed(self, exc: AIPortraitError) -> float:
        """Record a failed poll and return the service's ``Retry-After``; a failure polling
        again cannot fix ends the feed (:attr:`error`)."""
        decision = decide(exc, charged=False, attempt=None, policy=self._retry)
        if not decision.retry:
            self.error = exc
            return 0.0
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = exc
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
                "aiportrait.request_id": request_id_of(exc),
            },
        )
        return decision.wait


def follow(
    feeds: dict[FeedKey, Feed],
    job_id: int,
    schedule: PollPolicy,
    retry: RetryPolicy,
    policy: Callable[[], PollPolicy],
    on_end: Callable[[float], None] | None,
) -> Feed:
    """The feed of ``job_id`` on ``schedule`` (a policy without a timeout) in a Session's
    ``feeds``: the one being followed, or a new one (``policy`` gives its policy before each
    wait)."""
    key = (job_id, schedule, retry)
    feed = feeds.get(key)
    if feed is None or feed.error is not None:
        feed = feeds[key] = Feed(job_id, policy, retry, on_end=on_end, home=(feeds, key))
    return feed
