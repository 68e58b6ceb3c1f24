"""Heavy work stays off the event loop: 200 concurrent light requests finish while creates run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from aiportrait.emulator import Emulator
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH

from .conftest import APP_ID, TOKEN, Photos, data_url, install_model, send


async def test_200_light_requests_while_creates_run(
    tmp_path: Path, photos: Photos, model_dirs: dict[str, Path]
) -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, train_seconds=0.05) as emu:
        model_id = install_model(emu, model_dirs["astronaut"])
        template = data_url(photos.group)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            create_done: list[float] = []

            async def create() -> int:
                body = {"model_ids": [model_id, model_id], "template_image": template}
                reply = await send(emu, CREATE_PATH, body, session=s)
                create_done.append(time.perf_counter())
                return reply.status

            job_ids = [emu.add_synthetic_job(60.0) for _ in range(10)]
            # Open the 200 client connections first: connection setup is client-side cost.
            await asyncio.gather(
                *(send(emu, f"/api/v1/async_jobs/{job_ids[0]}", session=s) for _ in range(200))
            )
            polls_before = emu.counters.job_polls
            creates = [asyncio.create_task(create()) for _ in range(2)]
            await asyncio.sleep(0.1)  # the pool is now busy composing
            start = time.perf_counter()
            light = [
                send(emu, f"/api/v1/async_jobs/{job_ids[i % 10]}", session=s)
                if i % 4
                else send(emu, CHECK_PATH, {"images": []}, session=s)
                for i in range(200)
            ]
            replies = await asyncio.gather(*light)
            light_done = time.perf_counter()
            assert all(r.status == 200 for r in replies)
            assert emu.counters.job_polls - polls_before == 150
            assert emu.counters.checks == 50
            statuses = await asyncio.gather(*creates)
            assert statuses == [200] * 2
            # The light requests did not queue behind the composing.
            print(f"200 light requests in {light_done - start:.2f} s while composing")
            assert light_done - start < 2.0
            assert light_done < max(create_done), "creates finished before the polls"
