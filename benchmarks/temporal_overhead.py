"""Wall time per batch of the Temporal path against ``Session.create_many``, in one process.

Both candidates run the same items against the same emulator (loopback, in this process) under
the same limit: ``--items`` reference creates (``ReferenceCreateRequest(reference, template +
"?v=<i>")`` over the sample photos, ``aiportrait.samples``), ``--limit`` in flight.

- ``create_many``: ``Session.create_many(items, limit=L, out_dir=...)``, each portrait written
  to a folder (as the Temporal path writes each to its store);
- ``temporal``: ``aiportrait.temporal.start_batch(..., store=..., limit=L)`` then
  ``result(handle)``, run by one worker (``new_worker``) in this process on a fresh task queue,
  against a local dev server (``DevServer``, ``temporal server start-dev``) this script starts and
  stops. ``Timeouts`` are the defaults but for the backoff (0.2 s first, 2 s cap).

After a warm-up of both, the rounds alternate which candidate goes first; each round gives a
ratio temporal / create_many of wall time per batch. Printed: the median of the per-round ratios
(min-max), the medians of the wall times for context, the extra milliseconds per item (difference
of the medians / items, a derived figure) and CPU per item (this process, plus the Temporal
server's for the Temporal path), with their ratio. Every item must succeed, or the run stops.

Run: ``.venv/bin/python benchmarks/temporal_overhead.py [--items 40] [--rounds 5] [--limit 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiportrait
from aiportrait import temporal as at
from aiportrait.emulator import Emulator
from aiportrait.samples import sample_photos

RETRY = {"retry_first": 0.2, "retry_cap": 2.0}
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its live descendants (``/proc``)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the comm field: state ppid ... utime (14th field) stime (15th)
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == p)
    return total


def items_for(emu: Emulator, samples: Any, n: int) -> list[tuple[str, Any]]:
    """``n`` reference creates over the sample photos, distinct bodies (``?v=``)."""
    people = (samples.astronaut, samples.hopper)
    out: list[tuple[str, Any]] = []
    for i in range(n):
        j = i % 2
        reference = emu.media_url(people[j][i % 5])
        template = emu.media_url(samples.templates[j])
        out.append((f"p{i:04d}", aiportrait.ReferenceCreateRequest(reference, f"{template}?v={i}")))
    return out


async def run_create_many(
    session: aiportrait.Session, items: list[tuple[str, Any]], limit: int, out: Path
) -> None:
    """One batch with ``create_many``; raises unless every item succeeded."""
    outcomes = [o async for o in session.create_many(items, limit=limit, out_dir=out)]
    failed = [o for o in outcomes if not o.ok]
    if failed or len(outcomes) != len(items):
        raise RuntimeError(f"create_many: {len(failed)} failed of {len(outcomes)}: {failed[:1]}")


async def run_temporal(
    client: Any, store: Any, queue: str, items: list[tuple[str, Any]], limit: int
) -> None:
    """One batch on Temporal; raises unless every item succeeded."""
    handle = await at.start_batch(
        client,
        items,
        store=store,
        task_queue=queue,
        limit=limit,
        timeouts=at.Timeouts(**RETRY),
    )
    summary = await at.result(handle)
    if summary.counts != {"succeeded": len(items)}:
        raise RuntimeError(f"temporal batch: {summary.counts}")


async def _measure(n: int, rounds: int, limit: int, workdir: Path) -> None:
    samples = sample_photos(workdir / "samples")
    server = at.DevServer(ui=False, log_file=workdir / "server.log")
    await server.start()
    try:
        assert server._process is not None
        server_pid = server._process.pid
        client = await at.connect(server.address)
        store = at.LocalPortraitStore(workdir / "store")
        queue = f"bench-overhead-{uuid.uuid4().hex[:8]}"
        async with (
            Emulator(serve_dir=samples.folder, data_dir=workdir / "emu") as emu,
            emu.session() as plain,
            emu.session() as for_worker,
            at.new_worker(client, for_worker, store, task_queue=queue),
        ):
            batch = 0

            async def one(name: str, count: int) -> tuple[float, float, float]:
                """Wall s, this process's CPU s, the server's CPU s of one batch."""
                nonlocal batch
                batch += 1
                items = items_for(emu, samples, count)
                gc.collect()
                cpu0, srv0, t0 = time.process_time(), proc_cpu(server_pid), time.perf_counter()
                if name == "create_many":
                    await run_create_many(plain, items, limit, workdir / f"out-{batch}")
                else:
                    await run_temporal(client, store, queue, items, limit)
                wall = time.perf_counter() - t0
                cpu, srv = time.process_time() - cpu0, proc_cpu(server_pid) - srv0
                shutil.rmtree(workdir / f"out-{batch}", ignore_errors=True)
                return wall, cpu, srv

            for name in ("create_many", "temporal"):  # warm-up: face models, pools, sandbox
                await one(name, max(limit, n // 4))
            res: dict[str, list[tuple[float, float, float]]] = {"create_many": [], "temporal": []}
            order = ["create_many", "temporal"]
            for r in range(rounds):
                for name in order if r % 2 == 0 else order[::-1]:
                    res[name].append(await one(name, n))
                    wall = res[name][-1][0]
                    print(f"  round {r + 1}: {name:<11} {wall:6.2f} s", flush=True)
    finally:
        await server.stop()

    base, cand = res["create_many"], res["temporal"]
    ratios = [c[0] / b[0] for b, c in zip(base, cand, strict=True)]
    med_b = statistics.median(w for w, _, _ in base)
    med_c = statistics.median(w for w, _, _ in cand)
    print(
        f"\n{n} reference creates per batch, limit {limit}, {rounds} rounds, one in-process"
        " worker, emulator in this process"
    )
    print(f"{'wall per batch':<34} {'median':>7} {'min':>6} {'max':>6}")
    print(
        f"{'temporal / create_many':<34} {statistics.median(ratios):7.3f}"
        f" {min(ratios):6.3f} {max(ratios):6.3f}"
    )
    print(f"median wall, create_many            {med_b:7.2f} s")
    print(f"median wall, temporal               {med_c:7.2f} s")
    print(f"extra per item (diff. of medians)   {(med_c - med_b) / n * 1000:+7.1f} ms")
    cpu_b = statistics.median(c for _, c, _ in base) / n * 1000
    cpu_c = statistics.median(c for _, c, _ in cand) / n * 1000
    srv_c = statistics.median(s for _, _, s in cand) / n * 1000
    print(f"CPU per item, create_many (process) {cpu_b:7.1f} ms")
    print(f"CPU per item, temporal (process)    {cpu_c:7.1f} ms  + server {srv_c:.1f} ms")
    print(f"CPU per item, temporal / create_many {(cpu_c + srv_c) / cpu_b:6.3f} (server included)")


def main() -> None:
    """Run the measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40, help="creates per batch (40)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    parser.add_argument("--limit", type=int, default=8, help="items in flight (8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiportrait-bench-") as workdir:
        asyncio.run(_measure(args.items, args.rounds, args.limit, Path(workdir)))


if __name__ == "__main__":
    main()
