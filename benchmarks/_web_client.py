"""The load generator's side of ``web_load.py``: a server-sent-event follower, a timed POST,
percentiles, and the log lines a run counts instead of printing."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import statistics
import time
from typing import Any

import aiohttp


@dataclasses.dataclass(frozen=True)
class Answer:
    """One request of the load generator: its outcome (the status, or what failed)."""

    outcome: str
    seconds: float
    end: float
    retry_after: float = 0.0


class LogCount(logging.Handler):
    """Counts the WARNING and ERROR lines of the run (by logger and level) instead of printing
    them, and keeps the first of each (its message's first line, shortened)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name} {record.levelname}"
        self.counts[key] += 1
        if key not in self.first:
            text = record.getMessage().splitlines()[0][:200]
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({type(record.exc_info[1]).__name__})"
            self.first[key] = ascii(text)


async def follow(client: aiohttp.ClientSession, url: str, *, leave: bool = False) -> list[str]:
    """The event names of one server-sent-event stream, read to its end (or its first event,
    then the connection is closed: ``leave``)."""
    names: list[str] = []
    async with client.get(url) as response:
        if response.status != 200:
            return [f"HTTP {response.status}"]
        async for line in response.content:
            if line.startswith(b"event:"):
                names.append(line[6:].strip().decode())
                if leave:
                    response.close()
                    break
    return names


async def call(
    client: aiohttp.ClientSession,
    url: str,
    timeout: float,
    *,
    body: dict[str, Any] | None = None,
    ticket: str | None = None,
) -> Answer:
    """One request, read whole within ``timeout``: a POST of ``body`` (``X-Ticket: ticket``
    when given), or a GET without one."""
    start = time.monotonic()
    retry_after = 0.0
    method = "GET" if body is None else "POST"
    headers = {} if ticket is None else {"X-Ticket": ticket}
    try:
        limit = aiohttp.ClientTimeout(total=timeout)
        async with client.request(
            method, url, json=body, headers=headers, timeout=limit
        ) as response:
            await response.read()
            outcome = str(response.status)
            with contextlib.suppress(ValueError):
                retry_after = float(response.headers.get("Retry-After", "0"))
    except asyncio.TimeoutError:
        outcome = "timeout"
    except aiohttp.ClientError as exc:
        outcome = type(exc).__name__
    end = time.monotonic()
    return Answer(outcome, end - start, end, retry_after)


async def fetch(client: aiohttp.ClientSession, url: str, most: float) -> Answer:
    """``GET url``, again after each ``202``'s ``Retry-After`` (a result still in progress), for
    at most ``most`` seconds; the last answer."""
    stop = time.monotonic() + most
    while True:
        answer = await call(client, url, most)
        wait = max(answer.retry_after, 0.1)
        if answer.outcome != "202" or time.monotonic() + wait > stop:
            return answer
        await asyncio.sleep(wait)


def percentile(values: list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[p - 1], 3)
