"""What ``Session.limits`` gives: the Session's bounds on calls in flight, read-only."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import anyio

    from .._retrying.limits import CoolDown, Limits
    from .._states import CallKind

__all__ = ["SessionLimits"]

T = TypeVar("T")


class SessionLimits:
    """How many calls a Session lets run at once, and how many run or wait now.

    ``session.limits`` is read-only and live: each read tells the moment's numbers. Every call
    holds a slot of the shared bound (``max_in_flight``); creations, and trainings when
    ``max_trainings`` is set, hold a slot of their own bound first. Requests per second bound
    them beside: ``trainings_per_second``, ``creations_per_second``, and ``per_second`` for
    every kind without a rate of its own. Before its first try, a call that must wait is
    admitted: :meth:`queued` of them at once, at most :attr:`max_waiting`, each for at most
    :attr:`max_wait` seconds (:class:`~aiportrait.errors.Overloaded` beyond).
    """

    __slots__ = ("_limits",)

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def capacity(self, kind: CallKind) -> int:
        """How many calls of ``kind`` (``read``, ``train``, ``create``) may be in flight at once."""
        return self._limits.capacity(kind)

    def in_flight(self, kind: CallKind | None = None) -> int:
        """Calls holding a slot: every call (no ``kind``), or those holding the first bound a
        call of ``kind`` takes (its own bound, when it has one, else the shared one)."""
        return int(self._limiter(kind).borrowed_tokens)

    def waiting(self, kind: CallKind | None = None) -> int:
        """Calls waiting for a slot of that same bound."""
        return self._limiter(kind).statistics().tasks_waiting

    def queued(self, kind: CallKind | None = None) -> int:
        """Calls waiting before their first try (for a slot, the 429 cool-down, the outage
        pause, their rate's turn): all (no ``kind``) or those of ``kind``. What
        :attr:`max_waiting` bounds; a batch's items and a watch's polls are not counted."""
        queued = self._limits.queued
        return sum(queued.values()) if kind is None else queued[kind]

    @property
    def max_waiting(self) -> int | None:
        """How many calls may wait at once before their first try (``None``: no bound)."""
        return self._limits.max_waiting

    @property
    def max_wait(self) -> float | None:
        """Seconds a call may wait before its first try (``None``: its deadline only)."""
        return self._limits.max_wait

    def per_second(self, kind: CallKind) -> float | None:
        """How many calls of ``kind`` may be sent per second (``None``: no bound): the
        Session's ``trainings_per_second`` or ``creations_per_second``, else ``per_second``.
        Evenly spaced (an ``aiolimiter`` leaky bucket of one), so any second holds at most one
        more; a call waits its turn holding its slot, right before it is written."""
        return self._limits.per_second(kind)

    @property
    def cool_down(self) -> float:
        """Seconds until calls may go again after a 429 (0 when they may go now)."""
        return self._limits.cooldown.remaining

    @property
    def outage(self) -> str:
        """Why trains and creates wait for the service to answer again (``""`` when they
        may go): the last failure that said the service is down (see
        :class:`~aiportrait.OutagePolicy`)."""
        breaker = self._limits.breaker
        return breaker.reason if breaker.failures else ""

    def _limiter(self, kind: CallKind | None) -> anyio.CapacityLimiter:
        return self._limits.all if kind is None else self._limits.limiters(kind)[0]

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k}={self.capacity(k)}" for k in ("read", "train", "create"))
        return f"<SessionLimits {kinds}; in flight {self.in_flight()}, waiting {self.waiting()}>"

    # -- what session.limits gave before (the private limiters), with a warning ---------------

    @property
    def all(self) -> anyio.CapacityLimiter:
        """Deprecated: :meth:`in_flight`, :meth:`waiting`."""
        return self._old("all", self._limits.all)

    @property
    def by_kind(self) -> dict[CallKind, anyio.CapacityLimiter]:
        """Deprecated: :meth:`in_flight`, :meth:`waiting` with a ``kind``."""
        return self._old("by_kind", self._limits.by_kind)

    @property
    def cooldown(self) -> CoolDown:
        """Deprecated: :attr:`cool_down`."""
        return self._old("cooldown", self._limits.cooldown)

    def _old(self, name: str, value: T) -> T:
        warnings.warn(
            f"Session.limits.{name} is internal: read Session.limits.in_flight(), .waiting()"
            " and .cool_down; it will go away",
            DeprecationWarning,
            stacklevel=3,
        )
        return value
