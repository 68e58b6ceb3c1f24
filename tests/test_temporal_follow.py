"""``aiportrait temporal attach`` (and ``train``) following a training across a Temporal server
restart: the follower that may wait reconnects, the one that may not exits 3 with the exact
``attach`` command (a real local Temporal server, restarted; followers in real processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from tests.test_temporal_cli import _free_port, restart_and_follow


@pytest.mark.slow
async def test_the_training_follower_survives_a_temporal_restart_or_exits_3_with_attach(
    temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    from aiportrait import temporal as at

    server = at.DevServer(ui=False, port=_free_port(), db_file=tmp_path / "t.db")
    await server.start()
    store = at.LocalPortraitStore(tmp_path / "store")
    photos = [temporal_emu.media_url(n) for n in sample_media.astronaut]
    try:
        client = await at.connect(server.address)
        handle = await at.start_training(client, photos, task_queue="restart-train")
        out = await restart_and_follow(
            temporal_emu, server, store, "restart-train", handle.id, "training"
        )
        (result,) = out.splitlines()
        assert result.startswith("model ") and "training time" in result
        assert temporal_emu.counters.trainings == 1
    finally:
        await server.stop()
