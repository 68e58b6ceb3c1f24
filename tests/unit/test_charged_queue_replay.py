"""Rolling upgrades across the patch that put charged activities on a task queue of their own
(``aiportrait.charged-task-queue`` in temporal/_calls.py).

``tests/data/temporal_batch_history_charged_queue.json``: a batch of two creates on the task
queue ``replay``, run by a worker with the patch (its creates scheduled on ``replay-charged``).
The history from before the patch replays in test_temporal.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("temporalio")

from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from aiportrait import temporal as at
from aiportrait.temporal import _calls

HISTORY = Path(__file__).parent.parent / "data" / "temporal_batch_history_charged_queue.json"


async def _replay() -> None:
    history = WorkflowHistory.from_json("charged", HISTORY.read_text())
    await at.new_replayer().replay_workflow(history)


async def test_a_batch_begun_with_the_charged_queue_replays() -> None:
    assert '"name": "replay-charged"' in HISTORY.read_text()
    await _replay()


async def test_a_worker_of_the_version_before_stops_at_the_patch_marker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Code that never asks for the patch (a worker of the version before) does not run the
    # workflow on: its workflow task fails at the marker and Temporal tries it again on another
    # worker, so an old worker never schedules a newer batch's charged calls on the task queue.
    monkeypatch.setattr(_calls, "_CHARGED_QUEUE", "aiportrait.a-patch-never-recorded")
    with pytest.raises(NondeterminismError, match="patch marker"):
        await _replay()
