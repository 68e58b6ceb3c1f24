"""The steps of one call that can take time: waiting for a slot, the shared 429 cool-down."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiportrait
from aiportrait import Session
from aiportrait.testing import VirtualClock
from tests._mock import OK_JOB, Fake, until

THROTTLED = (429, {"Retry-After": "5"}, {"code": "Throttling", "message": "slow down"})


async def test_a_call_that_waited_for_its_slot_waits_out_a_cool_down_begun_meanwhile(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    release = asyncio.Event()
    sent: list[tuple[str, float]] = []

    async def answer(arrival: Any) -> Any:
        sent.append((arrival.path, aiportrait_instant_waits.time))
        if len(sent) == 1:  # the first query holds the only slot, then is throttled
            await release.wait()
            return THROTTLED
        return (200, {}, OK_JOB)

    with Fake([], routes={"/api/v1/async_jobs/": answer}):
        async with Session(Fake.url, "a", "t", max_in_flight=1) as session:
            first = asyncio.create_task(session.get_job(1))
            await until(lambda: len(sent) == 1, "the first query holds the slot")
            second = asyncio.create_task(session.get_job(2))
            await until(lambda: session.limits.waiting() == 1, "the second waits for a slot")
            release.set()  # the 429 starts a 5 s cool-down; the second query gets the slot
            jobs = await asyncio.gather(first, second)
    assert [job.state for job in jobs] == [aiportrait.JobState.RUNNING] * 2
    assert sent[0] == ("/api/v1/async_jobs/1", 0.0)
    assert sorted(path for path, _ in sent[1:]) == ["/api/v1/async_jobs/1", "/api/v1/async_jobs/2"]
    assert all(at >= 5.0 for _, at in sent[1:])  # nothing was sent during the cool-down


async def test_a_call_cut_by_its_deadline_while_it_waits_for_a_slot_is_no_new_failure(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    """The cut ends the call with its last failure: no second cool-down for the whole Session,
    no answer told to the hooks for a try that was never sent."""
    clock = aiportrait_instant_waits
    go, hold = asyncio.Event(), asyncio.Event()
    sent: list[str] = []
    events: list[Any] = []

    async def answer(arrival: Any) -> Any:
        sent.append(arrival.path)
        if arrival.path.endswith("/1"):  # the first query: throttled, once the second waits
            await go.wait()
            return (429, {"Retry-After": "1"}, {"code": "Throttling", "message": "slow down"})
        await hold.wait()  # the second then holds the only slot
        return (200, {}, OK_JOB)

    policy = aiportrait.RetryPolicy(deadline=10.0, min_try=0.5)
    with Fake([], routes={"/api/v1/async_jobs/": answer}):
        async with Session(
            Fake.url, "a", "t", max_in_flight=1, retry=policy, hooks=[events.append]
        ) as session:
            first = asyncio.create_task(session.get_job(1))
            await until(lambda: len(sent) == 1, "the first query holds the slot")
            second = asyncio.create_task(session.get_job(2))
            await until(lambda: session.limits.waiting() == 1, "the second waits for a slot")
            go.set()  # 429: the first gives the slot up and waits out the 1 s cool-down
            await until(lambda: len(sent) == 2, "the second holds the slot")
            await until(lambda: session.limits.waiting() == 1, "the first waits for it again")
            clock.advance(20.0)  # past the first query's deadline
            try:
                await first
            except aiportrait.errors.RateLimited:
                pass  # its last real failure
            else:
                raise AssertionError("the first query was not cut")
            assert session.limits.cool_down == 0.0  # the cut started no second cool-down
            hold.set()
            with pytest.raises(aiportrait.errors.RequestTimeout):
                await second  # its deadline passed as well, on its try
    told = [type(e).__name__ for e in events if getattr(e, "path", "").endswith("/1")]
    assert told.count("RequestSent") == told.count("AnswerReceived") == 1
    assert told[-1] == "CallEnded"
