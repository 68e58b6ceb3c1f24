"""The outage pause through the Temporal batch workflow, measured at the emulator over loopback.

An outage is the emulator answering 500 to every request that arrives (``Faults``) for 10 s
of real time, and for as long after that as the follower has not yet said that the batch is
paused (so that what is asserted never depends on how fast the machine is). The workflow's
probes wait on Temporal timers (short ones here).
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import OutagePolicy, ReferenceCreateRequest, RetryPolicy
from aiportrait import temporal as at
from aiportrait.cli._output import Output
from aiportrait.cli._temporalfollow import follow_batch_lines
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import ModelIdError, ServerError, TransportError
from aiportrait.testing import VirtualClock

CREATE_PATH = "/api/v1/aigc_images/create"
PROBE_PATH = "/api/v1/batch_jobs/1"
OUTAGE = Faults(rate_5xx=1.0, status_5xx=500)
QUICK = at.Timeouts(heartbeat=10.0, charged=120.0, read=30.0, retry_first=0.2, retry_cap=2.0)
PROBES = OutagePolicy(probe_interval=0.5, probe_cap=2.0)


async def until(predicate: Any, what: str, timeout: float = 300.0) -> None:
    """Wait (generously: the machine may be loaded) until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def template(sample_media: Any) -> str:
    """A small template (256 px): 60 portraits composed in a few seconds."""
    from PIL import Image

    with Image.open(sample_media.folder / sample_media.astronaut_template) as image:
        image.convert("RGB").resize((256, 256)).save(sample_media.folder / "small_astronaut.jpg")
    return "small_astronaut.jpg"


async def test_an_outage_pauses_the_batch_workflow_and_leaves_at_most_the_calls_in_flight_unknown(
    cluster: Any, temporal_emu: Emulator, sample_media: Any, template: str
) -> None:
    emu = temporal_emu
    reference = emu.media_url(sample_media.astronaut[0])
    url = emu.media_url(template)
    # Each body its own (the emulator counts a body seen twice as charged twice).
    items = [(f"p{i}", ReferenceCreateRequest(reference, f"{url}?item={i}")) for i in range(60)]
    handle = await at.start_batch(
        cluster.client,
        items,
        store=cluster.store,
        task_queue=cluster.queue,
        limit=4,
        timeouts=QUICK,
        outage=PROBES,
    )
    err = io.StringIO()
    out = Output(io.StringIO(), err, command="aiportrait temporal batch")
    follower = asyncio.ensure_future(
        follow_batch_lines(handle, cluster.store, out, 300.0, "", "aiportrait temporal attach")
    )
    await until(lambda: emu.counters.creations >= 20, "20 portraits")
    emu.faults = OUTAGE
    on, made = time.monotonic(), emu.counters.creations
    await asyncio.sleep(10)
    await until(lambda: "paused:" in err.getvalue(), "the follower's pause line")
    # Back: the first create after the pause is held at the service (charged, unanswered)
    # until the follower has said the batch goes on, so that it cannot end before.
    hold = emu.hold(CREATE_PATH)
    emu.faults = None
    off = time.monotonic()
    await until(lambda: "resumed" in err.getvalue(), "the follower's resumed line")
    hold.release()
    code = await follower

    summary = await at.result(handle)
    outcomes = await at.read_outcomes(cluster.store, summary.outcome_pages)
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
    assert made >= 20 and code != 0  # unknown items: the follower's exit code says so
    # The workflow paused (threshold failures in a row), probed until the service answered,
    # and said so: its progress, and the follower's one line for each change.
    progress = await handle.query(at.PortraitBatchWorkflow.progress, 0)
    assert progress.pauses >= 1 and progress.paused == ""
    notes = err.getvalue().splitlines()
    pauses = [n for n in notes if n.startswith("paused:")]
    assert pauses and all("(HTTP 500 SERVICE_ERROR)" in n for n in pauses)
    assert notes.count("resumed: the service answers") == len(pauses)
    probes = [t for t, p in emu.counters.arrivals if p == PROBE_PATH]
    assert any(t > off for t in probes)  # a probe, answered, decided when to go on


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
