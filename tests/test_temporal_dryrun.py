"""``aiportrait temporal batch FILE --dry-run`` and :func:`aiportrait.temporal.batch_state`:
the file read and checked (the photo check on this machine included), what a run would charge,
and what Temporal holds of the batch already; nothing uploaded, started, sent or charged
(the emulator's counters say so)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from temporalio.api.enums.v1 import EventType

from aiportrait import ReferenceCreateRequest, cli
from aiportrait import temporal as at
from tests.test_budget import local_rows
from tests.test_temporal_cli import _batch_file, _closed_address, _references, _where


def _sent(emu: Any) -> int:
    """Requests the emulator saw: the service's and its bucket's (uploads)."""
    bucket = emu.bucket
    return emu.counters.requests + bucket.puts + bucket.heads + bucket.gets + bucket.refused


async def _cli(emu: Any, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``aiportrait temporal ARGS`` with the emulator's credentials; its stdout."""
    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", emu.token]
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["temporal", *args, *creds])
    return code, capsys.readouterr().out


def _three(cluster: Any, emu: Any, media: Any, path: Path) -> tuple[Path, list[str]]:
    """A batch file of 3 references at ``path`` (distinct by its name), and the cluster's
    options."""
    return _batch_file(path, _references(emu, media, 3, path.stem)), _where(cluster)


async def test_a_dry_run_without_temporal_checks_local_photos_and_uploads_nothing(
    temporal_emu: Any, sample_media: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch_file(tmp_path / "local.jsonl", local_rows(sample_media))
    address = _closed_address()
    store = tmp_path / "store"
    args = ["batch", str(batch), "--dry-run", "--address", address, "--store", str(store)]
    code, out = await _cli(temporal_emu, capsys, *args, "--json")
    assert code == cli.EXIT_BATCH_FAILED  # an item would be refused; no Temporal is no error
    doc = json.loads(out)
    assert doc["type"] == "dry_run" and doc["charged"] == {"train": 1, "create": 1}
    assert doc["refused"][0]["key"] == "bad"
    assert "failed the check on this machine" in doc["refused"][0]["reason"]
    assert doc["workflow"]["exists"] is None
    assert doc["workflow"]["why"].startswith(f"cannot reach Temporal at {address}")
    code, text = await _cli(temporal_emu, capsys, *args)
    assert code == cli.EXIT_BATCH_FAILED
    lines = text.splitlines()
    assert lines[0].startswith("refused bad  ")
    assert lines[1] == f"dry run of {batch}: nothing was uploaded, started or charged"
    assert lines[2] == (
        "trainings: 2 in the file; 1 refused before sending, 1 would be charged now"
    )
    assert lines[3] == "creations: 1 in the file; 1 would be charged now"
    assert lines[4].startswith(f"could not ask Temporal (cannot reach Temporal at {address}")
    assert lines[4].endswith(
        f"if workflow {doc['workflow']['id']} was started before, a run follows it and charges"
        " nothing, else it charges what follows"
    )
    assert lines[5:] == ["would charge now: 1 training, 1 creation"]
    assert _sent(temporal_emu) == 0  # nothing uploaded, nothing sent
    assert not store.exists()


async def test_a_dry_run_says_what_temporal_has_and_a_run_after_it_charges_nothing_again(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch, where = _three(cluster, temporal_emu, sample_media, tmp_path / "dry.jsonl")
    code, before = await _cli(temporal_emu, capsys, "batch", str(batch), "--dry-run", *where)
    assert code == 0, before
    lines = before.splitlines()
    assert lines[1] == "creations: 3 in the file; 3 would be charged now"
    assert lines[2].startswith("workflow batch-")
    assert lines[2].endswith(" was not started before: a run starts it")
    assert lines[3] == "would charge now: 0 trainings, 3 creations"
    assert _sent(temporal_emu) == 0
    workflow_id = lines[2].split()[1]
    code, run = await _cli(temporal_emu, capsys, "batch", str(batch), *where)
    assert code == 0, run
    assert run.startswith(f"workflow {workflow_id}: 3 items")
    code, after = await _cli(temporal_emu, capsys, "batch", str(batch), "--dry-run", *where)
    assert code == 0, after
    assert after.splitlines()[2:] == [
        f"workflow {workflow_id} was started before (completed): 3 of 3 items ended (3 "
        "succeeded); a run follows it: nothing is charged",
        "would charge now: 0 trainings, 0 creations",
    ]
    code, again = await _cli(
        temporal_emu, capsys, "batch", str(batch), "--dry-run", *where, "--id", workflow_id,
        "--json",
    )  # fmt: skip
    doc = json.loads(again)
    assert code == 0 and doc["charged"] == {"train": 0, "create": 0}
    assert doc["workflow"] == {
        "id": workflow_id, "exists": True, "status": "completed", "total": 3,
        "ended": {"succeeded": 3}, "held": 0,
    }  # fmt: skip
    assert temporal_emu.counters.creations == 3  # the dry runs charged nothing
    assert temporal_emu.counters.charged_duplicates() == {}


async def test_batch_state_of_none_and_of_a_running_batch_no_worker_answers(
    temporal_server: Any, tmp_path: Path
) -> None:
    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path)
    assert await at.batch_state(client, f"none-{uuid.uuid4().hex}", store) is None
    items = [("a", ReferenceCreateRequest("http://127.0.0.1:9/r.jpg", "http://127.0.0.1:9/t"))]
    queue = f"nobody-{uuid.uuid4().hex[:8]}"  # no worker: its progress query is not answered
    handle = await at.start_batch(client, items, task_queue=queue)
    try:
        state = await at.batch_state(client, handle.id, store, timeout=1.0)
        assert state == at.BatchState(handle.id, "running")
        assert state is not None and state.ended is None
        # Told to stop, with no worker to say how many are in flight: told all the same.
        assert await at.stop_batch(handle, timeout=1.0) is None
        history = [e.event_type for e in (await handle.fetch_history()).events]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in history
    finally:
        await handle.terminate("test over")
    state = await at.batch_state(client, handle.id, store)
    assert state == at.BatchState(handle.id, "terminated")  # it ended without a summary


async def test_a_dry_run_of_a_batch_its_budget_stopped_says_a_run_resumes_it(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch, where = _three(cluster, temporal_emu, sample_media, tmp_path / "held.jsonl")
    code, text = await _cli(
        temporal_emu, capsys, "batch", str(batch), *where, "--max-creations", "1"
    )
    assert code == cli.EXIT_BUDGET, text
    workflow_id = text.split()[1].rstrip(":")
    code, dry = await _cli(temporal_emu, capsys, "batch", str(batch), "--dry-run", *where)
    assert code == 0, dry
    assert dry.splitlines()[2:] == [
        f"workflow {workflow_id} was started before (running): 1 of 3 items ended (1 "
        "succeeded); it stopped with 2 items not started: a run resumes it: its held items are"
        " charged",
        "would charge now: 0 trainings, 3 creations",  # at most: the file's, the held among them
    ]
    assert temporal_emu.counters.creations == 1
    handle = cluster.client.get_workflow_handle(workflow_id)
    await handle.terminate("test over")


async def test_batch_state_of_a_batch_told_to_stop_while_its_last_items_run_holds_the_rest(
    cluster: Any, temporal_emu: Any, sample_media: Any
) -> None:
    # Told to stop with 2 creates still on the service: a run resumes it now (it does not wait
    # for them), so the dry run must count the rest as held, of the batch's 6 items.
    from tests._mock import until

    url = temporal_emu.media_url
    reference, template = url(sample_media.astronaut[0]), url(sample_media.astronaut_template)
    items = [
        (f"s{i}", ReferenceCreateRequest(reference, f"{template}?stopping={i}")) for i in range(6)
    ]
    held = temporal_emu.hold()
    handle = await at.start_batch(
        cluster.client, items, store=cluster.store, task_queue=cluster.queue, limit=2
    )
    try:
        await until(lambda: held.arrived == 2, "two creates held", seconds=180)
        await at.stop_batch(handle)
        state = await at.batch_state(cluster.client, handle.id, cluster.store)
        assert state is not None and (state.status, state.total, state.held) == ("running", 6, 4)
        assert (await at.stopped_progress(handle)) is not None  # what a run resumes on
    finally:
        held.release()
        await handle.terminate("test over")
    assert temporal_emu.counters.creations <= 2
