"""The dashboard's event stream: each open stream's bounded queue, and the events' wire form."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

__all__ = ["SUBSCRIBER_LIMIT", "Subscriber", "sse_event"]

#: Events a subscriber may have waiting; one more and it is told to resync.
SUBSCRIBER_LIMIT = 1000


def sse_event(name: str, data: str) -> bytes:
    """One server-sent event: its name and its data (one line of JSON)."""
    return f"event: {name}\ndata: {data}\n\n".encode()


class Subscriber:
    """One open event stream: the encoded events waiting for it, at most ``limit``.

    :meth:`offer` never blocks; a subscriber that has ``limit`` events waiting drops them all
    and is marked :attr:`behind` (its stream is told to resync and ends).
    """

    def __init__(self, limit: int = SUBSCRIBER_LIMIT) -> None:
        self._limit = limit
        self._events: deque[tuple[str, str]] = deque()
        self._ready = asyncio.Event()
        self.behind = False
        self.closed = False

    def offer(self, name: str, data: str) -> None:
        """Queue one event (``data``: its JSON text), or mark the subscriber behind."""
        if self.behind or self.closed:
            return
        if len(self._events) >= self._limit:
            self.behind = True
            self._events.clear()
        else:
            self._events.append((name, data))
        self._ready.set()

    def close(self) -> None:
        """End the stream (the emulator is stopping)."""
        self.closed = True
        self._ready.set()

    async def next_events(self, timeout: float) -> list[tuple[str, str]]:
        """The events queued since the last call, waiting up to ``timeout`` seconds for one
        (none when the time passed, or the subscriber is behind or closed)."""
        if not self._events and not self.behind and not self.closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        events = list(self._events)
        self._events.clear()
        return events
