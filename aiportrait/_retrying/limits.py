"""Bounds of a Session: capacity limiters, requests per second, the shared 429 cool-down, the
outage breaker, and the admission of calls that must wait for them (``max_waiting``,
``max_wait``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from .._args import positive_int, positive_real
from .._states import CallKind
from ..errors import Overloaded
from . import clock as _clock
from .breaker import Breaker
from .policy import OutagePolicy

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

__all__ = ["DEFAULT_MAX_WAITING", "CoolDown", "Limits", "Slot"]

DEFAULT_MAX_WAITING = 1000
"""Calls of a Session that may wait at once before their first try (``Session(max_waiting=)``).

Large enough that ``asyncio.gather`` of a few hundred calls simply queues behind the slots, as
it always did; small enough that a runaway queue (a web backend taking requests faster than
the service answers them) is refused at once with :class:`~aiportrait.errors.Overloaded`
instead of growing without bound: 1000 creates behind 12 slots are already more than a
create's tens of seconds each can serve within the default 600 s deadline."""

log = logging.getLogger("aiportrait")


class CoolDown:
    """One cool-down shared by every task of a Session.

    After a 429, :meth:`trip` pushes the shared "not before" time; every call first waits in
    :meth:`wait`, so all tasks back off together instead of each hammering on its own.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or _clock.now
        self._until = -math.inf
        self._strikes = 0
        self.episodes = 0
        """Cool-downs started so far (a 429 during one extends it: not a new one)."""
        self._began = 0.0
        self._reported = 0

    @property
    def remaining(self) -> float:
        """Seconds until calls may go again (0 when they may go now)."""
        return max(0.0, self._until - self._clock())

    @property
    def active(self) -> bool:
        """True while calls must wait (``remaining > 0``; no clock read before a first 429)."""
        return self._until != -math.inf and self._until > self._clock()

    def trip(self, retry_after: float | None, *, cap: float = 60.0) -> float:
        """Start (or extend) the cool-down; returns its length in seconds.

        Without a ``Retry-After`` the pause doubles with each 429 that comes after the last
        pause has ended, from 1 second: the other answers of one burst (requests that were
        already in flight) do not escalate it.
        """
        if self._clock() >= self._until:
            self._strikes += 1
            self.episodes += 1
            self._began = self._clock()
        pause = retry_after if retry_after is not None else 2.0 ** max(0, self._strikes - 1)
        pause = min(cap, max(0.0, pause))
        self._until = max(self._until, self._clock() + pause)
        log.debug("429: every call of this session pauses for %.2fs", pause)
        return pause

    def take_ended(self) -> float | None:
        """Once per cool-down, when it is over: its whole length in seconds (for the hooks)."""
        if self._reported == self.episodes or self.active:
            return None
        self._reported = self.episodes
        return self._until - self._began

    def clear(self) -> None:
        """A call went through: the next 429 starts from a short pause again."""
        self._strikes = 0

    async def wait(self) -> None:
        """Sleep until the cool-down is over (at once when there is none)."""
        # The deadline can move while we sleep (another 429), so re-read it after each nap.
        while (left := self.remaining) > 0:
            await _clock.sleep(left)


def _check_limit(name: str, value: int | None) -> None:
    if value is not None:
        positive_int(name, value)


def _rate(name: str, per_second: float | None) -> AsyncLimiter | None:
    """A leaky bucket letting ``per_second`` requests through, one at a time (a bucket of
    one: evenly spaced, so that any second holds at most ``per_second + 1``)."""
    if per_second is None:
        return None
    period = 1 / positive_real(name, per_second)
    # Loaded with the first rate: aiolimiter imports importlib.metadata (zipfile, csv, ...),
    # 31 M instructions, a fifth of what ``import aiportrait`` costs over ``import aiohttp``.
    from aiolimiter import AsyncLimiter

    return AsyncLimiter(1, period)


class Limits:
    """The Session's capacity limiters.

    ``max_in_flight`` bounds every call in flight (a limiter of its own, separate from the HTTP
    connection pool). Trainings and creations may also be bounded on their own; creations
    default to three quarters of ``max_in_flight`` so that job polls always find a slot while
    long creates run. Beside them, requests per second: trainings and creations may each have
    a rate of their own, and ``per_second`` bounds every other call (one bucket per call: two
    taken one after the other would let calls bunch behind the second). A call waits its
    turn last, right before it is written.

    Before its first try, a call that must wait (for a slot, the cool-down, the outage pause,
    its rate's turn) is admitted: at most ``max_waiting`` wait at once, each at most
    ``max_wait`` seconds (``None``: no bound but the call's deadline); beyond either it is
    :class:`~aiportrait.errors.Overloaded`, never sent. A retry is not admitted again: its
    call was let in, and what it waits for then is bounded by the call's deadline.
    """

    def __init__(
        self,
        max_in_flight: int = 16,
        max_trainings: int | None = None,
        max_creations: int | None = None,
        *,
        per_second: float | None = None,
        trainings_per_second: float | None = None,
        creations_per_second: float | None = None,
        outage: OutagePolicy | None = None,
        max_waiting: int | None = DEFAULT_MAX_WAITING,
        max_wait: float | None = None,
    ) -> None:
        _check_limit("max_waiting", max_waiting)
        self.max_waiting = max_waiting
        self.max_wait = None if max_wait is None else positive_real("max_wait", max_wait)
        self.queued: dict[CallKind, int] = {"read": 0, "train": 0, "create": 0}
        """Calls of each kind waiting before their first try (:meth:`admit`, :meth:`leave`)."""
        self._took: dict[CallKind, float] = {}  # a try's length, smoothed (:meth:`took`)
        _check_limit("max_in_flight", max_in_flight)
        _check_limit("max_trainings", max_trainings)
        _check_limit("max_creations", max_creations)
        every = _rate("per_second", per_second)
        own: dict[CallKind, AsyncLimiter | None] = {
            "train": _rate("trainings_per_second", trainings_per_second),
            "create": _rate("creations_per_second", creations_per_second),
        }
        if max_creations is None:
            max_creations = max(1, max_in_flight * 3 // 4)
        self.all = anyio.CapacityLimiter(max_in_flight)
        self.by_kind: dict[CallKind, anyio.CapacityLimiter] = {
            "create": anyio.CapacityLimiter(max_creations)
        }
        if max_trainings is not None:
            self.by_kind["train"] = anyio.CapacityLimiter(max_trainings)
        self._held: dict[CallKind, tuple[anyio.CapacityLimiter, ...]] = {}
        self._paced: dict[CallKind, AsyncLimiter | None] = {}
        for kind in ("read", "train", "create"):
            specific = self.by_kind.get(kind)
            self._held[kind] = (self.all,) if specific is None else (specific, self.all)
            self._paced[kind] = own.get(kind) or every
        self.cooldown = CoolDown()
        self.breaker = Breaker(outage or OutagePolicy())

    def per_second(self, kind: CallKind) -> float | None:
        """The most calls of ``kind`` sent per second (``None``: no bound)."""
        rate = self._paced[kind]
        return None if rate is None else 1 / rate.time_period

    def capacity(self, kind: CallKind) -> int:
        """How many calls of ``kind`` may be in flight at once."""
        return int(min(limiter.total_tokens for limiter in self.limiters(kind)))

    def limiters(self, kind: CallKind) -> tuple[anyio.CapacityLimiter, ...]:
        """The limiters a call of ``kind`` holds, in the order to take them."""
        return self._held[kind]

    # -- admission: the calls that wait before their first try ------------------------------

    def check(self, kind: CallKind, what: str) -> None:
        """Raise :class:`Overloaded` when ``max_waiting`` calls already wait: a call now
        would have to wait too, and is turned away (before its photos are uploaded)."""
        if self.max_waiting is not None and sum(self.queued.values()) >= self.max_waiting:
            why = f"the Session's queue is full (max_waiting={self.max_waiting})"
            raise self.overloaded(kind, what, why)

    def admit(self, kind: CallKind, what: str) -> None:
        """A call of ``kind`` is about to wait before its first try: count it, or raise
        :class:`Overloaded` when ``max_waiting`` calls already wait. :meth:`leave` after."""
        self.check(kind, what)
        self.queued[kind] += 1

    def leave(self, kind: CallKind) -> None:
        """A call counted by :meth:`admit` waits no more."""
        self.queued[kind] -= 1

    def overloaded(self, kind: CallKind, what: str, why: str) -> Overloaded:
        """The error of a call of ``kind`` turned away before its first try, for ``why``."""
        retry_after = self.retry_after(kind)
        return Overloaded(
            f"{what}: not sent: {why}; try again in {retry_after:.0f}s",
            retry_after=retry_after,
            kind=kind,
            waiting=sum(self.queued.values()),
        )

    def took(self, kind: CallKind, seconds: float) -> None:
        """A try of ``kind`` got its answer after ``seconds``: what :meth:`retry_after`
        expects of the next ones (smoothed: a few slow tries move it, one does not)."""
        before = self._took.get(kind)
        self._took[kind] = seconds if before is None else before + (seconds - before) / 8

    def retry_after(self, kind: CallKind) -> float:
        """Seconds until a call of ``kind`` turned away now could likely get through, at
        least 1: what is left of the 429 cool-down, and of the outage pause for a charged
        call, then the time the calls waiting ahead (of every kind: ``max_waiting`` bounds
        them all) take through its slots (from how long its kind's recent tries took)."""
        wait = self.cooldown.remaining
        if kind != "read":
            wait += self.breaker.probe_in()
        took = self._took.get(kind)
        if took is not None:
            wait += took * (sum(self.queued.values()) + 1) / self.capacity(kind)
        return max(1.0, wait)

    def slot(self, kind: CallKind) -> Slot:
        """The slots a call of ``kind`` needs: its own limiter first, then the shared one.

        Take them with :meth:`Slot.take_nowait` (and :meth:`Slot.take` and :meth:`Slot.pace`
        when that says they are not all free), and give them back with :meth:`Slot.give_back`
        in a ``finally``.
        """
        return Slot(self._held[kind], self._paced[kind])


class Slot:
    """The tokens of one call, taken in order and given back in reverse, and its rate.

    A free token is taken at once, without a trip through the event loop (the usual case);
    :meth:`take` waits for the rest. The borrower of the tokens is the slot itself (one per
    call), not the task: nothing needs to look the task up. A call with a requests-per-second
    bound (``rate``) always goes the slow way: :meth:`pace` waits its turn.
    """

    __slots__ = ("_limiters", "_rate", "_taken")

    def __init__(
        self, limiters: tuple[anyio.CapacityLimiter, ...], rate: AsyncLimiter | None = None
    ) -> None:
        self._limiters = limiters
        self._rate = rate
        self._taken = 0

    def take_nowait(self) -> bool:
        """Take every token that is free now, in order; True when all are held and no rate
        bounds the call (else :meth:`pace` is still to come)."""
        limiters = self._limiters
        while self._taken < len(limiters):
            try:
                limiters[self._taken].acquire_on_behalf_of_nowait(self)
            except anyio.WouldBlock:
                return False
            self._taken += 1
        return self._rate is None

    async def pace(self) -> None:
        """Wait for this call's turn in its rate (at once when none bounds it). A turn is
        not given back: it is spent."""
        if self._rate is not None:
            await self._rate.acquire()

    async def take(self) -> None:
        """Wait for the tokens :meth:`take_nowait` did not get (a cancel leaves those
        already taken for :meth:`give_back`)."""
        limiters = self._limiters
        while self._taken < len(limiters):
            await limiters[self._taken].acquire_on_behalf_of(self)
            self._taken += 1

    def give_back(self) -> None:
        """Give back every token held (again: nothing)."""
        limiters = self._limiters
        while self._taken:
            self._taken -= 1
            limiters[self._taken].release_on_behalf_of(self)
