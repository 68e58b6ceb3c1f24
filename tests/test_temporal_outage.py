"""The outage pause through the Temporal batch workflow, measured at the emulator over loopback.

An outage is the emulator answering 500 to every request that arrives (``Faults``) for 10 s
of real time, and for as long after that as the follower has not yet said that the batch is
paused (so that what is asserted never depends on how fast the machine is). The batch runs
through the command line (``aiportrait temporal batch``), its worker in this process; the
workflow's probes wait on Temporal timers.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import RetryPolicy
from aiportrait import temporal as at
from aiportrait.cli import main
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import ModelIdError, ServerError, TransportError
from aiportrait.testing import VirtualClock
from tests._mock import until

CREATE_PATH = "/api/v1/aigc_images/create"
PROBE_PATH = "/api/v1/batch_jobs/1"
OUTAGE = Faults(rate_5xx=1.0, status_5xx=500)


@pytest.fixture
def template(sample_media: Any) -> str:
    """A small template (256 px): 60 portraits composed in a few seconds."""
    from PIL import Image

    with Image.open(sample_media.folder / sample_media.astronaut_template) as image:
        image.convert("RGB").resize((256, 256)).save(sample_media.folder / "small_astronaut.jpg")
    return "small_astronaut.jpg"


async def test_an_outage_pauses_the_batch_workflow_and_leaves_at_most_the_calls_in_flight_unknown(
    temporal_server: Any,
    temporal_emu: Emulator,
    sample_media: Any,
    template: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = temporal_emu
    reference = emu.media_url(sample_media.astronaut[0])
    url = emu.media_url(template)
    # Each body its own (the emulator counts a body seen twice as charged twice).
    rows = [
        {"kind": "reference", "key": f"p{i}", "reference": reference, "template": f"{url}?i={i}"}
        for i in range(60)
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, err = io.StringIO(), io.StringIO()  # read while the command runs in its thread
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    where = ["--address", temporal_server.address, "--task-queue", queue]
    argv = ["temporal", "batch", str(batch), "--id", "outage-1", "--limit", "4", *where]
    # Two workers, two activities each, with a Session (and a client) each, as two processes
    # would: each worker's Session judges the service alone; the workflow pauses them both.
    first, second = emu.session(), emu.session()
    workers = [
        at.new_worker(await at.connect(temporal_server.address), s, store, task_queue=queue,
                      concurrency=2)
        for s in (first, second)
    ]  # fmt: skip
    async with first, second, workers[0], workers[1]:
        command = asyncio.ensure_future(
            asyncio.to_thread(main, [*argv, "--store", str(store.root)])
        )
        await until(lambda: emu.counters.creations >= 20, "20 portraits", seconds=300)
        emu.faults = OUTAGE
        on = time.monotonic()
        await asyncio.sleep(10)
        await until(lambda: "paused:" in err.getvalue(), "the follower's pause line", seconds=300)
        # Back: the first create after the pause is held at the service (charged, unanswered)
        # until the follower has said the batch goes on, so that it cannot end before.
        hold = emu.hold(CREATE_PATH)
        emu.faults = None
        off = time.monotonic()
        await until(lambda: "resumed" in err.getvalue(), "the follower's resumed line", seconds=300)
        hold.release()
        code = await command
        handle = (await at.connect(temporal_server.address)).get_workflow_handle("outage-1")
        progress = await handle.query(at.PortraitBatchWorkflow.progress, 0)  # a worker answers

    summary = await at.result(handle)
    outcomes = await at.read_outcomes(store, summary.outcome_pages)
    unknown = [o for o in outcomes if o.status == "unknown"]
    during = sum(on <= t <= off for t, p in emu.counters.arrivals if p == CREATE_PATH)
    # The creates that may end unknown are those written before any answer said the service
    # was down: at most the batch's 4 in flight. Every later one waited, or was refused
    # unsent by the worker and scheduled again after the pause.
    assert 1 <= len(unknown) <= 4
    assert during == len(unknown)
    assert all(o.error is not None and o.error.type == "SubmitOutcomeUnknown" for o in unknown)
    assert summary.counts == {"succeeded": 60 - len(unknown), "unknown": len(unknown)}
    assert emu.counters.creations == 60 - len(unknown)  # the 500s ran nothing
    assert not emu.counters.charged_duplicates()
    assert code == 4  # an item may have run
    assert out.getvalue().splitlines()[-1] == (
        f"batch outage-1: 60 items: {60 - len(unknown)} succeeded, {len(unknown)} unknown"
    )
    # The workflow paused (threshold failures in a row), probed until the service answered,
    # and said so: its progress, and the follower's one line for each change.
    assert progress.pauses >= 1 and progress.paused == ""
    notes = err.getvalue().splitlines()
    pauses = [n for n in notes if n.startswith("paused:")]
    assert pauses == [
        "paused: the service seems down (HTTP 500 SERVICE_ERROR); trainings and creations wait"
        " for it"
    ] * len(pauses)
    assert pauses and notes.count("resumed: the service answers") == len(pauses)
    probes = [t for t, p in emu.counters.arrivals if p == PROBE_PATH]
    assert any(t > off for t in probes)  # a probe, answered, decided when to go on
    # Its history (the pause's patch marker, timers and probe activities) replays alike.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "aiportrait.probe" in scheduled
    assert any(e.HasField("marker_recorded_event_attributes") for e in history.events)
    await _replayer().replay_workflow(history)


def _replayer() -> Any:
    return at.new_replayer()


async def test_a_charged_call_that_may_not_wait_probes_once_and_fails_unsent(
    temporal_emu: Emulator, aiportrait_instant_waits: VirtualClock
) -> None:
    # What the activities send with (RetryPolicy(hold=False)): a create that the Session's
    # outage breaker would hold sends one probe at once; while the service still seems down
    # it fails not sent (the workflow waits the outage out); once the probe answers, it goes.
    emu = temporal_emu
    template = "https://example.invalid/t.jpg"
    once = RetryPolicy(attempts=1, charged_attempts=1, deadline=None, hold=False)
    async with emu.session(retry=once) as session:
        emu.faults = OUTAGE
        with pytest.raises(ServerError):
            await session.get_batch_jobs(7)  # the Session now doubts the service
        with pytest.raises(TransportError) as info:
            await session.create("nope", template)
        assert info.value.sent is False
        assert "not sent: the service seemed down (HTTP 500 SERVICE_ERROR)" in str(info.value)
        emu.faults = None
        with pytest.raises(ModelIdError):  # the probe answered: the create went
            await session.create("nope", template)
    paths = [p for _, p in emu.counters.arrivals]
    assert paths == ["/api/v1/batch_jobs/7", PROBE_PATH, PROBE_PATH, CREATE_PATH]
    assert aiportrait_instant_waits.slept == []  # no wait between probes: the workflow's


async def _progress_until(handle: Any, holds: Any, what: str) -> Any:
    """The batch's progress once ``holds(progress)`` (polled; up to 180 s, as every wait here)."""
    for _ in range(3600):
        progress = await handle.query(at.PortraitBatchWorkflow.progress, 0)
        if holds(progress):
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("paged", [True, False], ids=["item-pages", "inline"])
async def test_a_stop_while_items_wait_in_a_pause_sends_none_and_the_resume_charges_each_once(
    paged: bool, cluster: Any, temporal_emu: Emulator, sample_media: Any, template: str
) -> None:
    from aiportrait import ReferenceCreateRequest

    emu = temporal_emu
    reference, url = emu.media_url(sample_media.astronaut[0]), emu.media_url(template)
    items = [(f"w{i:02d}", ReferenceCreateRequest(reference, f"{url}?w={i}")) for i in range(40)]
    handle = await at.start_batch(
        cluster.client, items, store=cluster.store if paged else None, task_queue=cluster.queue,
        limit=4,
    )  # fmt: skip
    await until(lambda: emu.counters.creations >= 4, "4 portraits", seconds=180)
    emu.faults = OUTAGE
    # Every slot waits in the pause: four items in flight, none of them sent.
    await _progress_until(handle, lambda p: p.paused and p.held == 4, "four items held")
    await at.stop_batch(handle)
    # The stop releases them: the batch comes to wait for its resume while the service is
    # still down (before, they waited in the pause, in flight, and went out once it answered).
    await _progress_until(handle, lambda p: p.waiting, "the stopped batch waits")
    stopped = await at.batch_summary(handle)
    succeeded, unknown = stopped.counts.get("succeeded", 0), stopped.counts.get("unknown", 0)
    assert (stopped.stopped, stopped.waiting, stopped.total) == ("request", True, 40)
    assert stopped.not_submitted == 40 - succeeded - unknown >= 4  # the four released
    assert emu.counters.creations == succeeded  # the 500s ran nothing; the held were not sent

    emu.faults = None
    await at.resume_batch(handle)
    latest = cluster.client.get_workflow_handle(handle.id)
    summary = await asyncio.wait_for(at.result(latest), 180)
    assert summary.counts == {
        "succeeded": 40 - unknown,
        **({"unknown": unknown} if unknown else {}),
    }
    assert summary.not_submitted == 0
    outcomes = await at.read_outcomes(cluster.store, summary.outcome_pages)
    assert sorted(o.key for o in outcomes) == [key for key, _ in items]  # each item once
    assert emu.counters.creations == 40 - unknown  # each charged at most once
    assert not emu.counters.charged_duplicates()
    # Both runs' histories (the stop that cut the pause's wait, and the resumed run that
    # read the released items back) replay.
    await _replayer().replay_workflow(await handle.fetch_history())
    await _replayer().replay_workflow(await latest.fetch_history())


async def test_a_stop_releases_a_training_that_waits_in_a_pause_before_its_submit(
    cluster: Any, temporal_emu: Emulator, sample_media: Any, template: str
) -> None:
    from aiportrait import PollPolicy, ReferenceCreateRequest, TrainRequest

    emu = temporal_emu
    url = emu.media_url
    items: list[tuple[str, Any]] = [
        ("c0", ReferenceCreateRequest(url(sample_media.astronaut[0]), url(template))),
        ("model", TrainRequest([url(name) for name in sample_media.astronaut])),
    ]
    emu.faults = OUTAGE  # down from the start: the create goes out (a 500: unknown), and
    handle = await at.start_batch(  # then the training waits for the service, one at a time
        cluster.client, items, store=cluster.store, task_queue=cluster.queue, limit=1,
        poll=PollPolicy(first=0.1, cap=0.3, jitter=0.0, timeout=120.0),
    )  # fmt: skip
    await _progress_until(handle, lambda p: p.read == 2 and p.held == 1, "the training held")
    await at.stop_batch(handle)
    await _progress_until(handle, lambda p: p.waiting, "the stopped batch waits")
    stopped = await at.batch_summary(handle)
    assert (stopped.counts, stopped.not_submitted) == ({"unknown": 1}, 1)
    assert emu.counters.trainings == 0  # its submit was never sent

    emu.faults = None
    await at.resume_batch(handle)
    latest = cluster.client.get_workflow_handle(handle.id)
    summary = await asyncio.wait_for(at.result(latest), 180)
    assert summary.counts == {"unknown": 1, "succeeded": 1}
    outcomes = await at.read_outcomes(cluster.store, summary.outcome_pages)
    assert [(o.key, o.kind, o.status) for o in outcomes] == [
        ("c0", "create", "unknown"),
        ("model", "train", "succeeded"),
    ]
    assert (emu.counters.trainings, emu.counters.creations) == (1, 0)
    assert not emu.counters.charged_duplicates()
    await _replayer().replay_workflow(await handle.fetch_history())
    await _replayer().replay_workflow(await latest.fetch_history())
