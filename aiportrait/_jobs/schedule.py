"""``PollPolicy``: when a job is polled, and for how long (the one poll schedule).

The watcher (:mod:`aiportrait._jobs.watch`) and the Temporal training workflow both follow
:meth:`PollPolicy.next_wait`.
"""

from __future__ import annotations

import math
import random
from typing import ClassVar, Final

import attrs

from .._args import flag, number, positive_number

__all__ = ["PollPolicy"]

BUDGET: Final = 0.4
"""A learned schedule's polls, as a fraction of a 1-second poller's (which makes about one per
second of the job's duration, plus its first look)."""
STRETCH: Final = 1.8
"""How far a learned schedule may widen ``dense`` to keep within :data:`BUDGET`: the end is
still noticed within ``STRETCH / 2 * dense`` seconds at the median."""
SPAN_POLLS: Final = 120
"""The most polls a learned schedule spends across its span: a training of 10-30 minutes is
polled every 10 s or so there (noticed within 5 s at the median), not every 1.35 s (some 900
polls a training, a load on the service that a few seconds of lag on a long job do not pay
for)."""


@attrs.frozen(kw_only=True)
class PollPolicy:
    """When to poll a job, and for how long.

    The first look is immediate. After it, the interval grows with the time already waited
    (``growth`` times the elapsed time, at least ``first`` and at most ``cap`` seconds): a job
    is never polled more than a few dozen times, and the lag after it ends stays a bounded
    fraction of its duration. With ``expected`` (the likely duration), the watcher waits from its
    first look straight to ``(1 - window) * expected`` (in steps of at most ``cap``: a job that
    fails early is noticed within ``cap`` seconds), then polls every ``dense`` seconds up to
    ``(1 + window) * expected``, and grows its intervals again after that, so the end
    is seen quickly without polling all along. A ``Retry-After`` from the service is honoured.
    Each interval is spread by ``jitter`` (a fraction) so that many watchers do not poll in step.

    Attributes:
        first: the interval after the first look, seconds.
        growth: interval as a fraction of the time waited so far.
        cap: the longest interval, seconds.
        expected: the job's likely duration in seconds, or ``None``.
        dense: the interval near ``expected``, seconds.
        window: how far around ``expected`` to poll densely, as a fraction of it.
        jitter: random spread of each interval, as a fraction of it.
        timeout: the deadline in seconds (``None``: wait for ever).
        learn: without ``expected``, poll across the span of durations the Session learned
            from jobs of the same kind it saw end (:meth:`spanning` gives the fields).
    """

    first: float = attrs.field(default=2.0, validator=positive_number)
    growth: float = attrs.field(default=0.5, validator=positive_number)
    cap: float = attrs.field(default=30.0, validator=positive_number)
    expected: float | None = attrs.field(default=None, validator=positive_number)
    dense: float = attrs.field(default=1.0, validator=positive_number)
    window: float = attrs.field(default=0.1, validator=number(0.0, 1.0, below=True))
    jitter: float = attrs.field(default=0.1, validator=number(0.0, 1.0, below=True))
    timeout: float | None = attrs.field(default=1800.0, validator=positive_number)
    learn: bool = attrs.field(default=True, validator=flag(optional=False))

    TRAINING: ClassVar[PollPolicy]
    """The default for trainings: first look now, then 2 s, growing to 30 s; 30-minute deadline."""
    QUICK: ClassVar[PollPolicy]
    """For short jobs: 0.5 s growing to 5 s; 5-minute deadline."""

    def interval(self, elapsed: float, rng: random.Random | None = None) -> float:
        """The wait before the next poll, given the seconds already waited."""
        base = min(self.cap, max(self.first, self.growth * elapsed))
        if self.expected is not None:
            start = (1 - self.window) * self.expected
            end = (1 + self.window) * self.expected
            if start <= elapsed < end:
                base = min(base, self.dense)
            elif elapsed < start:  # nothing to see yet: straight to the window (at most cap)
                base = max(self.dense, min(self.cap, start - elapsed))
        if self.jitter and rng is not None:
            base *= 1 + rng.uniform(-self.jitter, self.jitter)
        return base

    def spanning(self, start: float, end: float) -> PollPolicy:
        """This policy, polling densely from ``start`` to ``end`` seconds into the watch: where
        jobs end (what :class:`Durations` learned).

        The rule. A job that ends in the span is noticed within one dense interval ``d``
        (``d / 2`` at the median, as ends spread over the span), so ``d`` buys speed, and its
        price is polls: the first look, the steps to ``start`` (at most ``cap`` apart), then
        about ``(typical - start) / d + 0.5`` polls across the span for a job of ``typical``
        seconds, the span's middle (not the median of the durations kept: in a burst of jobs
        that moves with each one that ends). A 1-second poller makes ``typical + 1`` or so;
        ``d`` is the interval that keeps the whole at :data:`BUDGET` of that (0.4, not 0.5:
        room for jitter, for what the durations learned get wrong, and for a burst of jobs,
        whose durations kept lean to its longest as it drains), but never less than ``dense``
        (a narrow span would allow less: no faster than asked) nor more than :data:`STRETCH`
        times it (the median lag stays under ``dense``) or ``cap``; ``dense`` for jobs too short
        for any interval to keep within the budget. With the default
        ``dense=1``: jobs of 5-15 s get ``d = 1.8`` s (the stretch bounds it; about 0.47 of
        the polls, as the two polls before the span weigh on short jobs), jobs of 30-90 s
        about 1.4 s (0.4). A long span is crossed in at most :data:`SPAN_POLLS` polls: trainings
        of 10-30 minutes get ``d`` of about 10 s.

        As fields: ``expected`` is the span's middle and ``window`` its half-width as a
        fraction of it (so ``[start, end]`` is the dense window), ``dense`` is ``d``, and after
        ``end`` (a job longer than any seen) the intervals grow from ``d`` in proportion to the
        time waited (``first = d``, ``growth = d / end``, up to ``cap``): a job just past the
        span is still noticed within about ``d``; one that runs on to ``T`` costs about
        ``end / d * ln(T / end)`` polls more (a job of 30-90 s stuck to the 30-minute deadline:
        about 230 in all, a 1-second poller's 1,800). ``cap``, ``jitter``, ``timeout`` and
        ``learn`` are kept.
        """
        end = max(start, end)
        typical = (start + end) / 2
        reach = math.ceil(start / self.cap)  # polls stepping from the first look to start
        spare = BUDGET * (typical + 1) - 1.5 - reach  # the first look; half an interval at the end
        # Jobs too short for the budget (no interval keeps within it): stretching would add
        # lag and save next to no polls.
        wanted = max(0.0, typical - start) / spare if spare > 0 else 0.0
        dense = min(STRETCH * self.dense, max(self.dense, wanted))
        dense = min(self.cap, max(dense, (end - start) / SPAN_POLLS))  # a long span: sparser
        return attrs.evolve(
            self,
            expected=typical,
            window=(end - start) / (end + start),
            dense=dense,
            first=dense,
            growth=dense / end,
        )

    def next_wait(
        self, elapsed: float, rng: random.Random | None = None, retry_after: float = 0.0
    ) -> float | None:
        """The wait before the next poll, ``elapsed`` seconds into the watch (at least the
        service's ``retry_after``), or ``None`` when the deadline comes first: the one poll
        schedule of the watcher and of the Temporal training workflow."""
        wait = max(self.interval(elapsed, rng), retry_after)
        if self.timeout is not None and elapsed + wait >= self.timeout:
            return None
        return wait

    def schedule(self, duration: float) -> list[float]:
        """The poll times (seconds after the start) up to ``duration``, without jitter."""
        times = [0.0]
        while times[-1] < duration:
            times.append(times[-1] + self.interval(times[-1]))
        return times


PollPolicy.TRAINING = PollPolicy()
PollPolicy.QUICK = PollPolicy(first=0.5, cap=5.0, timeout=300.0)
