"""Requests per second on Temporal, measured by the emulator's own log of arrival times
(``Counters.arrivals``), not by the client's account of itself.

Across processes: three ``aiportrait temporal worker --rate R`` processes share the limit the
Temporal server enforces on the charged calls' task queue (``<queue>-charged``). The server's
matching service (``service/matching``: ``rate_limit_manager.go``, ``matcher_data.go``; the dev
server here runs 1.32, and what it did matches) splits a task queue's rate over its read
partitions (``matching.numTaskqueueReadPartitions``, 4: measured here too, with R = 1 the last
busy partition dispatched one create every 4.0 s), and limits each with a GCRA of rate
``R / P`` and a burst of one second (``defaultBurstDuration``; a dispatch is allowed while the
ready time is not after now, so one more than a second's worth goes at once: with R = 4, 8
creates arrived within 0.21 s). A task takes its token in the partition where it is
dispatched (forwarded ones are not counted twice). So any span of W seconds holds at most
``(W + 1) * R / P + 1`` dispatches of each partition: ``R * W + R + P`` in all (the older
matcher's token buckets, burst ``max(ceil(R / P), 1)`` each, allow less). A create arrives
after its dispatch by the worker's own path (activity start, signing, loopback: milliseconds);
with R = 4, at most 9 arrived within a second against the bound of 12. Without ``--rate``, 24
creates (3 workers at ``--concurrency 8``) arrived within 0.3 s. Only upper bounds are
asserted: a slow machine spreads the creates out further.

In one process: the Session's own ``creations_per_second`` holds in a worker (a leaky bucket
of one, so any second holds at most ``per_second + 1``; see test_outage.py for the Session
alone).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import ReferenceCreateRequest
from aiportrait import temporal as at
from aiportrait.emulator import Emulator
from tests.test_temporal_crash import _start_worker, _stop

CREATE_PATH = "/api/v1/aigc_images/create"
QUICK = at.Timeouts(heartbeat=10.0, charged=120.0, read=30.0, retry_first=0.2, retry_cap=1.0)


def _creates(emu: Emulator, media: Any, n: int) -> list[tuple[str, Any]]:
    reference = emu.media_url(media.astronaut[0])
    template = emu.media_url(media.astronaut_template)
    return [(f"p{i:02d}", ReferenceCreateRequest(reference, f"{template}?v={i}")) for i in range(n)]


def _most(rate: float, seconds: float, partitions: int = 4) -> float:
    """The most dispatches the server lets through in a span of ``seconds`` (see above)."""
    return rate * seconds + rate * 1.0 + partitions


@pytest.mark.slow
async def test_a_rate_holds_across_three_worker_processes(
    temporal_server: Any, sample_media: Any, tmp_path: Path
) -> None:
    rate, n = 4.0, 28
    store_dir = tmp_path / "store"
    queue = f"rate-{uuid.uuid4().hex[:8]}"
    async with Emulator(serve_dir=sample_media.folder, data_dir=tmp_path / "emu") as emu:
        workers = await asyncio.gather(
            *(
                _start_worker(temporal_server, emu, queue, store_dir, "--rate", f"{rate:g}")
                for _ in range(3)
            )
        )
        try:
            client = await at.connect(temporal_server.address)
            store = at.LocalPortraitStore(store_dir)
            handle = await at.start_batch(
                client,
                _creates(emu, sample_media, n),
                store=store,
                task_queue=queue,
                limit=n,  # all at once: only the rate holds them back
                timeouts=QUICK,
            )
            summary = await asyncio.wait_for(at.result(handle), timeout=300)
        finally:
            await asyncio.gather(*(_stop(w) for w in workers))
        counters = emu.counters
    assert summary.counts == {"succeeded": n}
    assert counters.creations == n
    assert counters.charged_duplicates() == {}
    t0 = counters.arrivals[0][0]
    print("ARR", [round(t - t0, 2) for t, p in counters.arrivals if p == CREATE_PATH])
    for seconds in (1.0, 2.0, 4.0):
        most = counters.most_within(seconds, CREATE_PATH)
        assert most <= _most(rate, seconds), (seconds, most)


async def test_a_session_rate_holds_in_a_worker_and_charged_calls_have_their_queue(
    temporal_server: Any,
    temporal_emu: Emulator,
    sample_media: Any,
    tmp_path: Path,
) -> None:
    from temporalio.api.enums.v1 import EventType

    n = 9
    queue = f"rate-{uuid.uuid4().hex[:8]}"
    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path / "store")
    async with temporal_emu.session(creations_per_second=3) as session:
        worker = at.new_worker(client, session, store, task_queue=queue, rate=50)
        # the server's limit is on the charged calls' queue only: reads are not limited
        assert worker.charged.config()["max_task_queue_activities_per_second"] == 50
        assert worker.main.config().get("max_task_queue_activities_per_second") is None
        running = asyncio.ensure_future(worker.run())  # run() and shutdown(), as a Worker's
        try:
            handle = await at.start_batch(
                client,
                _creates(temporal_emu, sample_media, n),
                store=store,
                task_queue=queue,
                limit=n,
                timeouts=QUICK,
            )
            summary = await at.result(handle)
        finally:
            await worker.shutdown()
            await running
    assert summary.counts == {"succeeded": n}
    counters = temporal_emu.counters
    assert counters.creations == n
    assert counters.most_within(1.0, CREATE_PATH) <= 3 + 1
    queues: dict[str, set[str]] = {}
    patches: list[str] = []  # the patch markers' ids
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            data = event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
            patches.append(json.loads(data)["id"])
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            queues.setdefault(scheduled.activity_type.name, set()).add(scheduled.task_queue.name)
    assert queues.pop("aiportrait.create") == {at.charged_queue(queue)}
    assert all(used == {queue} for used in queues.values()), queues
    # the charged queue's patch once (replayed in tests/unit/test_charged_queue_replay.py)
    assert patches.count("aiportrait.charged-task-queue") == 1
