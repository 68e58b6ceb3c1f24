"""The Session's limits: calls in flight, creations, and the 429 cool-down every task shares."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anyio
import pytest

import aiportrait
from aiportrait import Session
from aiportrait.hooks import RetryScheduled
from aiportrait.testing import VirtualClock
from tests._mock import OK_IMAGE, OK_JOB, Arrival, Fake, until
from tests._server import Server

THROTTLED = {"code": "Throttling", "message": "slow down"}


async def test_max_in_flight_bounds_concurrent_calls() -> None:
    # Measured where it matters, at a real server, with an HTTP pool that would allow 100.
    release = asyncio.Event()

    async def held(arrival: Arrival) -> Any:
        await release.wait()
        return (200, {}, OK_JOB)

    async with Server(ok=held) as server:
        connector = aiohttp.TCPConnector(limit=100)
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            Session(server.url, "a", "t", session=client, max_in_flight=3) as session,
        ):
            calls = asyncio.gather(*(session.get_job(i) for i in range(12)))
            limits = session.limits
            # Every call is on the wire or waiting for a slot: the most that could go, went.
            await until(
                lambda: server.active + limits.waiting() == 12,
                "12 calls on the wire or queued",
            )
            release.set()
            with anyio.fail_after(60):
                await calls
    assert server.peak == 3
    assert len(server.requests) == 12


async def test_a_429_pauses_every_task_of_the_session() -> None:
    # Real time, lower bounds only: a slow machine only makes the later arrivals later.
    throttled = (429, {"Retry-After": "0.4"}, THROTTLED)
    tripped = asyncio.Event()

    def on_retry(event: object) -> None:
        if isinstance(event, RetryScheduled):
            tripped.set()  # the 429 came back and the cool-down is on

    with Fake([throttled]) as fake:
        async with Session(fake.url, "a", "t", hooks=[on_retry]) as session:
            first = asyncio.create_task(session.get_job(1))
            with anyio.fail_after(60):
                await tripped.wait()
            rest = [asyncio.create_task(session.get_job(i)) for i in range(2, 6)]
            await asyncio.gather(first, *rest)
    t429, *later = (r.at for r in fake.requests)
    assert len(later) == 5
    # Nobody went during the pause.
    assert all(t - t429 >= 0.38 for t in later)


async def test_a_burst_of_429s_does_not_escalate_the_pause(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    everyone_in = asyncio.Event()

    async def burst(arrival: Arrival) -> Any:
        # Six calls in flight at once, all answered 429 (no Retry-After).
        if len(fake.requests) == 6:
            everyone_in.set()
        await everyone_in.wait()
        return (429, {}, {"code": "Throttling", "message": "slow"})

    with Fake([burst] * 6) as fake:
        async with Session(fake.url, "a", "t") as session:
            with anyio.fail_after(60):
                await asyncio.gather(*(session.get_job(i) for i in range(6)))
    assert len(fake.requests) == 12
    # One pause of 1 s shared by the burst, not 1+2+4+8+16 s.
    assert 0 < max(aiportrait_instant_waits.slept) <= 1.0


async def test_a_cancelled_wait_for_a_slot_gives_its_tokens_back() -> None:
    release = asyncio.Event()

    async def held(arrival: Arrival) -> Any:
        await release.wait()
        return (200, {}, OK_JOB)

    routes = {"/api/v1/async_jobs/": held, "/api/v1/aigc_images/create": (200, {}, OK_IMAGE)}
    with Fake(routes=routes) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=1, max_creations=1) as session:
            read = asyncio.create_task(session.get_job(1))  # holds the only shared token
            await until(lambda: len(fake.requests) == 1, "the read on the wire")
            # The create takes its own token, then waits for the shared one: cancelled there.
            create = asyncio.create_task(session.create("m", "https://t/x.jpg"))
            await until(
                lambda: session.limits.waiting() == 1,
                "the create waiting for the shared token",
            )
            create.cancel()
            with pytest.raises(asyncio.CancelledError):
                await create
            release.set()
            await read
            assert session.limits.in_flight("create") == 0
            with anyio.fail_after(60):  # a leaked token would block it for ever
                await session.create("m", "https://t/x.jpg")
    assert fake.paths() == ["/api/v1/async_jobs/1", "/api/v1/aigc_images/create"]


def test_limit_arguments_are_checked() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="max_in_flight"):
        Session("h", "a", "t", max_in_flight=0)
    with pytest.raises(aiportrait.InvalidArgument, match="max_creations"):
        Session("h", "a", "t", max_creations=True)
    with pytest.raises(aiportrait.InvalidArgument, match="PollPolicy"):
        Session("h", "a", "t", poll=5)  # type: ignore[arg-type]


async def test_session_limits_is_a_read_only_view() -> None:
    async with Session("http://127.0.0.1:9", "a", "t", max_in_flight=8, max_trainings=2) as s:
        limits = s.limits
        assert isinstance(limits, aiportrait.SessionLimits)
        assert [limits.capacity(k) for k in ("read", "train", "create")] == [8, 2, 6]
        assert (limits.in_flight(), limits.waiting("train"), limits.cool_down) == (0, 0, 0.0)
        assert repr(limits) == ("<SessionLimits read=8, train=2, create=6; in flight 0, waiting 0>")
        with pytest.raises(AttributeError):
            limits.capacity = None  # type: ignore[method-assign]
        with pytest.warns(DeprecationWarning, match=r"limits\.all is internal"):
            assert limits.all.total_tokens == 8
        with pytest.warns(DeprecationWarning, match=r"limits\.by_kind is internal"):
            assert set(limits.by_kind) == {"train", "create"}
        with pytest.warns(DeprecationWarning, match=r"limits\.cooldown is internal"):
            assert limits.cooldown.remaining == 0.0
