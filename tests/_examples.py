"""The examples of ``examples/`` for the tests: importing one, and serving the two web examples
(``web_backend.py`` on aiohttp.web, ``fastapi_backend.py`` on FastAPI under uvicorn) on a
loopback port."""

from __future__ import annotations

import asyncio
import importlib
import io
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web
from PIL import Image

import aiportrait

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRAMEWORKS = ("aiohttp", "fastapi")
MODULES = {"aiohttp": "web_backend", "fastapi": "fastapi_backend"}
ENV_NAMES = ("AIPORTRAIT_HOST", "AIPORTRAIT_APP_ID", "AIPORTRAIT_TOKEN")
ENV_NAMES += ("HOST", "Host", "AppId", "APP_ID", "Token", "TOKEN")


def example(name: str) -> ModuleType:
    """An example module, imported from ``examples/``."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@asynccontextmanager
async def serving(
    framework: str,
    session_factory: Callable[[], aiportrait.Session],
    store: Path,
    **options: Any,
) -> AsyncIterator[str]:
    """Serve the example of ``framework`` on a free loopback port, as its ``main`` does;
    yields its base URL. ``options`` go to its ``make_app``."""
    app = example(MODULES[framework]).make_app(session_factory, store, **options)
    async with serving_app(framework, app) as base:
        yield base


@asynccontextmanager
async def serving_app(framework: str, app: Any) -> AsyncIterator[str]:
    """Serve an app of the example of ``framework`` on a free loopback port (its URL)."""
    module = example(MODULES[framework])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        if framework == "aiohttp":
            runner = module.runner(app)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            try:
                yield base
            finally:
                await runner.cleanup()
            return
        server = module.server(app)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield base
        finally:
            server.should_exit = True
            await task


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size
