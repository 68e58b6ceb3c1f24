"""Learned job durations against a fixed 1-second poller, side by side in one run.

    python benchmarks/learned_durations.py            # 3 kinds, 3 jobs to learn, 8 to measure
    python benchmarks/learned_durations.py --measure 4

A loopback server runs trainings of three kinds (SD1.5 about 5 s, SDXL about 10 s, scene LoRA
about 15 s, each +-5 %). For each kind, three watchers run side by side on the same server:
aiportrait's default policy with learning, the same policy without learning, and a fixed
1-second poller. Each first sees ``--learn`` jobs end (which is how the learning one learns),
then ``--measure`` more are measured: the delay from a job's true end to the watcher noticing
it, and the polls it made. Printed: the medians, and the learned watcher's polls as a fraction
of the 1-second poller's (goal: at most 0.5, with a p50 delay under 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from typing import Any

from aiohttp import web

import aiportrait
from aiportrait import PollPolicy, Session

KINDS = {"sd15": 5.0, "sdxl": 10.0, "scene": 15.0}
PHOTOS = [f"https://x/{i}.jpg" for i in range(5)]


class Server:
    """Trainings whose length depends on their kind; remembers when each really ended."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = itertools.count(1)
        self.jobs: dict[int, tuple[float, float]] = {}  # id -> (start, duration)
        self.polls: dict[int, int] = {}

    async def train(self, request: web.Request) -> web.Response:
        body = await request.json()
        configure = body.get("configure", {})
        if configure.get("train_scene_lora_bool"):
            kind = "scene"
        else:
            kind = "sdxl" if body.get("model_name") == "train_xl" else "sd15"
        job_id = next(self.ids)
        self.jobs[job_id] = (time.monotonic(), KINDS[kind] * self.rng.uniform(0.95, 1.05))
        data = {"job_id": job_id, "model_id": f"m{job_id}"}
        return web.json_response({"code": "OK", "data": data})

    async def job(self, request: web.Request) -> web.Response:
        job_id = int(request.match_info["id"])
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        start, duration = self.jobs[job_id]
        if time.monotonic() - start < duration:
            return web.json_response({"code": "OK", "data": {"job": {"state": 1}}})
        result = json.dumps({"model_id": f"m{job_id}", "cost_time": duration, "states": []})
        return web.json_response({"code": "OK", "data": {"job": {"state": 2, "result": result}}})

    def end(self, job_id: int) -> float:
        start, duration = self.jobs[job_id]
        return start + duration


def _request(kind: str) -> aiportrait.TrainRequest:
    if kind == "scene":
        return aiportrait.TrainRequest(
            PHOTOS, sdxl=True, scene_lora=True, scene_prompts=["a scene"] * len(PHOTOS)
        )
    return aiportrait.TrainRequest(PHOTOS, sdxl=kind == "sdxl")


async def watcher(
    server: Server, url: str, kind: str, policy: PollPolicy, learn: int, measure: int
) -> list[tuple[float, int]]:
    """Train and watch ``learn + measure`` jobs one after another; (delay, polls) measured."""
    out = []
    async with Session(url, "bench", "token", poll=policy) as session:
        for n in range(learn + measure):
            job = await session.send(_request(kind))
            async for _ in session.watch(job):
                pass
            if n >= learn:
                out.append((time.monotonic() - server.end(job.job_id), server.polls[job.job_id]))
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(args.seed)
    app = web.Application()
    app.router.add_post("/api/v1/aigc_images/train", server.train)
    app.router.add_post("/api/v1/async_jobs/{id}", server.job)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    strategies = {
        "learned": PollPolicy(),
        "default, no learning": PollPolicy(learn=False),
        "fixed 1-s poller": PollPolicy(first=1.0, growth=1e-9, cap=1.0, jitter=0.0, learn=False),
    }
    try:
        tasks = {
            (name, kind): asyncio.create_task(
                watcher(server, url, kind, policy, args.learn, args.measure)
            )
            for name, policy in strategies.items()
            for kind in KINDS
        }
        await asyncio.gather(*tasks.values())
    finally:
        await runner.cleanup()
    rows: dict[str, Any] = {}
    for name in strategies:
        samples = [s for (n, _), t in tasks.items() if n == name for s in t.result()]
        delays = sorted(d for d, _ in samples)
        rows[name] = {
            "p50_delay_s": statistics.median(delays),
            "p90_delay_s": delays[int(0.9 * (len(delays) - 1))],
            "polls_per_job": statistics.mean(p for _, p in samples),
            "jobs": len(samples),
        }
    fixed = rows["fixed 1-s poller"]["polls_per_job"]
    for row in rows.values():
        row["polls_vs_fixed"] = row["polls_per_job"] / fixed
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learn", type=int, default=3, help="jobs seen end before measuring")
    parser.add_argument("--measure", type=int, default=8, help="jobs measured per kind")
    parser.add_argument("--seed", type=int, default=7)
    rows = asyncio.run(main(parser.parse_args()))
    print(f"{'strategy':<24}{'p50 delay':>10}{'p90 delay':>10}{'polls/job':>10}{'vs 1-s':>8}")
    for name, row in rows.items():
        print(
            f"{name:<24}{row['p50_delay_s']:>9.2f}s{row['p90_delay_s']:>9.2f}s"
            f"{row['polls_per_job']:>10.1f}{row['polls_vs_fixed']:>8.2f}"
        )
    learned = rows["learned"]
    met = learned["p50_delay_s"] < 1.0 and learned["polls_vs_fixed"] <= 0.5
    verdict = "met" if met else "NOT met"
    print(f"goal (p50 < 1 s and at most half the polls of the 1-s poller): {verdict}")
    sys.exit(0)
