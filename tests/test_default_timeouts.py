"""What each try is bounded by under the default timeout, and under one the caller gives."""

from __future__ import annotations

import aiohttp

import aiportrait
from aiportrait import Session
from tests._mock import mocked, sent

HOST = "https://h.example"
JOB = {"code": "OK", "data": {"job": {"id": 7, "state": 1}}}
PORTRAIT = {"code": "OK", "data": {"image": "aGk="}}


def _timeouts(mock: object) -> list[aiohttp.ClientTimeout]:
    """The per-try timeout of every request aiohttp was asked to send."""
    return [call["timeout"] for call in sent(mock)]  # type: ignore[arg-type]


async def test_reads_take_180_s_in_all_and_charged_calls_the_default_timeout() -> None:
    with mocked() as mock:
        mock.post(f"{HOST}/api/v1/async_jobs/7", payload=JOB)
        mock.post(f"{HOST}/api/v1/aigc_images/create", payload=PORTRAIT)
        async with Session(HOST, "a", "t") as session:
            await session.get_job(7)
            await session.create("m-1", "https://t/x.jpg")
        read, create = _timeouts(mock)
    assert read == aiportrait.DEFAULT_READ_TIMEOUT
    assert (read.total, read.connect, read.sock_connect, read.sock_read) == (180, 10, 10, None)
    # Nothing is cut later than under DEFAULT_TIMEOUT: 180 s in all, at most 180 s between bytes.
    assert read.total == aiportrait.DEFAULT_TIMEOUT.sock_read
    assert create == aiportrait.DEFAULT_TIMEOUT


async def test_a_timeout_the_caller_gives_bounds_every_call_as_given() -> None:
    mine = aiohttp.ClientTimeout(total=30, sock_read=20)
    with mocked() as mock:
        mock.post(f"{HOST}/api/v1/async_jobs/7", payload=JOB, repeat=True)
        async with Session(HOST, "a", "t", timeout=mine) as session:
            await session.get_job(7)
            await session.with_options(timeout=12).get_job(7)
        seen = _timeouts(mock)
    assert seen[0] == mine
    assert seen[1].total == 12
