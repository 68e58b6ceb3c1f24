"""A batch begun before a stop won over a resume that came with it: its history (made by that
code: parked at its budget, then ``resume`` and ``stop`` in one activation, so the resume went
on and the run continued as new) replays on the workflow's code as it ran."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("temporalio")

from temporalio.client import WorkflowHistory

from aiportrait import temporal as at

HISTORY = Path(__file__).parent.parent / "data" / "temporal_batch_history_resume_then_stop.json"


async def test_a_history_where_a_resume_went_on_before_a_stop_replays() -> None:
    history = WorkflowHistory.from_json("resume-then-stop", HISTORY.read_text())
    await at.new_replayer(data_converter=at.data_converter).replay_workflow(history)
