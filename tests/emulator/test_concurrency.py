"""Heavy work stays off the event loop: 200 concurrent light requests finish while creates run."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiportrait.emulator import Emulator, _composite
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH

from .conftest import APP_ID, TOKEN, Photos, data_url, install_model, send


async def test_200_light_requests_while_creates_run(
    tmp_path: Path, photos: Photos, model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The composing is held until the light requests are all answered: they cannot have queued
    # behind it, however fast or slow the machine (nothing here is timed).
    composing, release = threading.Semaphore(0), threading.Event()
    compose = _composite.compose

    def held(*args: Any, **kwargs: Any) -> Any:
        composing.release()
        assert release.wait(120), "never released"
        return compose(*args, **kwargs)

    monkeypatch.setattr(_composite, "compose", held)
    async with Emulator(app_id=APP_ID, token=TOKEN, train_seconds=0.05) as emu:
        model_id = install_model(emu, model_dirs["astronaut"])
        template = data_url(photos.group)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def create() -> int:
                body = {"model_ids": [model_id, model_id], "template_image": template}
                reply = await send(emu, CREATE_PATH, body, session=s)
                return reply.status

            job_ids = [emu.add_synthetic_job(60.0) for _ in range(10)]
            # Open the 200 client connections first: connection setup is client-side cost.
            await asyncio.gather(
                *(send(emu, f"/api/v1/async_jobs/{job_ids[0]}", session=s) for _ in range(200))
            )
            polls_before = emu.counters.job_polls
            creates = [asyncio.create_task(create()) for _ in range(2)]
            # the pool is busy composing now (the other create composing too, or queued)
            assert await asyncio.to_thread(composing.acquire, timeout=120)
            light = [
                send(emu, f"/api/v1/async_jobs/{job_ids[i % 10]}", session=s)
                if i % 4
                else send(emu, CHECK_PATH, {"images": []}, session=s)
                for i in range(200)
            ]
            try:
                replies = await asyncio.gather(*light)
                assert not any(c.done() for c in creates), "creates finished before the polls"
            finally:
                release.set()
            assert all(r.status == 200 for r in replies)
            assert emu.counters.job_polls - polls_before == 150
            assert emu.counters.checks == 50
            statuses = await asyncio.gather(*creates)
            assert statuses == [200] * 2
