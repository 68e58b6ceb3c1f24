"""Learned job durations: the watcher polls densely around the end it learned to expect."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import JobState, PollPolicy, Session
from aiportrait._jobs.durations import MIN_SEEN, Durations
from aiportrait.testing import VirtualClock
from tests._mock import PHOTOS, Arrival, Fake


class Trainer:
    """Trainings that take ``seconds`` of the library's (virtual) clock."""

    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self.jobs: dict[int, float] = {}
        self.ids = itertools.count(1)
        self.polls = 0

    def train(self, arrival: Arrival) -> Any:
        job_id = next(self.ids)
        self.jobs[job_id] = self.clock.time
        return (200, {}, {"code": "OK", "data": {"job_id": job_id, "model_id": f"m{job_id}"}})

    def job(self, arrival: Arrival) -> Any:
        self.polls += 1
        started = self.jobs[int(arrival.path.rsplit("/", 1)[1])]
        done = self.clock.time - started >= self.seconds
        result = json.dumps({"model_id": "m", "cost_time": self.seconds, "states": []})
        job = {"state": 2, "result": result} if done else {"state": 1}
        return (200, {}, {"code": "OK", "data": {"job": job}})


@pytest.fixture
def trainer(aiportrait_instant_waits: VirtualClock) -> Iterator[tuple[Trainer, str]]:
    state = Trainer(aiportrait_instant_waits, 60.0)
    routes = {"/api/v1/aigc_images/train": state.train, "/api/v1/async_jobs/": state.job}
    with Fake(routes=routes) as fake:
        yield state, fake.url


async def _train_and_watch(session: Session, clock: VirtualClock) -> tuple[list[object], float]:
    job = await session.train(PHOTOS)
    began = clock.time
    updates = [u async for u in session.watch(job)]
    return updates, clock.time - began


async def test_after_a_few_trainings_the_end_is_noticed_within_a_second(
    trainer: tuple[Trainer, str], aiportrait_instant_waits: VirtualClock
) -> None:
    state, url = trainer
    policy = PollPolicy(jitter=0.0)
    async with Session(url, "a", "t", poll=policy) as session:
        for _ in range(MIN_SEEN):  # learning: the default schedule, noticed late
            updates, waited = await _train_and_watch(session, aiportrait_instant_waits)
            assert updates[0].remaining is None
        unlearned_lag = waited - state.seconds
        polls_before = state.polls
        updates, waited = await _train_and_watch(session, aiportrait_instant_waits)
    learned_lag = waited - state.seconds
    assert unlearned_lag > 5  # 2 s growing to 30 s: the default notices the end late
    assert learned_lag <= 1.0  # dense polling around the learned 60 s
    first, last = updates[0], updates[-1]
    assert first.remaining is not None and 50 < first.remaining < 70  # what is left
    assert last.state is JobState.SUCCESS and last.remaining is None
    assert state.polls - polls_before < 60 / 2  # far fewer than a 1-s poller's 60


async def test_an_explicit_expected_or_learn_false_is_left_alone(
    trainer: tuple[Trainer, str], aiportrait_instant_waits: VirtualClock
) -> None:
    _, url = trainer
    async with Session(url, "a", "t") as session:
        for _ in range(MIN_SEEN):
            await _train_and_watch(session, aiportrait_instant_waits)
        job = await session.train(PHOTOS)
        learned = session.watch(job).policy.expected
        assert learned is not None and 50 < learned < 70  # from the default schedule's polls
        assert session.watch(job, poll=PollPolicy(expected=10)).policy.expected == 10
        assert session.watch(job, poll=PollPolicy(learn=False)).policy.expected is None
        assert session.watch(12345).policy.expected is None  # a job of another kind


async def test_learned_durations_are_kept_with_the_journal(
    trainer: tuple[Trainer, str], aiportrait_instant_waits: VirtualClock, tmp_path: Path
) -> None:
    _, url = trainer
    journal = tmp_path / "train.sqlite"
    sets = {f"p{i}": PHOTOS for i in range(MIN_SEEN)}
    async with Session(url, "a", "t") as session:
        outcomes = await session.train_many(sets, journal=journal, limit=1).collect()
        learned = session._durations.expected("sd15")
    assert all(o.ok for o in outcomes)
    assert learned is not None
    async with Session(url, "a", "t") as fresh:  # a new process, the same journal
        assert fresh.watch(1).policy.expected is None
        more = await fresh.train_many({"next": PHOTOS}, journal=journal, wait=False).collect()
        (outcome,) = more
        assert fresh.watch(outcome.value).policy.expected == learned[0]


def test_the_window_follows_the_spread_seen() -> None:
    durations = Durations()
    for seconds in (100, 100, 100):
        durations.record("sdxl", seconds)
    assert durations.expected("sdxl") == (100, 0.1)
    for seconds in (60, 140):
        durations.record("sd15", seconds)
    assert durations.expected("sd15") is None  # not enough seen yet
    durations.record("sd15", 100)
    expected, window = durations.expected("sd15") or (0, 0)
    assert expected == 100 and window == pytest.approx(0.45)
    assert durations.drain() == [("sdxl", 100.0)] * 3 + [("sd15", 60.0), ("sd15", 140.0),
                                                         ("sd15", 100.0)]  # fmt: skip
    assert durations.drain() == []
    with pytest.raises(aiportrait.InvalidArgument):
        PollPolicy(learn=1)  # type: ignore[arg-type]


def test_learned_durations_take_only_plausible_values_and_stay_bounded() -> None:
    durations = Durations()
    for bad in (float("inf"), float("nan"), -1.0, 0.0, 10 * 24 * 3600.0):
        durations.record("sdxl", bad)
    durations.load([("sdxl", float("inf")), ("sdxl", "x"), (3, 5.0)])  # type: ignore[list-item]
    assert durations.seen() == {}
    for _ in range(1000):
        durations.record("sd15", 60.0)
    assert len(durations.drain()) <= 50  # a Session without a journal never drains
    assert durations.kind_of(12345) is None  # a job it did not start: nothing to learn
    durations.ended(12345, 60.0)
    durations.started(7, "sdxl")
    durations.ended(7, 90.0)
    durations.ended(7, 95.0)  # a job's duration is recorded once
    assert durations.seen()["sdxl"] == (90.0,) and durations.kind_of(7) is None
