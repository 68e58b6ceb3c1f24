"""Retries: read-only calls retry what is safe; charged calls never risk a second submission."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait.testing import VirtualClock
from tests._scripted import OK_IMAGE, OK_JOB, Scripted

FAST = RetryPolicy(base=0.01, cap=0.02)


def _err(status: int, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    return (status, headers or {}, {"code": "ERR", "message": f"status {status}"})


async def test_reads_retry_5xx_drops_and_timeouts_then_succeed() -> None:
    actions = [_err(500), "drop", ("sleep", 0.5), _err(502)]
    async with Scripted(actions) as server:
        timeout = aiportrait.DEFAULT_TIMEOUT.__class__(total=0.25)
        async with Session(server.url, "a", "t", retry=RetryPolicy(attempts=5, base=0.01),
                           timeout=timeout) as session:  # fmt: skip
            job = await session.get_job(1)
    assert job.state is aiportrait.JobState.RUNNING
    assert len(server.requests) == 5


async def test_reads_give_up_after_the_attempts() -> None:
    async with Scripted([_err(503)] * 5) as server:
        async with Session(server.url, "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.ServerError) as info:
                await session.check_images(["https://x/a.jpg"])
    assert info.value.status == 503
    assert len(server.requests) == FAST.attempts


async def test_retry_after_is_honoured(aiportrait_instant_waits: VirtualClock) -> None:
    async with Scripted([_err(503, {"Retry-After": "30"})]) as server:
        async with Session(server.url, "a", "t", retry=FAST) as session:
            await session.get_job(1)
    assert len(server.requests) == 2
    assert aiportrait_instant_waits.slept == [30.0]


async def test_a_too_long_retry_after_is_not_waited_for(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    async with Scripted([_err(503, {"Retry-After": "3600"})]) as server:
        async with Session(server.url, "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.ServerError) as info:
                await session.get_job(1)
    assert aiportrait_instant_waits.slept == []
    assert info.value.retry_after == 3600
    assert len(server.requests) == 1


async def test_the_deadline_bounds_all_tries(aiportrait_instant_waits: VirtualClock) -> None:
    policy = RetryPolicy(attempts=50, base=2.0, cap=2.0, deadline=20.0, min_try=1.0)
    async with Scripted([_err(500)] * 50) as server:
        async with Session(server.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.ServerError):
                await session.get_job(1)
    # Every retry started with at least min_try left of the deadline.
    assert aiportrait_instant_waits.time + policy.min_try <= policy.deadline
    assert 2 <= len(server.requests) < 50


async def test_a_retry_that_could_not_finish_is_not_started(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # After the 9.5 s Retry-After, 0.5 s would be left of the 10 s deadline: less than min_try.
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=10.0, min_try=1.0)
    async with Scripted([_err(503, {"Retry-After": "9.5"})]) as server:
        async with Session(server.url, "a", "t", retry=policy) as session:
            with pytest.raises(aiportrait.ServerError) as info:
                await session.get_job(1)
    assert info.value.status == 503  # the real failure, not a timeout of a hopeless try
    assert len(server.requests) == 1
    assert aiportrait_instant_waits.slept == []


async def test_a_deadline_that_ends_a_run_of_failures_raises_the_last_real_failure(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    # The second try hangs; the deadline (real time: a cancel scope) cuts it short.
    policy = RetryPolicy(base=0.01, cap=0.02, deadline=2.0, min_try=0.1)
    async with Scripted([_err(500), ("sleep", 60)]) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=120) as session:
            with pytest.raises(aiportrait.ServerError) as info:
                await session.get_job(1)
    assert info.value.status == 500
    assert len(server.requests) == 2


async def test_the_deadline_is_enforced_without_changing_the_aiohttp_timeout() -> None:
    # One try, a generous per-try timeout, a short deadline: the deadline wins.
    policy = RetryPolicy(attempts=1, deadline=1.0, min_try=0.1)
    timeout = aiportrait.DEFAULT_TIMEOUT
    async with Scripted([("sleep", 60)]) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=timeout) as session:
            with pytest.raises(aiportrait.RequestTimeout, match="deadline"):
                await session.get_job(1)
    assert timeout.total == 300  # the caller's object is untouched


async def test_a_charged_try_cut_by_the_deadline_may_have_run() -> None:
    policy = RetryPolicy(deadline=1.0, min_try=0.1)
    async with Scripted([("sleep", 60)], ok=OK_IMAGE) as server:
        async with Session(server.url, "a", "t", retry=policy, timeout=120) as session:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await session.create("m-1", "https://t/x.jpg")
    assert isinstance(info.value.__cause__, aiportrait.RequestTimeout)
    assert len(server.requests) == 1


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


async def _create(server: Scripted, **kw: Any) -> aiportrait.Portrait:
    async with Session(server.url, "a", "t", retry=FAST, **kw) as session:
        return await session.create("m-1", "https://t/x.jpg")


async def test_charged_503_with_retry_after_and_429_are_retried() -> None:
    actions = [_err(503, {"Retry-After": "0"}), _err(429, {"Retry-After": "0"})]
    async with Scripted(actions, ok=OK_IMAGE) as server:
        portrait = await _create(server)
    assert portrait.format == "png"
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_charged_5xx_without_retry_after_is_not_retried(status: int) -> None:
    async with Scripted([_err(status)], ok=OK_IMAGE) as server:
        with pytest.raises(aiportrait.AIPortraitError) as info:
            await _create(server)
    assert len(server.requests) == 1
    if status == 503:  # "not taken": a plain error
        assert isinstance(info.value, aiportrait.ServerError)
    else:  # a gateway or backend failure, maybe after the work started
        assert isinstance(info.value, aiportrait.SubmitOutcomeUnknown)
        assert isinstance(info.value.__cause__, aiportrait.ServerError)


@pytest.mark.parametrize(
    ("action", "cause"),
    [
        ("drop", aiportrait.ConnectError),
        (("sleep", 1.0), aiportrait.RequestTimeout),
        ((200, {}, b'{"code": "OK", "data": {"ima'), aiportrait.MalformedResponse),
    ],
)
async def test_ambiguous_charged_failures_raise_submit_outcome_unknown(
    action: Any, cause: type[Exception]
) -> None:
    timeout = aiportrait.DEFAULT_TIMEOUT.__class__(total=0.3)
    async with Scripted([action], ok=OK_IMAGE) as server:
        with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
            await _create(server, timeout=timeout)
    assert len(server.requests) == 1  # never sent twice
    err = info.value
    assert isinstance(err.__cause__, cause)
    assert err.action == "create"
    assert err.request == json.loads(server.requests[0][2])  # what was sent
    assert "not sent again" in str(err)


async def test_train_is_retried_only_when_it_never_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with caplog.at_level(logging.DEBUG, "aiportrait"):
        async with Session(f"127.0.0.1:{port}", "a", "t", retry=FAST) as session:
            with pytest.raises(aiportrait.ConnectError) as info:
                await session.train(["https://x/a.jpg"])
    assert info.value.sent is False
    tries = [r for r in caplog.records if "could not connect" in r.getMessage()]
    assert len(tries) == FAST.charged_attempts - 1
    assert all(hasattr(r, "attempt") and hasattr(r, "wait") for r in tries)
    assert "next try in" in tries[0].getMessage()


async def test_with_options_per_call() -> None:
    async with Scripted([("sleep", 0.5)]) as server:
        async with Session(server.url, "a", "t", retry=RetryPolicy.NEVER) as session:
            quick = session.with_options(timeout=0.2)
            with pytest.raises(aiportrait.RequestTimeout):
                await quick.get_job(1)
            await quick.aclose()  # a view: closing it leaves the session open
            assert not session.closed
            patient = session.with_options(retry=RetryPolicy(attempts=2, base=0.01))
            assert (await patient.get_job(1)).state is aiportrait.JobState.RUNNING
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
    ok_batch = {"code": "OK", "data": {"jobs": []}}
    async with Scripted([(200, {}, OK_JOB), (200, {}, ok_batch)]) as server:
        async with Session(server.url, "a", "t") as session:
            await session.get_job(7)
            await session.get_batch_jobs(3)
    job, batch = server.headers
    # POST /async_jobs/{id}: as the Go SDK, an empty body with Content-Length: 0, no type.
    assert "content-type" not in job
    assert job["content-length"] == "0"
    assert job["accept"] == "text/plain"
    # GET /batch_jobs/{id}: neither header.
    assert "content-type" not in batch
    assert "content-length" not in batch
    assert batch["accept"] == "text/plain"
