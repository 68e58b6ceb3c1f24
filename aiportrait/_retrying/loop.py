"""The call loop: one call of a Session, from its first try to its answer or its error.

Read as a chain, one concern a function (as httpx's ``_send_handling_*``):

- :meth:`Caller.call`: the call's events (``CallStarted`` / ``CallEnded``);
- :meth:`Caller._tries`: try, ask :func:`~aiportrait._retrying.policy.decide`, wait, try again;
- :meth:`Caller._try`: a limiter slot (and, the slow way, :meth:`Caller._queued`: the
  Session's admission of a first try, then :meth:`Caller._ready`: the shared 429 cool-down, a
  charged call's outage pause, the requests-per-second pace), the claim of a charged call
  (:class:`Claim`), then one request on the wire.

The call's deadline (``RetryPolicy.deadline``, from the call's start, waits included) bounds
every step that can take time, each under a cancel scope ending at that one instant
(:meth:`Caller._within`): the cool-down, a slot that is not free, the events and the claim
before a try, the wait between tries, and a try that its own timeout (``Call.bound``, the
aiohttp ``total``) does not end in time. The usual first try (no cool-down, a free slot, its
own timeout ending before the deadline) waits for nothing but its answer, and needs no scope.

Everything a call needs comes in as a parameter: the Session's policy, limits, hooks and
origin when the :class:`Caller` is built; the request, the claim and the watch or batch the
call is made for (``within``) with each call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import attrs

from ..errors import (
    AIPortraitError,
    RateLimited,
    RequestTimeout,
    TransportError,
)
from ..hooks import emit
from . import clock as _clock
from .call import CALL_ERRORS, Call, CallState, Claim, request_id_of, unknown_outcome
from .call_events import answer_received, call_ended
from .limits import Limits, Slot
from .policy import RetryPolicy, ambiguous, decide

if TYPE_CHECKING:
    from ..hooks.events import Hook

__all__ = ["CALL_ERRORS", "Call", "Caller", "Claim"]

log = logging.getLogger("aiportrait")

T = TypeVar("T")


@attrs.frozen
class Caller:
    """Runs calls under one Session's retry policy, limits and hooks.

    Attributes:
        policy: the :class:`~aiportrait.RetryPolicy`.
        limits: the limiters, the rates, the shared 429 cool-down and outage breaker.
        probe: one try of a free read, sent while the service seems down to learn whether
            it answers again.
        hooks: called with every event of every call.
        origin: what :class:`~aiportrait.hooks.CallStarted` says of the service (host name,
            port, AppId).
    """

    policy: RetryPolicy
    limits: Limits
    probe: Callable[[], Awaitable[object]]
    hooks: tuple[Hook, ...] = ()
    origin: tuple[str, int | None, str] = ("", None, "")

    async def call(
        self,
        call: Call,
        try_once: Callable[[], Awaitable[T]],
        after: Callable[[T], None] | None = None,
        state: CallState | None = None,
    ) -> T:
        """Run ``try_once`` until it succeeds or must not be retried; return its answer.

        The whole call, waits included, ends by ``policy.deadline`` (each step that can take
        time is bounded by it: see the module's docstring). When the deadline ends a run of
        failures, the last real failure is raised. A charged call whose failure leaves open
        whether it ran raises :class:`~aiportrait.errors.SubmitOutcomeUnknown` carrying the
        payload; it is never sent again. ``after`` runs on the answer before ``CallEnded``
        (the Session decodes there when hooks listen): an answer that cannot be read ends the
        call ``failed``, or ``unknown`` for a charged call, as the caller will see it.
        ``state`` (from :meth:`begin`) lets the caller see how far the call got.
        """
        hooks = self.hooks
        if state is None:
            state = self.begin()
        if hooks:
            from ..hooks.events import CallStarted  # built on first use (with hooks)

            host, port, app_id = self.origin
            started = CallStarted(
                call.method, call.path, call.kind, host, port, app_id, call.within
            )
            await emit(hooks, started)
        try:
            try:
                result = await self._tries(call, try_once, state)
            except _Cut as cut:  # the deadline ended a step: what that means, as it was
                raise cut.error from cut.error.__cause__
        except BaseException as exc:
            sent = state.in_try or state.undecided
            if sent and call.kind != "read" and not call.kept and not isinstance(exc, Exception):
                log.warning(
                    "%s: cancelled after it was sent: it may be charged; pass keep= to "
                    "Session.with_options to keep its result",
                    call.what,
                    extra={"aiportrait.method": call.method, "aiportrait.path": call.path},
                )
            if hooks:
                await self._ended(call, state, exc)
            raise
        if after is not None:
            try:
                after(result)
            except BaseException as exc:
                if hooks:  # the answer came; reading it failed
                    state.last = None
                    await self._answered(call, state, result)
                    await self._ended(call, state, exc)
                raise
        if hooks:  # outside the deadline: a slow hook cannot turn an answer into a timeout
            await self._answered(call, state, result)
            await self._ended(call, state, result)
        return result

    def begin(self) -> CallState:
        """The state of a call starting now (:meth:`call` makes one when given none)."""
        return CallState(_clock.now(), self.policy.deadline)

    async def _tries(self, call: Call, try_once: Callable[[], Awaitable[T]], state: CallState) -> T:
        """Try, and while :func:`decide` says so, wait and try again."""
        while True:
            try:
                return await self._try(call, try_once, state)
            except _NoTimeLeft:
                assert state.last is not None
                raise state.last from None
            except CALL_ERRORS as exc:
                failure = state.last = exc
                state.in_try = False
                state.undecided = True  # until _again schedules a retry
            await self._within(call, state, self._again(call, state, failure))

    async def _again(self, call: Call, state: CallState, failure: AIPortraitError) -> None:
        """After a failed try: tell, ask :func:`decide`, and wait before the next try; raise
        what ends the call when it is not tried again."""
        cooldown, hooks = self.limits.cooldown, self.hooks
        paused = self.limits.breaker.saw(failure, state.written)  # before anything can wait
        charged = call.kind != "read"
        policy = self.policy
        if call.tries is not None:
            policy = attrs.evolve(policy, attempts=call.tries, charged_attempts=call.tries)
        if hooks:
            await self._answered(call, state, failure)
            if paused:
                await self._paused()
            episodes = cooldown.episodes
        if isinstance(failure, RateLimited):
            # Every task of the Session waits this out, even when this call gives up now.
            pause, cap = failure.retry_after, policy.max_retry_after
            cooldown.trip(min(pause, cap) if pause else None, cap=cap)
        if hooks and cooldown.episodes != episodes:
            from ..hooks.events import CoolDownStarted  # built on first use (with hooks)

            retry_after = failure.retry_after if isinstance(failure, RateLimited) else None
            pause_started = CoolDownStarted(
                call.method, call.path, call.kind, cooldown.remaining, retry_after
            )
            await emit(hooks, pause_started)
        decision = decide(
            failure,
            charged=charged,
            attempt=state.attempt,
            policy=policy,
            elapsed=_clock.now() - state.started,
            cooling=cooldown.remaining,
        )
        if not decision.retry:
            if decision.unknown:
                raise unknown_outcome(failure, call) from failure
            raise failure
        state.undecided = False  # it provably did not run: cancelling the wait loses nothing
        if charged and call.claim is not None:
            # Retried only because it provably did not run: say so (the batch journal
            # gives its claim back, so a stop now leaves the item new, not unknown).
            await call.claim.not_sent()
        log.debug(
            "%s: try %d failed (%s), next try in %.2fs",
            call.what,
            state.attempt,
            decision.reason,
            decision.wait + cooldown.remaining,
            extra={
                "attempt": state.attempt,
                "wait": decision.wait,
                "aiportrait.method": call.method,
                "aiportrait.path": call.path,
                "aiportrait.kind": call.kind,
                "aiportrait.attempt": state.attempt,
                "aiportrait.reason": decision.reason,
                "aiportrait.wait": decision.wait,
                "aiportrait.request_id": request_id_of(failure),
            },
        )
        if hooks:
            from ..hooks.events import RetryScheduled  # built on first use (with hooks)

            scheduled = RetryScheduled(
                call.method, call.path, call.kind, state.attempt, decision.reason, decision.wait
            )
            await emit(hooks, scheduled)
        await _clock.sleep(decision.wait)

    async def _try(self, call: Call, try_once: Callable[[], Awaitable[T]], state: CallState) -> T:
        """One try: wait out the cool-down, hold a slot, claim, send."""
        limits = self.limits
        cooldown, breaker = limits.cooldown, limits.breaker
        state.attempt += 1
        slot = limits.slot(call.kind)
        try:
            if (
                cooldown.active
                or not slot.take_nowait()
                or (breaker.failures and call.kind != "read" and state.attempt == 1)
            ):
                await self._within(call, state, self._queued(call, state, slot))
            if state.attempt > 1 and not self.policy.fits(_clock.now() - state.started, 0.0):
                # The slot or the cool-down took what was left: this try could not finish,
                # so it is not sent, and the real failure stands.
                raise _NoTimeLeft
            if self.hooks or (call.claim is not None and call.kind != "read"):
                await self._within(call, state, self._before_send(call, state))
            state.began = _clock.now()
            state.sent = state.attempt
            state.written = breaker.epoch
            state.in_try = True
            if _clock.ends_by(call.bound, state.until):
                result = await try_once()  # its own timeout ends it before the deadline
            else:
                result = await self._within(call, state, try_once())
            # A CALL_ERRORS failure leaves in_try for _tries.
            state.in_try = False  # the answer is here: nothing after this may lose it
            state.answered = True
            limits.took(call.kind, _clock.now() - state.began)
            cooldown.clear()
            if breaker.failures or not breaker.up:
                breaker.answered(state.written)
            return result
        finally:
            slot.give_back()

    async def _queued(self, call: Call, state: CallState, slot: Slot) -> None:
        """The slow way to a try (:meth:`_ready`); before a call's first try, within the
        Session's admission: refused at once when ``max_waiting`` calls already wait, and
        after ``max_wait`` seconds from the call's start (:class:`Overloaded`, never sent).
        A retry is not admitted again (it was let in; the deadline bounds its waits), nor a
        call that is not ``bounded`` (a batch's item, a watch's poll)."""
        limits = self.limits
        if state.attempt > 1 or not call.bounded:
            await self._ready(call, state, slot)
            return
        max_wait = limits.max_wait
        left = None if max_wait is None else state.started + max_wait - _clock.now()
        limits.admit(call.kind, call.what)
        try:
            with _clock.deadline(left) as scope:
                await self._ready(call, state, slot)
        finally:
            limits.leave(call.kind)
        if scope.cancelled_caught:
            why = f"waited {max_wait}s without getting through (max_wait)"
            raise limits.overloaded(call.kind, call.what, why)

    async def _ready(self, call: Call, state: CallState, slot: Slot) -> None:
        """The slow way to a try: the 429 cool-down first (holding no slot), the slot's
        tokens that were not free, then until nothing holds the call back: the cool-down
        again (a 429 may come while it waited), the outage pause of a new charged call
        (:meth:`Breaker.hold`; a retry follows the :class:`RetryPolicy` as it did), and last
        its turn in the rates, right before it is written (a turn taken before a wait would
        let calls bunch after it)."""
        cooldown, breaker = self.limits.cooldown, self.limits.breaker
        charged = call.kind != "read" and state.attempt == 1
        if cooldown.active:
            await cooldown.wait()
        await slot.take()
        while True:
            if cooldown.active:
                await cooldown.wait()
            held = charged and breaker.failures
            if held and not await breaker.hold(self._probe, patient=self.policy.hold):
                why = f"{call.what}: {_seemed_down(breaker.reason)}"  # RetryPolicy.hold: no try
                raise _Cut(TransportError(why, method=call.method, path=call.path, sent=False))
            await slot.pace()
            if not cooldown.active and not (charged and breaker.failures):
                return

    async def _probe(self) -> None:
        """One probe of a service that seems down: a free read in one try (at the pace of
        the reads' rates), whose answer or failure the breaker is told."""
        breaker = self.limits.breaker
        await self.limits.slot("read").pace()
        breaker.epoch = written = breaker.epoch + 1  # later calls are told from it
        try:
            await self.probe()
        except CALL_ERRORS as exc:
            if breaker.saw(exc, written) and self.hooks:
                await self._paused()
        else:
            breaker.answered(written)

    async def _paused(self) -> None:
        from ..hooks.events import OutagePause  # built on first use (with hooks)

        breaker = self.limits.breaker
        await emit(self.hooks, OutagePause(True, breaker.reason, breaker.failures))

    async def _before_send(self, call: Call, state: CallState) -> None:
        """Right before a try is written: the charged call's claim, then the events."""
        if call.claim is not None and call.kind != "read":
            await call.claim.before_send()
        if self.hooks:
            from ..hooks.events import CoolDownEnded, RequestSent  # built on first use

            ended = self.limits.cooldown.take_ended()
            if ended is not None:
                await emit(self.hooks, CoolDownEnded(call.method, call.path, call.kind, ended))
            await self._resumed()
            await emit(self.hooks, RequestSent(call.method, call.path, call.kind, state.attempt))

    async def _resumed(self) -> None:
        """Tell the end of an outage pause, once (the next call to go on tells it)."""
        breaker = self.limits.breaker
        seconds = breaker.take_resumed()
        if seconds is not None:
            from ..hooks.events import OutagePause  # built on first use (with hooks)

            await emit(self.hooks, OutagePause(False, breaker.reason, 0, seconds))

    async def _within(self, call: Call, state: CallState, step: Awaitable[T]) -> T:
        """Await ``step`` under a cancel scope that ends at the call's deadline; when the
        deadline ends it, raise :class:`_Cut` carrying what that means (:meth:`_cut`), which
        passes the loop by (it is no failed try: nothing is decided or told again)."""
        until = state.until
        with _clock.deadline(None if until == math.inf else until - _clock.now()):
            return await step
        raise _Cut(self._cut(call, state))

    def _cut(self, call: Call, state: CallState) -> BaseException:
        """The deadline passed: during a try (which may have reached the service) or a wait."""
        breaker = self.limits.breaker
        why = "no answer"
        if not state.in_try and breaker.failures and call.kind != "read":
            why = _seemed_down(breaker.reason)
        cut = RequestTimeout(
            f"{call.what}: {why} within the deadline of {self.policy.deadline}s",
            method=call.method,
            path=call.path,
            sent=None if state.in_try else False,
        )
        if state.in_try and call.kind != "read":
            unknown = unknown_outcome(cut, call)
            unknown.__cause__ = cut
            return unknown
        last = state.last
        if last is not None and state.undecided and call.kind != "read" and ambiguous(last):
            unknown = unknown_outcome(last, call)  # cut before its failure was decided
            unknown.__cause__ = last
            return unknown
        return cut if last is None else last  # the run of failures the deadline ended

    async def _answered(self, call: Call, state: CallState, outcome: object) -> None:
        await emit(self.hooks, answer_received(call, state, outcome))

    async def _ended(self, call: Call, state: CallState, outcome: object) -> None:
        await emit(self.hooks, call_ended(call, state, outcome))


class _NoTimeLeft(Exception):
    """A retry found too little of the deadline left once it had its slot: not sent."""


class _Cut(Exception):
    """The call's deadline ended a step; ``error`` is what the caller gets (see ``_cut``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


def _seemed_down(reason: str) -> str:
    return f"not sent: the service seemed down ({reason})"
