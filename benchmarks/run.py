"""aiportrait against the floor: interleaved rounds, medians of per-round ratios, one JSON.

    python benchmarks/run.py                 # every measure, 7 rounds each (about 4 minutes)
    python benchmarks/run.py --quick         # smaller sizes, 3 rounds (under a minute)
    python benchmarks/run.py --only cpu --rounds 11

Each measure runs its two candidates in this one process, alternately, round by round (A, B,
A, B, ...), after a warm-up of both; each round gives a ratio A / B, and the figure is the median
of those ratios with their min-max. Absolute times are never reported: they say more about the
machine than about the client. The server is a separate process (``_fast_server.py``, canned
envelopes), so its CPU is not counted and both candidates talk to the same one.

- ``cpu``: client CPU (``time.process_time``) for a fixed number of check calls (5 photos, 5
  verdicts) and job queries, 8 in flight, aiportrait against a bare aiohttp client doing the
  same signing (HMAC-SHA256 over method, MD5 of the body and path), the same headers and the
  same JSON (``json.dumps`` of the body, ``json.loads`` of the answer). Goal: at most 1.10.
- ``import``: ``import aiportrait`` against ``import aiohttp``, each in a fresh interpreter
  (wall time of the import statement). Goal: at most 1.10.
- ``memory``: the traced peak (``tracemalloc``) of one 8 MB portrait create, against the image
  size; the official SDK ``ai-service-python-sdk`` (create, then ``b64decode``) is the reference
  row when it is installed. Goal: at most 1.5.
- ``batch``: the makespan of N creates answered after a fixed 50 ms, K=16 in flight,
  ``create_many`` against 16 bare aiohttp workers (signing, JSON, base64 decode). Goal: at most
  1.02.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio

import aiportrait

HERE = Path(__file__).resolve().parent
APP, TOKEN = "bench-app", "bench-token"
PHOTOS = [f"https://x/{i}.jpg" for i in range(5)]
CHECK_PATH = "/api/v1/aigc_images/check"
JOB_PATH = "/api/v1/async_jobs/1"
CREATE_PATH = "/api/v1/aigc_images/create"
IN_FLIGHT = 8

Call = Callable[[], Awaitable[Any]]


# -- the loopback server ---------------------------------------------------------------------


PINNED = False
"""Client and server each on a CPU of their own (see ``--no-pin``)."""


def _pin(which: int) -> Callable[[], None] | None:
    """Pin a process to one CPU (the last for the server, the first for the client), so that
    the two do not trade places between rounds; nothing where affinity cannot be set."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpus[which]})


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
        preexec_fn=_pin(-1) if PINNED else None,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


# -- the bare client: what any aiohttp user writes, with the protocol's signing ------------------


class Bare:
    """A bare aiohttp client: the protocol's signing and headers, ``json`` both ways."""

    def __init__(self, url: str, timeout: aiohttp.ClientTimeout | None = None) -> None:
        self.url = url
        self.client = aiohttp.ClientSession(**({"timeout": timeout} if timeout else {}))
        self.agent = f"bare/1 aiohttp/{aiohttp.__version__}"

    async def aclose(self) -> None:
        """Close the aiohttp session."""
        await self.client.close()

    async def call(self, path: str, payload: dict[str, Any] | None, accept: str) -> Any:
        """One signed POST; the answer's ``data``."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        signed = f"POST\n{hashlib.md5(body).hexdigest()}\n{path}".encode()
        digest = hmac.new(TOKEN.encode(), signed, hashlib.sha256).hexdigest()
        headers = {
            "Authorization": f"{APP}:{digest}",
            "Accept": accept,
            "User-Agent": self.agent,
            "X-Request-Time": str(int(time.time())),
        }
        if body:
            headers["Content-Type"] = "application/json"
        async with self.client.post(
            self.url + path,
            data=body or None,
            headers=headers,
            skip_auto_headers=None if body else ("Content-Type",),
        ) as resp:
            answer = json.loads(await resp.read())
        if resp.status != 200 or answer.get("code") != "OK":
            raise RuntimeError(f"bare client: HTTP {resp.status} {answer.get('code')}")
        return answer["data"]

    def check(self) -> Awaitable[Any]:
        """A check of :data:`PHOTOS`."""
        return self.call(
            CHECK_PATH, {"action": "AIGCImageCheck", "images": PHOTOS}, "application/json"
        )

    def job(self) -> Awaitable[Any]:
        """A job query."""
        return self.call(JOB_PATH, None, "text/plain")

    async def create(self) -> bytes:
        """A create, its image decoded."""
        payload = {
            "action": "AIGCImageCreate",
            "model_id": "m-1",
            "template_image": "https://x/t.jpg",
        }
        data = await self.call(CREATE_PATH, payload, "application/json")
        return base64.b64decode(data["image"])


# -- measuring ----------------------------------------------------------------------------------


async def drive(call: Call, n: int, in_flight: int) -> None:
    """``n`` calls, ``in_flight`` at a time (workers taking the next call as one ends)."""
    pending = iter(range(n))

    async def worker() -> None:
        for _ in pending:
            await call()

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def cpu_of(work: Awaitable[Any]) -> float:
    """Process CPU seconds (all threads) spent until ``work`` is done."""
    gc.collect()
    started = time.process_time()
    await work
    return time.process_time() - started


async def wall_of(work: Awaitable[Any]) -> float:
    """Wall seconds until ``work`` is done."""
    gc.collect()
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


def row(
    measure: str,
    candidate: str,
    baseline: str,
    pairs: list[tuple[float, float]],
    goal: float | None,
    note: str = "",
) -> dict[str, Any]:
    """The median and min-max of the per-round ratios ``a / b``."""
    ratios = [a / b for a, b in pairs]
    median = statistics.median(ratios)
    return {
        "measure": measure,
        "candidate": candidate,
        "baseline": baseline,
        "ratio_median": round(median, 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "ratios": [round(r, 4) for r in ratios],
        "goal": goal,
        "met": None if goal is None else median <= goal,
        "note": note,
    }


# -- 1. client CPU per check and job call -----------------------------------------------------


class Limited(Bare):
    """The bare client with aiportrait's ``DEFAULT_TIMEOUT`` (connect 10 s, 180 s between bytes,
    300 s in all) and a token of an anyio ``CapacityLimiter`` taken without a trip through the
    event loop."""

    def __init__(self, url: str) -> None:
        super().__init__(url, aiportrait.DEFAULT_TIMEOUT)
        self.limiter = anyio.CapacityLimiter(16)

    async def call(self, path: str, payload: dict[str, Any] | None, accept: str) -> Any:
        """One signed POST holding a limiter token."""
        task = asyncio.current_task()
        self.limiter.acquire_on_behalf_of_nowait(task)
        try:
            return await super().call(path, payload, accept)
        finally:
            self.limiter.release_on_behalf_of(task)


class Guarded(Limited):
    """The bare client plus what aiportrait guarantees on every call: :class:`Limited` under an
    anyio cancel scope for the call's deadline (600 s). A reference for those guarantees
    (``layers.py`` shows that aiportrait's own deadline, one loop timer shared by every call,
    costs less than this scope's timer per call).
    """

    async def call(self, path: str, payload: dict[str, Any] | None, accept: str) -> Any:
        """One signed POST under a deadline and a limiter token."""
        with anyio.move_on_after(600):
            return await super().call(path, payload, accept)
        raise TimeoutError("deadline")


async def _cpu(url: str, n: int, rounds: int) -> list[dict[str, Any]]:
    bare, guarded = Bare(url), Guarded(url)
    session = aiportrait.Session(url, APP, TOKEN, max_in_flight=IN_FLIGHT)
    rows = []
    try:
        for kind in ("check", "job"):
            ours: Call = (
                (lambda: session.check_images(PHOTOS))
                if kind == "check"
                else (lambda: session.get_job(1))
            )
            theirs: Call = bare.check if kind == "check" else bare.job
            floor: Call = guarded.check if kind == "check" else guarded.job
            for call in (ours, theirs, floor):  # warm up: connections, caches, first imports
                await drive(call, max(200, n // 5), IN_FLIGHT)
            times: list[tuple[float, float, float]] = []
            for _ in range(rounds):
                a = await cpu_of(drive(ours, n, IN_FLIGHT))
                b = await cpu_of(drive(theirs, n, IN_FLIGHT))
                c = await cpu_of(drive(floor, n, IN_FLIGHT))
                times.append((a, b, c))
            what = "check (5 photos, 5 verdicts)" if kind == "check" else "job query"
            measure = f"client CPU per {what}, {IN_FLIGHT} in flight"
            note = f"{n} calls per candidate per round"
            rows += [
                row(measure, "aiportrait", "bare aiohttp + signing + json",
                    [(a, b) for a, b, _ in times], 1.10, note=note),
                row(measure, "bare + aiportrait's guarantees (DEFAULT_TIMEOUT, deadline "
                    "scope, limiter)", "bare aiohttp + signing + json",
                    [(c, b) for _, b, c in times], None,
                    note="reference: what the guarantees cost on their own"),
                row(measure, "aiportrait", "bare + aiportrait's guarantees",
                    [(a, c) for a, _, c in times], None,
                    note="reference: aiportrait's own code on top of that floor"),
            ]  # fmt: skip
    finally:
        await session.aclose()
        await bare.aclose()
        await guarded.aclose()
    return rows


def measure_cpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Client CPU per request: check and job query."""
    with server() as url:
        return asyncio.run(_cpu(url, args.calls, args.rounds))


# -- 2. import time ---------------------------------------------------------------------------


def _import_seconds(module: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(done.stdout)


def measure_import(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``import aiportrait`` against ``import aiohttp``, fresh interpreters, interleaved.

    Both load from bytecode, as an installed package does: the child interpreters write and
    read their ``.pyc`` files under a temporary ``PYTHONPYCACHEPREFIX`` (also when the
    environment says ``PYTHONDONTWRITEBYTECODE``, which would otherwise compile the work tree's
    sources at every import and measure the compiler).
    """
    with tempfile.TemporaryDirectory(prefix="aiportrait-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for _ in range(2):  # write the bytecode, warm the file cache
            _import_seconds("aiportrait", env), _import_seconds("aiohttp", env)
        rounds = max(args.rounds, 7) * 3  # cheap and noisy: more rounds
        pairs = [
            (_import_seconds("aiportrait", env), _import_seconds("aiohttp", env))
            for _ in range(rounds)
        ]
    note = "fresh interpreters, from bytecode; python -X importtime -c 'import aiportrait' "
    note += "tells what it loads"
    return [row("import time", "import aiportrait", "import aiohttp", pairs, 1.10, note=note)]


# -- 3. peak memory of a large portrait -------------------------------------------------------


def _traced_peak(run: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure_memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Peak traced memory of one 8 MB portrait create, against the image size."""
    size = int(args.image_mb * 1024 * 1024)
    try:
        from ai_service_python_sdk.client.api.ai_service_aigc_images_api import AIGCImagesApi
        from ai_service_python_sdk.client.api_client import ApiClient
    except ImportError:
        AIGCImagesApi = None
    with server("--image-mb", str(args.image_mb)) as url:
        loop = asyncio.new_event_loop()
        session = aiportrait.Session(url, APP, TOKEN)

        def ours() -> None:
            portrait = loop.run_until_complete(session.create("m-1", "https://x/t.jpg"))
            assert len(portrait.image) == size

        def sdk() -> None:
            api = AIGCImagesApi(ApiClient(url, APP, TOKEN))
            answer = api.aigc_images_create("m-1", "https://x/t.jpg", "", None)
            assert len(base64.b64decode(answer.data["image"])) == size

        try:
            ours()  # warm up: imports, the connection
            if AIGCImagesApi is not None:
                sdk()
            pairs, sdk_pairs = [], []
            for _ in range(args.rounds):
                pairs.append((_traced_peak(ours), size))
                if AIGCImagesApi is not None:
                    sdk_pairs.append((_traced_peak(sdk), size))
        finally:
            loop.run_until_complete(session.aclose())
            loop.close()
    mb = f"{args.image_mb:g} MB"
    rows = [
        row(
            f"peak memory of one {mb} portrait create",
            "aiportrait (traced peak)",
            "image size",
            pairs,
            1.5,
            note="tracemalloc, one create in flight",
        )
    ]
    if sdk_pairs:
        rows.append(
            row(
                f"peak memory of one {mb} portrait create",
                "official SDK 1.1.5 (create, b64decode)",
                "image size",
                sdk_pairs,
                None,
                note="reference",
            )
        )
    return rows


# -- 4. batch makespan ------------------------------------------------------------------------


async def _batch(url: str, n: int, k: int, rounds: int) -> list[tuple[float, float]]:
    bare = Bare(url)
    session = aiportrait.Session(url, APP, TOKEN, max_in_flight=k, max_creations=k)
    requests = [aiportrait.CreateRequest("m-1", "https://x/t.jpg")] * n

    async def ours(count: int) -> None:
        async for outcome in session.create_many(requests[:count], limit=k):
            outcome.unwrap()

    try:
        await ours(4 * k)  # warm up both
        await drive(bare.create, 4 * k, k)
        pairs = []
        for _ in range(rounds):
            a = await wall_of(ours(n))
            b = await wall_of(drive(bare.create, n, k))
            pairs.append((a, b))
        return pairs
    finally:
        await session.aclose()
        await bare.aclose()


def measure_batch(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Makespan of N creates of a fixed 50 ms service time, K=16 in flight."""
    n, k, service = args.batch_n, 16, 0.05
    with server("--create-delay", str(service)) as url:
        pairs = asyncio.run(_batch(url, n, k, args.rounds))
    floor = statistics.median(b for _, b in pairs) / (n / k * service)
    return [
        row(
            f"batch makespan, N={n} creates, K={k}, {service * 1e3:.0f} ms each",
            "aiportrait create_many",
            f"{k} bare aiohttp workers",
            pairs,
            1.02,
            note=f"the bare floor itself is {floor:.3f}x the ideal N/K x service time",
        )
    ]


# -- the table --------------------------------------------------------------------------------


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'measure':<58}{'candidate / baseline':<60}{'median':>8}  {'min-max':<13} goal")
    for r in rows:
        met = "" if r["met"] is None else (" met" if r["met"] else " NOT MET")
        goal = f"<= {r['goal']}{met}" if r["goal"] is not None else "(reference)"
        spread = f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        who = f"{r['candidate']} / {r['baseline']}"
        print(f"{r['measure']:<58}{who:<60}{r['ratio_median']:>8.3f}  {spread:<13} {goal}")
        if r["note"]:
            print(f"{'':<4}{r['note']}")


MEASURES = {
    "cpu": measure_cpu,
    "import": measure_import,
    "memory": measure_memory,
    "batch": measure_batch,
}


def main() -> None:
    """Run the measures; print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measure (7)")
    parser.add_argument("--only", choices=list(MEASURES), action="append")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin client and server")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 7)
    global PINNED
    pin = None if args.no_pin else _pin(0)
    if pin is not None:
        pin()
        PINNED = True
    args.calls = 1000 if args.quick else 3000
    args.image_mb = 8.0
    args.batch_n = 200 if args.quick else 1000
    rows: list[dict[str, Any]] = []
    for name in args.only or list(MEASURES):
        started = time.perf_counter()
        got = MEASURES[name](args)
        rows += got
        print(f"[{name}: {time.perf_counter() - started:.0f}s]", flush=True)
        _print(got)
    print("\nall measures:")
    _print(rows)
    write_json(args.json, rows, rounds=args.rounds)


def write_json(path: Path, rows: list[dict[str, Any]], **meta: Any) -> None:
    """Write ``rows`` to ``path`` with the date, the machine, the versions and the command."""
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "aiportrait": aiportrait.__version__,
        "aiohttp": aiohttp.__version__,
        "command": " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        **meta,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
