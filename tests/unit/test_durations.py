"""Learned job durations: the watcher polls densely around the end it learned to expect."""

from __future__ import annotations

import itertools
import json
import math
import random
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import JobState, PollPolicy, Session
from aiportrait._jobs.durations import MIN_SEEN, Durations
from aiportrait._jobs.schedule import SPAN_POLLS
from aiportrait.testing import VirtualClock
from tests._mock import PHOTOS, Arrival, Fake


class Trainer:
    """Trainings that take ``seconds`` of the library's (virtual) clock (or, given
    ``lengths``, the next of those each)."""

    def __init__(self, clock: VirtualClock, seconds: float, lengths: Sequence[float] = ()) -> None:
        self.clock = clock
        self.seconds = seconds
        self.lengths = iter(lengths)
        self.jobs: dict[int, tuple[float, float]] = {}  # id -> (start, seconds)
        self.ids = itertools.count(1)
        self.polls = 0

    def train(self, arrival: Arrival) -> Any:
        job_id = next(self.ids)
        self.jobs[job_id] = (self.clock.time, next(self.lengths, self.seconds))
        return (200, {}, {"code": "OK", "data": {"job_id": job_id, "model_id": f"m{job_id}"}})

    def job(self, arrival: Arrival) -> Any:
        self.polls += 1
        started, seconds = self.jobs[int(arrival.path.rsplit("/", 1)[1])]
        done = self.clock.time - started >= seconds
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
        learned = session._durations.policy(PollPolicy.TRAINING, "sd15")
    assert all(o.ok for o in outcomes)
    assert learned.expected is not None
    async with Session(url, "a", "t") as fresh:  # a new process, the same journal
        assert fresh.watch(1).policy.expected is None
        more = await fresh.train_many({"next": PHOTOS}, journal=journal, wait=False).collect()
        (outcome,) = more
        assert fresh.watch(outcome.value).policy == learned


def test_the_span_follows_the_spread_seen() -> None:
    durations = Durations()
    for seconds in (100, 100, 100):
        durations.record("sdxl", seconds)
    assert durations.span("sdxl") == (95, 100)  # no spread: 5 % of the median before
    for seconds in (60, 140):
        durations.record("sd15", seconds)
    assert durations.span("sd15") is None  # not enough seen yet
    durations.record("sd15", 100)
    assert durations.span("sd15") == (30, 140)  # a gap (40 s) before 60: at most half
    for seconds in (1, 2, *range(61, 139, 2)):  # 41: two left out at either end (1 in 20)
        durations.record("scene", seconds)
    assert durations.span("scene") == (55, 133)  # 61 less 3 gaps of 2 s; not 1 or 2 s
    asked = durations.policy(PollPolicy.TRAINING, "sdxl")  # asked before every wait: cached
    assert asked is durations.policy(PollPolicy.TRAINING, "sdxl") and asked.expected == 97.5
    durations.record("sdxl", 90)  # until a duration is recorded
    assert durations.policy(PollPolicy.TRAINING, "sdxl").expected == 92.5
    assert durations.drain()[:6] == [("sdxl", 100.0)] * 3 + [("sd15", 60.0), ("sd15", 140.0),
                                                             ("sd15", 100.0)]  # fmt: skip
    assert durations.drain() == []
    for seconds in (4.8, 5.0, 5.2):  # too short for any interval to keep within the budget
        durations.record("short", seconds)
    assert durations.policy(PollPolicy.TRAINING, "short").dense == 1.0  # so not stretched
    with pytest.raises(aiportrait.InvalidArgument):
        PollPolicy(learn=1)  # type: ignore[arg-type]


FIXED_1S = PollPolicy(first=1.0, growth=1e-9, cap=1.0, jitter=0.0, learn=False)


@pytest.mark.parametrize(("shortest", "longest", "dense"), [(5, 15, 1.8), (30, 90, 1.39)])
def test_learned_polls_put_the_end_within_a_second_at_half_the_polls(
    shortest: float, longest: float, dense: float
) -> None:
    """Once learned (a full window of durations spread evenly), jobs ending anywhere in the
    spread: p50 lag < 1 s, every lag < 3 s, at most half the polls of a 1-second poller."""
    durations = Durations()
    for n in range(50):
        durations.record("sd15", shortest + (longest - shortest) * n / 49)
    policy = durations.policy(PollPolicy(jitter=0.0), "sd15")
    assert policy.dense == pytest.approx(dense, abs=0.01)
    ends = [shortest + (longest - shortest) * n / 1000 for n in range(1001)]
    learned = [policy.schedule(end) for end in ends]
    lags = [times[-1] - end for times, end in zip(learned, ends, strict=True)]
    polls = sum(len(times) for times in learned)
    fixed = sum(len(FIXED_1S.schedule(end)) for end in ends)
    assert statistics.median(lags) < 0.95
    assert max(lags) < 1.05 * policy.dense  # the span ends at the longest kept; then d, growing
    assert polls / fixed < 0.5
    # A job far longer than any seen is polled ever more sparsely (a 1-s poller: 1800).
    assert len(policy.schedule(1800)) < 300
    assert policy.schedule(2 * longest)[-1] - 2 * longest < 2 * dense


def test_a_long_span_is_crossed_in_a_bounded_number_of_polls() -> None:
    """Trainings of 10-30 minutes: at most SPAN_POLLS polls across the span (a 1.35 s interval
    would make some 900 a training), the end still noticed within one interval of ~10 s."""
    durations = Durations()
    for n in range(50):
        durations.record("sd15", 600 + 1200 * n / 49)
    policy = durations.policy(PollPolicy(jitter=0.0), "sd15")
    start, end = durations.span("sd15")  # type: ignore[misc]
    assert policy.dense == pytest.approx((end - start) / SPAN_POLLS)
    for ending in (start, (start + end) / 2, end):  # ends anywhere in the span
        times = policy.schedule(ending)
        before = 1 + math.ceil(start / policy.cap)  # the first look, the steps to the span
        assert len(times) <= before + SPAN_POLLS + 1
        assert times[-1] - ending <= policy.dense * 1.01


def test_schedules_without_an_expected_duration_are_unchanged() -> None:
    """The Temporal training workflow replays ``next_wait``: these lists were computed on
    main before the learned spans (commit 361639e)."""
    assert PollPolicy.TRAINING.schedule(600) == [
        0.0, 2.0, 4.0, 6.0, 9.0, 13.5, 20.25, 30.375, 45.5625, 68.34375, 98.34375, 128.34375,
        158.34375, 188.34375, 218.34375, 248.34375, 278.34375, 308.34375, 338.34375, 368.34375,
        398.34375, 428.34375, 458.34375, 488.34375, 518.34375, 548.34375, 578.34375, 608.34375,
    ]  # fmt: skip
    assert PollPolicy.QUICK.schedule(60) == [
        0.0, 0.5, 1.0, 1.5, 2.25, 3.375, 5.0625, 7.59375, 11.390625, 16.390625, 21.390625,
        26.390625, 31.390625, 36.390625, 41.390625, 46.390625, 51.390625, 56.390625, 61.390625,
    ]  # fmt: skip
    assert PollPolicy(expected=60).schedule(90) == [
        0.0, 30.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0, 64.0, 65.0, 66.0,
        96.0,
    ]  # fmt: skip
    rng = random.Random(5)
    waits = [PollPolicy.TRAINING.next_wait(e, rng) for e in (0.0, 1.0, 10.0, 100.0, 1790.0)]
    assert waits == [2.049160677955881, 2.0967147957042918, 5.295193565565697,
                     32.6547017026623, None]  # fmt: skip


async def test_a_session_learns_a_spread_and_then_polls_across_it(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    """Through Session.watch on the virtual clock: trainings of 30-90 s (seeded), the first
    ones learning, the next ones measured."""
    rng = random.Random(22)
    lengths = [rng.uniform(30, 90) for _ in range(40)]
    state = Trainer(aiportrait_instant_waits, 60.0, lengths)
    routes = {"/api/v1/aigc_images/train": state.train, "/api/v1/async_jobs/": state.job}
    lags, polls = [], 0
    with Fake(routes=routes) as fake:
        async with Session(fake.url, "a", "t", poll=PollPolicy(jitter=0.0)) as session:
            for n, length in enumerate(lengths):
                before = state.polls
                _, waited = await _train_and_watch(session, aiportrait_instant_waits)
                if n >= 10:
                    lags.append(waited - length)
                    polls += state.polls - before
    fixed = sum(len(FIXED_1S.schedule(length)) for length in lengths[10:])
    assert statistics.median(lags) < 1.0 and max(lags) < 3.0
    assert polls / fixed < 0.5


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
