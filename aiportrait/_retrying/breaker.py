"""The outage breaker of a Session: charged calls held back while the service seems down.

One :class:`Breaker` is shared by every task of a Session, as the 429 cool-down is. A failure
that says the service is down (:func:`~aiportrait._retrying.policy.outage_reason`) puts it in
doubt: a train or create is then not sent until the service has answered a request written
after that failure (a probe, or any other call). ``OutagePolicy.threshold`` failures in a row
make a *pause*: the probes then go on a backoff schedule. One waiting call at a time sends the
probe (:meth:`Breaker.hold`); the others wait for its verdict.

What counts is when a request was written, not when its end comes back: each try remembers
the breaker's :attr:`~Breaker.epoch` when it is written (it moves on with each probe, each
failure counted and each end of a doubt, so reading it costs a call nothing). An answer ends
the doubt only when its request was written after every failing request counted (a call that
was on the wire before the outage began and comes back fine says nothing about the service
now), and a failure counts only when its request was written after the doubt last ended (a
call sent before the service came back says nothing either).

A connection refused before this Session ever got an answer is not counted: nothing was sent
and nothing can have run, and a wrong address or a stopped service should fail at once, not
after a long wait. Once the service has answered, it is an outage like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from ..errors import AIPortraitError, TransportError
from . import clock as _clock
from .policy import OutagePolicy, outage_reason

__all__ = ["Breaker"]


class Breaker:
    """Whether a Session's charged calls may go, after failures that say the service is down.

    Attributes:
        policy: the :class:`~aiportrait.OutagePolicy`.
        failures: outage failures in a row (0: charged calls go).
        epoch: moves on with each probe, each failure counted and each end of a doubt; a try
            remembers it when it is written (tries of one epoch cannot be told apart).
        reason: why the service seems down (the last failure's reason).
        episodes: pauses so far (``threshold`` failures in a row make one).
        up: the service has answered this Session at least once.
    """

    def __init__(self, policy: OutagePolicy) -> None:
        self.policy = policy
        self.failures = 0
        self.epoch = 0
        self.reason = ""
        self._up = 0  # the epoch since the last end of a doubt
        self._down = 0  # the newest epoch in which a request written failed (counted)
        self.episodes = 0
        self.up = False
        self._began = 0.0
        self._ended: float | None = None  # the last pause's length, until told
        self._probing = False
        self._probe_at: float | None = None  # when the next probe goes, once a prober waits
        self._changed: anyio.Event | None = None  # made on first use (it needs an event loop)

    @property
    def paused(self) -> bool:
        """True while a pause runs (``threshold`` failures in a row, no answer since)."""
        return self.failures >= self.policy.threshold

    def failed(self, reason: str, written: int) -> bool:
        """Count an outage failure of a try written in epoch ``written``; True when it starts
        a pause."""
        if not self.policy.pause or written < self._up:
            return False
        self.failures += 1
        self.epoch += 1
        self._down = max(self._down, written)
        self.reason = reason
        if self.failures != self.policy.threshold:
            return False
        self.episodes += 1
        self._began = _clock.now()
        return True

    def answered(self, written: int) -> None:
        """The service answered a try written in epoch ``written``: if that was after every
        failing request counted, the service is up and charged calls go on."""
        self.up = True
        if not self.failures or written <= self._down:
            return
        if self.paused:
            self._ended = _clock.now() - self._began
        self.failures = 0
        self._probe_at = None
        self.epoch += 1
        self._up = self.epoch
        self._wake()

    def saw(self, failure: AIPortraitError, written: int) -> bool:
        """A try written in epoch ``written`` failed with ``failure``: count it when it says
        the service is down (True when that starts a pause), else it is an answer."""
        reason = outage_reason(failure)
        if reason is None:
            self.answered(written)
            return False
        if not self.up and isinstance(failure, TransportError) and failure.sent is False:
            return False  # never answered, nothing sent: no outage to wait out
        return self.failed(reason, written)

    def probe_in(self) -> float:
        """Seconds until the next probe goes (0 when the service is not in doubt): what is
        left of the time the first prober that waits for it set, ``policy.probe_wait`` from
        now when none has."""
        if not self.failures:
            return 0.0
        if self._probe_at is None:
            return self.policy.probe_wait(self.failures)
        return max(0.0, self._probe_at - _clock.now())

    def take_resumed(self) -> float | None:
        """Once per pause, when it is over: its length in seconds (for the hooks)."""
        ended, self._ended = self._ended, None
        return ended

    async def hold(self, probe: Callable[[], Awaitable[None]], *, patient: bool = True) -> bool:
        """Return when charged calls may go: at once when the service is not in doubt; else
        once a probe, or any other call, finds it answering. True when they may go.

        One holder at a time is the prober: it waits until the next probe's time and awaits
        ``probe``, which tells this breaker what it found (:meth:`saw`, :meth:`answered`).
        That time is set once, ``policy.probe_wait(failures)`` after the first prober began
        to wait for it (nothing before a pause): a prober that is cancelled (its call's
        ``max_wait``) hands the turn on, and the next one waits only what is left, so the
        probes keep their schedule however short the holders' waits are. A holder
        that is not ``patient`` probes without waiting and returns after one probe's verdict:
        False when the service is still in doubt (``RetryPolicy.hold``).
        """
        while self.failures:
            if self._probing:
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()
            else:
                self._probing = True
                try:
                    if patient:
                        if self._probe_at is None:
                            self._probe_at = _clock.now() + self.policy.probe_wait(self.failures)
                        await _clock.sleep(max(0.0, self._probe_at - _clock.now()))
                    self._probe_at = None  # this probe goes: the next is timed after it
                    if self.failures:
                        await probe()
                finally:
                    self._probing = False
                    self._wake()
            if not patient:
                return not self.failures
        return True

    def _wake(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
