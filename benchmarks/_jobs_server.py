"""An emulator holding many synthetic jobs, in its own process, for the watch benchmark.

Prints one JSON line (url, credentials, and per job: id, wall-clock end, duration), then serves
until stdin closes or it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from aiportrait.emulator import Emulator


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--min", type=float, required=True)
    parser.add_argument("--max", type=float, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    async with Emulator(token="bench-token") as emu:
        jobs = []
        for _ in range(args.count):
            duration = rng.uniform(args.min, args.max)
            job_id = emu.add_synthetic_job(duration)
            jobs.append([job_id, time.time() + duration, duration])
        print(json.dumps({"url": emu.url, "app_id": emu.app_id, "token": emu.token,
                          "jobs": jobs}), flush=True)  # fmt: skip
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
