"""What each try is bounded by under the default timeout, and under one the caller gives."""

from __future__ import annotations

from typing import Any

import aiohttp

import aiportrait
from aiportrait import Session
from aiportrait._wire.transport import DEFAULT_READ_TIMEOUT
from tests._mock import OK_IMAGE, OK_JOB, Fake


def _spy(session: Session) -> list[tuple[str, aiohttp.ClientTimeout]]:
    """Record the path and per-try timeout of every try the Session's transport sends."""
    seen: list[tuple[str, aiohttp.ClientTimeout]] = []
    transport = session._transport
    call = transport.call

    async def recorded(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((path, kwargs["timeout"]))
        return await call(method, path, *args, **kwargs)

    transport.call = recorded  # type: ignore[method-assign]
    return seen


async def test_reads_take_180_s_in_all_and_charged_calls_the_default_timeout() -> None:
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t") as session:
            reads = _spy(session)
            await session.get_job(7)
    with Fake([], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t") as session:
            creates = _spy(session)
            await session.create("m-1", "https://t/x.jpg")
    ((_, read),), ((_, create),) = reads, creates
    assert read is DEFAULT_READ_TIMEOUT
    assert (read.total, read.connect, read.sock_connect, read.sock_read) == (180, 10, 10, None)
    # Nothing is cut later than under DEFAULT_TIMEOUT: 180 s in all, at most 180 s between bytes.
    assert read.total == aiportrait.DEFAULT_TIMEOUT.sock_read
    assert create is aiportrait.DEFAULT_TIMEOUT


async def test_a_timeout_the_caller_gives_bounds_every_call_as_given() -> None:
    mine = aiohttp.ClientTimeout(total=30, sock_read=20)
    with Fake([], ok=OK_JOB) as fake:
        async with Session(fake.url, "a", "t", timeout=mine) as session:
            seen = _spy(session)
            await session.get_job(7)
            await session.with_options(timeout=12).get_job(7)
    assert seen[0][1] is mine
    assert seen[1][1].total == 12
