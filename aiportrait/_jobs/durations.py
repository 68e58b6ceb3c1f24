"""Learned job durations: how long each kind of job takes, from the jobs seen end.

A Session keeps one :class:`Durations`. The first watch of a training this Session started (so
that the watch began when the job did) that saw it from a pending state to its end records how
long it took, once a job, under the job's kind (``sd15``, ``sdxl`` or ``scene``). A job the
Session did not start (a bare job id, a training resumed from a journal) has no known start: it
neither uses nor feeds the learned durations. Once a kind has a few durations,
:meth:`Durations.policy` turns the span they cover into a poll policy
(:meth:`PollPolicy.spanning`): a first look, a wait to the shortest duration likely, dense polls
up to the longest seen, sparser and sparser polls after it. With a journal the durations are
stored with it, so a re-run (or another process on the same journal) starts with what was
learned.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Final

from .._requests import TrainRequest
from .schedule import PollPolicy

__all__ = ["Durations", "train_kind"]

MIN_SEEN: Final = 3
"""Durations a kind needs before its estimate is used."""
KEEP: Final = 200
"""Durations kept per kind (the most recent): many, as the last jobs of a burst to end are its
longest, and a span of only those would move on with each watch still running."""
DRAINED: Final = 50
"""Durations drained for a journal at most (the most recent; a journal keeps 50 a kind)."""
ODD: Final = 20
"""One duration in ``ODD`` at either end of those seen is left out of the span (see
:meth:`Durations.span`)."""
NEAR: Final = 0.05
"""The span starts at least this fraction of the median before the shortest duration kept."""
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
        self._new: deque[tuple[str, float]] = deque(maxlen=DRAINED)
        # Asked before every wait of every watch: each (policy, kind) is worked out once
        # until a duration is recorded or loaded.
        self._policies: dict[tuple[PollPolicy, str], PollPolicy] = {}

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
            self._policies.clear()
            self._new.append((kind, float(seconds)))  # the most recent, for a journal

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
                self._policies.clear()

    def span(self, kind: str) -> tuple[float, float] | None:
        """``(start, end)``: the seconds into a watch between which jobs of ``kind`` end;
        ``None`` until the kind has :data:`MIN_SEEN` durations.

        One duration in :data:`ODD` at either end is left out: a job that ended before the
        span is noticed at its start after a long wait, and the middle of that wait (what the
        watcher records) is far too short; one such duration would otherwise widen the span
        for the next :data:`KEEP` jobs. ``end`` is the longest duration kept. ``start`` is
        the shortest kept less the gaps expected below it: durations spread over ``[a, b]``
        lie about one gap apart (the kept ones' spread over their count), so ``a`` is one gap
        below the shortest seen and ``odd + 1`` below the shortest kept when ``odd`` were
        left out; at least :data:`NEAR` of the median before it (a duration recorded from the
        long waits of an unlearned schedule may be that far off), at most half of it.
        """
        values = self._seen.get(kind)
        if values is None or len(values) < MIN_SEEN:
            return None
        ordered = sorted(values)  # the median, without importing statistics (fractions, decimal)
        half = len(ordered) // 2
        middle = ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2
        odd = len(ordered) // ODD
        kept = ordered[odd : len(ordered) - odd]
        gap = (kept[-1] - kept[0]) / (len(kept) - 1)
        margin = max((odd + 1) * gap, NEAR * middle)
        return max(kept[0] - margin, kept[0] / 2), kept[-1]

    def policy(self, policy: PollPolicy, kind: str | None) -> PollPolicy:
        """``policy`` polling across the span learned for ``kind`` (when it sets no
        ``expected`` itself and learns); cheap enough to ask before every wait."""
        if kind is None or policy.expected is not None or not policy.learn:
            return policy
        learned = self._policies.get((policy, kind))
        if learned is None:
            span = self.span(kind)
            learned = policy if span is None else policy.spanning(*span)
            if len(self._policies) >= 256:  # bounded: views with many different policies
                self._policies.clear()
            self._policies[policy, kind] = learned
        return learned


def train_kind(request: TrainRequest) -> str:
    """The kind of job a training is: ``scene``, ``sdxl`` or ``sd15``."""
    return "scene" if request.scene_lora else "sdxl" if request.sdxl else "sd15"
