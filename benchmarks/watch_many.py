"""10,000 jobs watched at once in one process: memory, CPU, polls per job, noticing delay.

Runs each strategy against a fresh emulator process holding synthetic jobs whose durations are
drawn uniformly from [--min, --max] seconds (same seed, so the same jobs each time):

- aiportrait ``watch`` with the default training policy (no hint about the duration);
- aiportrait ``watch`` with ``PollPolicy(expected=..., window=0.05, dense=1.5)``: the caller's
  estimate of the duration within +-5 % (as one has after a few trainings of the same size);
- a fixed 1-second poller, and the documentation's 30-second loop (both on the same Session).

Delay = wall time the watcher noticed the end - wall time the job ended. Peak memory is the
client process's peak RSS growth over its baseline, measured in a fresh child process per run.

    python benchmarks/watch_many.py                 # 10,000 jobs of 60 to 180 s (about 14 min)
    python benchmarks/watch_many.py --count 1000 --min 10 --max 20   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STRATEGIES = ("aiportrait", "aiportrait+expected", "fixed-1s", "fixed-30s")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _fixed(session: Any, job_id: int, interval: float) -> tuple[float, int]:
    polls = 0
    while True:
        polls += 1
        try:
            job = await session.get_job(job_id)
        except Exception:  # a naive loop that survives errors, to be fair to it
            await asyncio.sleep(interval)
            continue
        if job.done:
            return time.time(), polls
        await asyncio.sleep(interval)


async def _ours(session: Any, job_id: int, policy: Any) -> tuple[float, int]:
    watch = session.watch(job_id, poll=policy)
    async for _ in watch:
        pass
    return time.time(), watch.polls


async def client(strategy: str, info: dict[str, Any], seed: int) -> dict[str, Any]:
    import aiportrait

    base_rss = _rss_mb()
    cpu0 = time.process_time()
    rng = random.Random(seed)
    async with aiportrait.Session(info["url"], info["app_id"], info["token"],
                                  max_in_flight=64) as session:  # fmt: skip
        tasks = []
        for job_id, _end, duration in info["jobs"]:
            if strategy == "fixed-1s":
                tasks.append(_fixed(session, job_id, 1.0))
            elif strategy == "fixed-30s":
                tasks.append(_fixed(session, job_id, 30.0))
            elif strategy == "aiportrait":
                tasks.append(_ours(session, job_id, aiportrait.PollPolicy.TRAINING))
            else:
                guess = duration * rng.uniform(0.95, 1.05)
                policy = aiportrait.PollPolicy(expected=guess, window=0.05, dense=1.5)
                tasks.append(_ours(session, job_id, policy))
        results = await asyncio.gather(*tasks)
    delays = [seen - end for (seen, _), (_, end, _) in zip(results, info["jobs"], strict=True)]
    polls = [p for _, p in results]
    q = statistics.quantiles(delays, n=100)
    return {
        "strategy": strategy,
        "jobs": len(delays),
        "peak_rss_growth_mb": round(_rss_mb() - base_rss, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "polls_per_job": round(statistics.mean(polls), 2),
        "mean_duration_s": round(statistics.mean(d for _, _, d in info["jobs"]), 1),
        "delay_p50_s": round(q[49], 3),
        "delay_p99_s": round(q[98], 3),
    }


def run_one(strategy: str, args: argparse.Namespace) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_jobs_server.py"), "--count", str(args.count),
         "--min", str(args.min), "--max", str(args.max), "--seed", str(args.seed)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        info = json.loads(server.stdout.readline())
        child = subprocess.run(
            [sys.executable, __file__, "--child", strategy, "--seed", str(args.seed)],
            input=json.dumps(info), capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(child.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--min", type=float, default=60.0)
    parser.add_argument("--max", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=STRATEGIES, action="append")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "watch_many.json")
    parser.add_argument("--child", choices=STRATEGIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        info = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(client(args.child, info, args.seed))))
        return
    rows = []
    for strategy in args.only or STRATEGIES:
        row = run_one(strategy, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    one_second = next((r for r in rows if r["strategy"] == "fixed-1s"), None)
    header = f"{'strategy':<22}{'peak MB':>9}{'CPU s':>8}{'polls/job':>11}{'p50 s':>8}{'p99 s':>8}"
    print(f"\n{args.count} jobs of {args.min:g}-{args.max:g} s, {os.cpu_count()} cores")
    print(header)
    for r in rows:
        print(f"{r['strategy']:<22}{r['peak_rss_growth_mb']:>9}{r['cpu_s']:>8}"
              f"{r['polls_per_job']:>11}{r['delay_p50_s']:>8}{r['delay_p99_s']:>8}")  # fmt: skip
    if one_second:
        for r in rows:
            if r["strategy"].startswith("aiportrait"):
                ratio = r["polls_per_job"] / one_second["polls_per_job"]
                print(f"{r['strategy']}: polls {ratio:.2f}x the 1-second poller's")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                     "rows": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
