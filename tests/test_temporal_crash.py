"""The crash test: three worker processes run one batch (100 creates, 5 trainings) on a real
local Temporal server; one worker is killed with SIGKILL mid-batch and a fresh one started.

Every item must end succeeded, failed with its error, or unknown ("may have run"); by the
emulator's per-body fingerprints no charged call ran twice; every succeeded portrait is in the
store; a training whose submit had completed is resumed (same job, same model), not trained
again. Nothing here depends on the machine's speed: the kill happens after a count of outcomes,
and every wait is for an event, with a generous bound.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import PollPolicy, ReferenceCreateRequest, TrainRequest
from aiportrait import temporal as at
from aiportrait.emulator import Emulator

pytestmark = pytest.mark.slow

CREATE_PATH = "/api/v1/aigc_images/create"
TRAIN_PATH = "/api/v1/aigc_images/train"


async def _start_worker(server: Any, emu: Emulator, queue: str, store: Path, *options: str) -> Any:
    env = {
        **os.environ,
        "AIPORTRAIT_HOST": emu.url,
        "AIPORTRAIT_APP_ID": emu.app_id,
        "AIPORTRAIT_TOKEN": emu.token,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiportrait",
        "temporal",
        "worker",
        "--address",
        server.address,
        "--task-queue",
        queue,
        "--store",
        str(store),
        "--concurrency",
        "8",
        *options,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
    assert line.startswith(b"worker on"), line
    return process


async def _stop(process: Any) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=60)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


async def test_a_worker_killed_mid_batch_charges_nothing_twice_and_loses_nothing(
    temporal_server: Any, sample_media: Any, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    store = at.LocalPortraitStore(store_dir)
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    async with Emulator(
        train_seconds=6.0, serve_dir=sample_media.folder, data_dir=tmp_path / "emu"
    ) as emu:
        url = emu.media_url
        people = [sample_media.astronaut, sample_media.hopper]
        items: list[tuple[str, Any]] = [
            (f"train-{j}", TrainRequest([f"{url(n)}?set={j}" for n in people[j % 2]]))
            for j in range(5)
        ]
        for i in range(100):
            person = people[i % 2]
            items.append(
                (
                    f"create-{i:03d}",
                    ReferenceCreateRequest(
                        url(person[i % 5]), f"{url(sample_media.templates[i % 2])}?v={i}"
                    ),
                )
            )
        workers = [await _start_worker(temporal_server, emu, queue, store_dir) for _ in range(3)]
        try:
            client = await at.connect(temporal_server.address)
            handle = await at.start_batch(
                client,
                items,
                store=store,
                task_queue=queue,
                limit=12,
                page=25,
                per_run=40,
                poll=PollPolicy(first=0.2, cap=1.0, jitter=0.0, timeout=300.0),
                timeouts=at.Timeouts(heartbeat=10.0, charged=120.0, read=30.0, retry_cap=2.0),
            )
            # Wait for 20 outcomes and every training's submit to have ended (on a loaded
            # machine a submit may end "unknown"), noting the job of each one that got a job.
            jobs: dict[str, Any] = {}
            settled: set[str] = set()
            for _ in range(6000):
                progress = await handle.query(at.PortraitBatchWorkflow.progress, 0)
                done = sum(progress.counts.values())
                if done >= 20:
                    for j in range(5):
                        key = f"train-{j}"
                        if key in settled:
                            continue
                        child = client.get_workflow_handle(f"{handle.id}/train/{key}")
                        try:
                            seen = await child.query(at.TrainWorkflow.progress)
                        except Exception:
                            continue
                        if seen.job is not None:
                            jobs[key] = seen.job
                            settled.add(key)
                        elif seen.stage in ("failed", "unknown"):
                            settled.add(key)
                    if len(settled) == 5:
                        break
                await asyncio.sleep(0.05)
            assert len(settled) == 5, "the trainings' submits never all ended"
            assert jobs, "no training was submitted before the kill: nothing was tested"
            assert done < len(items), "the batch ended before the kill: nothing was tested"

            workers[0].kill()  # SIGKILL: no goodbye to the server, activities in flight lost
            await workers[0].wait()
            workers.append(await _start_worker(temporal_server, emu, queue, store_dir))

            summary = await asyncio.wait_for(at.result(handle), timeout=600)
        finally:
            for process in workers:
                await _stop(process)

        assert summary.total == len(items)
        assert sum(summary.counts.values()) == len(items)
        outcomes = await at.read_outcomes(store, summary.outcome_pages)
        assert sorted(o.key for o in outcomes) == sorted(k for k, _ in items)
        for outcome in outcomes:
            assert outcome.status in ("succeeded", "failed", "unknown")
            if outcome.status != "succeeded":
                assert outcome.error is not None and outcome.error.type
        # No charged call ran twice.
        assert emu.counters.charged_duplicates() == {}
        assert emu.counters.creations == len(
            [k for k in emu.counters.fingerprints if k[0] == CREATE_PATH]
        )
        # Every succeeded portrait is in the store, whole.
        for outcome in outcomes:
            if outcome.status == "succeeded" and outcome.kind == "create":
                assert outcome.portrait is not None
                assert len(await store.get(outcome.portrait.uri)) == outcome.portrait.size
        # No training was sent twice, and one submitted before the kill was resumed, not
        # trained again: it succeeded with the model of its job.
        trained = [k for k in emu.counters.fingerprints if k[0] == TRAIN_PATH]
        assert emu.counters.trainings == len(trained) <= 5
        by_key = {o.key: o for o in outcomes}
        for key, job in jobs.items():
            outcome = by_key[key]
            assert outcome.status == "succeeded", outcome
            assert outcome.result is not None and outcome.result.model_id == job.model_id
        print(f"\ncrash test: {summary.counts}")
