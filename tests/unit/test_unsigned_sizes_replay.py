"""Rolling upgrades across the patch from which a batch measures its outcomes as Temporal
carries them now, presigned URLs cut before their query
(``aiportrait.outcomes-measured-unsigned`` in temporal/_batch_workflow.py): an outcome page
splits by those sizes, so a batch begun before measures as it did (its histories, in
tests/data, replay in the other replay tests).

``tests/data/temporal_batch_history_unsigned.json``: a batch (inline items, ``--check``) of a
training and a reference create of photos uploaded to the emulator's bucket as
``PresignedURL``, run on the task queue ``replay`` by a worker with the patch that presigned
them again (a one-off script: a DevServer, the emulator, ``new_worker(uploader=)``,
``handle.fetch_history()``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from aiportrait import temporal as at
from aiportrait.temporal import _batch_workflow

HISTORY = Path(__file__).parent.parent / "data" / "temporal_batch_history_unsigned.json"


def _data(value: Any) -> Iterator[str]:
    """Every payload's data in the history's JSON, decoded."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "data" and isinstance(item, str):
                yield base64.b64decode(item).decode("utf-8", "replace")
            else:
                yield from _data(item)
    elif isinstance(value, list):
        for item in value:
            yield from _data(item)


async def _replay() -> None:
    history = WorkflowHistory.from_json("unsigned", HISTORY.read_text())
    await at.new_replayer().replay_workflow(history)


async def test_a_batch_begun_with_the_patch_replays_and_holds_no_presigned_url() -> None:
    data = list(_data(json.loads(HISTORY.read_text())))
    assert any('"aiportrait.outcomes-measured-unsigned"' in d for d in data)
    assert any("aiportrait-local/aiportrait/" in d for d in data)  # the uploads' addresses
    assert not any("x-oss-signature" in d or "x-oss-credential" in d for d in data)
    await _replay()


async def test_a_worker_of_the_version_before_stops_at_the_patch_marker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_batch_workflow, "_UNSIGNED_SIZES", "aiportrait.a-patch-never-recorded")
    with pytest.raises(NondeterminismError, match="patch marker"):
        await _replay()
