"""Cancellation that is safe for money: a call cancelled while it waits is never sent; a
charged call cancelled after its request was written finishes, and with
``with_options(keep=)`` its result reaches the callback (``aiportrait.Kept``).

A request "on the wire" is one the fake server holds unanswered until the test releases it.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import aiportrait
from aiportrait import CreateRequest, Kept, OutagePolicy, RetryPolicy, Session
from aiportrait.errors import SubmitOutcomeUnknown
from aiportrait.testing import VirtualClock
from tests._mock import DROP, OK_IMAGE, PHOTOS, PNG_1X1, Arrival, Fake, hang, until

CREATE = "/api/v1/aigc_images/create"
TEMPLATE = "https://t/x.jpg"
CREATED = {"code": "OK", "data": {"image": PNG_1X1}, "request_id": "req-kept"}


def _creates(fake: Fake) -> int:
    return fake.paths().count(CREATE)


def _held(release: asyncio.Event, then: Any) -> Callable[[Arrival], Awaitable[Any]]:
    """An action that holds the request on the wire until ``release``, then does ``then``."""

    async def action(arrival: Arrival) -> Any:
        await release.wait()
        return then

    return action


async def _left_on_the_wire(then: Any, template: str = TEMPLATE) -> tuple[list[Kept], Fake]:
    """A kept create whose client left while it was on the wire, then answered ``then``: what
    the callback got, and the fake server."""
    release = asyncio.Event()
    kept: list[Kept] = []
    with Fake(routes={CREATE: _held(release, then)}) as fake:
        async with Session(fake.url, "a", "t") as session:
            task = asyncio.create_task(session.with_options(keep=kept.append).create("m", template))
            await until(lambda: _creates(fake) == 1, "the create on the wire")
            await _cancel(task)
            release.set()
    return kept, fake


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_kept_create_reaches_the_callback_and_is_sent_once() -> None:
    release = asyncio.Event()
    kept: list[Kept] = []
    with Fake(routes={CREATE: _held(release, (200, {}, CREATED))}) as fake:
        async with Session(fake.url, "a", "t") as session:
            view = session.with_options(keep=kept.append)
            task = asyncio.create_task(view.create("m", TEMPLATE))
            await until(lambda: _creates(fake) == 1, "the create on the wire")
            await _cancel(task)  # the client left
            assert kept == []
            release.set()
            await until(lambda: kept, "the kept create handed over")
    [got] = kept
    assert isinstance(got.result, aiportrait.Portrait) and got.error is None
    assert got.request == CreateRequest("m", TEMPLATE)
    assert got.request_id == got.result.request_id == "req-kept"
    assert _creates(fake) == 1 and fake.cancelled == 0


async def test_aclose_waits_for_kept_calls_and_an_async_callback() -> None:
    release = asyncio.Event()
    kept: list[Kept] = []

    async def keep(outcome: Kept) -> None:
        await asyncio.sleep(0)
        kept.append(outcome)

    with Fake(routes={CREATE: _held(release, (200, {}, CREATED))}) as fake:
        session = Session(fake.url, "a", "t")
        task = asyncio.create_task(session.with_options(keep=keep).create("m", TEMPLATE))
        await until(lambda: _creates(fake) == 1, "the create on the wire")
        await _cancel(task)
        closing = asyncio.create_task(session.aclose())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not closing.done()  # it waits for the kept create
        release.set()
        with anyio.fail_after(30):
            await closing
    assert len(kept) == 1 and isinstance(kept[0].result, aiportrait.Portrait)
    assert session.closed


THROTTLED = (429, {}, {"code": "Throttling", "message": "slow", "request_id": "r-429"})


@pytest.mark.parametrize(
    ("then", "error", "request_id"),
    [
        (DROP, SubmitOutcomeUnknown, ""),  # the answer was lost: it may have run
        # 429: it did not run; a retry would be charged for a client that is gone, so the
        # kept call ends there and says why.
        (THROTTLED, aiportrait.errors.RateLimited, "r-429"),
    ],
    ids=["lost", "throttled"],
)
async def test_a_kept_create_that_failed_hands_over_its_error_and_is_never_sent_again(
    then: Any, error: type[Exception], request_id: str
) -> None:
    kept, fake = await _left_on_the_wire(then)
    [got] = kept
    assert isinstance(got.error, error) and got.result is None
    assert got.request_id == getattr(got.error, "request_id", None) == request_id
    assert _creates(fake) == 1


async def test_a_create_cancelled_while_a_hook_hears_of_its_ambiguous_failure_is_kept() -> None:
    # The 502 leaves open whether the create ran; the loop tells the hooks before it decides,
    # and the client leaves while an async hook runs: the call is still one that may have run.
    release, in_hook, hook_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    kept: list[Kept] = []
    bad_gateway = (502, {}, {"code": "BadGateway", "request_id": "r-502"})

    async def hook(event: object) -> None:
        if isinstance(event, aiportrait.hooks.AnswerReceived):
            in_hook.set()
            await hook_done.wait()  # an exporter writing a span

    with Fake(routes={CREATE: _held(release, bad_gateway)}) as fake:
        async with Session(fake.url, "a", "t", hooks=[hook]) as session:
            task = asyncio.create_task(session.with_options(keep=kept.append).create("m", TEMPLATE))
            await until(lambda: _creates(fake) == 1, "the create on the wire")
            release.set()
            await in_hook.wait()
            await _cancel(task)  # the client left while the hook runs
            hook_done.set()
    [got] = kept
    assert isinstance(got.error, SubmitOutcomeUnknown) and got.request_id == "r-502"
    assert _creates(fake) == 1


async def test_a_deadline_that_passes_while_a_hook_hears_of_an_ambiguous_failure_says_unknown(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # The 502 may have run: the call ends SubmitOutcomeUnknown however long its hooks take.
    async def hook(event: object) -> None:
        if isinstance(event, aiportrait.hooks.AnswerReceived):
            aiportrait_instant_waits.advance(60)  # a slow exporter outlasts the deadline
            await asyncio.sleep(0)

    bad_gateway = (502, {}, {"code": "BadGateway", "request_id": "r-502"})
    with Fake(routes={CREATE: bad_gateway}) as fake:
        policy = RetryPolicy(deadline=30)
        async with Session(fake.url, "a", "t", hooks=[hook], retry=policy) as session:
            with pytest.raises(SubmitOutcomeUnknown) as info:
                await session.create("m", TEMPLATE)
    assert info.value.request_id == "r-502" and _creates(fake) == 1


async def test_a_failing_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    answer = {"code": "OK", "data": {"job_id": 7, "model_id": "m-7"}, "request_id": "r-7"}

    def keep(outcome: Kept) -> None:
        raise RuntimeError("the store is down")

    with Fake(routes={"/api/v1/aigc_images/train": _held(release, (200, {}, answer))}) as fake:
        async with Session(fake.url, "a", "t") as session:
            task = asyncio.create_task(session.with_options(keep=keep).train(PHOTOS))
            await until(lambda: len(fake.requests) == 1, "the training on the wire")
            await _cancel(task)
            with caplog.at_level(logging.ERROR, logger="aiportrait"):
                release.set()
                await session.aclose()
    [record] = [r for r in caplog.records if "keep callback failed" in r.getMessage()]
    assert "job_id=7" in record.getMessage() and "r-7" in record.getMessage()
    assert record.exc_info is not None and "the store is down" in str(record.exc_info[1])


async def test_without_keep_a_create_cancelled_on_the_wire_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Fake(routes={CREATE: hang}) as fake:
        async with Session(fake.url, "a", "t") as session:
            task = asyncio.create_task(session.create("m", TEMPLATE))
            await until(lambda: _creates(fake) == 1, "the create on the wire")
            with caplog.at_level(logging.WARNING, logger="aiportrait"):
                await _cancel(task)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "may be charged" in record.getMessage() and "keep=" in record.getMessage()
    assert fake.cancelled == 1  # abandoned, as before


async def test_keep_must_be_callable() -> None:
    async with Session("http://127.0.0.1:9", "a", "t") as session:
        with pytest.raises(aiportrait.InvalidArgument, match="keep"):
            session.with_options(keep="store")  # type: ignore[arg-type]


# -- a call cancelled while it waits is never sent, with keep or without ---------------------


async def _slot_taken(fake: Fake, session: Session) -> list[asyncio.Task[Any]]:
    read = asyncio.create_task(session.get_job(1))  # holds the only slot
    await until(lambda: len(fake.requests) == 1, "a read on the wire")
    return [read]


async def _cooling_down(fake: Fake, session: Session) -> list[asyncio.Task[Any]]:
    once = session.with_options(retry=RetryPolicy(attempts=1))
    with pytest.raises(aiportrait.errors.RateLimited):
        await once.get_job(1)  # a 429 asking for 30 s: every call of the Session waits
    return []


async def _paused(fake: Fake, session: Session) -> list[asyncio.Task[Any]]:
    once = session.with_options(retry=RetryPolicy(attempts=1))
    await once.get_job(1)  # the service answered once
    with pytest.raises(aiportrait.errors.ServerError):
        await once.get_job(2)  # then failed: a pause, the next probe in an hour
    return []


async def _paced(fake: Fake, session: Session) -> list[asyncio.Task[Any]]:
    await session.create("m", TEMPLATE)  # took the turn: the next one is 1000 s away
    return []


WAITS = {
    "slot": (_slot_taken, {"max_in_flight": 1}, {"/api/v1/async_jobs/": hang}),
    "cool-down": (
        _cooling_down,
        {},
        {"/api/v1/async_jobs/": (429, {"Retry-After": "30"}, {"code": "Throttling"})},
    ),
    "pause": (
        _paused,
        {"outage": OutagePolicy(threshold=1, probe_interval=3600, probe_cap=3600)},
        {"/api/v1/async_jobs/2": (500, {}, {"code": "InternalError", "message": "down"})},
    ),
    "rate": (_paced, {"creations_per_second": 0.001}, {}),
}


@pytest.mark.parametrize("keep", [False, True], ids=["plain", "keep"])
@pytest.mark.parametrize("wait", list(WAITS))
async def test_a_create_cancelled_while_it_waits_is_never_sent(wait: str, keep: bool) -> None:
    prepare, options, routes = WAITS[wait]
    kept: list[Kept] = []
    with Fake(routes={**routes, CREATE: (200, {}, OK_IMAGE)}) as fake:
        async with Session(fake.url, "a", "t", **options) as session:
            others = await prepare(fake, session)
            before = _creates(fake)
            view = session.with_options(keep=kept.append) if keep else session
            task = asyncio.create_task(view.create("m", TEMPLATE))
            await until(lambda: session.limits.queued("create") == 1, f"the create at the {wait}")
            await _cancel(task)
            assert session.limits.queued() == 0
            # A keep view tells at once: not sent, nothing charged (send it again if wanted).
            assert kept == ([Kept(CreateRequest("m", TEMPLATE), sent=False)] if keep else [])
            for other in others:
                await _cancel(other)
    assert _creates(fake) == before


def test_a_kept_result_cut_short_by_a_shutdown_is_logged_as_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # aclose() cut short (a server's graceful-shutdown timeout), then the event loop ends:
    # the transport is closed all the same, and the hand-over that could not finish says
    # what was lost, without advising keep= (it was given).
    stored = asyncio.Event()

    async def keep(kept: Kept) -> None:
        await stored.wait()  # a store that never answers

    async def main(fake: Fake) -> Session:
        session = Session(fake.url, "a", "t")
        task = asyncio.create_task(session.with_options(keep=keep).create("m", TEMPLATE))
        await until(lambda: _creates(fake) == 1, "the create on the wire")
        await _cancel(task)
        with anyio.move_on_after(0.05):
            await session.aclose()
        return session

    with Fake(routes={CREATE: hang}) as fake, caplog.at_level(logging.WARNING, "aiportrait"):
        session = asyncio.run(main(fake))
    assert session.closed
    messages = [r.getMessage() for r in caplog.records]
    [lost] = [r for r in caplog.records if "kept result lost" in r.getMessage()]
    assert lost.levelno == logging.ERROR and "create" in lost.getMessage()
    assert not [m for m in messages if "keep=" in m and "pass" in m]


async def test_a_kept_repr_hides_a_signed_urls_signature_and_sends_it_whole() -> None:
    signed = "https://bucket.oss/x.jpg?OSSAccessKeyId=AK&Expires=1&Signature=SECRETSIG"
    kept, fake = await _left_on_the_wire((200, {}, CREATED), signed)
    [got] = kept
    assert "SECRETSIG" not in repr(got) and "SECRETSIG" not in repr(got.request)
    assert "https://bucket.oss/x.jpg" in repr(got.request)
    assert fake.requests[0].json["template_image"] == signed  # sent as given


def test_submit_outcome_unknown_carries_the_request_id_and_pickles() -> None:
    error = SubmitOutcomeUnknown("lost", action="create", request={}, request_id="r-1")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.request_id, copy.action) == ("r-1", "create")
    assert SubmitOutcomeUnknown("lost", action="train", request={}).request_id == ""


async def test_a_5xx_on_a_create_says_its_request_id() -> None:
    failed = (502, {}, {"code": "BadGateway", "message": "x", "request_id": "r-502"})
    with Fake(routes={CREATE: failed}):
        async with Session(Fake.url, "a", "t") as session:
            with pytest.raises(SubmitOutcomeUnknown) as unknown:
                await session.create("m", TEMPLATE)
    assert unknown.value.request_id == "r-502"


async def test_an_unreadable_ok_answer_to_a_create_says_its_request_id() -> None:
    unreadable = (200, {}, {"code": "OK", "data": {"image": 5}, "request_id": "r-ok"})
    with Fake(routes={CREATE: unreadable}):
        async with Session(Fake.url, "a", "t") as session:
            with pytest.raises(SubmitOutcomeUnknown) as unknown:
                await session.create("m", TEMPLATE)
    assert unknown.value.request_id == "r-ok"
