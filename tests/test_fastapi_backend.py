"""What is FastAPI's own in ``examples/fastapi_backend.py`` (the API both examples share is
tested once per framework in ``test_web_backend.py``): the Session of the lifespan handed to
the routes by a dependency, a port in use."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

import aiportrait
from aiportrait.emulator import Emulator
from tests._examples import example, serving, serving_app

fastapi_backend = example("fastapi_backend")


async def test_routes_get_the_one_session_of_the_lifespan_through_the_dependency(
    aiportrait_emulator: Emulator, tmp_path: Path
) -> None:
    sessions: list[aiportrait.Session] = []

    def factory() -> aiportrait.Session:
        sessions.append(aiportrait_emulator.session())
        return sessions[-1]

    async with serving("fastapi", factory, tmp_path / "trainings.json") as base:
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                assert (await client.get(f"{base}/trainings")).status == 200
        assert len(sessions) == 1 and not sessions[0].closed
    assert sessions[0].closed  # closed by the lifespan when the server stopped

    # The routes take it from the dependency: overridden, they use the override.
    app = fastapi_backend.make_app(factory, tmp_path / "trainings.json")
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{nobody.getsockname()[1]}"
        async with aiportrait.Session(url, "a", "t", retry=aiportrait.RetryPolicy.NEVER) as other:
            app.dependency_overrides[fastapi_backend.session] = lambda: other
            async with serving_app("fastapi", app) as base, aiohttp.ClientSession() as client:
                wanted = {"model_id": "m", "template": "http://127.0.0.1/t.jpg"}
                answer = await client.post(f"{base}/portraits", json=wanted)
                body = await answer.json()
    assert (answer.status, body["error"]) == (503, "ConnectError")
    assert aiportrait_emulator.counters.requests == 0


async def test_a_port_in_use_is_said_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert (
            await fastapi_backend.main(["--port", str(port), "--store", str(tmp_path / "t")]) == 2
        )
    assert capsys.readouterr().err == (
        f"fastapi_backend: port {port} is in use: give another --port\n"
    )
