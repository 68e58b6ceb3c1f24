"""The one loopback HTTP server, for the unit tests about the wire itself.

Most unit tests fake the service with aioresponses (:mod:`tests._mock`). A few need a real
socket: what aiohttp itself writes (headers it adds or leaves out, the raw bytes a signature
covers), what its HTTP parser does (decompression), a try hung on a real connection that a
deadline or a cancel must cut, and how many requests the server sees at once.

:class:`Server` answers with the same actions, routes and records as :class:`tests._mock.Fake`
(see there); ``Arrival.headers`` are the headers as received, ``Arrival.body`` the raw bytes.
An answer whose headers say ``Transfer-Encoding: chunked`` goes out in chunks, without a
Content-Length. Exceptions are not actions here: a real server answers, or
(:func:`tests._mock.hang`) never does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from tests._mock import OK_IMAGE, OK_JOB, PNG_1X1, Arrival, Script, hang

__all__ = ["OK_IMAGE", "OK_JOB", "PNG_1X1", "Server", "closed_url", "hang"]

CHUNK = 1000
"""An answer with ``Transfer-Encoding: chunked`` is written in pieces of this many bytes."""


class Server(Script):
    """Scripted answers on 127.0.0.1; use it as ``async with Server(...) as server:``."""

    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        assert self._runner is not None
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def __aenter__(self) -> Server:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Answers still held back at the end (hung tries) are cancelled after a tenth.
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrival = Arrival(
            method=request.method,
            path=request.path,
            body=await request.read(),
            headers={k.lower(): v for k, v in request.headers.items()},
            at=time.monotonic(),
        )
        status, headers, body = await self.answer(arrival)
        fields = {"Content-Type": "application/json", **headers}
        if fields.pop("Transfer-Encoding", None) != "chunked":
            return web.Response(status=status, body=body, headers=fields)
        response = web.StreamResponse(status=status, headers=fields)  # no Content-Length
        response.enable_chunked_encoding()
        await response.prepare(request)
        for at in range(0, len(body), CHUNK):
            await response.write(body[at : at + CHUNK])
        await response.write_eof()
        return response


async def closed_url() -> str:
    """An address on 127.0.0.1 where nothing listens (connections are refused)."""
    server = await asyncio.start_server(_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"127.0.0.1:{port}"


def _nothing(*_: Any) -> None:
    pass
