"""Seeded fault injection and the emulator's counters.

One uniform draw per API request picks at most one *outcome fault*, from disjoint slices of
``[0, 1)`` in this order: ``drop_before``, ``rate_5xx``, ``rate_429``, ``drop_after``,
``malformed``; while ``outage`` is on, every request is answered 503 instead, without a draw
(the draws of the other settings stay as they were). A second draw decides the added
``latency``; a third one, taken when a training is accepted, decides whether it fails
(``job_failure``). The same seed and the same request order
give the same faults.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._wire import CREATE_PATH, TRAIN_PATH

__all__ = [
    "ARRIVALS_KEPT",
    "MAX_SECONDS",
    "Counters",
    "Fault",
    "FaultInjector",
    "Faults",
    "Hold",
    "faults_from_json",
    "faults_json",
]

#: The most seconds of ``latency`` and ``retry_after``.
MAX_SECONDS = 600

#: The largest ``seed`` either way: the largest integer a JavaScript number (the dashboard's
#: faults form) holds exactly.
MAX_SEED = 2**53 - 1

#: How many of the latest API requests :attr:`Counters.arrivals` keeps.
ARRIVALS_KEPT = 100_000


class Fault(enum.Enum):
    """The kind of outcome fault applied to one request."""

    NONE = "none"
    DROP_BEFORE = "drop_before"
    ERROR_5XX = "5xx"
    TOO_MANY = "429"
    DROP_AFTER = "drop_after"
    MALFORMED = "malformed"
    OUTAGE = "outage"


@dataclass(frozen=True)
class Faults:
    """Fault injection settings; every rate is a probability in ``[0, 1]`` per request.

    Attributes:
        seed: seed of the private ``random.Random`` (re-seeded when the settings are assigned;
            at most 2^53 - 1 either way: the largest integer the dashboard's form holds exactly).
        rate_5xx: answer with the status ``status_5xx`` and an error envelope before doing
            anything.
        status_5xx: the status used by ``rate_5xx`` (500, 502, 503, 504 ...).
        rate_429: answer 429 with a ``Retry-After`` of ``retry_after`` seconds before doing
            anything.
        retry_after: seconds sent in ``Retry-After`` (written as an integer when whole; at
            most 600).
        drop_before: close the connection before processing; nothing is counted.
        drop_after: process the request fully (counted), then close without answering.
        latency: seconds slept before processing, on a ``latency_rate`` share of requests
            (at most 600, like ``retry_after``).
        latency_rate: share of requests delayed by ``latency``.
        malformed: process fully (counted), then answer 200 with a truncated JSON body.
        job_failure: share of accepted trainings that end in state 3 whatever their photos.
        outage: answer every request 503 with ``Retry-After: retry_after`` before doing
            anything (the service is down), whatever the rates.
        paths: when set (at least one prefix), only requests whose path starts with one of
            these are affected; None: every path.
    """

    seed: int = 0
    rate_5xx: float = 0.0
    status_5xx: int = 503
    rate_429: float = 0.0
    retry_after: float = 1.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    latency: float = 0.0
    latency_rate: float = 1.0
    malformed: float = 0.0
    job_failure: float = 0.0
    outage: bool = False
    paths: frozenset[str] | None = None

    def __post_init__(self) -> None:
        rates = {
            "rate_5xx": self.rate_5xx,
            "rate_429": self.rate_429,
            "drop_before": self.drop_before,
            "drop_after": self.drop_after,
            "latency_rate": self.latency_rate,
            "malformed": self.malformed,
            "job_failure": self.job_failure,
        }
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.outcome_total() > 1.0 + 1e-9:
            raise ValueError("the outcome fault rates add up to more than 1")
        for name, seconds in (("latency", self.latency), ("retry_after", self.retry_after)):
            if not 0 <= seconds <= MAX_SECONDS:
                raise ValueError(f"{name} must be within [0, {MAX_SECONDS}] seconds")
        if not -MAX_SEED <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be within [-{MAX_SEED}, {MAX_SEED}] (2^53 - 1)")
        if not 500 <= self.status_5xx <= 599:
            raise ValueError(f"status_5xx must be a 5xx status, got {self.status_5xx}")
        if self.paths is not None:  # accept any collection of prefixes
            object.__setattr__(self, "paths", frozenset(self.paths))
            if not self.paths:
                raise ValueError("paths must name at least one prefix (None: every path)")

    def outcome_total(self) -> float:
        """Return the share of requests that get an outcome fault."""
        return self.drop_before + self.rate_5xx + self.rate_429 + self.drop_after + self.malformed

    @property
    def active(self) -> bool:
        """Whether any fault can fire."""
        return bool(self.outage or self.outcome_total() or (self.latency and self.latency_rate))

    def applies_to(self, path: str) -> bool:
        """Whether requests to ``path`` are subject to these faults."""
        return self.paths is None or any(path.startswith(p) for p in self.paths)


def faults_json(faults: Faults) -> dict[str, Any]:
    """``faults`` as a JSON object (``paths`` a sorted list, or None)."""
    shown = dataclasses.asdict(faults)
    shown["paths"] = None if faults.paths is None else sorted(faults.paths)
    return shown


def faults_from_json(current: Faults, changes: Mapping[str, Any]) -> Faults:
    """``current`` with the fields given in ``changes`` (a JSON object) replaced.

    Raises :class:`ValueError` naming the field: an unknown one, a value of the wrong type (a
    number for the rates and seconds, an integer for ``seed`` and ``status_5xx``, true or false
    for ``outage``, a list of strings or null for ``paths``), or one :class:`Faults` refuses.
    """
    kinds = {f.name: f.type for f in dataclasses.fields(Faults)}
    for name, value in changes.items():
        kind = kinds.get(name)
        if kind is None:
            raise ValueError(f"{name!r} is not a fault setting (known: {', '.join(kinds)})")
        if name == "paths":
            if value is not None and not (
                isinstance(value, list) and all(isinstance(p, str) for p in value)
            ):
                raise ValueError("paths must be a list of path prefixes or null")
        elif kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        elif kind == "int" and not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        elif kind == "float" and not _finite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    return dataclasses.replace(current, **changes)


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite float (an integer too large for one is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class FaultInjector:
    """Draws faults from one seeded generator; owned by the emulator, used on its event loop."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = Faults()
        self._rng = random.Random()
        self.configure(faults)

    def configure(self, faults: Faults | None) -> None:
        """Use new settings and re-seed the generator with their seed."""
        self.faults = faults or Faults()
        self._rng = random.Random(self.faults.seed)

    def outcome(self, path: str) -> Fault:
        """Pick the outcome fault for one request to ``path``."""
        f = self.faults
        if not f.applies_to(path):
            return Fault.NONE
        if f.outage:
            return Fault.OUTAGE
        if not f.outcome_total():
            return Fault.NONE
        u = self._rng.random()
        for kind, rate in (
            (Fault.DROP_BEFORE, f.drop_before),
            (Fault.ERROR_5XX, f.rate_5xx),
            (Fault.TOO_MANY, f.rate_429),
            (Fault.DROP_AFTER, f.drop_after),
            (Fault.MALFORMED, f.malformed),
        ):
            if u < rate:
                return kind
            u -= rate
        return Fault.NONE

    def delay(self, path: str) -> float:
        """Return the seconds to sleep before processing one request to ``path``."""
        f = self.faults
        if not f.latency or not f.applies_to(path):
            return 0.0
        return f.latency if self._rng.random() < f.latency_rate else 0.0

    def job_fails(self) -> bool:
        """Whether a training being accepted now is forced to fail."""
        f = self.faults
        return bool(f.job_failure) and self._rng.random() < f.job_failure


class Hold:
    """Calls to one path held at the service after the first ``after`` ones: each is counted
    (and charged) and then waits, unanswered, until :meth:`release`. Tests use it to have calls
    in flight on the service while they act (stop a batch, send a signal), without timing.
    Made by :meth:`Emulator.hold`."""

    def __init__(self, path: str, after: int) -> None:
        self.path = path
        self.after = after
        self.arrived = 0
        """The calls to ``path`` that reached this point (the held ones among them)."""
        self._gate = asyncio.Event()

    @property
    def held(self) -> int:
        """How many calls wait now."""
        return 0 if self._gate.is_set() else max(0, self.arrived - self.after)

    def release(self) -> None:
        """Let every held call (and every later one) go on."""
        self._gate.set()

    async def passing(self, path: str) -> None:
        """Count a call to ``path`` and hold it when it is one of those held."""
        if path == self.path:
            self.arrived += 1
            if self.arrived > self.after:
                await self._gate.wait()


@dataclass
class Counters:
    """What the emulator really did; read them in tests to prove nothing ran twice.

    ``checks``, ``trainings`` and ``creations`` count work done and accepted: a check that
    answered, a training that got a job id, a creation that produced an image. ``fingerprints``
    counts processed requests by ``(path, md5 of the body)``; a request dropped before processing
    or rejected by the gateway is not in it. ``read_timeouts`` counts requests whose body did not
    arrive within the read timeout (their connection was closed). ``arrivals`` holds, for the
    latest :data:`ARRIVALS_KEPT` API requests, when each arrived (the emulator's monotonic
    clock, seconds, before any fault or check) and its path: the service's own record of the
    rate it was called at.
    """

    requests: int = 0
    checks: int = 0
    trainings: int = 0
    trainings_succeeded: int = 0
    trainings_failed: int = 0
    creations: int = 0
    create_errors: int = 0
    job_polls: int = 0
    batch_polls: int = 0
    gateway_errors: int = 0
    read_timeouts: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    fingerprints: Counter[tuple[str, str]] = field(default_factory=Counter)
    arrivals: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=ARRIVALS_KEPT))

    def most_within(self, seconds: float, path: str | None = None) -> int:
        """The most requests (to ``path``, or all) that arrived within any span of
        ``seconds``, by :attr:`arrivals`."""
        times = [t for t, p in self.arrivals if path is None or p == path]
        most, first = 0, 0
        for last, t in enumerate(times):
            while t - times[first] > seconds:
                first += 1
            most = max(most, last - first + 1)
        return most

    def duplicates(self, paths: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
        """Return the fingerprints processed more than once, optionally only for ``paths``."""
        wanted = None if paths is None else set(paths)
        return {
            key: n
            for key, n in self.fingerprints.items()
            if n > 1 and (wanted is None or key[0] in wanted)
        }

    def charged_duplicates(self) -> dict[tuple[str, str], int]:
        """Return the train and create bodies processed more than once (should be empty)."""
        return self.duplicates((TRAIN_PATH, CREATE_PATH))
