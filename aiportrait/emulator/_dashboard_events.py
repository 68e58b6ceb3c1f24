"""The dashboard's event stream: each open stream's bounded queue, and the events' wire form.

Two kinds of change reach a :class:`Subscriber`: an event encoded once, queued in order (a job's
states, a portrait, an object, the faults: :meth:`Subscriber.offer`), and a mark that something
moved whose newest state the stream builds once per write (the requests and the charges, which
move with every API request: :meth:`Subscriber.mark`, a set entry and nothing encoded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any

__all__ = ["SUBSCRIBER_LIMIT", "Subscriber", "event_json", "sse_event"]

#: Events a subscriber may have waiting; one more and it is told to resync.
SUBSCRIBER_LIMIT = 1000


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def event_json(value: Any) -> str:
    """An event's data: ``value`` as one line of compact JSON."""
    return _ENCODER.encode(value)


def sse_event(name: str, data: str) -> bytes:
    """One server-sent event: its name and its data (one line of JSON)."""
    return f"event: {name}\ndata: {data}\n\n".encode()


class Subscriber:
    """One open event stream: the encoded events waiting for it, at most ``limit``, and the names
    of what moved since its last write.

    :meth:`offer` and :meth:`mark` never block; a subscriber that has ``limit`` events waiting
    drops them all and is marked :attr:`behind` (its stream is told to resync and ends).
    """

    def __init__(self, limit: int = SUBSCRIBER_LIMIT) -> None:
        self._limit = limit
        self._events: deque[tuple[str, str]] = deque()
        self._moved: set[str] = set()
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

    def mark(self, name: str) -> None:
        """Note that ``name`` moved ("request", "charges"): its newest state goes out with the
        next write, built then."""
        if not (self.behind or self.closed):
            self._moved.add(name)
            self._ready.set()

    def close(self) -> None:
        """End the stream (the emulator is stopping)."""
        self.closed = True
        self._ready.set()

    async def next_events(self, timeout: float) -> tuple[list[tuple[str, str]], set[str]]:
        """The events queued and the names marked since the last call, waiting up to
        ``timeout`` seconds for one (none when the time passed, or the subscriber is behind or
        closed)."""
        if not (self._events or self._moved or self.behind or self.closed):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        events, moved = list(self._events), self._moved
        self._events.clear()
        self._moved = set()
        return events, moved
