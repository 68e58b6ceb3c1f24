"""What each try is bounded by under the default timeout, and under one the caller gives."""

from __future__ import annotations

import aiohttp

import aiportrait
from aiportrait import Session
from tests._mock import OK_IMAGE, OK_JOB, Fake


async def test_reads_take_180_s_in_all_and_charged_calls_the_default_timeout() -> None:
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t") as session:
            await session.get_job(7)
        (read,) = [arrival.timeout for arrival in fake.requests]
    with Fake([], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t") as session:
            await session.create("m-1", "https://t/x.jpg")
        (create,) = [arrival.timeout for arrival in fake.requests]
    assert read is not None
    assert (read.total, read.connect, read.sock_connect, read.sock_read) == (180, 10, 10, None)
    # Nothing is cut later than under DEFAULT_TIMEOUT: 180 s in all, at most 180 s between bytes.
    assert read.total == aiportrait.DEFAULT_TIMEOUT.sock_read
    assert create is aiportrait.DEFAULT_TIMEOUT


async def test_a_timeout_the_caller_gives_bounds_every_call_as_given() -> None:
    mine = aiohttp.ClientTimeout(total=30, sock_read=20)
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", timeout=mine) as session:
            await session.get_job(7)
            await session.with_options(timeout=12).get_job(7)
        given = [arrival.timeout for arrival in fake.requests]
    assert given[0] is mine
    assert given[1] is not None and given[1].total == 12
