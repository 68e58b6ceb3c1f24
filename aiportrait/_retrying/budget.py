"""Budgets: the most trainings and creations a Session or a batch may submit.

A :class:`Budget` counts the charged calls sent against it. A call takes its place
(:func:`reserve`) before anything of it is uploaded or sent, in one step that cannot be
interrupted, so that calls running at once never go over: of 60 creates started together on a
budget of 10, exactly 10 take a place and 50 are refused with
:class:`~aiportrait.errors.BudgetExhausted` (not sent, not charged). A place is *spent* when the
call's request is about to be written on the wire (the call loop's claim, after its limiter slot
and the 429 cool-down) and given back when the call ends without having been sent (a bad photo,
an upload that failed, a cancel before the wire). A call that was sent stays spent whatever its
answer: the service may have charged it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from .._args import whole
from ..errors import BudgetExhausted

if TYPE_CHECKING:
    from .._states import CallKind
    from .loop import Claim

__all__ = ["Budget", "Reservation", "reserve"]


@attrs.define(eq=False)
class Budget:
    """The most trainings and creations that may be submitted (``None``: no bound).

    Give one to a :class:`~aiportrait.Session` (``Session(..., budget=Budget(creations=10))``)
    to bound everything it sends, or to a batch (``create_many(..., budget=...)``) to bound that
    batch; the Session's budget still applies to a batch's calls. A budget counts the calls sent
    against it (:meth:`spent`) for as long as it lives: share one between Sessions or batches to
    bound them together; build a new one to start from zero.

    A call beyond it raises :class:`~aiportrait.errors.BudgetExhausted` before anything is read,
    uploaded or sent; a batch item refused so ends with that error, and its journal row is left
    as it was (the item is new on a re-run).
    """

    trainings: int | None = attrs.field(
        default=None, kw_only=True, validator=whole(0), on_setattr=attrs.setters.frozen
    )
    creations: int | None = attrs.field(
        default=None, kw_only=True, validator=whole(0), on_setattr=attrs.setters.frozen
    )
    _spent: dict[str, int] = attrs.field(init=False, factory=dict, repr=False)
    _held: dict[str, int] = attrs.field(init=False, factory=dict, repr=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock, repr=False)

    def limit(self, kind: CallKind) -> int | None:
        """The most calls of ``kind`` (``train``, ``create``) it allows; ``None``: no bound."""
        if kind == "train":
            return self.trainings
        return self.creations if kind == "create" else None

    def spent(self, kind: CallKind) -> int:
        """Calls of ``kind`` sent against it so far (each may have been charged)."""
        return self._spent.get(kind, 0)

    def left(self, kind: CallKind) -> int | None:
        """How many more calls of ``kind`` may start (``None``: no bound); calls under way
        that have not been sent yet hold their place."""
        limit = self.limit(kind)
        if limit is None:
            return None
        return max(0, limit - self._spent.get(kind, 0) - self._held.get(kind, 0))

    def _take(self, kind: CallKind) -> str | None:
        """Hold a place for a call of ``kind``; the reason when there is none left."""
        with self._lock:
            limit = self.limit(kind)
            if limit is None:
                return None
            if self._spent.get(kind, 0) + self._held.get(kind, 0) >= limit:
                return _refusal(kind, limit)
            self._held[kind] = self._held.get(kind, 0) + 1
            return None

    def _move(self, kind: CallKind, source: dict[str, int], target: dict[str, int]) -> None:
        with self._lock:
            source[kind] -= 1
            target[kind] = target.get(kind, 0) + 1

    def _give_back(self, kind: CallKind) -> None:
        with self._lock:
            self._held[kind] -= 1


def _refusal(kind: CallKind, limit: int) -> str:
    noun = "training" if kind == "train" else "creation"
    plural = noun if limit == 1 else noun + "s"
    return f"the budget of {limit} {plural} is spent: this {noun} was not sent (not charged)"


class Reservation:
    """The places one charged call holds in its budgets, from before its inputs are uploaded
    to its end; the call loop's :class:`~aiportrait._retrying.loop.Claim` for the call (around
    the batch journal's claim, when there is one).

    Use it as a context manager around the call: on leaving, a place never spent is given back.
    """

    __slots__ = ("_budgets", "_inner", "_kind", "_sent")

    def __init__(self, budgets: Sequence[Budget], kind: CallKind) -> None:
        self._budgets = tuple(budgets)
        self._kind = kind
        self._inner: Claim | None = None
        self._sent = False

    def claim(self, inner: Claim | None = None) -> Claim | None:
        """What the send path is given as the call's claim: this reservation around ``inner``
        (``inner`` itself when no budget bounds the call)."""
        if not self._budgets:
            return inner
        self._inner = inner
        return self

    async def before_send(self) -> None:
        """The request is about to be written: its places are spent (the journal's claim first:
        when it refuses, nothing is sent and nothing spent)."""
        if self._inner is not None:
            await self._inner.before_send()
        if not self._sent:
            self._sent = True
            for budget in self._budgets:
                budget._move(self._kind, budget._held, budget._spent)

    async def not_sent(self) -> None:
        """That try provably did not run: its places are held again, not spent."""
        if self._sent:
            self._sent = False
            for budget in self._budgets:
                budget._move(self._kind, budget._spent, budget._held)
        if self._inner is not None:
            await self._inner.not_sent()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._sent:
            for budget in self._budgets:
                budget._give_back(self._kind)
        self._budgets = ()


def reserve(budgets: Sequence[Budget | None], kind: CallKind) -> Reservation:
    """Hold a place in each of ``budgets`` (``None``: none) for one call of ``kind``, all or
    none: raises :class:`~aiportrait.errors.BudgetExhausted` when one has no place left.

    A read holds nothing. Use the result as a context manager around the call.
    """
    if kind == "read" or not any(budgets):
        return _NOTHING
    held: list[Budget] = []
    for budget in budgets:
        if budget is None or budget.limit(kind) is None or budget in held:
            continue
        refused = budget._take(kind)
        if refused is not None:
            for taken in held:
                taken._give_back(kind)
            raise BudgetExhausted(refused, kind=kind, limit=budget.limit(kind) or 0)
        held.append(budget)
    return Reservation(held, kind) if held else _NOTHING


_NOTHING = Reservation((), "read")
"""What a call bounded by no budget holds: nothing (it keeps no state, so one serves all)."""
