"""Stopping a Temporal batch and its budgets: ``aiportrait temporal batch`` in a real child
process, real SIGINT and SIGTERM, a real local Temporal server, a worker in this process and
the emulator's counters.

Nothing here depends on the machine's speed: the emulator holds the creates after the tenth
(``Emulator.hold``), so exactly four are in flight when the signal is sent; every wait is for
an event, with a generous bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import temporal as at
from aiportrait.cli import EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_OK, main
from tests._mock import until
from tests.test_temporal_cli import _batch_file as write_rows
from tests.test_temporal_cli import _line_with, _references
from tests.test_temporal_cli import _where as cluster_args

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _where(cluster: Any) -> list[str]:
    return [*cluster_args(cluster), "--limit", "4"]


def _batch_file(emu: Any, media: Any, count: int, path: Path) -> Path:
    """``count`` reference rows (keys ``r0``...), distinct by their template's query."""
    return write_rows(path, _references(emu, media, count, path.stem))


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``aiportrait temporal ARGV`` in a thread (it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["temporal", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextlib.asynccontextmanager
async def _child(*argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``aiportrait temporal ARGV`` in a child process (killed if the test leaves it running)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiportrait", "temporal", *argv,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _each_charged_once(cluster: Any, emu: Any, workflow_id: str, count: int) -> None:
    """``count`` creates charged, each once, each with its portrait in the store."""
    assert emu.counters.creations == count
    assert len(await _saved(cluster, workflow_id)) == count
    assert emu.counters.charged_duplicates() == {}


async def _saved(cluster: Any, workflow_id: str) -> list[Any]:
    """The outcomes the batch recorded in the store; each succeeded one's portrait is there,
    whole."""
    summary = await at.batch_summary(cluster.client.get_workflow_handle(workflow_id))
    outcomes = await at.read_outcomes(cluster.store, summary.outcome_pages)
    for outcome in outcomes:
        assert outcome.status == "succeeded", outcome
        assert len(await cluster.store.get(outcome.portrait.uri)) == outcome.portrait.size
    return outcomes


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_stops_a_60_item_batch_saves_every_paid_portrait_and_a_rerun_resumes(
    sig: signal.Signals,
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = temporal_emu
    batch = _batch_file(emu, sample_media, 60, tmp_path / f"stop{sig.value}.jsonl")
    held = emu.hold(after=10)  # ten are done; then four are on the service at the signal
    async with _child("batch", str(batch), *_where(cluster)) as process:
        await until(lambda: held.arrived == 14, "four creates held", seconds=180)
        process.send_signal(sig)
        line = await _line_with(process, "aiportrait: stopping")
        assert line == (
            "aiportrait: stopping: no new item is started; 4 in flight finishing on the "
            "workers, and they will be saved; Ctrl-C again leaves this follower (the workers "
            "still finish and save them: they are charged either way, and nothing is lost)"
        )
        held.release()
        out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == EXIT_INTERRUPTED, err.decode()
    lines = out.decode().splitlines()
    workflow_id = lines[0].split()[1].rstrip(":")
    assert lines[-1] == f"batch {workflow_id}: 60 items: 14 succeeded, 46 not submitted (stopped)"
    assert sum(line.startswith("ok      r") for line in lines) == 14
    assert err.decode().splitlines()[-1] == (
        "aiportrait: stopped: 46 not submitted (not charged); run the same command again to "
        "resume: the workflow waits for it"
    )
    # Every create the service ran has its portrait in the store; none was charged twice.
    await _each_charged_once(cluster, emu, workflow_id, 14)

    code, text, _ = await _run(capsys, "batch", str(batch), *_where(cluster))
    assert code == EXIT_OK, text
    first, *shown, last = text.splitlines()
    assert first == (
        f"workflow {workflow_id}: this batch stopped before with 46 items not submitted: "
        "resuming it; what was charged is not sent again"
    )
    assert last == f"batch {workflow_id}: 60 items: 60 succeeded"
    assert sorted(line.split()[1] for line in shown) == sorted(f"r{i}" for i in range(60))
    await _each_charged_once(cluster, emu, workflow_id, 60)


async def test_max_creations_charges_exactly_that_many_and_a_rerun_charges_only_new_items(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = temporal_emu
    batch = _batch_file(emu, sample_media, 60, tmp_path / "budget.jsonl")
    code, text, _ = await _run(
        capsys, "batch", str(batch), *_where(cluster), "--max-creations", "10"
    )
    assert code == EXIT_BUDGET, text
    lines = text.splitlines()
    workflow_id = lines[0].split()[1].rstrip(":")
    assert lines[-2:] == [
        "budget of 10 creations reached; 50 not submitted (not charged); run again with a "
        "higher --max-creations to go on",
        f"batch {workflow_id}: 60 items: 10 succeeded, 50 not submitted (stopped)",
    ]
    assert emu.counters.creations == 10

    # The budget is not part of the id: a larger one resumes the same batch, counted anew.
    code, text, _ = await _run(
        capsys, "batch", str(batch), *_where(cluster), "--max-creations", "25"
    )
    assert code == EXIT_BUDGET, text
    assert text.splitlines()[0].startswith(f"workflow {workflow_id}: this batch stopped before ")
    assert text.splitlines()[-2].startswith("budget of 25 creations reached; 25 not submitted")
    assert emu.counters.creations == 35

    code, text, _ = await _run(capsys, "batch", str(batch), *_where(cluster))
    assert code == EXIT_OK, text
    assert text.splitlines()[-1] == f"batch {workflow_id}: 60 items: 60 succeeded"
    await _each_charged_once(cluster, emu, workflow_id, 60)


async def test_a_second_signal_leaves_the_follower_and_the_workers_still_save_what_ran(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu = temporal_emu
    batch = _batch_file(emu, sample_media, 8, tmp_path / "leave.jsonl")
    held = emu.hold()  # the first four wait on the service
    async with _child("batch", str(batch), *_where(cluster)) as process:
        await until(lambda: held.arrived == 4, "four creates held", seconds=180)
        process.send_signal(signal.SIGTERM)
        await _line_with(process, "aiportrait: stopping: no new item is started; 4 in flight")
        process.send_signal(signal.SIGINT)
        line = await _line_with(process, "aiportrait: leaving the follower")
        assert line.startswith(
            "aiportrait: leaving the follower: the workers still finish what is in flight and "
            "save it (nothing paid is lost); follow it again with: aiportrait temporal attach "
        )
        out, _ = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == EXIT_INTERRUPTED
    workflow_id = out.decode().splitlines()[0].split()[1].rstrip(":")
    held.release()  # the four finish after the follower left: they are saved all the same
    handle = cluster.client.get_workflow_handle(workflow_id)

    async def waits() -> bool:
        stopped = await at.stopped_progress(handle)
        return stopped is not None and stopped.waiting

    for _ in range(3600):  # up to 180 s, as every wait here
        if await waits():
            break
        await asyncio.sleep(0.05)
    assert await waits(), "the batch never came to wait for its resume"
    assert len(await _saved(cluster, workflow_id)) == 4
    code, text, _ = await _run(capsys, "batch", str(batch), *_where(cluster))
    assert code == EXIT_OK, text
    assert text.splitlines()[-1] == f"batch {workflow_id}: 8 items: 8 succeeded"
    assert emu.counters.creations == 8
    assert emu.counters.charged_duplicates() == {}


async def test_a_signal_before_the_workflow_started_starts_nothing(tmp_path: Path) -> None:
    # A "Temporal" that accepts the connection and never answers: the starter waits there.
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the child goes
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    row = {"kind": "solo", "key": "k", "model_id": "m", "template": "http://x.invalid/t.jpg"}
    batch = tmp_path / "one.jsonl"
    batch.write_text(json.dumps(row) + "\n")
    async with server:
        where = ["--address", f"127.0.0.1:{port}", "--store", str(tmp_path / "store")]
        async with _child("batch", str(batch), *where) as process:
            await asyncio.wait_for(accepted.wait(), 180)
            process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 180)
    assert process.returncode == EXIT_INTERRUPTED, err.decode()
    assert out == b""
    assert err.decode().splitlines()[-2:] == [
        "aiportrait: interrupted",
        "aiportrait: nothing was started (nothing charged); run the same command again",
    ]


async def test_a_stopped_batch_that_no_resume_reaches_ends_and_says_its_rest_never_starts(
    cluster: Any, temporal_emu: Any, sample_media: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiportrait import ReferenceCreateRequest

    url = temporal_emu.media_url
    reference, template = url(sample_media.astronaut[0]), url(sample_media.astronaut_template)
    items = [
        (f"e{i}", ReferenceCreateRequest(reference, f"{template}?ends={i}")) for i in (0, 1, 2)
    ]
    handle = await at.start_batch(
        cluster.client, items, store=cluster.store, task_queue=cluster.queue, max_creations=1,
        resume_within=0.5,
    )  # fmt: skip
    summary = await asyncio.wait_for(at.result(handle), 180)  # it ended: no resume came
    assert (summary.counts, summary.total, summary.not_submitted) == ({"succeeded": 1}, 3, 2)
    assert (summary.stopped, summary.budget, summary.waiting) == ("create", 1, False)
    assert await at.stopped_progress(handle) is None  # nothing to resume
    code, text, err = await _run(capsys, "attach", handle.id, *_where(cluster)[:6])
    assert code == EXIT_BUDGET
    assert text.splitlines()[-1] == (
        f"batch {handle.id}: 3 items: 1 succeeded, 2 not submitted (stopped)"
    )
    assert "budget of" not in text  # its "run again with a higher budget" would not go on
    assert err.splitlines()[-1] == (
        "aiportrait: stopped: 2 not submitted (not charged); the batch ended without a resume: "
        "run them as a new batch of those items"
    )
    assert temporal_emu.counters.creations == 1
    # Its history (the budget's stop, the wait, its end) replays on the workflow's code.
    await at.new_replayer().replay_workflow(await handle.fetch_history())


async def test_a_stop_right_after_a_resume_stops_the_batch_again(
    cluster: Any, temporal_emu: Any, sample_media: Any
) -> None:
    # A re-run resumes a stopped batch and Ctrl-C comes at once: both signals may reach the
    # workflow in one activation, where the resume must not win over the later stop.
    from aiportrait import ReferenceCreateRequest

    url = temporal_emu.media_url
    reference, template = url(sample_media.astronaut[0]), url(sample_media.astronaut_template)
    items = [(f"r{i}", ReferenceCreateRequest(reference, f"{template}?race={i}")) for i in range(6)]
    handle = await at.start_batch(
        cluster.client, items, store=cluster.store, task_queue=cluster.queue, max_creations=1,
        limit=1,
    )  # fmt: skip

    async def waits() -> bool:
        stopped = await at.stopped_progress(handle)
        return stopped is not None and stopped.waiting

    async def until_waiting(what: str) -> None:
        for _ in range(3600):  # up to 180 s, as every wait here
            if await waits():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never happened: {what}")

    await until_waiting("the batch stops at its budget")
    assert temporal_emu.counters.creations == 1
    await at.resume_batch(handle)
    await at.stop_batch(handle)
    await until_waiting("the batch stops again")
    summary = await at.batch_summary(handle)
    # At most the one item a resumed run may have started before the stop reached it.
    assert temporal_emu.counters.creations <= 2
    assert summary.stopped == "request" and summary.not_submitted >= 4
    assert temporal_emu.counters.charged_duplicates() == {}
