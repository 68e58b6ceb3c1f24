"""``aiportrait temporal attach`` (and ``train``) following a training across a Temporal server
restart: the follower that may wait reconnects, the one that may not exits 3 with the exact
``attach`` command (a real local Temporal server, restarted; followers in real processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from tests.test_temporal_cli import restart_and_follow


@pytest.mark.slow
async def test_the_training_follower_survives_a_temporal_restart_or_exits_3_with_attach(
    temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    from aiportrait import temporal as at

    photos = [temporal_emu.media_url(n) for n in sample_media.astronaut]

    async def start(client: Any, store: Any, queue: str) -> Any:
        return await at.start_training(client, photos, task_queue=queue)

    _, out = await restart_and_follow(temporal_emu, tmp_path, "training", start)
    (result,) = out.splitlines()
    assert result.startswith("model ") and "training time" in result
    assert temporal_emu.counters.trainings == 1
