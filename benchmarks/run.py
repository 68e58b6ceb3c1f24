"""All the benchmarks, side by side with the official SDK and the naive ways; one table, one JSON.

    python benchmarks/run.py            # everything (the 10,000-job watch takes ~14 minutes)
    python benchmarks/run.py --quick    # smaller sizes, a few minutes, same measures

Each comparison runs in this one process against the same loopback server (a separate
process answering canned envelopes, so the server is not what is measured), and every figure
is the median of ``--runs`` runs. The peers:

- the official synchronous SDK, ``ai-service-python-sdk`` (PyPI), driven by a thread pool as a
  Python user would (one ``ApiClient`` per thread);
- a naive aiohttp client written as the documentation's samples are (sequential calls, signing
  by hand, ``json.loads`` and ``base64.b64decode`` of the whole answer), and for polling the
  documentation's fixed 30-second loop and a fixed 1-second poller (see ``watch_many.py``).

Goals (issue 7): client CPU per check/job call at most half the official SDK's; 10,000 jobs
watched under 150 MB with a p50 delay under 1 s and at most a fifth of the 1-second poller's
polls; a large portrait's peak memory at most 2.5 times its size; a batch of 1,000 creates under
limit 16 within 1.02 times the ideal makespan; ``import aiportrait`` time against ``aiohttp``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

import aiportrait

HERE = Path(__file__).resolve().parent
APP, TOKEN = "bench-app", "bench-token"
PHOTOS = ["https://x/0.jpg"]


# -- the loopback server ---------------------------------------------------------------------


@contextmanager
def server(*args: str) -> Iterator[str]:
    """Run ``_fast_server.py`` in its own process; yield its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_fast_server.py"), str(port), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of ``runs`` measurements."""
    return statistics.median(measure() for _ in range(runs))


# -- the peers -------------------------------------------------------------------------------


def _sdk_apis(url: str) -> tuple[Any, Any]:
    from ai_service_python_sdk.client.api.ai_service_aigc_images_api import AIGCImagesApi
    from ai_service_python_sdk.client.api.ai_service_job_api import AiServiceJobApi
    from ai_service_python_sdk.client.api_client import ApiClient

    client = ApiClient(url, APP, TOKEN)
    return AIGCImagesApi(client), AiServiceJobApi(client)


def sdk_call(kind: str) -> Callable[[Any, Any], Any]:
    """One official-SDK call of ``kind`` (``check``, ``job`` or ``create``)."""
    if kind == "check":
        return lambda images, jobs: images.aigc_images_check(PHOTOS, "", None)
    if kind == "job":
        return lambda images, jobs: jobs.get_async_job_with_id(1)
    return lambda images, jobs: base64.b64decode(
        images.aigc_images_create("m-1", "https://x/t.jpg", "", None).data["image"]
    )


def run_sdk(url: str, kind: str, n: int, threads: int) -> float:
    """``n`` official-SDK calls on ``threads`` threads; returns the wall time."""
    local = threading.local()
    call = sdk_call(kind)

    def one(_: int) -> None:
        if not hasattr(local, "apis"):
            local.apis = _sdk_apis(url)
        call(*local.apis)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - started


async def run_aiportrait(url: str, kind: str, n: int, limit: int) -> float:
    """``n`` aiportrait calls with ``limit`` in flight; returns the wall time."""
    async with aiportrait.Session(url, APP, TOKEN, max_in_flight=limit,
                                  max_creations=limit) as session:  # fmt: skip
        if kind == "create":
            requests = [aiportrait.CreateRequest("m-1", "https://x/t.jpg")] * n
            started = time.perf_counter()
            async for outcome in session.create_many(requests, limit=limit):
                outcome.unwrap()
            return time.perf_counter() - started
        call = {
            "check": lambda: session.check_images(PHOTOS),
            "job": lambda: session.get_job(1),
        }[kind]
        started = time.perf_counter()
        pending = iter(range(n))

        async def worker() -> None:
            for _ in pending:
                await call()

        await asyncio.gather(*(worker() for _ in range(limit)))
        return time.perf_counter() - started


async def run_naive(url: str, kind: str, n: int) -> float:
    """The documentation's way, in aiohttp: sequential calls, signed by hand."""
    path, body = {
        "check": ("/api/v1/aigc_images/check",
                  json.dumps({"action": "AIGCImageCheck", "images": PHOTOS}).encode()),
        "job": ("/api/v1/async_jobs/1", b""),
        "create": ("/api/v1/aigc_images/create",
                   json.dumps({"action": "AIGCImageCreate", "model_id": "m-1",
                               "template_image": "https://x/t.jpg"}).encode()),
    }[kind]  # fmt: skip
    async with aiohttp.ClientSession() as client:
        started = time.perf_counter()
        for _ in range(n):
            sign = f"POST\n{hashlib.md5(body).hexdigest()}\n{path}".encode()
            digest = hmac.new(TOKEN.encode(), sign, hashlib.sha256).hexdigest()
            headers = {"Authorization": f"{APP}:{digest}", "Content-Type": "application/json"}
            async with client.post(url + path, data=body, headers=headers) as resp:
                answer = json.loads(await resp.read())
            if kind == "create":
                base64.b64decode(answer["data"]["image"])
        return time.perf_counter() - started


def cpu_of(run: Callable[[], Any]) -> float:
    """Process CPU seconds (all threads) spent in ``run``."""
    started = time.process_time()
    run()
    return time.process_time() - started


# -- the measures ----------------------------------------------------------------------------


def _cpu_row(url: str, kind: str, n: int, runs: int) -> dict[str, Any]:
    asyncio.run(run_aiportrait(url, kind, 50, 16))  # warm up both
    run_sdk(url, kind, 50, 16)

    def ours() -> float:
        return cpu_of(lambda: asyncio.run(run_aiportrait(url, kind, n, 16))) / n

    def sdk() -> float:
        return cpu_of(lambda: run_sdk(url, kind, n, 16)) / n

    def naive() -> float:
        return cpu_of(lambda: asyncio.run(run_naive(url, kind, n))) / n

    ms = [median_of(runs, f) * 1e3 for f in (ours, sdk, naive)]
    return _row(f"CPU per {kind} call (ms)", ms[0], ms[1], "official SDK, 16 threads",
                goal=0.5, note=f"naive aiohttp {ms[2]:.3f} ms")  # fmt: skip


def measure_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """1. Client CPU time per request for check and job calls."""
    with server() as url:
        return [_cpu_row(url, kind, args.calls, args.runs) for kind in ("check", "job")]


def _peak_ratio(call: Callable[[], Any], size: int) -> float:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1] / size
    finally:
        tracemalloc.stop()


def measure_large(args: argparse.Namespace) -> list[dict[str, Any]]:
    """3. Large portraits: decode throughput and peak memory per response in flight."""
    mb = args.image_mb
    size = int(mb * 1024 * 1024)
    count = args.large_count
    with server("--image-mb", str(mb)) as url:

        async def ours_one() -> None:
            async with aiportrait.Session(url, APP, TOKEN) as session:
                await session.create("m-1", "https://x/t.jpg")

        def sdk_one() -> None:
            images, jobs = _sdk_apis(url)
            sdk_call("create")(images, jobs)

        asyncio.run(ours_one())
        sdk_one()
        ours_peak = median_of(args.runs, lambda: _peak_ratio(lambda: asyncio.run(ours_one()), size))
        sdk_peak = median_of(args.runs, lambda: _peak_ratio(sdk_one, size))
        naive_peak = median_of(
            args.runs, lambda: _peak_ratio(lambda: asyncio.run(run_naive(url, "create", 1)), size)
        )
        ours_s = median_of(args.runs, lambda: asyncio.run(run_aiportrait(url, "create", count, 4)))
        sdk_s = median_of(args.runs, lambda: run_sdk(url, "create", count, 4))
    return [
        _row(f"peak memory per {mb:g} MB portrait (x size)", ours_peak, sdk_peak,
             "official SDK", goal=2.5, absolute=True,
             note=f"naive aiohttp {naive_peak:.2f}x"),
        _row(f"decode throughput, {mb:g} MB portraits (MB/s)", count * mb / ours_s,
             count * mb / sdk_s, "official SDK, 4 threads", higher_is_better=True),
    ]  # fmt: skip


async def run_floor(url: str, n: int, k: int) -> float:
    """The loopback floor: bare aiohttp, K workers, no signing, no decoding."""
    async with aiohttp.ClientSession() as client:
        pending = iter(range(n))

        async def worker() -> None:
            for _ in pending:
                async with client.post(url + "/api/v1/aigc_images/create", data=b"{}") as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(k)))
        return time.perf_counter() - started


def measure_batch(args: argparse.Namespace) -> list[dict[str, Any]]:
    """4. A batch of N creates of fixed service time under limit K: makespan against ideal."""
    n, k, service = args.batch_n, 16, 0.05
    ideal = n / k * service
    with server("--create-delay", str(service)) as url:
        asyncio.run(run_aiportrait(url, "create", 32, k))
        ours = median_of(args.runs, lambda: asyncio.run(run_aiportrait(url, "create", n, k)))
        sdk = median_of(args.runs, lambda: run_sdk(url, "create", n, k))
        floor = median_of(args.runs, lambda: asyncio.run(run_floor(url, n, k)))
    return [
        _row(f"batch makespan / ideal (N={n}, K={k}, {service * 1e3:.0f} ms each)",
             ours / ideal, sdk / ideal, "official SDK, 16 threads", goal=1.02, absolute=True,
             note=f"ideal {ideal:.2f}s; bare aiohttp on the same server (the loopback floor): "
                  f"{floor / ideal:.3f}; the documentation's sequential loop: {n * service:.0f}s"),
    ]  # fmt: skip


def _import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout)


def measure_import(args: argparse.Namespace) -> list[dict[str, Any]]:
    """5. ``import aiportrait`` time against ``import aiohttp`` alone."""
    ours = median_of(max(5, args.runs), lambda: _import_seconds("aiportrait"))
    base = median_of(max(5, args.runs), lambda: _import_seconds("aiohttp"))
    return [_row("import time (ms)", ours * 1e3, base * 1e3, "import aiohttp alone")]


def measure_watch(args: argparse.Namespace) -> list[dict[str, Any]]:
    """2. Many jobs watched at once (runs ``watch_many.py``)."""
    out = HERE / "results" / "watch_many.json"
    cmd = [sys.executable, str(HERE / "watch_many.py"), "--count", str(args.watch_count),
           "--min", str(args.watch_min), "--max", str(args.watch_max),
           "--json", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    hint, plain, one = rows["aiportrait+expected"], rows["aiportrait"], rows["fixed-1s"]
    label = f"{args.watch_count} jobs of {args.watch_min:g}-{args.watch_max:g}s"
    return [
        _row(f"watch {label}: peak RSS (MB)", hint["peak_rss_mb"], one["peak_rss_mb"],
             "fixed 1-s poller", goal=150, absolute=True),
        _row(f"watch {label}: p50 delay (s), expected given", hint["delay_p50_s"],
             one["delay_p50_s"], "fixed 1-s poller", goal=1.0, absolute=True,
             note=f"p99 {hint['delay_p99_s']}s; without a hint p50 {plain['delay_p50_s']}s; "
                  f"30-s loop p50 {rows['fixed-30s']['delay_p50_s']}s"),
        _row(f"watch {label}: polls per job, expected given", hint["polls_per_job"],
             one["polls_per_job"], "fixed 1-s poller", goal=0.2,
             note=f"without a hint {plain['polls_per_job']}; "
                  f"30-s loop {rows['fixed-30s']['polls_per_job']}"),
        _row(f"watch {label}: client CPU (s)", hint["cpu_s"], one["cpu_s"], "fixed 1-s poller"),
    ]  # fmt: skip


def _row(
    measure: str,
    ours: float,
    peer: float,
    peer_name: str,
    *,
    goal: float | None = None,
    absolute: bool = False,
    higher_is_better: bool = False,
    note: str = "",
) -> dict[str, Any]:
    ratio = ours / peer if peer else float("inf")
    met = None
    if goal is not None:
        met = (ours <= goal) if absolute else (ratio <= goal)
    return {
        "measure": measure,
        "aiportrait": round(ours, 4),
        "peer": round(peer, 4),
        "peer_name": peer_name,
        "ratio": round(ratio, 3),
        "goal": None if goal is None else (f"<= {goal}" if absolute else f"ratio <= {goal}"),
        "met": met,
        "higher_is_better": higher_is_better,
        "note": note,
    }


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'measure':<58}{'aiportrait':>12}{'peer':>12}{'ratio':>8}  goal / met")
    for r in rows:
        met = "" if r["met"] is None else ("met" if r["met"] else "NOT MET")
        goal = f"{r['goal']} {met}" if r["goal"] else ""
        print(f"{r['measure']:<58}{r['aiportrait']:>12}{r['peer']:>12}{r['ratio']:>8}  {goal}")
        print(f"{'':<4}peer: {r['peer_name']}" + (f"; {r['note']}" if r["note"] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=["cpu", "watch", "large", "batch", "import"],
                        action="append")  # fmt: skip
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args()
    args.calls = 500 if args.quick else 2000
    args.image_mb, args.large_count = 8.0, (3 if args.quick else 10)
    args.batch_n = 200 if args.quick else 1000
    args.watch_count = 1000 if args.quick else 10_000
    args.watch_min, args.watch_max = (20.0, 40.0) if args.quick else (60.0, 180.0)
    if args.quick:
        args.runs = min(args.runs, 3)
    measures = {"cpu": measure_cpu, "large": measure_large, "batch": measure_batch,
                "import": measure_import, "watch": measure_watch}  # fmt: skip
    rows: list[dict[str, Any]] = []
    for name in args.only or list(measures):
        started = time.perf_counter()
        got = measures[name](args)
        rows += got
        print(f"[{name}: {time.perf_counter() - started:.0f}s]", flush=True)
        _print(got)
    print("\nall measures:")
    _print(rows)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "aiportrait": aiportrait.__version__,
        "aiohttp": aiohttp.__version__,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "runs": args.runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
