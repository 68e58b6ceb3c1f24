"""The library's clock: every wait and every deadline of a call or a watch goes through here.

By default it is the real monotonic clock and ``anyio.sleep``. :func:`set_testing` swaps in a
virtual clock whose sleeps return at once and move virtual time forward by what was asked, so
tests of retries, cool-downs, deadlines and poll schedules run in no time and never depend on
how fast the machine is (in the spirit of stamina's ``set_testing``).
"""

from __future__ import annotations

import time

import anyio
import anyio.lowlevel

__all__ = ["VirtualClock", "now", "set_testing", "sleep"]


class VirtualClock:
    """Time that moves only when someone sleeps: each sleep returns at once."""

    def __init__(self, start: float = 0.0) -> None:
        self.time = start
        self.slept: list[float] = []
        """Every wait asked for, in order (seconds)."""

    def now(self) -> float:
        """The virtual time, seconds."""
        return self.time

    async def sleep(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` and yield to the event loop once."""
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        self.time += seconds
        await anyio.lowlevel.checkpoint()


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


def set_testing(on: bool) -> VirtualClock | None:
    """Make every wait of the library instant (``True``) or real again (``False``).

    Returns the virtual clock when turned on, to read how much virtual time passed and which
    waits were asked for.
    """
    global _virtual
    _virtual = VirtualClock() if on else None
    return _virtual
