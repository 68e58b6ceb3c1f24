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
patch, pauses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

from .._retrying.breaker import Breaker
from .._retrying.policy import OutagePolicy, outage_reason
from ..errors import AIPortraitError

__all__ = ["Pause"]

_PATCH = "aiportrait.outage-pause"


class Pause:
    """Whether a workflow's charged activities may be scheduled, after activity failures that
    say the service is down.

    Attributes:
        breaker: the state (see :class:`~aiportrait._retrying.breaker.Breaker`).
        why: why the service seems down (the reason of the failure that began the doubt).
    """

    def __init__(self, policy: OutagePolicy) -> None:
        self.breaker = Breaker(policy)
        self.why = ""
        self._on: bool | None = None  # workflow.patched, asked at the first outage failure
        self._probing = False

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

    async def hold(self, probe: Callable[[int], Awaitable[None]]) -> None:
        """Return when charged activities may be scheduled: at once when the service is not in
        doubt; else once a probe, or any other activity, finds it answering.

        One holder at a time probes: it waits ``policy.probe_wait(failures)`` on a Temporal
        timer and awaits ``probe(written)`` (which tells this pause what it found, as from an
        activity scheduled in epoch ``written``); the others wait for its verdict.
        """
        breaker = self.breaker
        while breaker.failures:
            if self._probing:
                await workflow.wait_condition(lambda: not self._probing)
                continue
            self._probing = True
            try:
                wait = breaker.policy.probe_wait(breaker.failures)
                if wait:
                    await workflow.sleep(wait)
                if breaker.failures:
                    breaker.epoch = written = breaker.epoch + 1  # later ones are told from it
                    await probe(written)
            finally:
                self._probing = False
