"""examples/web_temporal.py: trainings as workflows, streamed over SSE from queries; a restart of
the web process and of the worker loses nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

pytest.importorskip("temporalio")

from aiportrait import temporal as at
from aiportrait.emulator import Emulator

from ._examples import example
from ._sse import sse_events as _events

web_temporal = example("web_temporal")


async def test_a_training_streams_across_restarts_of_the_web_process_and_the_worker(
    temporal_server: Any, sample_media: Any, tmp_path: Path
) -> None:
    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"web-{uuid.uuid4().hex[:8]}"
    async with Emulator(train_seconds=4.0, serve_dir=sample_media.folder) as emu:
        photos = [emu.media_url(n) for n in sample_media.astronaut]
        app = web_temporal.make_app(client, store, task_queue=queue, every=0.05)
        async with (
            emu.session() as session,
            at.new_worker(client, session, store, task_queue=queue),
        ):
            async with TestClient(TestServer(app)) as http:
                answer = await http.post("/trainings", json={"photos": photos})
                assert answer.status == 202
                wid = (await answer.json())["id"]
                answer = await http.get(f"/trainings/{wid}/events")
                async for event, data in _events(answer):
                    if event == "progress" and data["stage"] == "training":
                        job = data["job"]
                        break
            # the web process is gone; the worker goes too, while the job runs
        seen: list[tuple[str, Any]] = []
        app = web_temporal.make_app(client, store, task_queue=queue, every=0.05)
        async with TestClient(TestServer(app)) as http:
            answer = await http.get(f"/trainings/{wid}/events")
            events = _events(answer)
            async for event, data in events:  # no worker: the stream waits
                seen.append((event, data))
                if event == "comment":
                    break
            async with (
                emu.session() as session,
                at.new_worker(client, session, store, task_queue=queue),
            ):
                async for event, data in events:
                    seen.append((event, data))
                now = await http.get(f"/trainings/{wid}")
                assert (await now.json())["result"]["model_id"] == job["model_id"]
                portrait = await http.post(
                    "/portraits",
                    json={
                        "model_id": job["model_id"],
                        "template": emu.media_url(sample_media.astronaut_template),
                    },
                )
                assert portrait.status == 200 and portrait.content_type == "image/jpeg"
                assert len(await portrait.read()) > 10_000
                bad = await http.post(
                    "/portraits",
                    json={
                        "model_id": "nope",
                        "template": emu.media_url(sample_media.astronaut_template),
                    },
                )
                assert bad.status == 422
                assert (await bad.json())["error"] == "ModelIdError"
        assert seen[-1][0] == "result" and seen[-1][1]["model_id"] == job["model_id"]
        assert ("comment", "waiting") in seen
        assert emu.counters.trainings == 1


async def test_bad_requests_and_unknown_ids(cluster: Any) -> None:
    app = web_temporal.make_app(cluster.client, cluster.store, task_queue=cluster.queue)
    async with TestClient(TestServer(app)) as http:
        assert (await http.post("/trainings", json={"nope": 1})).status == 400
        assert (await http.post("/trainings", data=b"{")).status == 400
        assert (await http.get("/trainings/no-such-id")).status == 404
        assert (await http.get("/trainings/no-such-id/events")).status == 404
        assert (await http.post("/portraits", json={})).status == 400
