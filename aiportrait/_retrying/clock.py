"""The library's clock: every wait and every deadline of a call or a watch goes through here.

By default it is the real monotonic clock, ``anyio.sleep`` and anyio's own cancel-scope
deadlines. :func:`set_testing` swaps in a :class:`VirtualClock` whose sleeps return at once and
move virtual time forward by what was asked, and whose deadlines pass when virtual time passes
them, so tests of retries, cool-downs, deadlines and poll schedules run in no time and never
depend on how fast the machine is (in the spirit of stamina's ``set_testing``). The switch is
process configuration, like a logging level; no call's data goes through it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType

import anyio

__all__ = ["VirtualClock", "deadline", "ends_by", "now", "set_testing", "sleep"]


class VirtualClock:
    """Time that moves only when the library sleeps or a test calls :meth:`advance`.

    Each sleep returns at once. A deadline (a cancel scope from :func:`deadline`) is cancelled
    when virtual time reaches it, so a test can cut a call that is waiting for an answer by
    advancing the clock past the call's deadline.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.time = start
        self.slept: list[float] = []
        """Every wait asked for, in order (seconds)."""
        self._alarms: list[tuple[float, int, anyio.CancelScope]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The virtual time, seconds."""
        return self.time

    async def sleep(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` and yield to the event loop once."""
        import anyio.lowlevel  # the test clock's only: not loaded by ``import aiportrait``

        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``; deadlines reached are cancelled."""
        self.time += max(0.0, seconds)
        while self._alarms and self._alarms[0][0] <= self.time:
            heapq.heappop(self._alarms)[2].cancel()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled when virtual time has moved ``seconds`` forward."""
        with anyio.CancelScope() as scope:
            alarm = (self.time + seconds, next(self._seq), scope)
            heapq.heappush(self._alarms, alarm)
            if seconds <= 0:
                self.advance(0.0)
            try:
                yield scope
            finally:
                if alarm in self._alarms:
                    self._alarms.remove(alarm)
                    heapq.heapify(self._alarms)


_virtual: VirtualClock | None = None


def now() -> float:
    """Seconds on the library's clock (monotonic; virtual under :func:`set_testing`)."""
    return time.monotonic() if _virtual is None else _virtual.time


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` on the library's clock (at once under :func:`set_testing`)."""
    if _virtual is None:
        await anyio.sleep(seconds)
    else:
        await _virtual.sleep(seconds)


def deadline(seconds: float | None) -> AbstractContextManager[anyio.CancelScope]:
    """A cancel scope that cancels itself ``seconds`` from now on the library's clock
    (``None``: never). Check ``scope.cancelled_caught`` after it to tell a deadline.

    On the real clock it is anyio's own scope, returned as it is (every call enters one)."""
    if _virtual is not None and seconds is not None:
        return _virtual.deadline(seconds)
    return anyio.CancelScope(
        deadline=math.inf if seconds is None else anyio.current_time() + seconds
    )


def ends_by(seconds: float | None, until: float) -> bool:
    """True when something that ends within ``seconds`` of real time (by its own timeout)
    ends by ``until`` on the library's clock. Never under :func:`set_testing`: real seconds
    bound nothing in virtual time."""
    return _virtual is None and seconds is not None and time.monotonic() + seconds <= until


class set_testing:
    """Make every wait of the library instant on a :class:`VirtualClock` (``on=True``), or
    real again (``on=False``).

    It takes effect at once, for the whole process, and works without pytest. Used as a
    context manager it gives the clock (``None`` when turned off) and restores what was in
    force before on exit::

        with aiportrait.testing.set_testing() as clock:
            await session.wait(job)      # the polls' waits take no time
            print(clock.time)            # virtual seconds that passed

    The ``aiportrait_instant_waits`` pytest fixture is this, for one test.
    """

    def __init__(self, on: bool = True) -> None:
        global _virtual
        self._before = _virtual
        self.clock = VirtualClock() if on else None
        _virtual = self.clock

    def __enter__(self) -> VirtualClock | None:
        return self.clock

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _virtual
        _virtual = self._before
