"""Learned job durations: how long each kind of job takes, from the jobs seen end.

A Session keeps one :class:`Durations`. The first watch of a training this Session started (so
that the watch began when the job did) that saw it from a pending state to its end records how
long it took, once a job, under the job's kind (``sd15``, ``sdxl`` or ``scene``). A job the
Session did not start (a bare job id, a training resumed from a journal) has no known start: it
neither uses nor feeds the learned durations. Once a kind has a few durations,
:meth:`Durations.policy` gives the poll policy an ``expected`` duration (the median) and a
``window`` wide enough for the spread seen, so the watcher polls densely around the likely end
and sparsely before it. With a journal the durations are stored with it, so a re-run (or
another process on the same journal) starts with what was learned.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from .._requests import TrainRequest
from .schedule import PollPolicy

__all__ = ["Durations", "train_kind"]

MIN_SEEN: Final = 3
"""Durations a kind needs before its estimate is used."""
KEEP: Final = 50
"""Durations kept per kind (the most recent)."""
LONGEST: Final = 7 * 24 * 3600.0
"""A duration longer than a week is not a training's: it is ignored."""


def _usable(seconds: object) -> bool:
    return (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and 0 < seconds <= LONGEST
    )


class Durations:
    """Recent job durations by kind, and the poll policy they suggest."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}
        self._kinds: dict[int, str] = {}
        self._new: deque[tuple[str, float]] = deque(maxlen=KEEP)

    def kind_of(self, job_id: int) -> str | None:
        """The kind a job was started as (``None`` when its start is not known here)."""
        return self._kinds.get(job_id)

    def started(self, job_id: int, kind: str) -> None:
        """Remember that ``job_id`` is a job of ``kind``."""
        if len(self._kinds) > 10_000:  # bounded: the oldest entries go first
            for old in list(self._kinds)[:1_000]:
                del self._kinds[old]
        self._kinds[job_id] = kind

    def record(self, kind: str, seconds: float) -> None:
        """A job of ``kind`` was seen to take ``seconds`` (from the watch's start to its end)."""
        if _usable(seconds):
            self._seen.setdefault(kind, deque(maxlen=KEEP)).append(float(seconds))
            self._new.append((kind, float(seconds)))  # the most recent KEEP, for a journal

    def ended(self, job_id: int, seconds: float) -> None:
        """Job ``job_id`` was seen to take ``seconds``: recorded under its kind, once a job
        (its kind is forgotten then; a job it did not start records nothing)."""
        kind = self._kinds.pop(job_id, None)
        if kind is not None:
            self.record(kind, seconds)

    def drain(self) -> list[tuple[str, float]]:
        """The durations recorded since the last drain (to store them in a journal)."""
        new = list(self._new)
        self._new.clear()
        return new

    def seen(self) -> Mapping[str, tuple[float, ...]]:
        """Every kind's recorded durations, oldest first."""
        return {kind: tuple(values) for kind, values in self._seen.items()}

    def load(self, seen: Iterable[tuple[str, float]]) -> None:
        """Add durations recorded elsewhere (a journal); they are not drained again."""
        for kind, seconds in seen:
            if isinstance(kind, str) and _usable(seconds):
                self._seen.setdefault(kind, deque(maxlen=KEEP)).append(float(seconds))

    def expected(self, kind: str) -> tuple[float, float] | None:
        """``(expected, window)`` for ``kind``, or ``None`` until it has :data:`MIN_SEEN`."""
        values = self._seen.get(kind)
        if values is None or len(values) < MIN_SEEN:
            return None
        ordered = sorted(values)  # the median, without importing statistics (fractions, decimal)
        half = len(ordered) // 2
        middle = ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2
        spread = (max(values) - min(values)) / (2 * middle)
        return middle, min(0.5, max(0.1, spread + 0.05))

    def policy(self, policy: PollPolicy, kind: str | None) -> PollPolicy:
        """``policy`` with the learned ``expected`` and ``window`` (when it sets none itself)."""
        if kind is None or policy.expected is not None or not policy.learn:
            return policy
        estimate = self.expected(kind)
        if estimate is None:
            return policy
        expected, window = estimate
        return attrs.evolve(policy, expected=expected, window=window)


def train_kind(request: TrainRequest) -> str:
    """The kind of job a training is: ``scene``, ``sdxl`` or ``sd15``."""
    return "scene" if request.scene_lora else "sdxl" if request.sdxl else "sd15"
