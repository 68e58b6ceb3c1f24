"""Rolling upgrades across the patch that pauses a workflow's charged activities in an outage
(``aiportrait.outage-pause`` in temporal/_pause.py).

``tests/data/temporal_batch_history_outage_pause.json``: a batch of three creates on the task
queue ``replay`` at ``limit=1``, run by a worker with the patch, the emulator answering 500 to
everything until four probes had arrived: the first create ended ``unknown``, the workflow
paused (probe activities on Temporal timers), and the other two succeeded once a probe was
answered. ``tests/data/temporal_batch_history_before_outage_pause.json``: a batch of two
creates, the first ``unknown`` (a 500), run by code that never asks for the patch (the version
before it, with the store lookup and the charged queue). Both made by one-off scripts (a
DevServer, the emulator, ``new_worker``, ``handle.fetch_history()``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("temporalio")

from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from aiportrait import temporal as at
from aiportrait.temporal import _pause

DATA = Path(__file__).parent.parent / "data"
HISTORY = DATA / "temporal_batch_history_outage_pause.json"
BEFORE = DATA / "temporal_batch_history_before_outage_pause.json"


async def _replay(history: str = HISTORY.read_text()) -> None:
    await at.new_replayer().replay_workflow(WorkflowHistory.from_json("outage", history))


def test_the_history_has_a_pause() -> None:
    events = json.loads(HISTORY.read_text())["events"]
    scheduled = [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if "activityTaskScheduledEventAttributes" in e
    ]
    assert scheduled.count("aiportrait.probe") >= 3  # the pause's probes, the last answered
    assert scheduled.count("aiportrait.create") == 3
    assert any("timerStartedEventAttributes" in e for e in events)  # probes on timers


async def test_a_batch_that_paused_replays() -> None:
    await _replay()


async def test_a_batch_begun_before_the_pause_replays_as_it_ran() -> None:
    # Its unknown create's 500 says the service is down, but no marker says to pause: the
    # new code schedules the next create as the old one did, with no probe.
    assert '"aiportrait.probe"' not in BEFORE.read_text()
    assert '"SubmitOutcomeUnknown"' in BEFORE.read_text()
    await _replay(BEFORE.read_text())


async def test_a_worker_of_the_version_before_stops_at_the_patch_marker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Code that never asks for the patch (a worker of the version before) does not run the
    # workflow on: its workflow task fails at the marker, so an old worker never schedules a
    # create that a newer batch holds back in a pause.
    monkeypatch.setattr(_pause, "_PATCH", "aiportrait.a-patch-never-recorded")
    with pytest.raises(NondeterminismError, match=r"aiportrait\.outage-pause"):
        await _replay()
