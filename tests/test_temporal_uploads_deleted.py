"""``temporal batch --delete-uploads``: once the batch's workflow has ended, the emulator's
bucket holds none of the photos the starter handed out (uploaded now, found there already, or
those of a batch that stopped and was resumed); a batch that has not ended keeps them and says
what to run later; ``--no-follow`` refuses the flag.

Against a real local Temporal server, the emulator (its bucket) and a worker in this process."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait.cli import main

LATER = "the same command with --delete-uploads, once the batch ended"


def _creates(tmp_path: Path, media: Any) -> Path:
    """A batch file of two reference creates of local photos ."""
    folder = media.folder
    rows = [
        {
            "kind": "reference",
            "key": f"portrait{i}",
            "reference": str(folder / media.astronaut[i]),
            "template": str(folder / media.astronaut_template),
        }
        for i in range(2)
    ]
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def _batch(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["temporal", "batch", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _where(cluster: Any, name: str) -> list[str]:
    """The options of a batch on ``cluster`` with an id of its own (``name-``...): the Temporal
    server outlives the test."""
    where = ["--address", cluster.server.address, "--task-queue", cluster.queue]
    return [*where, "--store", str(cluster.store.root), "--id", f"{name}-{uuid.uuid4().hex[:8]}"]


async def test_the_photos_uploaded_now_are_deleted_once_the_batch_ended(
    cluster: Any, temporal_emu_env: Any, sample_media: Any, tmp_path: Path, capsys: Any
) -> None:
    bucket = temporal_emu_env.bucket
    batch = str(_creates(tmp_path, sample_media))
    code, out, err = await _batch(capsys, batch, "--delete-uploads", *_where(cluster, "now"))
    assert code == 0, out + err
    assert out.splitlines()[-1].endswith("2 items: 2 succeeded")
    assert temporal_emu_env.counters.creations == 2
    assert bucket.puts >= 2 and bucket.deletes == bucket.puts  # each photo stored once
    assert bucket.objects == {}
    assert f"aiportrait: deleted {bucket.puts} uploaded photo(s)" in err.splitlines()


async def test_the_photos_found_in_the_bucket_are_deleted_too(
    cluster: Any, temporal_emu_env: Any, sample_media: Any, tmp_path: Path, capsys: Any
) -> None:
    bucket = temporal_emu_env.bucket
    batch = str(_creates(tmp_path, sample_media))
    code, out, err = await _batch(capsys, batch, *_where(cluster, "kept"))
    assert code == 0, out + err
    uploaded = bucket.puts
    assert len(bucket.objects) == uploaded and bucket.deletes == 0  # no --delete-uploads: kept
    code, out, err = await _batch(capsys, batch, "--delete-uploads", *_where(cluster, "found"))
    assert code == 0, out + err
    assert bucket.puts == uploaded  # found there, not uploaded again
    assert bucket.objects == {}
    assert temporal_emu_env.counters.creations == 4


async def test_a_stopped_batch_keeps_them_and_the_run_that_resumes_it_deletes_them(
    cluster: Any, temporal_emu_env: Any, sample_media: Any, tmp_path: Path, capsys: Any
) -> None:
    bucket = temporal_emu_env.bucket
    batch = str(_creates(tmp_path, sample_media))
    where = _where(cluster, "resumed")
    # The budget stops the batch after one create: its workflow waits for a resume.
    code, out, err = await _batch(capsys, batch, "--delete-uploads", "--max-creations", "1", *where)
    assert code == 6, out + err
    workflow_id = out.splitlines()[0].split()[1].rstrip(":")
    uploaded = bucket.puts
    assert len(bucket.objects) == uploaded >= 2 and bucket.deletes == 0
    kept = [line for line in err.splitlines() if "uploads kept" in line]
    assert kept == [
        f"aiportrait: uploads kept: batch {workflow_id} has not ended (a worker may still "
        f"send them); to delete them, run {LATER}"
    ]
    code, out, err = await _batch(capsys, batch, "--delete-uploads", *where)
    assert code == 0, out + err
    assert out.splitlines()[0].startswith(f"workflow {workflow_id}: this batch stopped before ")
    assert out.splitlines()[-1] == f"batch {workflow_id}: 2 items: 2 succeeded"
    assert temporal_emu_env.counters.creations == 2
    assert bucket.puts == uploaded and bucket.objects == {}


async def test_no_follow_refuses_delete_uploads(
    cluster: Any, temporal_emu_env: Any, sample_media: Any, tmp_path: Path, capsys: Any
) -> None:
    batch = str(_creates(tmp_path, sample_media))
    argv = (batch, "--delete-uploads", "--no-follow", *_where(cluster, "refused"))
    code, out, err = await _batch(capsys, *argv)
    assert code == 2, out + err
    assert "--delete-uploads does not go with --no-follow" in err
    assert LATER in err
    assert temporal_emu_env.bucket.puts == 0 and temporal_emu_env.counters.creations == 0


def test_temporal_worker_takes_url_lifetime(capsys: pytest.CaptureFixture[str]) -> None:
    # The option exists on the worker, with the range the starters' has (60 s to 7 days).
    assert main(["temporal", "worker", "--url-lifetime", "59"]) == 2
    assert "--url-lifetime" in capsys.readouterr().err
    assert main(["temporal", "worker", "--help"]) == 0
    assert "--url-lifetime SECONDS" in capsys.readouterr().out
