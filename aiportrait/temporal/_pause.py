"""The outage pause of a workflow: its charged activities are not scheduled while the service
seems down.

The state is the Session's own :class:`~aiportrait._retrying.breaker.Breaker`, so the rules are
the same ones: which failures say the service is down
(:func:`~aiportrait._retrying.policy.outage_reason`), which of them count and which answer ends
the doubt (by the breaker's ``epoch`` when an activity was scheduled), when failures in a row
make a pause. It changes only with the activities' results, which Temporal records, so a replay
rebuilds it alike. What differs is the waiting: Temporal timers (``workflow.sleep``) between the
probes, and the probe is an activity (the Session's probe, sent by a worker; see
:func:`aiportrait.temporal._calls.unpaused`).

A workflow begun by a worker without the pause replays as it ran: the first failure that says
the service is down asks ``workflow.patched``, and only a new run, or one that recorded the
patch, pauses. A stop that wakes what waits in a pause is behind its own patch
(``aiportrait.stop-wakes-paused``), asked at the first wait that a stop may cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from temporalio import workflow

from .._retrying.breaker import Breaker
from .._retrying.policy import OutagePolicy, outage_reason
from ..errors import AIPortraitError

__all__ = ["Pause"]

_PATCH = "aiportrait.outage-pause"
_STOP_WAKES = "aiportrait.stop-wakes-paused"


class Pause:
    """Whether a workflow's charged activities may be scheduled, after activity failures that
    say the service is down.

    Attributes:
        breaker: the state (see :class:`~aiportrait._retrying.breaker.Breaker`).
        why: why the service seems down (the reason of the failure that began the doubt).
        waiting: holders waiting in :meth:`hold` for the service now.
    """

    def __init__(self, policy: OutagePolicy) -> None:
        self.breaker = Breaker(policy)
        self.why = ""
        self._on: bool | None = None  # workflow.patched, asked at the first outage failure
        self._probing = False
        self._wakes: bool | None = None  # workflow.patched(_STOP_WAKES), asked at a first wait
        self.waiting = 0

    @property
    def epoch(self) -> int:
        """What an activity remembers when it is scheduled (:attr:`Breaker.epoch`)."""
        return self.breaker.epoch

    @property
    def paused(self) -> str:
        """Why charged activities wait, while a pause runs; ``""`` otherwise."""
        return self.why if self.breaker.paused else ""

    def saw(self, failure: AIPortraitError, written: int) -> None:
        """An activity scheduled in epoch ``written`` failed with ``failure`` (for a call that
        may have run, the failure behind it): count it when it says the service is down,
        else it is an answer."""
        if self._on is None and outage_reason(failure) is not None:
            self._on = workflow.patched(_PATCH)
        if self._on is not False:  # (an answer before any outage failure: no doubt to end)
            before = self.breaker.failures
            self.breaker.saw(failure, written)
            self._began(before)

    def failed(self, reason: str, written: int) -> None:
        """A probe scheduled in epoch ``written`` ended without the library's answer."""
        before = self.breaker.failures
        self.breaker.failed(reason, written)
        self._began(before)

    def _began(self, before: int) -> None:
        # Why is the reason of the failure that began the doubt: the later ones may be
        # activities a worker refused to send because its own Session doubted the service.
        if not before and self.breaker.failures:
            self.why = self.breaker.reason

    def answered(self, written: int) -> None:
        """The service answered an activity scheduled in epoch ``written``."""
        self.breaker.answered(written)

    async def hold(
        self, probe: Callable[[int], Awaitable[None]], stopped: Callable[[], bool] | None = None
    ) -> bool:
        """Return ``True`` when charged activities may be scheduled: at once when the service is
        not in doubt; else once a probe, or any other activity, finds it answering. Return
        ``False`` (nothing scheduled) as soon as ``stopped()`` is true while it waits: a stop
        releases what waits for the service.

        One holder at a time probes: it waits ``policy.probe_wait(failures)`` on a Temporal
        timer and awaits ``probe(written)`` (which tells this pause what it found, as from an
        activity scheduled in epoch ``written``); the others wait for its verdict.

        A workflow begun by a worker that waited without ``stopped`` replays as it ran: the
        first wait with ``stopped`` asks ``workflow.patched``.
        """
        breaker = self.breaker
        if not breaker.failures:
            return True
        if stopped is not None and self._wakes is None:
            self._wakes = workflow.patched(_STOP_WAKES)
        told = stopped if stopped is not None and self._wakes else _never
        self.waiting += 1
        try:
            while breaker.failures:
                if told():
                    return False
                if self._probing:
                    await workflow.wait_condition(lambda: not self._probing or told())
                    continue
                self._probing = True
                try:
                    wait = breaker.policy.probe_wait(breaker.failures)
                    if wait and told is _never:
                        await workflow.sleep(wait)
                    elif wait:  # a timer that a stop cuts short
                        with contextlib.suppress(asyncio.TimeoutError):
                            await workflow.wait_condition(told, timeout=wait)
                    if breaker.failures and not told():
                        breaker.epoch = written = breaker.epoch + 1  # later ones are told from it
                        await probe(written)
                finally:
                    self._probing = False
            return True
        finally:
            self.waiting -= 1


def _never() -> bool:
    return False
