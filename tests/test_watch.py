"""The job watcher: one update per state change, waits with deadlines, the polling schedule."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

import aiportrait
from aiportrait import JobState, PollPolicy, RetryPolicy, Session, TrainJob
from aiportrait.testing import VirtualClock
from tests._mock import DROP, HOST, OK_JOB, Arrival, Fake, hang, until
from tests._server import Server

FAST = PollPolicy(first=0.01, growth=0.5, cap=0.04, jitter=0.0, timeout=10.0)
TRAIN_PREPROCESS_FAILED = "Failed to obtain preprocessed images"


class Jobs:
    """Jobs on the library's virtual clock, answered as the service does: init for a tenth of
    their duration, then running, then success (or failure) with their message and Result; a
    training is a job of 58 s. It counts the polls of each job, and a poll (by its number, of
    any job) can be given another action (hang, refuse) in ``on_poll``."""

    def __init__(self, clock: VirtualClock, fake: Fake) -> None:
        self.clock = clock
        self.fake = fake
        self.jobs: dict[int, tuple[float, float, bool, str, str]] = {}
        self.ids = itertools.count(1)
        self.polls: Counter[int] = Counter()
        self.on_poll: dict[int, Any] = {}  # poll number (of any job) -> action instead
        fake.routes["/api/v1/async_jobs/"] = self.answer
        fake.routes["/api/v1/aigc_images/train"] = self.train

    def train(self, arrival: Arrival) -> Any:
        job_id = self.add(58.0)
        return (200, {}, {"code": "OK", "data": {"job_id": job_id, "model_id": f"m{job_id}"}})

    def add(
        self,
        duration: float,
        *,
        succeed: bool = True,
        message: str | None = None,
        result: str | dict[str, Any] | None = None,
    ) -> int:
        if message is None:
            message = "success" if succeed else TRAIN_PREPROCESS_FAILED
        if result is None:
            result = {"cost_time": duration, "states": [], "model_id": "m-synthetic"}
        text = result if isinstance(result, str) else json.dumps(result)
        job_id = next(self.ids)
        self.jobs[job_id] = (self.clock.time, duration, succeed, message, text)
        return job_id

    def answer(self, arrival: Arrival) -> Any:
        self.polls[int(arrival.path.rsplit("/", 1)[1])] += 1
        action = self.on_poll.pop(sum(self.polls.values()), None)
        if action is not None:
            return action(arrival) if callable(action) else action
        return self.state(arrival)

    def state(self, arrival: Arrival) -> Any:
        """The job's answer now, as the service gives it."""
        job_id = int(arrival.path.rsplit("/", 1)[1])
        created, duration, succeed, message, result = self.jobs[job_id]
        elapsed = self.clock.time - created
        if elapsed >= duration:
            state = 2 if succeed else 3
        else:
            state, message, result = (0, "init", "") if elapsed < duration / 10 else (1, "", "")
        job = {"id": job_id, "app_id": "a", "state": state, "message": message, "Result": result}
        return (200, {}, {"request_id": "r", "code": "OK", "data": {"job": job}})


# Named so that a module importing them (test_watch_shared) does not shadow their names.
@pytest.fixture(name="jobs")
def jobs_fixture(aiportrait_instant_waits: VirtualClock) -> Iterator[Jobs]:
    with Fake() as fake:
        yield Jobs(aiportrait_instant_waits, fake)


@pytest.fixture
def poll() -> PollPolicy:
    """The Session's poll policy (a module importing ``session`` may give its own)."""
    return FAST


@pytest.fixture(name="session")
async def session_fixture(jobs: Jobs, poll: PollPolicy) -> AsyncIterator[Session]:
    async with Session(HOST, "a", "t", poll=poll) as s:
        yield s


async def test_one_update_per_state_change(jobs: Jobs, session: Session) -> None:
    job_id = jobs.add(0.4)
    updates = [u async for u in session.watch(job_id)]
    assert [u.state for u in updates] == [JobState.INIT, JobState.RUNNING, JobState.SUCCESS]
    assert [u.previous for u in updates] == [None, JobState.INIT, JobState.RUNNING]
    assert updates[-1].polls > len(updates)  # many polls, one update per change
    assert updates[0].polls == 1
    assert updates[-1].done
    assert updates[-1].result is not None
    assert [u.elapsed for u in updates] == sorted(u.elapsed for u in updates)
    assert all(u.job_id == job_id for u in updates)


async def test_terminal_first_state_yields_once(jobs: Jobs, session: Session) -> None:
    job_id = jobs.add(0.0)
    updates = [u async for u in session.watch(job_id)]
    assert [(u.previous, u.state) for u in updates] == [(None, JobState.SUCCESS)]


async def test_wait_returns_result_or_raises_job_failed(jobs: Jobs, session: Session) -> None:
    good = jobs.add(0.1, result={"model_id": "m-1", "cost_time": 9, "states": []})
    result = await session.wait(good)
    assert result == aiportrait.TrainResult("m-1", 9.0, ())
    bad = jobs.add(0.1, succeed=False, message="Train error, error info:boom")
    with pytest.raises(aiportrait.JobFailed) as info:
        await session.wait(bad)
    assert info.value.job_id == bad
    assert info.value.message == "Train error, error info:boom"
    assert info.value.raw_result is not None
    updates = [u async for u in session.watch(bad)]
    assert updates[-1].state is JobState.FAILED
    assert updates[-1].message == "Train error, error info:boom"


async def test_wait_with_train_job_and_unparsable_result(jobs: Jobs, session: Session) -> None:
    job_id = jobs.add(0.0, result="not json")
    result = await session.wait(TrainJob(job_id, "m-42"))
    assert result.model_id == "m-42"
    with pytest.raises(aiportrait.errors.MalformedResponse, match="not a training result"):
        await session.wait(job_id)


async def test_deadline_raises_job_timeout(
    jobs: Jobs, session: Session, aiportrait_instant_waits: VirtualClock
) -> None:
    job_id = jobs.add(3600.0)
    with pytest.raises(aiportrait.JobTimeout) as info:
        await session.wait(job_id, timeout=30)
    err = info.value
    assert err.job_id == job_id
    assert err.last_state == JobState.INIT  # the job stays in init for a tenth
    assert err.elapsed == 30.0  # virtual seconds: it waited exactly up to the deadline
    assert aiportrait_instant_waits.time == 30.0
    assert isinstance(err, TimeoutError)
    assert err.__cause__ is None  # every poll was answered


async def test_failed_polls_are_retried_within_the_deadline(jobs: Jobs) -> None:
    # Every other poll meets a fault: a 5xx, a 429, a dropped connection, an unreadable answer.
    faults: list[Any] = [
        (500, {}, {"code": "InternalError", "message": "boom"}),
        (429, {"Retry-After": "0"}, {"code": "Throttling", "message": "slow"}),
        DROP,
        (200, {}, b'{"code": "OK", "data": {"jo'),
        (503, {}, b"Service Unavailable"),
    ]
    injected = len(faults)
    polls = itertools.count()

    def flaky(arrival: Arrival) -> Any:
        return faults.pop(0) if faults and next(polls) % 2 == 0 else jobs.answer(arrival)

    job_id = jobs.add(3.0)
    jobs.fake.routes["/api/v1/async_jobs/"] = flaky
    async with Session(HOST, "a", "t", poll=FAST, retry=RetryPolicy.NEVER) as session:
        watch = session.watch(job_id)
        states = [u.state async for u in watch]
    assert states[-1] is JobState.SUCCESS
    assert not faults  # all met before the job ended
    assert watch.failures == injected  # each fault cost one poll, none ended the watch


async def test_errors_retrying_cannot_fix_end_the_watch(jobs: Jobs) -> None:
    job_id = jobs.add(1.0)
    refused = (401, {}, {"code": "PARAMETER_ERROR", "message": "sign error"})  # a wrong token
    jobs.fake.routes["/api/v1/async_jobs/"] = refused
    async with Session(HOST, "a", "wrong-token", poll=FAST) as session:
        with pytest.raises(aiportrait.errors.SignatureMismatch):
            await session.wait(job_id)
    assert len(jobs.fake.requests) == 1


def _leftovers() -> set[asyncio.Task[Any]]:
    """Client-side tasks other than this one (the server's own connection handlers aside)."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
    }


async def test_cancelling_leaves_nothing_behind() -> None:
    # On a real connection, to see the connection pool: the first poll is answered (the job
    # runs), every later one hangs on the wire and is cut by the cancel.
    def poll(arrival: Arrival) -> Any:
        return (200, {}, OK_JOB) if server.answered == 0 else hang

    async with Server(routes={"/api/v1/async_jobs/": poll}) as server:
        slow = PollPolicy(first=3600.0, timeout=None)  # an hour between polls
        async with Session(server.url, "a", "t", poll=slow) as session:
            before = _leftovers()
            task = asyncio.create_task(session.wait(1))
            await until(lambda: server.answered == 1, "the first poll answered")
            assert server.paths() == ["/api/v1/async_jobs/1"]
            task.cancel()  # while it waits for its next poll
            with pytest.raises(asyncio.CancelledError):
                await task
            in_flight = asyncio.create_task(session.wait(1))
            await until(lambda: len(server.paths()) == 2, "a poll in flight")
            in_flight.cancel()  # while its poll is on the wire
            with pytest.raises(asyncio.CancelledError):
                await in_flight
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(session.wait(1), 0.15)
            await asyncio.sleep(0)
            assert _leftovers() <= before
            connector = session._transport._client().connector
            assert connector is not None
            assert not connector._acquired  # no connection is held by a cancelled poll


async def test_handles_serialise_and_resume_elsewhere(jobs: Jobs) -> None:
    job_id = jobs.add(0.2, result={"model_id": "m-9", "states": []})
    stored = json.dumps(TrainJob(job_id, "m-9").to_dict())
    async with Session(HOST, "a", "t", poll=FAST) as other:
        handle = TrainJob.from_dict(json.loads(stored))
        assert (await other.wait(handle)).model_id == "m-9"


# -- the polling schedule ----------------------------------------------------------------------


def test_policy_schedule_backs_off_to_the_cap() -> None:
    policy = PollPolicy(jitter=0.0)
    times = policy.schedule(600)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert times[:2] == [0.0, 2.0]
    assert max(gaps) == 30.0
    assert gaps == sorted(gaps)
    assert len(times) < 30  # a 10-minute job: a fixed 1 s poller would poll 600 times


def test_policy_polls_densely_near_the_expected_end() -> None:
    policy = PollPolicy(expected=300, dense=1.0, window=0.1, jitter=0.0)
    times = policy.schedule(330)
    near = [t for t in times if 270 <= t <= 330]
    assert max(b - a for a, b in itertools.pairwise(near)) <= 1.0
    assert any(269 <= t <= 271 for t in times)  # lands on the window's start
    assert len(times) < 100


def test_policy_jitter_and_validation() -> None:
    policy = PollPolicy(jitter=0.2)
    rng = random.Random(1)
    values = {round(policy.interval(100.0, rng), 6) for _ in range(20)}
    assert len(values) > 10
    assert all(24 <= v <= 36 for v in values)
    for bad in ({"first": 0}, {"cap": -1}, {"jitter": 1.0}, {"window": -0.1}, {"timeout": 0}):
        with pytest.raises(ValueError, match="PollPolicy"):
            PollPolicy(**bad)
    assert PollPolicy(timeout=None).timeout is None
    assert PollPolicy.TRAINING.timeout == 1800.0


async def test_retry_after_is_honoured_between_polls(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    calls: list[float] = []

    async def poll(job_id: int) -> aiportrait.Job:
        calls.append(aiportrait_instant_waits.time)
        if len(calls) == 1:
            raise aiportrait.errors.RateLimited(429, "", "slow", retry_after=5)
        return aiportrait.Job(job_id, JobState.SUCCESS)

    watch = aiportrait.JobWatch(poll, 5, FAST)
    updates = [u async for u in watch]
    assert updates[-1].state is JobState.SUCCESS
    assert calls == [0.0, 5.0]
    assert watch.polls == 2


_SUCCESS = {"code": "OK", "data": {"job": {"state": 2, "result": '{"model_id": "m-1"}'}}}
_500 = (500, {}, {"code": "InternalError", "message": "boom"})


async def test_each_poll_is_one_request_and_polls_count_requests(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([_500] * 5, ok=_SUCCESS) as fake:
        async with Session(fake.url, "a", "t", poll=FAST) as session:
            watch = session.watch(1)
            updates = [u async for u in watch]
    assert len(fake.requests) == 6  # no second retry layer under the watcher
    assert updates[-1].polls == 6 == watch.polls
    assert watch.failures == 5
    assert watch.consecutive_failures == 0 and watch.last_error is None


@pytest.mark.parametrize("deadline", [600.0, None])
async def test_a_retry_after_beyond_the_cap_ends_a_watch_at_once(
    aiportrait_instant_waits: VirtualClock, deadline: float | None
) -> None:
    throttled = (429, {"Retry-After": "999999"}, {"code": "Throttling", "message": "slow"})
    with Fake([throttled], ok=_SUCCESS) as fake:
        async with Session(fake.url, "a", "t", poll=FAST) as session:
            with pytest.raises(aiportrait.errors.RateLimited) as info:
                await session.wait(1, poll=attrs.evolve(FAST, timeout=deadline))
    assert info.value.retry_after == 999999
    assert len(fake.requests) == 1
    assert max(aiportrait_instant_waits.slept, default=0.0) <= RetryPolicy().max_retry_after


async def test_a_retry_after_within_the_cap_delays_the_next_poll(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    throttled = (429, {"Retry-After": "50"}, {"code": "Throttling", "message": "slow"})
    with Fake([throttled], ok=_SUCCESS) as fake:
        async with Session(fake.url, "a", "t", poll=FAST) as session:
            result = await session.wait(1, timeout=600)
    assert result.model_id == "m-1"
    assert len(fake.requests) == 2
    assert aiportrait_instant_waits.time >= 50


async def test_a_deadline_that_ends_failing_polls_keeps_the_last_failure(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([_500] * 1000, ok=_SUCCESS) as fake:
        async with Session(fake.url, "a", "t", poll=FAST) as session:
            watch = session.watch(1, timeout=5)
            with pytest.raises(aiportrait.JobTimeout) as info:
                async for _ in watch:
                    pass
    assert isinstance(info.value.__cause__, aiportrait.errors.ServerError)
    assert watch.consecutive_failures == watch.polls == len(fake.requests)
    assert isinstance(watch.last_error, aiportrait.errors.ServerError)
