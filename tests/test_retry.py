"""Retries: read-only calls retry what is safe; charged calls never risk a second submission."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait.testing import VirtualClock
from tests._mock import DROP, OK_IMAGE, OK_JOB, PHOTOS, TIMEOUT, Fake, until
from tests._server import Server, closed_url, hang

FAST = RetryPolicy(base=0.01, cap=0.02)


def _err(status: int, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return (status, headers or {}, {"code": "ERR", "message": f"status {status}"})


async def test_reads_retry_5xx_drops_and_timeouts_then_succeed(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([_err(500), DROP, TIMEOUT, _err(502)]) as fake:
        async with Session(fake.url, "a", "t", retry=RetryPolicy(attempts=5, base=0.01)) as session:
            job = await session.get_job(1)
    assert job.state is aiportrait.JobState.RUNNING
    assert len(fake.requests) == 5


async def test_reads_give_up_after_the_attempts(aiportrait_instant_waits: VirtualClock) -> None:
    with Fake([_err(503)] * 5) as fake:
        async with Session(fake.url, "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.errors.ServerError) as info:
                await session.check_images(["https://x/a.jpg"])
    assert info.value.status == 503
    assert len(fake.requests) == FAST.attempts


async def test_retry_after_is_honoured(aiportrait_instant_waits: VirtualClock) -> None:
    with Fake([_err(503, {"Retry-After": "30"})]) as fake:
        async with Session(fake.url, "a", "t", retry=FAST) as session:
            await session.get_job(1)
    assert len(fake.requests) == 2
    assert aiportrait_instant_waits.slept == [30.0]


async def test_a_too_long_retry_after_is_not_waited_for(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    with Fake([_err(503, {"Retry-After": "3600"})]) as fake:
        async with Session(fake.url, "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.errors.ServerError) as info:
                await session.get_job(1)
    assert aiportrait_instant_waits.slept == []
    assert info.value.retry_after == 3600
    assert len(fake.requests) == 1


async def test_the_deadline_bounds_all_tries(aiportrait_instant_waits: VirtualClock) -> None:
    policy = RetryPolicy(attempts=50, base=2.0, cap=2.0, deadline=20.0, min_try=1.0)
    with Fake([_err(500)] * 50) as fake:
        async with Session(fake.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.errors.ServerError):
                await session.get_job(1)
    # Every retry started with at least min_try left of the deadline.
    assert aiportrait_instant_waits.time + policy.min_try <= policy.deadline
    assert 2 <= len(fake.requests) < 50


async def test_a_retry_that_could_not_finish_is_not_started(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # After the 9.5 s Retry-After, 0.5 s would be left of the 10 s deadline: less than min_try.
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=10.0, min_try=1.0)
    with Fake([_err(503, {"Retry-After": "9.5"})]) as fake:
        async with Session(fake.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.errors.ServerError) as info:
                await session.get_job(1)
    assert info.value.status == 503  # the real failure, not a timeout of a hopeless try
    assert len(fake.requests) == 1
    assert aiportrait_instant_waits.slept == []


# -- the deadline cuts a try hung on a real connection -------------------------------------------
# The tries below hang on the loopback server for ever; without the deadline (real time: a
# cancel scope) they would never end, and fail_after turns that into a failure.


async def test_the_deadline_bounds_a_try_in_flight() -> None:
    async with Server([hang]) as server:
        policy = RetryPolicy(deadline=0.5, min_try=0.1)
        async with Session(server.url, "a", "t", retry=policy) as session:
            with (
                anyio.fail_after(120),
                pytest.raises(aiportrait.errors.RequestTimeout, match="deadline"),
            ):
                await session.get_job(1)  # without the deadline: no answer, ever


async def test_a_deadline_that_ends_a_run_of_failures_raises_the_last_real_failure(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # The second try hangs; the deadline cuts it short (on the virtual clock, moved here).
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=2.0, min_try=0.1)
    async with Server([_err(500), hang]) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=3600) as session:
            call = asyncio.create_task(session.get_job(1))
            await until(lambda: len(server.requests) == 2, "the second try is in flight")
            aiportrait_instant_waits.advance(2.0)
            with anyio.fail_after(120), pytest.raises(aiportrait.errors.ServerError) as info:
                await call
    assert info.value.status == 500
    assert len(server.requests) == 2


async def test_the_deadline_is_enforced_without_changing_the_aiohttp_timeout() -> None:
    # One try, a generous per-try timeout, a short deadline: the deadline wins.
    policy = RetryPolicy(attempts=1, deadline=1.0, min_try=0.1)
    timeout = aiportrait.DEFAULT_TIMEOUT
    async with Server([hang]) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=timeout) as session:
            with (
                anyio.fail_after(120),
                pytest.raises(aiportrait.errors.RequestTimeout, match="deadline"),
            ):
                await session.get_job(1)
    assert timeout.total == 300  # the caller's object is untouched


async def test_a_charged_try_cut_by_the_deadline_may_have_run() -> None:
    policy = RetryPolicy(deadline=1.0, min_try=0.1)
    async with Server([hang], ok=OK_IMAGE) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=3600) as session:
            with anyio.fail_after(120), pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await session.create("m-1", "https://t/x.jpg")
    assert isinstance(info.value.__cause__, aiportrait.errors.RequestTimeout)
    assert len(server.requests) == 1


# -- timeouts --------------------------------------------------------------------------------------


async def test_seconds_timeout_bounds_the_whole_try() -> None:
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", timeout=900) as session:
            await session.get_job(1)
    (sent,) = fake.requests
    assert sent.timeout is not None  # the timeout the try was sent with
    assert sent.timeout.total == 900
    assert sent.timeout.sock_read is None


def test_session_timeout_in_seconds_is_typed() -> None:
    from mypy import api

    source = (
        "import aiportrait\n"
        "s = aiportrait.Session('h', 'a', 't', timeout=600)\n"
        "v = s.with_options(timeout=60.5)\n"
    )
    out, err, status = api.run(["--strict", "--no-incremental", "-c", source])
    assert status == 0, out + err


# -- charged calls -------------------------------------------------------------------------------


async def _create(fake: Fake, **kw: Any) -> aiportrait.Portrait:
    async with Session(fake.url, "a", "t", retry=FAST, **kw) as session:
        return await session.create("m-1", "https://t/x.jpg")


async def test_charged_503_with_retry_after_and_429_are_retried() -> None:
    actions = [_err(503, {"Retry-After": "0"}), _err(429, {"Retry-After": "0"})]
    with Fake(actions, ok=OK_IMAGE) as fake:
        portrait = await _create(fake)
    assert portrait.format == "png"
    assert len(fake.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_charged_5xx_without_retry_after_is_not_retried(status: int) -> None:
    with Fake([_err(status)], ok=OK_IMAGE) as fake:
        with pytest.raises(aiportrait.AIPortraitError) as info:
            await _create(fake)
    assert len(fake.requests) == 1
    if status == 503:  # "not taken": a plain error
        assert isinstance(info.value, aiportrait.errors.ServerError)
    else:  # a gateway or backend failure, maybe after the work started
        assert isinstance(info.value, aiportrait.SubmitOutcomeUnknown)
        assert isinstance(info.value.__cause__, aiportrait.errors.ServerError)


@pytest.mark.parametrize(
    ("action", "cause"),
    [
        (DROP, aiportrait.errors.ConnectError),
        (TIMEOUT, aiportrait.errors.RequestTimeout),
        ((200, {}, b'{"code": "OK", "data": {"ima'), aiportrait.errors.MalformedResponse),
    ],
)
async def test_ambiguous_charged_failures_raise_submit_outcome_unknown(
    action: Any, cause: type[Exception]
) -> None:
    with Fake([action], ok=OK_IMAGE) as fake:
        with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
            await _create(fake)
    assert len(fake.requests) == 1  # never sent twice
    err = info.value
    assert isinstance(err.__cause__, cause)
    assert err.action == "create"
    assert err.request == fake.requests[0].json  # what was sent
    assert "not sent again" in str(err)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"code":"OK","data":{"job_id":null,"model_id":"m"}}'),  # unreadable 2xx
        (502, b'{"code":"BAD_GATEWAY","message":"upstream"}'),
        (504, b"gateway timeout"),
    ],
)
async def test_charged_calls_that_may_have_run_are_unknown(status: int, body: bytes) -> None:
    with Fake([(status, {}, body)]) as fake:
        async with Session(fake.url, "a", "t") as session:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown):
                await session.train(PHOTOS)
    assert len(fake.requests) == 1


async def test_train_is_retried_only_when_it_never_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A real refused connection: what aiohttp raises when nothing listens.
    url = await closed_url()
    with caplog.at_level(logging.DEBUG, "aiportrait"):
        async with Session(url, "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.errors.ConnectError) as info:
                await session.train(PHOTOS)
    assert info.value.sent is False
    tries = [r for r in caplog.records if "could not connect" in r.getMessage()]
    assert len(tries) == FAST.charged_attempts - 1
    assert all(hasattr(r, "attempt") and hasattr(r, "wait") for r in tries)
    assert "next try in" in tries[0].getMessage()


async def test_with_options_per_call(aiportrait_instant_waits: VirtualClock) -> None:
    with Fake([TIMEOUT, TIMEOUT]) as fake:
        async with Session(fake.url, "a", "t", retry=RetryPolicy.NEVER) as session:
            quick = session.with_options(timeout=0.2)
            with pytest.raises(aiportrait.errors.RequestTimeout):
                await quick.get_job(1)
            used = fake.requests[-1].timeout  # the view's timeout was used
            assert used is not None and used.total == 0.2
            await quick.aclose()  # a view: closing it leaves the session open
            assert not session.closed
            patient = session.with_options(retry=RetryPolicy(attempts=2, base=0.01))
            assert (await patient.get_job(1)).state is aiportrait.JobState.RUNNING
            assert len(fake.requests) == 3  # the patient view tried twice
            with pytest.raises(aiportrait.InvalidArgument, match="timeout"):
                session.with_options(timeout=-1)
            with pytest.raises(aiportrait.InvalidArgument, match="RetryPolicy"):
                session.with_options(retry=3)  # type: ignore[arg-type]


def test_policy_validation_and_backoff() -> None:
    policy = RetryPolicy(base=1, cap=8)
    assert all(
        0 <= policy.backoff(n) <= min(8, 2 ** (n - 1)) for n in range(1, 10) for _ in range(20)
    )
    bad_values = (
        {"attempts": 0},
        {"base": 0},
        {"deadline": -1},
        {"charged_attempts": True},
        {"min_try": 0},
    )
    for bad in bad_values:
        with pytest.raises(ValueError, match="RetryPolicy"):
            RetryPolicy(**bad)
    assert RetryPolicy(deadline=None).deadline is None
    assert RetryPolicy.NEVER.tries(charged=False) == 1


# -- the wire --------------------------------------------------------------------------------------


async def test_job_and_batch_queries_send_the_official_sdks_headers() -> None:
    # What aiohttp itself adds (or not) shows only on a real socket.
    ok_batch = {"code": "OK", "data": {"jobs": []}}
    async with Server([(200, {}, OK_JOB), (200, {}, ok_batch)]) as server:
        async with Session(server.url, "a", "t") as session:
            await session.get_job(7)
            await session.get_batch_jobs(3)
    job, batch = (r.headers for r in server.requests)
    # POST /async_jobs/{id}: as the Go SDK, an empty body with Content-Length: 0, no type.
    assert "content-type" not in job
    assert job["content-length"] == "0"
    assert job["accept"] == "text/plain"
    # GET /batch_jobs/{id}: neither header.
    assert "content-type" not in batch
    assert "content-length" not in batch
    assert batch["accept"] == "text/plain"
