"""The steps of one call that can take time: waiting for a slot, the shared 429 cool-down."""

from __future__ import annotations

import asyncio
from typing import Any

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
