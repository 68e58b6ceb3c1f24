"""Throughput of one Temporal batch with 1, 2 and 4 worker processes, and where the CPU goes.

One batch of ``--items`` reference creates (as in ``temporal_overhead.py``), ``--limit`` in
flight, on a local dev server (``DevServer``) against the emulator (loopback, in this process).
Workers are processes, ``python -m aiportrait temporal worker`` (its default concurrency) with
the emulator's credentials in ``AIPORTRAIT_*``: 1, 2 and 4 of them, each set on a task queue of its
own, all started before the first batch and stopped (SIGTERM) at the end. After a warm-up batch
per set, each round runs one batch per set, the order rotated from round to round; a round gives
the ratio items/s of k workers / items/s of 1 worker. Printed: the medians of those ratios
(min-max), the median wall time per batch for context, and the CPU of one batch split between
this process (the emulator's image work and HTTP, and the starter), the set's workers and the
Temporal server (``/proc/<pid>/stat``, utime + stime), with the share of the machine's cores
they used during the batch.

Run: ``.venv/bin/python benchmarks/temporal_throughput.py [--items 40] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from temporal_overhead import TICK, items_for, proc_cpu, run_temporal  # noqa: E402

from aiportrait import temporal as at  # noqa: E402
from aiportrait._vision.threads import default_workers  # noqa: E402
from aiportrait.emulator import Emulator  # noqa: E402
from aiportrait.samples import sample_photos  # noqa: E402

SETS = (1, 2, 4)
CORES = os.cpu_count() or 1


def image_threads_cpu() -> dict[int, float]:
    """CPU seconds of each of the emulator's image threads (``aiportrait-emu*``) by thread id."""
    out: dict[int, float] = {}
    for thread in threading.enumerate():
        if not thread.name.startswith("aiportrait-emu") or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.native_id] = (int(fields[11]) + int(fields[12])) / TICK
    return out


async def start_worker(address: str, emu: Emulator, queue: str, store: Path) -> Any:
    """A worker process on ``queue``; returns once it says it polls."""
    env = {
        **os.environ,
        "AIPORTRAIT_HOST": emu.url,
        "AIPORTRAIT_APP_ID": emu.app_id,
        "AIPORTRAIT_TOKEN": emu.token,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiportrait",
        "temporal",
        "worker",
        "--address",
        address,
        "--task-queue",
        queue,
        "--store",
        str(store),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if not line.startswith(b"worker on"):
        process.kill()
        await process.wait()
        raise RuntimeError(f"the worker did not start: {line!r}")
    return process


async def stop_worker(process: Any) -> None:
    """SIGTERM, then SIGKILL after 60 s."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=60)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()


async def _measure(n: int, rounds: int, limit: int, threads: int | None, workdir: Path) -> None:
    samples = sample_photos(workdir / "samples")
    store_dir = workdir / "store"
    store = at.LocalPortraitStore(store_dir)
    server = at.DevServer(ui=False, log_file=workdir / "server.log")
    workers: dict[int, list[Any]] = {k: [] for k in SETS}
    await server.start()
    try:
        assert server._process is not None
        server_pid = server._process.pid
        client = await at.connect(server.address)
        run_id = uuid.uuid4().hex[:8]
        queues = {k: f"bench-tp{k}-{run_id}" for k in SETS}
        async with Emulator(
            serve_dir=samples.folder, data_dir=workdir / "emu", workers=threads
        ) as emu:
            for k in SETS:  # one at a time: a loaded machine starts 7 interpreters slowly
                for _ in range(k):
                    process = await start_worker(server.address, emu, queues[k], store_dir)
                    workers[k].append(process)

            async def one(k: int, count: int) -> dict[str, float]:
                items = items_for(emu, samples, count)
                pids = [p.pid for p in workers[k]]
                gc.collect()
                own0, srv0, img0 = time.process_time(), proc_cpu(server_pid), image_threads_cpu()
                wrk0 = sum(proc_cpu(p) for p in pids)
                t0 = time.perf_counter()
                await run_temporal(client, store, queues[k], items, limit)
                wall = time.perf_counter() - t0
                own = time.process_time() - own0
                img = sum(v - img0.get(tid, 0.0) for tid, v in image_threads_cpu().items())
                return {
                    "wall": wall,
                    "image": img,
                    "loop": own - img,
                    "workers": sum(proc_cpu(p) for p in pids) - wrk0,
                    "server": proc_cpu(server_pid) - srv0,
                }

            for k in SETS:  # warm-up: face models, connection pools, workflow sandboxes
                await one(k, max(limit, n // 4))
            res: dict[int, list[dict[str, float]]] = {k: [] for k in SETS}
            for r in range(rounds):
                for k in SETS[r % len(SETS) :] + SETS[: r % len(SETS)]:
                    res[k].append(await one(k, n))
                    print(f"  round {r + 1}: {k} worker(s) {res[k][-1]['wall']:6.2f} s", flush=True)
    finally:
        for k in SETS:
            for process in workers[k]:
                await stop_worker(process)
        await server.stop()

    print(
        f"\none batch of {n} reference creates, limit {limit}, {rounds} rounds, emulator in this"
        f" process ({threads or 'default'} image threads), {CORES} cores"
    )
    print(f"{'items/s vs 1 worker':<22} {'median':>7} {'min':>6} {'max':>6} {'wall (median)':>14}")
    for k in SETS:
        ratios = [b["wall"] / c["wall"] for b, c in zip(res[1], res[k], strict=True)]
        wall = statistics.median(x["wall"] for x in res[k])
        print(
            f"{k} worker process(es)  {statistics.median(ratios):7.3f} {min(ratios):6.3f}"
            f" {max(ratios):6.3f} {wall:12.2f} s"
        )
    nthreads = threads or default_workers()
    print(
        "\nCPU per batch (medians): the emulator's image threads; the rest of this process"
        " (loop: the emulator's HTTP, the starter); the workers; the server; then per item,"
        " the share of the machine's cores used during the batch, and how busy the image"
        f" threads ({nthreads}) were"
    )
    parts_of = ("image", "loop", "workers", "server")
    for k in SETS:
        med = {key: statistics.median(x[key] for x in res[k]) for key in res[k][0]}
        used = sum(med[key] for key in parts_of)
        parts = "  ".join(f"{key} {med[key]:5.1f} s ({med[key] / used:4.0%})" for key in parts_of)
        print(
            f"{k} worker(s): {parts}; {used / n * 1000:.0f} ms/item;"
            f" {used / (med['wall'] * CORES):4.0%} of {CORES} cores;"
            f" image threads busy {med['image'] / (med['wall'] * nthreads):4.0%}"
        )


def main() -> None:
    """Run the measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40, help="creates per batch (40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--limit", type=int, default=8, help="items in flight (8)")
    parser.add_argument(
        "--emulator-threads",
        type=int,
        default=None,
        help="the emulator's image threads (default: its own, cores - 1, at most 4)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiportrait-bench-") as workdir:
        asyncio.run(
            _measure(args.items, args.rounds, args.limit, args.emulator_threads, Path(workdir))
        )


if __name__ == "__main__":
    main()
