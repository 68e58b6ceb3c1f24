"""Stopping a batch: :class:`BatchStop`, the errors that stop one on their own, and the claim
that keeps a stopped batch from submitting.

A stop has two steps. :meth:`BatchStop.stop` ends submitting: no item starts, no charged call
leaves (the send path asks :class:`StopClaim` right before a request is written), and the calls
already on the wire finish and are saved, within a grace period. :meth:`BatchStop.abandon`
(or the grace running out) cancels the calls still in flight, as a cancelled batch always did:
they may have run and been charged, so they end ``unknown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any, Final, TypeVar

import anyio

from .._args import number
from .._retrying import clock as _clock
from .._retrying.loop import Claim
from ..errors import (
    BatchStopped,
    QuotaExceeded,
    SignatureMismatch,
    SubmitOutcomeUnknown,
    UnknownApp,
)

__all__ = ["DEFAULT_GRACE", "REPEATING", "BatchStop", "StopClaim"]

T = TypeVar("T")

DEFAULT_GRACE: Final = 300.0
"""Seconds the calls in flight get to finish after :meth:`BatchStop.stop`: the whole try of a
create by default (``DEFAULT_TIMEOUT.total``), so a call that would have ended is never cut."""

REPEATING: Final = (QuotaExceeded, UnknownApp, SignatureMismatch)
"""The errors that would repeat for every item (the app's quota, its id, its token): the first
one stops the batch from submitting more."""


class BatchStop:
    """A handle to stop batches gracefully: pass it as ``stop=`` to
    :meth:`Session.create_many <aiportrait.Session.create_many>` or
    :meth:`~aiportrait.Session.train_many` (one handle may serve several batches).

    ::

        stop = aiportrait.BatchStop()
        loop.add_signal_handler(signal.SIGTERM, stop.stop)
        async for outcome in session.create_many(requests, journal=path, stop=stop):
            ...

    After :meth:`stop`, no new charged call is submitted; the calls already sent finish and
    are saved (portrait written, journal row done) within the grace period; every item not
    submitted ends with :class:`~aiportrait.errors.BatchStopped` (its journal row untouched,
    so running the batch again does it); a training being watched stops being watched at once
    (its job id is in the journal; a re-run watches it again). The batch then ends as usual.

    After :meth:`abandon`, or once the grace has run out, the calls still in flight are
    cancelled: they may have run and been charged, so they end ``unknown``
    (:class:`~aiportrait.errors.SubmitOutcomeUnknown`; a re-run reports them unless
    ``resubmit_unknown``).

    A batch stops itself the same way on an error that would repeat for every item
    (:data:`REPEATING`: quota exceeded, unknown app, signature mismatch); :attr:`reason` is
    then that error. The methods may be called from any thread (a ``signal.signal`` handler,
    the caller of :mod:`aiportrait.sync`): what they wake runs on the batches' event loop.
    """

    def __init__(self) -> None:
        self._stopped_at: float | None = None
        self._grace: float | None = None
        self._abandoned = False
        self._reason: BaseException | None = None
        self._wakeups: set[anyio.Event] = set()
        self._scopes: dict[anyio.CancelScope, StopClaim | None] = {}  # calls a stop may cut
        self._sent: dict[int, Any] = {}  # the charged calls on the wire: id -> item key
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None  # where the batches run

    def __repr__(self) -> str:
        state = "abandoned" if self._abandoned else "stopped" if self.stopped else "running"
        return f"<BatchStop {state}, {len(self._sent)} in flight>"

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` (or :meth:`abandon`) was called, or a repeating error
        stopped the batch."""
        return self._stopped_at is not None

    @property
    def abandoned(self) -> bool:
        """True once the calls in flight were (or are being) cancelled."""
        return self._abandoned

    @property
    def reason(self) -> BaseException | None:
        """The error that stopped the batch on its own, or ``None`` (stopped on request, or
        not stopped)."""
        return self._reason

    @property
    def grace(self) -> float | None:
        """The grace period of the stop, in seconds (``None``: none, or no stop yet)."""
        return self._grace

    @property
    def in_flight(self) -> list[Any]:
        """The keys of the items whose charged call is on the wire now (what a stop lets
        finish, and what :meth:`abandon` would leave ``unknown``)."""
        return list(self._sent.values())

    def stop(self, grace: float | None = DEFAULT_GRACE) -> None:
        """Stop submitting; let the calls in flight finish within ``grace`` seconds (``None``:
        as long as they take). A later call changes nothing: :meth:`abandon` cuts the grace."""
        number()(self, SimpleNamespace(name="grace"), grace)  # None passes: no bound
        self._stop(grace, None)

    def abandon(self) -> None:
        """Stop at once: the calls in flight are cancelled (they may have been charged)."""
        self._stop(0.0, None)
        self._abandoned = True
        self._on_loop(self._cancel)

    def _stop(self, grace: float | None, reason: BaseException | None) -> None:
        if self._stopped_at is None:
            self._stopped_at, self._grace, self._reason = _clock.now(), grace, reason
            self._on_loop(self._wake)

    def _stop_on(self, error: BaseException | None) -> bool:
        """Stop (with the default grace) when ``error`` would repeat for every item; whether
        it did."""
        if not isinstance(error, REPEATING):
            return False
        self._stop(DEFAULT_GRACE, error)
        return True

    def _halt(self) -> None:
        """Stop because the batch cannot go on (its input or journal failed): as :meth:`stop`
        with the default grace, unless it was stopped already."""
        self._stop(DEFAULT_GRACE, None)

    def _check(self, key: Any) -> None:
        """Raise :class:`~aiportrait.errors.BatchStopped` for ``key`` once stopped."""
        if self.stopped:
            raise BatchStopped(key, self._reason)

    def _on_loop(self, step: Callable[[], None]) -> None:
        """Run ``step`` on the batches' loop, soon (now when none runs yet): never in the
        middle of whatever a ``signal.signal`` handler or another thread interrupted."""
        loop = self._loop
        if loop is None:
            step()
            return
        with contextlib.suppress(RuntimeError):  # that loop has closed: nothing to wake
            loop.call_soon_threadsafe(step)

    def _wake(self) -> None:
        for event in list(self._wakeups):
            event.set()
        for scope, claim in list(self._scopes.items()):
            if claim is not None and not claim.sent:  # still waiting (a slot, a pause): unsent
                scope.cancel()

    def _cancel(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()
        self._wake()

    async def _until(self, condition: Callable[[], bool]) -> None:
        self._loop = asyncio.get_running_loop()
        while not condition():
            event = anyio.Event()
            self._wakeups.add(event)
            try:
                await event.wait()
            finally:
                self._wakeups.discard(event)

    async def _abandon_after_grace(self) -> None:
        """Once stopped, wait out the grace on the library's clock, then :meth:`abandon`
        (run by a batch for as long as it runs)."""
        await self._until(lambda: self.stopped)
        assert self._stopped_at is not None
        left = None if self._grace is None else self._stopped_at + self._grace - _clock.now()
        with _clock.deadline(left):
            await self._until(lambda: self._abandoned)
        self.abandon()

    @contextlib.contextmanager
    def _abandonable(self, claim: StopClaim | None = None) -> Iterator[anyio.CancelScope]:
        """A cancel scope around one item's charged call that :meth:`abandon` cancels, and a
        stop too while ``claim``'s call has not been sent (it waits for a slot, the cool-down,
        an outage pause or a rate: it ends not sent at once instead of at the grace's end)."""
        self._loop = asyncio.get_running_loop()
        with anyio.CancelScope() as scope:
            if self._abandoned or (self.stopped and claim is not None and not claim.sent):
                scope.cancel()
            self._scopes[scope] = claim
            try:
                yield scope
            finally:
                self._scopes.pop(scope, None)

    async def _unless_stopped(self, key: Any, job_id: int, step: Awaitable[T]) -> T:
        """Await ``step`` (watching a training), dropped at once when the batch stops:
        :class:`~aiportrait.errors.BatchStopped` naming the job then."""
        done: list[T] = []
        failed: list[Exception] = []  # what ``step`` raised: as itself, not in a group
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                await self._until(lambda: self.stopped)
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                done.append(await step)
            except Exception as exc:
                failed.append(exc)
            tg.cancel_scope.cancel()
        if failed:
            raise failed[0]
        if not done:
            raise BatchStopped(key, self._reason, job_id)
        return done[0]


class StopClaim:
    """The claim a batch gives an item's charged call: right before the request is written,
    refused once the batch is stopped (:class:`~aiportrait.errors.BatchStopped`: it never
    left); otherwise the journal's claim (``inner``), and the call is counted on the wire."""

    def __init__(self, stop: BatchStop, key: Any, inner: Claim | None) -> None:
        self.stop = stop
        self.key = key
        self.inner = inner
        self.sent = False
        self._id = next(stop._ids)

    async def before_send(self) -> None:
        """Refuse once stopped; else claim the journal's row, and count the call sent."""
        self.stop._check(self.key)
        if self.inner is not None:
            await self.inner.before_send()
        self.sent = True
        self.stop._sent[self._id] = self.key

    async def not_sent(self) -> None:
        """That try did not run (it is tried again only if the batch is not stopped)."""
        self.ended()
        self.sent = False
        if self.inner is not None:
            await self.inner.not_sent()

    def abandoned(self, kind: str, request: Any) -> Exception:
        """What the item ends with when :meth:`BatchStop.abandon` cancelled its call."""
        if not self.sent:
            return BatchStopped(self.key, self.stop.reason)
        return SubmitOutcomeUnknown(
            f"item {self.key!r} was on its way to the service when the batch was stopped "
            "without waiting for it; it may have run and been charged (re-run with "
            "resubmit_unknown=True to submit it again)",
            action=kind,
            request=request,
        )

    def ended(self) -> None:
        """The call is off the wire (answered, failed, or cancelled)."""
        self.stop._sent.pop(self._id, None)
