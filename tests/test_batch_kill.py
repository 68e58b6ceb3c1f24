"""Kill a journalled batch with SIGKILL mid-way (a real subprocess), re-run it, count the work."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiportrait._batches.journal import Journal
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos, sample_photos

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def photos(tmp_path: Path) -> SamplePhotos:
    media = tmp_path / "media"
    media.mkdir()
    return sample_photos(media)


@pytest.fixture
async def emu(photos: SamplePhotos, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=1.5, serve_dir=photos.folder, data_dir=tmp_path / "emu") as e:
        yield e


def _config(emu: Emulator, names: SamplePhotos, tmp_path: Path) -> dict[str, Any]:
    return {
        "url": emu.url,
        "app_id": emu.app_id,
        "token": emu.token,
        "journal": str(tmp_path / "batch.sqlite"),
        "sets": {
            "astronaut": [emu.media_url(n) for n in names.astronaut[:2]],
            "hopper": [emu.media_url(n) for n in names.hopper[:2]],
        },
        "templates": [emu.media_url(n) for n in names.templates[:2]],
    }


async def _start(config: dict[str, Any], *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests._batch_child", json.dumps(config), *extra,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _kill_when(proc: asyncio.subprocess.Process, journal: Path, kind: str, status: str,
                     count: int) -> None:  # fmt: skip
    for _ in range(3000):
        seen = journal.exists() and Journal(journal, lock=False).counts(kind).get(status, 0)  # noqa: ASYNC240
        if seen and seen >= count:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert proc.returncode == -signal.SIGKILL
            return
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.01)
    out, err = await proc.communicate()
    raise AssertionError(f"the child never reached {status}: {out!r} {err[-2000:]!r}")


async def _finish(proc: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


@pytest.mark.slow
async def test_sigkill_mid_batch_then_rerun(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    config = _config(emu, photos, tmp_path)
    journal = Path(config["journal"])

    # 1. Killed while watching the trainings: both job ids are in the journal.
    child = await _start(config)
    await _kill_when(child, journal, "train", "submitted", 2)
    assert emu.counters.trainings == 2

    # 2. Re-run: it resumes watching (no new training) and starts the creations; kill it
    #    once one portrait is on disk, with others in flight.
    child = await _start(config)
    await _kill_when(child, journal, "create", "done", 1)
    assert emu.counters.trainings == 2
    assert not emu.counters.charged_duplicates()

    # 3. Re-run with the safe default: finished items come back from the journal, items that
    #    were in flight at the kill come back as SubmitOutcomeUnknown, nothing runs twice.
    lines = await _finish(await _start(config))
    summary = lines[-1]
    creates = [ln for ln in lines if ln.get("kind") == "create"]
    trains = [ln for ln in lines if ln.get("kind") == "train"]
    assert all(t["ok"] and t["resumed"] for t in trains)
    assert emu.counters.trainings == 2
    assert not emu.counters.charged_duplicates()
    assert all(c["ok"] or c["error"] == "SubmitOutcomeUnknown" for c in creates)
    assert set(summary["unknown"]) == {c["key"] for c in creates if not c["ok"]}
    assert len(summary["unknown"]) <= 2  # at most the batch limit was in flight

    # 4. The caller decides to submit the unknown ones again: every item is then done.
    lines = await _finish(await _start(config, "--resubmit-unknown"))
    creates = [ln for ln in lines if ln.get("kind") == "create"]
    assert len(creates) == 4
    assert all(c["ok"] for c in creates)
    assert Journal(journal, lock=False).counts("create") == {"done": 4}
    assert Journal(journal, lock=False).counts("train") == {"done": 2}
    # Only an item reported unknown can have run twice, and only if the service had finished
    # it before the kill; every other item ran exactly once.
    dupes = emu.counters.charged_duplicates()
    assert len(dupes) <= len(summary["unknown"])
    assert emu.counters.trainings == 2
    files = sorted(p.name for p in journal.with_name("batch_portraits").iterdir())
    assert len(files) == 4
    assert all(not name.startswith(".") for name in files)
    print(f"unknown after kill: {summary['unknown']}, run twice on resubmit: {len(dupes)}")


CTRL_C_CHILD = """
import asyncio
import faulthandler
import signal
import aiportrait
from tests._server import Server, hang

async def main():
    async with Server(ok=hang) as server:  # every create hangs: it would never be answered
        requests = [aiportrait.CreateRequest("m", f"https://t/{i}.jpg") for i in range(20)]
        async with aiportrait.Session(server.url, "a", "t") as session:
            async def report():
                while len(server.requests) < 4:
                    await asyncio.sleep(0.01)
                print("in flight", flush=True)

            reporter = asyncio.create_task(report())
            async for outcome in session.create_many(requests, limit=4):
                print(outcome, flush=True)
            await reporter

faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent asks on a hang
# Ctrl-C as a terminal delivers it, whatever the test runner's parent did: a job started in the
# background of a non-interactive shell ignores SIGINT, and so would this child, inheriting it.
signal.signal(signal.SIGINT, signal.default_int_handler)
asyncio.run(main())
"""


async def test_ctrl_c_stops_a_batch_promptly() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CTRL_C_CHILD,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    # Four creates are in flight, none of which would ever be answered.
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"in flight"
    proc.send_signal(signal.SIGINT)
    # Promptly: only stopping the batch ends the child, whatever the machine's load.
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    except asyncio.TimeoutError:  # say where the child hangs: every thread's stack, then end it
        proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(2)
        proc.kill()
        _, err = await proc.communicate()
        raise AssertionError("the child did not stop:\n" + err.decode()[-8000:]) from None
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    assert b"Task was destroyed but it is pending" not in err
    assert b"exit cancel scope in a different task" not in err
