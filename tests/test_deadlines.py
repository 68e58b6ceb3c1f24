"""A call's deadline (``RetryPolicy.deadline``) cuts it on the library's clock: the virtual clock
under ``aiportrait_instant_waits``, so these tests move time themselves and never race it."""

from __future__ import annotations

import asyncio

import pytest

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait.testing import VirtualClock, set_testing
from tests._mock import OK_IMAGE, OK_JOB, Fake, hang, until

CREATE = "/api/v1/aigc_images/create"
POLICY = RetryPolicy(deadline=600.0)


async def test_a_read_with_no_answer_ends_at_its_deadline_as_a_timeout(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([hang], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", retry=POLICY) as session:
            call = asyncio.create_task(session.get_job(7))
            await until(lambda: len(fake.requests) == 1, "the query is in flight")
            aiportrait_instant_waits.advance(599.0)
            await asyncio.sleep(0)
            assert not call.done()  # not yet
            aiportrait_instant_waits.advance(2.0)
            with pytest.raises(
                aiportrait.errors.RequestTimeout, match=r"deadline of 600\.0s"
            ) as info:
                await call
    assert info.value.sent is None  # it was on the wire: whether it arrived is not known


async def test_a_create_with_no_answer_at_its_deadline_is_unknown_and_sent_once(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([hang], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t", retry=POLICY) as session:
            call = asyncio.create_task(session.create("m-1", "https://t/x.jpg"))
            await until(lambda: len(fake.requests) == 1, "the create is in flight")
            aiportrait_instant_waits.advance(601.0)
            with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await call
    assert fake.paths() == [CREATE]
    assert info.value.request is not None
    assert info.value.request["model_id"] == "m-1"


async def test_a_deadline_ending_a_run_of_failures_raises_the_real_failure(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    busy = (500, {}, {"code": "InternalError", "message": "busy"})
    policy = RetryPolicy(attempts=100, deadline=30.0, base=4.0, cap=8.0)
    with Fake([busy] * 100, ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.errors.ServerError):
                await session.get_job(7)
    assert 1 < len(fake.requests) < 100
    assert aiportrait_instant_waits.time <= 30.0


async def test_calls_that_ended_leave_no_deadline_behind(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", retry=POLICY) as session:
            for _ in range(50):
                await session.get_job(7)
            aiportrait_instant_waits.advance(10_000.0)  # far past every one of their deadlines
            job = await session.get_job(7)  # nothing left over cancels this one
    assert job.state is aiportrait.JobState.RUNNING


async def test_the_real_clock_cuts_a_call_at_its_deadline() -> None:
    policy = RetryPolicy(deadline=0.2, min_try=0.1)
    with Fake([hang], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.errors.RequestTimeout, match="deadline"):
                await session.get_job(7)  # the server never answers: only the deadline ends it


def test_set_testing_works_without_pytest() -> None:
    """Plain asyncio.run, no fixture: the waits of a watch take virtual time only."""
    # The default schedule: 2 s, then 2 s again, each spread by its 10 % jitter.
    assert asyncio.run(_succeeding_wait()) >= 3.6


async def _succeeding_wait() -> float:
    """A wait through two running answers, then success, on the virtual clock."""
    running = (200, {}, OK_JOB)
    done = {"code": "OK", "data": {"job": {"state": 2, "result": '{"model_id": "m"}'}}}
    with set_testing() as clock:
        assert clock is not None
        with Fake([running, running], ok=done) as fake:
            async with Session(fake.url, "a", "t") as session:
                result = await session.wait(7)
        assert result.model_id == "m"
        assert len(fake.requests) == 3
        return clock.time
