"""``temporal batch --no-follow``: a Ctrl-C while the workflow starts still stops the batch (the
command does not follow it, so nothing else would)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiportrait import temporal as at
from aiportrait.cli import EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parents[2]


async def test_a_ctrl_c_while_a_no_follow_batch_starts_stops_it(
    cluster: Any, temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    emu, url = temporal_emu, temporal_emu.media_url
    rows = [
        {"kind": "reference", "key": f"n{i}", "reference": url(sample_media.astronaut[0]),
         "template": f"{url(sample_media.astronaut_template)}?nofollow={i}"}
        for i in range(6)
    ]  # fmt: skip
    batch = tmp_path / "nofollow.jsonl"
    batch.write_text("".join(json.dumps(row) + "\n" for row in rows))
    where = ["--address", cluster.server.address, "--task-queue", cluster.queue]
    where += ["--store", str(cluster.store.root), "--host", emu.url, "--app-id", emu.app_id]
    held = emu.hold()  # what starts waits on the service until the stop has reached the batch
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "unit" / "_nofollow_child.py"), "batch",
        str(batch), "--no-follow", "--limit", "1", *where, "--token", emu.token,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == EXIT_INTERRUPTED, err.decode()
    assert "aiportrait: stopping: no new item is started" in err.decode()
    workflow_id = out.decode().split()[1].rstrip(":")
    held.release()  # the stop reached it: the one item in flight finishes, nothing more starts
    handle = cluster.client.get_workflow_handle(workflow_id)
    for _ in range(3600):  # up to 180 s: it comes to wait for a resume
        stopped = await at.stopped_progress(handle)
        if stopped is not None and stopped.waiting:
            break
        await asyncio.sleep(0.05)
    summary = await at.batch_summary(handle)
    assert summary.waiting and summary.stopped == "request"
    assert emu.counters.creations == sum(summary.counts.values()) <= 1
    assert summary.not_submitted >= 5
    assert emu.counters.charged_duplicates() == {}
