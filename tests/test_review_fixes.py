"""Regression tests for defects found in review (each names the failure it guards against)."""

from __future__ import annotations

import asyncio
import gzip
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

import aiportrait
from aiportrait import CreateRequest, RetryPolicy, Session, TrainRequest, sync
from aiportrait._journal import Journal
from aiportrait.testing import VirtualClock
from tests._scripted import OK_IMAGE, Scripted

PNG = OK_IMAGE["data"]["image"]  # type: ignore[index]


class Slow:
    """create and job endpoints that take ``delay`` seconds; counts requests."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.creates = 0
        self.trains = 0

    async def create(self, request: web.Request) -> web.Response:
        await request.read()
        self.creates += 1
        await asyncio.sleep(self.delay)
        return web.json_response({"code": "OK", "data": {"image": PNG}})

    async def job(self, request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(self.delay)
        return web.json_response({"code": "OK", "data": {"job": {"state": 1}}})


async def _serve(state: Slow) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/api/v1/aigc_images/create", state.create)
    app.router.add_post("/api/v1/async_jobs/{id}", state.job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_a_cancelled_wait_for_a_slot_gives_its_tokens_back() -> None:
    state = Slow(delay=0.3)
    runner, url = await _serve(state)
    try:
        async with Session(url, "a", "t", max_in_flight=1, max_creations=1) as session:
            read = asyncio.create_task(session.get_job(1))  # holds the only shared token
            await asyncio.sleep(0.05)
            with anyio.move_on_after(0.1):  # the create waits for the shared token: cancelled
                await session.create("m", "https://t/x.jpg")
            await read
            limiter = session.limits.by_kind["create"]
            assert limiter.borrowed_tokens == 0
            with anyio.fail_after(60):  # a leaked token would block it for ever
                await session.create("m", "https://t/x.jpg")
    finally:
        await runner.cleanup()


async def test_dotted_and_prefixed_keys_keep_their_own_files(tmp_path: Path) -> None:
    state = Slow()
    runner, url = await _serve(state)
    journal = tmp_path / "j.sqlite"
    requests = {
        "alice.smith": CreateRequest("m", "https://t/1.jpg"),
        "a": CreateRequest("m", "https://t/2.jpg"),
        "a.v2": CreateRequest("m", "https://t/3.jpg"),
    }
    try:
        async with Session(url, "a", "t") as session:
            first = await session.create_many(requests, journal=journal).collect()
            again = await session.create_many(requests, journal=journal).collect()
    finally:
        await runner.cleanup()
    assert state.creates == 3  # the re-run created nothing
    paths = {o.key: o.path for o in first}
    assert {p.name for p in paths.values() if p} == {"alice.smith.png", "a.png", "a.v2.png"}
    assert all(o.resumed and o.path == paths[o.key] for o in again)


async def test_journal_keeps_ambiguous_items_and_forgets_unsent_ones(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    request = TrainRequest(["https://x/a.jpg"])
    async with Scripted([("sleep", 600)]) as server:
        timeout = aiohttp.ClientTimeout(total=3)
        async with Session(server.url, "a", "t", timeout=timeout) as session:
            (first,) = await session.train_many([request], journal=journal).collect()
            assert isinstance(first.error, aiportrait.SubmitOutcomeUnknown)
            assert Journal(journal).counts("train") == {"submitting": 1}
            # retry_failed does not touch it: it is not a failure, it is unknown.
            again = session.train_many([request], journal=journal, retry_failed=True)
            (second,) = await again.collect()
            assert isinstance(second.error, aiportrait.SubmitOutcomeUnknown)
            assert second.error.request == request
            assert len(server.requests) == 1
    refused = Session("127.0.0.1:9", "a", "t", retry=RetryPolicy.NEVER)
    (third,) = await refused.create_many(
        [CreateRequest("m", "https://t/x.jpg")], journal=tmp_path / "k.sqlite"
    ).collect()
    await refused.aclose()
    assert isinstance(third.error, aiportrait.ConnectError)
    assert Journal(tmp_path / "k.sqlite").counts() == {}  # never left: nothing to remember


def test_seconds_timeout_bounds_the_whole_try() -> None:
    session = Session("h.example", "a", "t", timeout=900)
    assert session._timeout.total == 900
    assert session._timeout.sock_read is None


async def test_leaving_a_sync_batch_stops_it() -> None:
    state = Slow(delay=0.2)
    runner, url = await _serve(state)
    try:

        def consume() -> int:
            with sync.Session(url, "a", "t") as session:
                requests = [CreateRequest("m", f"https://t/{i}.jpg") for i in range(20)]
                for _ in session.create_many(requests, limit=2):
                    break
                return state.creates

        await asyncio.to_thread(consume)
        # Requests already on the wire may still land; a batch that went on would send 20.
        # A slow machine only lowers the count, so the bound holds whatever the speed.
        await asyncio.sleep(1.0)
        assert state.creates <= 4  # 1 done + 1 in flight (+ their successors at most)
    finally:
        await runner.cleanup()


def test_a_failed_sync_constructor_leaves_no_thread() -> None:
    before = threading.active_count()
    for _ in range(3):
        with pytest.raises(aiportrait.InvalidArgument):
            sync.Session("ftp://x", "a", "t")
    time.sleep(0.1)
    assert threading.active_count() == before


async def test_a_burst_of_429s_does_not_escalate_the_pause(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    answers: list[Any] = [(429, {}, {"code": "Throttling", "message": "slow"})] * 6
    async with Scripted(answers) as server:
        async with Session(server.url, "a", "t") as session:
            await asyncio.gather(*(session.get_job(i) for i in range(6)))
    assert len(server.requests) == 12
    # One pause of 1 s shared by the burst, not 1+2+4+8+16 s.
    assert 0 < max(aiportrait_instant_waits.slept) <= 1.0


async def test_the_deadline_bounds_a_try_in_flight() -> None:
    async with Scripted([("sleep", 600)]) as server:
        policy = RetryPolicy(deadline=0.5, min_try=0.1)
        async with Session(server.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.RequestTimeout, match="deadline"):
                await session.get_job(1)  # without the deadline: an answer after 600 s


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (200, b'{"code":"OK","data":{"job_id":null,"model_id":"m"}}', {}),  # unreadable 2xx
        (502, b'{"code":"BAD_GATEWAY","message":"upstream"}', {}),
        (504, b"gateway timeout", {}),
    ],
)
async def test_charged_calls_that_may_have_run_are_unknown(
    status: int, body: bytes, headers: dict[str, str]
) -> None:
    async with Scripted([(status, headers, body)]) as server:
        async with Session(server.url, "a", "t") as session:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown):
                await session.train(["https://x/a.jpg"])
    assert len(server.requests) == 1


async def test_deep_json_and_odd_states_stay_in_the_tree() -> None:
    deep = b"[" * 100_000
    answers: list[Any] = [(200, {}, deep), (200, {}, deep), (200, {}, deep), (200, {}, deep)]
    async with Scripted(answers) as server:
        async with Session(server.url, "a", "t", retry=RetryPolicy.NEVER) as session:
            with pytest.raises(aiportrait.MalformedResponse):
                await session.get_job(1)
    from aiportrait._codec import parse_train_result

    assert parse_train_result('{"model_id": "m", "states": 5}') == aiportrait.TrainResult("m")


async def test_compressed_answers_cannot_bypass_the_size_bound() -> None:
    bomb = gzip.compress(b'{"code":"OK","data":{"x":"' + b"a" * 5_000_000 + b'"}}')

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"},
                            content_type="application/json")  # fmt: skip

    app = web.Application()
    app.router.add_post("/api/v1/async_jobs/{id}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with Session(url, "a", "t", max_response_bytes=1 << 20,
                           retry=RetryPolicy.NEVER) as session:  # fmt: skip
            with pytest.raises(aiportrait.ResponseTooLarge):
                await session.get_job(1)
    finally:
        await runner.cleanup()


def test_sessions_do_not_pickle_and_hosts_carry_no_credentials() -> None:
    session = Session("h.example", "a", "secret-token")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(session)
    with pytest.raises(aiportrait.InvalidArgument, match="credentials"):
        Session("https://user:pass@h.example", "a", "t")


def test_policies_refuse_bools_and_bad_values_with_invalid_argument() -> None:
    with pytest.raises(aiportrait.InvalidArgument):
        aiportrait.PollPolicy(timeout=True)  # type: ignore[arg-type]
    with pytest.raises(aiportrait.InvalidArgument):
        aiportrait.RetryPolicy(base=-1)
    with pytest.raises(aiportrait.InvalidArgument):
        Session("h.example", "a", "t").watch(1, timeout=-5)
