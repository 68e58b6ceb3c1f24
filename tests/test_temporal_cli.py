"""``aiportrait temporal ...`` against a real local Temporal server, the emulator, and a worker
in this process: train, batch, attach by id, and ``dev`` (the one-command local cluster)."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.importorskip("temporalio")

from aiportrait.cli._temporal import main as temporal_main


async def run(*argv: str) -> tuple[int, str]:
    """``aiportrait temporal ARGV`` in a thread (it runs its own event loop)."""
    out = io.StringIO()
    code = await asyncio.to_thread(temporal_main, list(argv), out)
    return code, out.getvalue()


def _where(cluster: Any) -> list[str]:
    return [
        "--address",
        cluster.server.address,
        "--task-queue",
        cluster.queue,
        "--store",
        str(cluster.store.root),
    ]


async def test_train_prints_the_id_follows_and_reattaches(
    cluster: Any, temporal_emu: Any, sample_media: Any
) -> None:
    photos = [temporal_emu.media_url(n) for n in sample_media.astronaut]
    code, text = await run("train", *photos, "--check", "--id", "cli-train-1", *_where(cluster))
    assert code == 0, text
    assert text.startswith("workflow cli-train-1 (re-attach: aiportrait temporal attach")
    assert "model " in text.splitlines()[-1] and "training time" in text
    code, again = await run("attach", "cli-train-1", *_where(cluster))
    assert code == 0
    assert again.splitlines()[-1] == text.splitlines()[-1]
    code, _ = await run("train", *photos, "--id", "cli-train-1", *_where(cluster))
    assert code == 2  # an id runs once: the training is not charged again
    assert temporal_emu.counters.trainings == 1


async def test_batch_shows_outcomes_and_exits_5_when_one_failed(
    cluster: Any, temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    url = temporal_emu.media_url
    rows = [
        {
            "kind": "reference",
            "key": f"r{i}",
            "reference": url(sample_media.astronaut[0]),
            "template": f"{url(sample_media.astronaut_template)}?v={i}",
        }
        for i in range(3)
    ]
    rows.append(
        {
            "kind": "solo",
            "key": "bad",
            "model_id": "no-such-model",
            "template": url(sample_media.astronaut_template),
        }
    )
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, text = await run("batch", str(batch), "--id", "cli-batch-1", *_where(cluster))
    assert code == 5, text
    lines = text.splitlines()
    assert lines[0].startswith("workflow cli-batch-1: 4 items")
    assert sorted(line.split()[2].rstrip(":") for line in lines[1:-1]) == ["bad", "r0", "r1", "r2"]
    assert any(line.startswith("failed") and "ModelIdError" in line for line in lines)
    assert lines[-1] == "batch cli-batch-1: 4 items: 1 failed, 3 succeeded"
    code, again = await run("attach", "cli-batch-1", *_where(cluster))
    assert code == 5 and again.splitlines()[-1] == lines[-1]


async def test_attach_to_an_unknown_id_is_an_error(cluster: Any) -> None:
    code, _ = await run("attach", "no-such-workflow", *_where(cluster))
    assert code == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_dev_starts_the_cluster_in_one_command(tmp_path: Path) -> None:
    ports = [_free_port() for _ in range(3)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiportrait",
        "temporal",
        "dev",
        "--dir",
        str(tmp_path / "c"),
        "--port",
        str(ports[0]),
        "--ui-port",
        str(ports[1]),
        "--emulator-port",
        str(ports[2]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines = []
        while not lines or lines[-1] != "stop with Ctrl-C":
            line = await asyncio.wait_for(process.stdout.readline(), timeout=180)
            assert line, (await process.stderr.read()).decode()  # type: ignore[union-attr]
            lines.append(line.decode().rstrip("\n"))
        text = "\n".join(lines)
        assert f"Temporal server  127.0.0.1:{ports[0]}" in text
        assert f"Temporal Web UI  http://127.0.0.1:{ports[1]}" in text
        assert f"emulator         http://127.0.0.1:{ports[2]}" in text
        env = tmp_path / "c" / "env.sh"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
        assert "AIPORTRAIT_TOKEN" in env.read_text()
        assert "AIPORTRAIT_TOKEN" not in text  # the token is in env.sh, not on the screen
        sample = [json.loads(x) for x in (tmp_path / "c" / "sample-batch.jsonl").open()]
        assert len(sample) == 22
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{ports[1]}/") as answer:
                assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    assert code == 0
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # the server is gone
        s.connect(("127.0.0.1", ports[0]))
    assert (tmp_path / "c" / "temporal.db").is_file()


async def test_batch_uploads_local_files_first_and_ships_urls(
    cluster: Any, temporal_emu: Any, sample_media: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    for name, value in (
        ("AIPORTRAIT_HOST", temporal_emu.url),
        ("AIPORTRAIT_APP_ID", temporal_emu.app_id),
        ("AIPORTRAIT_TOKEN", temporal_emu.token),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OSS_BUCKET", raising=False)
    folder = sample_media.folder
    rows = [
        {
            "kind": "reference",
            "key": "local",
            "reference": str(folder / sample_media.astronaut[0]),
            "template": str(folder / sample_media.astronaut_template),
        },
        {"kind": "train", "key": "t", "images": str(folder / "astronaut_*.jpg")},
    ]
    batch = tmp_path / "local.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, text = await run("batch", str(batch), *_where(cluster))
    assert code == 0, text
    assert text.splitlines()[-1].endswith("2 items: 2 succeeded")
    # uploaded by the starter, each distinct image once: the 5 photos (the sample template is
    # the same image as the first photo, and the reference is the first photo)
    assert temporal_emu.bucket.puts == 5
    assert temporal_emu.counters.creations == 1 and temporal_emu.counters.trainings == 1

    missing = tmp_path / "bad.jsonl"
    missing.write_text(json.dumps({"kind": "train", "key": "x", "images": "nope/*.jpg"}) + "\n")
    code, _ = await run("batch", str(missing), *_where(cluster))
    assert code == 2
    assert temporal_emu.counters.trainings == 1  # nothing more was sent
