"""The Session's admission: at most ``max_waiting`` calls wait before their first try, each for
at most ``max_wait`` seconds; beyond either a call is ``Overloaded``, never sent.

Slots are held by calls that hang at the fake server (never answered until cancelled), so the
calls behind them wait as long as a test needs; time moves only on the virtual clock.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import aiportrait
from aiportrait import CreateRequest, RetryPolicy, Session
from aiportrait.errors import Overloaded
from aiportrait.testing import VirtualClock
from tests._mock import OK_IMAGE, Arrival, Fake, hang, until

CREATE = "/api/v1/aigc_images/create"
TEMPLATE = "https://t/x.jpg"


def _creates(fake: Fake) -> int:
    return fake.paths().count(CREATE)


async def _cancelled(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


def _counting(seen: list[int], count: Callable[[], int]) -> Callable[[Arrival], Any]:
    """A create's answer that lets the other calls run first (they find the slots taken),
    then notes ``count()`` in ``seen``."""

    async def answer(arrival: Arrival) -> Any:
        for _ in range(3):
            await asyncio.sleep(0)
        seen.append(count())
        return (200, {}, OK_IMAGE)

    return answer


async def test_a_call_beyond_max_waiting_is_refused_at_once_and_never_sent(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake(routes={CREATE: hang}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=1, max_waiting=2) as session:
            first = asyncio.create_task(session.create("m", TEMPLATE))  # holds the only slot
            await until(lambda: _creates(fake) == 1, "the first create on the wire")
            queued = [asyncio.create_task(session.create("m", TEMPLATE)) for _ in range(2)]
            await until(lambda: session.limits.queued() == 2, "two creates waiting")
            with pytest.raises(Overloaded) as refused:
                await session.create("m", TEMPLATE)
            # A read finds the same queue full: the bound is the Session's, all kinds.
            with pytest.raises(Overloaded, match="max_waiting"):
                await session.get_job(1)
            assert session.limits.queued("create") == 2
            await _cancelled(first, *queued)
    error = refused.value
    assert (error.kind, error.waiting, error.sent) == ("create", 2, False)
    assert error.retry_after >= 1.0
    assert "not sent" in str(error) and "max_waiting" in str(error)
    assert isinstance(error, aiportrait.AIPortraitError)
    assert fake.paths() == [CREATE]  # the refused ones never left
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.retry_after, copy.kind, copy.waiting) == (error.retry_after, "create", 2)


async def test_a_call_that_waited_max_wait_is_refused_and_never_sent(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake(routes={CREATE: hang}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=1, max_wait=5) as session:
            assert (session.limits.max_waiting, session.limits.max_wait) == (1000, 5.0)
            first = asyncio.create_task(session.create("m", TEMPLATE))
            await until(lambda: _creates(fake) == 1, "the first create on the wire")
            second = asyncio.create_task(session.create("m", TEMPLATE))
            await until(lambda: session.limits.queued() == 1, "the second create waiting")
            aiportrait_instant_waits.advance(4.9)
            await asyncio.sleep(0)
            assert not second.done()  # not yet
            aiportrait_instant_waits.advance(0.2)
            with anyio.fail_after(30), pytest.raises(Overloaded, match="max_wait") as refused:
                await second
            assert session.limits.queued() == 0
            await _cancelled(first)
    assert refused.value.sent is False and refused.value.retry_after > 0
    assert _creates(fake) == 1


async def test_the_deadline_still_ends_a_wait_shorter_than_max_wait(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake(routes={CREATE: hang}) as fake:
        policy = RetryPolicy(deadline=10)
        async with Session(fake.url, "a", "t", max_in_flight=1, max_wait=60, retry=policy) as s:
            patient = s.with_options(retry=RetryPolicy(deadline=100))
            first = asyncio.create_task(patient.create("m", TEMPLATE))  # holds the slot
            await until(lambda: _creates(fake) == 1, "the first create on the wire")
            second = asyncio.create_task(s.create("m", TEMPLATE))
            await until(lambda: s.limits.queued() == 1, "the second create waiting")
            aiportrait_instant_waits.advance(10.5)
            with anyio.fail_after(30), pytest.raises(aiportrait.errors.RequestTimeout) as cut:
                await second
            await _cancelled(first)
    assert cut.value.sent is False
    assert _creates(fake) == 1


async def test_retry_after_counts_the_queue_ahead_by_how_long_tries_took(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    clock = aiportrait_instant_waits
    release = asyncio.Event()

    async def slow(arrival: Arrival) -> Any:  # each create takes 10 s of the clock
        clock.advance(10)
        if _creates(fake) > 1:
            await release.wait()
        return (200, {}, OK_IMAGE)

    with Fake(routes={CREATE: slow}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=2, max_waiting=3) as session:
            assert session.limits.capacity("create") == 1
            await session.create("m", TEMPLATE)  # learnt: a create takes 10 s
            held = asyncio.create_task(session.create("m", TEMPLATE))
            await until(lambda: _creates(fake) == 2, "a create on the wire")
            queued = [asyncio.create_task(session.create("m", TEMPLATE)) for _ in range(3)]
            await until(lambda: session.limits.queued() == 3, "three creates waiting")
            with pytest.raises(Overloaded) as refused:
                await session.create("m", TEMPLATE)
            release.set()
            with anyio.fail_after(30):
                await asyncio.gather(held, *queued)
    # Three ahead and itself, one slot, 10 s each.
    assert refused.value.retry_after == pytest.approx(40.0)
    assert _creates(fake) == 5


async def test_retry_after_counts_every_call_waiting_not_only_its_own_kind(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # max_waiting bounds the calls of every kind, so a read turned away waits behind the
    # creates waiting for the one shared slot too.
    clock = aiportrait_instant_waits
    release = asyncio.Event()
    JOBS = "/api/v1/async_jobs/"

    async def slow(arrival: Arrival) -> Any:  # each read takes 10 s of the clock
        clock.advance(10)
        if fake.paths().count(f"{JOBS}2"):
            await release.wait()
        return (200, {}, {"code": "OK", "data": {"job": {"state": 1}}})

    with Fake(routes={JOBS: slow, CREATE: hang}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=1, max_waiting=2) as session:
            await session.get_job(1)  # learnt: a read takes 10 s
            held = asyncio.create_task(session.get_job(2))
            await until(lambda: fake.paths().count(f"{JOBS}2") == 1, "a read on the wire")
            queued = [asyncio.create_task(session.create("m", TEMPLATE)) for _ in range(2)]
            await until(lambda: session.limits.queued() == 2, "two creates waiting")
            with pytest.raises(Overloaded) as refused:
                await session.get_job(3)
            await _cancelled(*queued)
            release.set()
            await held
    # Two ahead (creates) and itself, one slot, 10 s each.
    assert refused.value.retry_after == pytest.approx(30.0)
    assert _creates(fake) == 0


async def test_retry_after_is_at_least_what_is_left_of_the_cool_down() -> None:
    # Real time: the cool-down only shrinks, so what it was when the call was refused is at
    # least what is left when read after; no lower bound depends on the machine's speed.
    throttled = (429, {"Retry-After": "30"}, {"code": "Throttling", "message": "slow"})
    with Fake([throttled]) as fake:
        async with Session(fake.url, "a", "t", max_waiting=1) as session:
            once = session.with_options(retry=RetryPolicy(attempts=1))
            with pytest.raises(aiportrait.errors.RateLimited):
                await once.get_job(1)  # trips the Session's cool-down of 30 s
            waiting = asyncio.create_task(session.create("m", TEMPLATE))
            await until(lambda: session.limits.queued() == 1, "a create in the cool-down")
            with pytest.raises(Overloaded) as refused:
                await session.get_job(2)
            left = session.limits.cool_down
            await _cancelled(waiting)
    assert left <= refused.value.retry_after <= 30.0
    assert refused.value.kind == "read"
    assert fake.paths() == ["/api/v1/async_jobs/1"]  # neither the create nor the read left


async def test_gather_of_300_creates_on_a_default_session_simply_queues(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    most: list[int] = []
    answer = _counting(most, lambda: session.limits.queued())
    with Fake(routes={CREATE: answer}) as fake:
        async with Session(fake.url, "a", "t") as session:
            with anyio.fail_after(120):
                portraits = await asyncio.gather(
                    *(session.create("m", TEMPLATE) for _ in range(300))
                )
    assert len(portraits) == 300 and all(isinstance(p, aiportrait.Portrait) for p in portraits)
    assert _creates(fake) == 300
    assert max(most) > 200  # most of them did wait for a slot, and none was refused


async def test_a_batch_queues_under_its_own_limit_not_the_sessions_admission(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    most: list[int] = []
    answer = _counting(most, lambda: session.limits.waiting("create"))
    with Fake(routes={CREATE: answer}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=2, max_waiting=1) as session:
            requests = [CreateRequest("m", TEMPLATE) for _ in range(40)]
            with anyio.fail_after(120):
                outcomes = [o async for o in session.create_many(requests, limit=40)]
    assert [o.error for o in outcomes] == [None] * 40
    assert _creates(fake) == 40
    assert max(most) > 1  # more items waited for the one slot than max_waiting lets a Session's


async def test_a_retry_is_not_admitted_again(aiportrait_instant_waits: VirtualClock) -> None:
    # The 429's 30 s wait is far beyond max_wait: the call was let in, and its retry is
    # bounded by its deadline only.
    throttled = (429, {"Retry-After": "30"}, {"code": "Throttling", "message": "slow"})
    with Fake([throttled], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t", max_wait=1, max_waiting=1) as session:
            portrait = await session.create("m", TEMPLATE)
    assert isinstance(portrait, aiportrait.Portrait)
    assert fake.paths() == [CREATE, CREATE]


def test_admission_arguments_are_checked() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="max_waiting"):
        Session("h", "a", "t", max_waiting=0)
    with pytest.raises(aiportrait.InvalidArgument, match="max_wait"):
        Session("h", "a", "t", max_wait=-1)
    unbounded = Session("h", "a", "t", max_waiting=None)
    assert unbounded.limits.max_waiting is None and unbounded.limits.max_wait is None


async def test_a_watchs_polls_are_not_admitted(aiportrait_instant_waits: VirtualClock) -> None:
    # They queue under the number of jobs watched: a full Session queue never ends a watch.
    with Fake(routes={CREATE: hang}) as fake:
        async with Session(fake.url, "a", "t", max_in_flight=1, max_waiting=1) as session:
            create = asyncio.create_task(session.create("m", TEMPLATE))  # holds the slot
            await until(lambda: _creates(fake) == 1, "the create on the wire")

            async def first_state(job_id: int) -> Any:
                async for update in session.watch(job_id):
                    return update.state
                return None

            watches = [asyncio.create_task(first_state(i)) for i in (1, 2, 3)]
            await until(lambda: session.limits.waiting() == 3, "three polls waiting")
            assert session.limits.queued() == 0
            await _cancelled(create)
            with anyio.fail_after(30):
                states = await asyncio.gather(*watches)
    assert states == [aiportrait.JobState.RUNNING] * 3


@pytest.mark.parametrize("charged", [True, False])
def test_overloaded_is_retryable_after_its_retry_after(charged: bool) -> None:
    # Never sent: a Temporal activity turned away is tried again after retry_after, as a 429.
    from aiportrait.temporal import as_application_error

    busy = Overloaded("POST /x: not sent", retry_after=7.0, kind="create", waiting=3)
    error = as_application_error(busy, charged=charged)
    assert not error.non_retryable
    assert error.next_retry_delay is not None and error.next_retry_delay.total_seconds() == 7.0


def _photo() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (600, 600), (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()


async def test_a_full_queue_turns_a_create_away_before_its_photo_is_uploaded() -> None:
    uploads: list[str] = []

    async def upload(data: bytes, content_type: str, key: str) -> str:
        uploads.append(key)
        return f"https://bucket/{key}"

    with Fake(routes={"/api/v1/async_jobs/": hang}) as fake:
        async with Session(
            fake.url, "a", "t", max_in_flight=1, max_waiting=1, uploader=upload
        ) as session:
            holder = asyncio.create_task(session.get_job(1))
            await until(lambda: len(fake.requests) == 1, "the slot held")
            waiter = asyncio.create_task(session.get_job(2))
            await until(lambda: session.limits.queued() == 1, "the queue full")
            with pytest.raises(Overloaded):
                await session.create("m", _photo())
            for task in (holder, waiter):
                task.cancel()
            await asyncio.gather(holder, waiter, return_exceptions=True)
    assert uploads == []  # turned away first: nothing uploaded, nothing sent
    assert "/api/v1/aigc_images/create" not in fake.paths()


async def test_a_kept_create_cancelled_while_its_photo_uploads_is_told_not_sent() -> None:
    uploading, kept = asyncio.Event(), []

    async def upload(data: bytes, content_type: str, key: str) -> str:
        uploading.set()
        await asyncio.Event().wait()  # a slow upload
        return ""

    with Fake() as fake:
        async with Session(fake.url, "a", "t", uploader=upload) as session:
            view = session.with_options(keep=kept.append)
            task = asyncio.create_task(view.create("m", _photo()))
            await uploading.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: kept, "told")
    [told] = kept
    assert told.sent is False and told.result is None and told.error is None
    assert fake.requests == []
