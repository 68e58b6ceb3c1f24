"""A raw HTTP server that answers each request with the next scripted action, for retry tests.

Actions: ``(status, headers, body)`` answers; ``"drop"`` closes the connection after reading
the request; ``("sleep", seconds)`` waits, then answers OK. Every connection is closed after its
answer (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

OK_JOB = {"code": "OK", "data": {"job": {"state": 1}}}
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
OK_IMAGE = {"code": "OK", "data": {"image": PNG_1X1}}

Action = Any


class Scripted:
    """Serve scripted answers on loopback; ``requests`` records (time, path, body)."""

    def __init__(self, actions: list[Action], ok: dict[str, Any] | None = None) -> None:
        self.actions = list(actions)
        self.ok = ok or OK_JOB
        self.requests: list[tuple[float, str, bytes]] = []
        self.headers: list[dict[str, str]] = []
        """Each request's headers (names lower-cased), in order."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        fields = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        self.headers.append(fields)
        length = int(fields.get("content-length", "0"))
        body = await reader.readexactly(length)
        self.requests.append((time.monotonic(), path, body))
        action = self.actions.pop(0) if self.actions else (200, {}, self.ok)
        if action == "drop":
            writer.close()
            return
        if isinstance(action, tuple) and action[0] == "sleep":
            try:
                await asyncio.sleep(action[1])
            except asyncio.CancelledError:  # the test ended while this answer was held back
                writer.close()
                return
            action = (200, {}, self.ok)
        status, headers, payload = action
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n{extra}\r\n".encode()
            + data
        )
        try:
            await writer.drain()
        finally:
            writer.close()
