"""The job store: synthetic jobs computed from the clock, persistence, batches."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

from aiportrait.emulator import Emulator
from aiportrait.emulator._jobs import INTERRUPTED_MESSAGE, JobStore
from aiportrait.emulator._wire import JOB_FAILED, JOB_INIT, JOB_RUNNING, JOB_SUCCESS

from .conftest import send


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_synthetic_state_follows_the_clock() -> None:
    clock = Clock()
    store = JobStore(None, clock=clock)
    ok = store.add(
        app_id="a", kind="synthetic", request_id="r", duration=10, message="success", result="{}"
    )
    bad = store.add(
        app_id="a",
        kind="synthetic",
        request_id="r",
        duration=10,
        succeed=False,
        message="boom",
        result="",
    )
    seen = []
    for t in (0, 0.5, 1.0, 5, 9.99, 10, 100):
        clock.now = 1000.0 + t
        seen.append((ok.view(clock.now)[0], bad.view(clock.now)[0]))
    assert seen == [
        (JOB_INIT, JOB_INIT),
        (JOB_INIT, JOB_INIT),
        (JOB_RUNNING, JOB_RUNNING),
        (JOB_RUNNING, JOB_RUNNING),
        (JOB_RUNNING, JOB_RUNNING),
        (JOB_SUCCESS, JOB_FAILED),
        (JOB_SUCCESS, JOB_FAILED),
    ]
    assert ok.to_wire(clock.now)["Result"] == "{}"
    assert bad.to_wire(clock.now)["message"] == "boom"
    clock.now = 1000.0
    assert ok.to_wire(clock.now)["Result"] == ""  # no result before the end


def test_log_survives_restart_and_interrupted_trainings_fail(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    train = store.add(app_id="a", kind="train", request_id="r1", model_id="m1")
    done = store.add(app_id="a", kind="train", request_id="r2", model_id="m2")
    store.update(done, JOB_SUCCESS, "success", '{"model_id": "m2"}')
    store.add(app_id="b", kind="synthetic", request_id="r3", duration=1, batch_id=4)
    store.close()
    with (tmp_path / "jobs.jsonl").open("a") as fh:
        fh.write('{"id": 99, "app_id": "a", "ki')  # a torn line, as after a crash

    again = JobStore(tmp_path)
    assert len(again) == 3
    assert again.get(train.id, "a").state == JOB_FAILED  # type: ignore[union-attr]
    assert again.get(train.id, "a").message == INTERRUPTED_MESSAGE  # type: ignore[union-attr]
    assert again.get(done.id, "a").result == '{"model_id": "m2"}'  # type: ignore[union-attr]
    assert again.get(done.id, "b") is None
    assert [j.id for j in again.batch(4, "b")] == [3]
    assert again.model_job("m2").id == done.id  # type: ignore[union-attr]
    assert again.add(app_id="a", kind="synthetic", request_id="r").id == 4
    again.close()
    lines = (tmp_path / "jobs.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert all(json.loads(line) for line in lines)


def _added(emu: Emulator, count: int) -> tuple[int, list[int]]:
    """Add ``count`` synthetic jobs; the function calls that took (counted, not timed)."""
    calls = 0

    def profile(_frame: Any, event: str, _arg: Any) -> None:
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(profile)
    try:
        ids = [emu.add_synthetic_job(60 + i % 10, succeed=i % 7 != 0) for i in range(count)]
    finally:
        sys.setprofile(None)
    return calls, ids


async def test_ten_thousand_synthetic_jobs_are_cheap(emu: Emulator) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tasks = len(asyncio.all_tasks())
    first, _ = _added(emu, 1_000)
    calls, ids = _added(emu, 10_000)
    # Each job costs what the first thousand did, whatever the machine's speed: nothing grows
    # with the number of jobs, and no job has a task of its own (states come from the clock).
    assert calls <= 10 * first * 1.05, (first, calls)
    assert len(asyncio.all_tasks()) == tasks
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) < 100_000  # KiB
    assert ids == list(range(ids[0], ids[0] + 10_000))
    reply = await send(emu, f"/api/v1/async_jobs/{ids[7]}")
    assert reply.data["job"]["state"] in (JOB_INIT, JOB_RUNNING)


async def test_synthetic_job_through_http(emu: Emulator) -> None:
    job_id = emu.add_synthetic_job(0.0, result={"custom": 1}, message="done")
    job = (await send(emu, f"/api/v1/async_jobs/{job_id}")).data["job"]
    assert (job["state"], job["message"], job["Result"]) == (JOB_SUCCESS, "done", '{"custom": 1}')
    assert job["app_id"] == emu.app_id
    assert emu.counters.job_polls == 1
