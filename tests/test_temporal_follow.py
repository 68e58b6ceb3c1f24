"""``aiportrait temporal attach`` (and ``train``) following a training across a Temporal server
restart: the follower that may wait reconnects, the one that may not exits 3 with the exact
``attach`` command (a real local Temporal server, restarted; followers in real processes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from tests.test_temporal_cli import _free_port, _line_with


@pytest.mark.slow
async def test_the_training_follower_survives_a_temporal_restart_or_exits_3_with_attach(
    temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    from aiportrait import temporal as at

    port = _free_port()
    server = at.DevServer(ui=False, port=port, db_file=tmp_path / "t.db")
    await server.start()
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = "restart-train"
    photos = [temporal_emu.media_url(n) for n in sample_media.astronaut]
    client = await at.connect(server.address)
    handle = await at.start_training(client, photos, task_queue=queue)  # no worker yet
    where = ["--address", server.address, "--store", str(store.root)]

    async def follower(reconnect: str) -> Any:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiportrait", "temporal", "attach", handle.id, *where,
            "--reconnect", reconnect,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    stays, gives_up = await follower("600"), await follower("1")
    try:
        for process in (stays, gives_up):  # each is following: no worker answers its queries
            await _line_with(process, "no answer to the progress query")
        await server.stop()
        for process in (stays, gives_up):
            await _line_with(process, "Temporal does not answer (")
        _, err = await asyncio.wait_for(gives_up.communicate(), 180)
        assert gives_up.returncode == 3
        line = [x for x in err.decode().splitlines() if x.startswith("aiportrait: error:")][-1]
        assert line.startswith(f"aiportrait: error: ConnectError: Temporal at {server.address} ")
        assert line.endswith(
            "the training goes on without this follower: follow it again with: aiportrait "
            f"temporal attach {handle.id} --address {server.address} --store {store.root}"
        )
        await server.start()  # the same port and database: the training is still there
        client = await at.connect(server.address)
        async with temporal_emu.session() as session:
            async with at.new_worker(client, session, store, task_queue=queue):
                await _line_with(stays, "Temporal answers again")
                out, err = await asyncio.wait_for(stays.communicate(), 180)
        assert stays.returncode == 0, err
        (result,) = out.decode().splitlines()
        assert result.startswith("model ") and "training time" in result
        assert temporal_emu.counters.trainings == 1
    finally:
        for process in (stays, gives_up):
            if process.returncode is None:
                process.kill()
                await process.wait()
        await server.stop()
