"""Where a call's client CPU goes: the call path measured layer by layer, side by side.

    python benchmarks/layers.py                   # CPU per call, interleaved rounds (a few minutes)
    python benchmarks/layers.py --instructions    # instructions per call under valgrind (~10 min)
    python benchmarks/layers.py --import          # import aiportrait / import aiohttp, counted

Each layer is ``run.py``'s bare client, or aiportrait, with one more thing than the row above,
all against ``run.py``'s loopback server (``_fast_server.py``, another process), 8 in flight:

1. ``bare``: the bare aiohttp client of ``run.py`` (signing, headers, ``json`` both ways), with
   aiohttp's default timeout (300 s in all, 30 s to connect a socket).
2. ``+ DEFAULT_TIMEOUT``: the same with aiportrait's per-try timeouts (connect 10 s, which aiohttp
   skips on a pooled connection; 180 s between bytes, a loop timer armed when the request is
   written and re-armed at every read).
3. ``+ limiter token``: and a token of an anyio ``CapacityLimiter``, taken without waiting.
4. ``+ asyncio deadline``: and the call's deadline as ``asyncio.timeout(600)``.
5. ``+ anyio deadline``: instead, ``anyio.move_on_after(600)`` (``run.py``'s "bare +
   guarantees").
6. ``transport``: aiportrait's wire layer alone (``Transport.call``: signing, JSON, the
   envelope), answering the envelope's ``data``, with the per-try timeout a Session gives these
   read-only calls (``DEFAULT_READ_TIMEOUT``: 180 s in all, no timer between reads), so it adds
   to ``bare``. Private API: update it with the layout.
7. ``+ models``: and the answer read into the models (``CheckReport``, or a ``Job`` with its
   ``TrainResult``), by the codec.
8. ``session.send(request)``: a Session sending a request built once: adds the retry loop (the
   deadline, the limiter, the cool-down) and the Session's send.
9. ``+ building the request``: ``session.send(CheckRequest(PHOTOS))`` or ``send(JobQuery(1))``.
10. ``session method``: ``check_images(PHOTOS)`` or ``get_job(1)``: adds resolving local inputs.

The step of a row (its ratio minus that of the row it adds to) is what that layer costs, in
units of the bare call. ``--instructions`` counts user-space instructions per call under
valgrind (``cachegrind``, no cache simulation): each candidate runs in a child process for N1
and then N2 calls after a warm-up, and the difference is divided by N2 - N1. Those counts do not
move with the machine's load (two runs agree within 0.5 %), which CPU times on a shared machine
do; they leave out the kernel's share (socket writes and reads, ``epoll``), so their ratios run
somewhat above the CPU ratios of ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from run import APP, CHECK_PATH, IN_FLIGHT, JOB_PATH, PHOTOS, TOKEN, Bare, Call, Limited  # noqa: E402

import aiportrait  # noqa: E402
from aiportrait._wire.codec import decode_check, decode_job  # noqa: E402
from aiportrait._wire.transport import DEFAULT_READ_TIMEOUT, Transport  # noqa: E402


class AsyncioDeadline(Limited):
    """... and the call's deadline as ``asyncio.timeout(600)``."""

    async def call(self, path: str, payload: dict[str, Any] | None, accept: str) -> Any:
        """One signed POST holding a limiter token, under ``asyncio.timeout``."""
        async with asyncio.timeout(600):
            return await super().call(path, payload, accept)


class Wire:
    """aiportrait's transport alone, and optionally its codec (private API)."""

    def __init__(self, url: str, models: bool) -> None:
        self.transport = Transport(url, APP, TOKEN, timeout=DEFAULT_READ_TIMEOUT)
        self.models = models

    async def aclose(self) -> None:
        """Close the transport."""
        await self.transport.aclose()

    async def check(self) -> Any:
        """A check of :data:`PHOTOS`."""
        payload = {"action": "AIGCImageCheck", "images": PHOTOS}
        answer = await self.transport.call("POST", CHECK_PATH, payload)
        return decode_check(answer.data, answer.request_id) if self.models else answer.data

    async def job(self) -> Any:
        """A job query."""
        answer = await self.transport.call("POST", JOB_PATH, None, accept="text/plain")
        return decode_job(answer.data, 1, answer.request_id) if self.models else answer.data


LAYERS = {
    "bare": "",
    "+ DEFAULT_TIMEOUT": "bare",
    "+ limiter token": "+ DEFAULT_TIMEOUT",
    "+ asyncio deadline": "+ limiter token",
    "+ anyio deadline": "+ limiter token",
    "transport": "bare",
    "+ models": "transport",
    "session.send(request)": "+ models",
    "+ building the request": "session.send(request)",
    "session method": "+ building the request",
}
"""Each layer, and the layer it adds to (its step is the difference)."""


def candidate(name: str, kind: str, url: str) -> tuple[Call, Callable[[], Any]]:
    """The call of layer ``name`` for ``kind`` (check or job), and how to close its client."""
    if name.startswith("session") or name == "+ building the request":
        session = aiportrait.Session(url, APP, TOKEN, max_in_flight=IN_FLIGHT)
        check, query = aiportrait.CheckRequest(PHOTOS), aiportrait.JobQuery(1)
        calls: dict[tuple[str, str], Call] = {
            ("session.send(request)", "check"): lambda: session.send(check),
            ("session.send(request)", "job"): lambda: session.send(query),
            ("+ building the request", "check"): lambda: session.send(
                aiportrait.CheckRequest(PHOTOS)
            ),
            ("+ building the request", "job"): lambda: session.send(aiportrait.JobQuery(1)),
            ("session method", "check"): lambda: session.check_images(PHOTOS),
            ("session method", "job"): lambda: session.get_job(1),
        }
        return calls[name, kind], session.aclose
    client: Any = {
        "bare": lambda: Bare(url),
        "+ DEFAULT_TIMEOUT": lambda: Bare(url, aiportrait.DEFAULT_TIMEOUT),
        "+ limiter token": lambda: Limited(url),
        "+ asyncio deadline": lambda: AsyncioDeadline(url),
        "+ anyio deadline": lambda: run.Guarded(url),
        "transport": lambda: Wire(url, models=False),
        "+ models": lambda: Wire(url, models=True),
    }[name]()
    return getattr(client, kind), client.aclose


# -- CPU per call, interleaved rounds ----------------------------------------------------------


async def _cpu(url: str, kind: str, calls: int, rounds: int) -> dict[str, list[float]]:
    built = {name: candidate(name, kind, url) for name in LAYERS}
    micros: dict[str, list[float]] = {name: [] for name in LAYERS}
    try:
        for call, _ in built.values():  # warm up: connections, caches, first imports
            await run.drive(call, max(200, calls // 5), IN_FLIGHT)
        for i in range(rounds):
            names = list(LAYERS)
            order = names[i % len(names) :] + names[: i % len(names)]  # rotate the order
            for name in order:
                seconds = await run.cpu_of(run.drive(built[name][0], calls, IN_FLIGHT))
                micros[name].append(seconds / calls * 1e6)
    finally:
        for _, close in built.values():
            await close()
    return micros


def measure_cpu(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """CPU microseconds per call of every layer; ratios to ``bare`` per round."""
    rows = []
    for kind in args.kinds:
        micros = asyncio.run(_cpu(url, kind, args.calls, args.rounds))
        for name in LAYERS:
            ratios = [a / b for a, b in zip(micros[name], micros["bare"], strict=True)]
            rows.append({
                "kind": kind, "layer": name, "unit": "CPU µs per call",
                "per_call": round(statistics.median(micros[name]), 1),
                "ratio_median": round(statistics.median(ratios), 3),
                "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
            })  # fmt: skip
    return rows


# -- instructions per call, under valgrind -----------------------------------------------------


def _child(name: str, kind: str, calls: int, url: str) -> None:
    async def main() -> None:
        call, close = candidate(name, kind, url)
        await run.drive(call, 200, IN_FLIGHT)
        await run.drive(call, calls, IN_FLIGHT)
        await close()

    asyncio.run(main())


def instructions(argv: list[str], env: dict[str, str] | None = None) -> int:
    """User-space instructions of running ``argv`` to its end, counted by valgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         *argv],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-500:]}")
    return int(found[1].replace(",", ""))


def _calls(name: str, kind: str, calls: int, url: str) -> int:
    return instructions([sys.executable, __file__, "--child", name, kind, str(calls), url])


def measure_instructions(url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Thousands of user-space instructions per call of every layer, and ratios to ``bare``."""
    low, high = args.calls // 6, args.calls
    rows = []
    for kind in args.kinds:
        counts = {}
        for name in LAYERS:
            more = _calls(name, kind, high, url) - _calls(name, kind, low, url)
            counts[name] = more / (high - low) / 1000
            print(f"  {kind} {name}: {counts[name]:.1f} k", flush=True)
        for name in LAYERS:
            rows.append({
                "kind": kind, "layer": name, "unit": "k instructions per call",
                "per_call": round(counts[name], 1),
                "ratio_median": round(counts[name] / counts["bare"], 3),
            })  # fmt: skip
    return rows


def measure_import() -> list[dict[str, Any]]:
    """Instructions of ``import aiportrait`` against ``import aiohttp``, each in a fresh
    interpreter from bytecode (as ``run.py`` measures its time), less an empty interpreter's."""
    with tempfile.TemporaryDirectory(prefix="aiportrait-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        count: dict[str, float] = {}
        for code in ("pass", "import aiohttp", "import aiportrait"):
            subprocess.run([sys.executable, "-c", code], env=env, check=True)  # the bytecode
            count[code] = instructions([sys.executable, "-c", code], env) / 1e6
    aiohttp_, ours = (count[c] - count["pass"] for c in ("import aiohttp", "import aiportrait"))
    return [
        {"kind": "import", "layer": "import aiohttp", "unit": "M instructions",
         "per_call": round(aiohttp_, 1), "ratio_median": 1.0},
        {"kind": "import", "layer": "import aiportrait", "unit": "M instructions",
         "per_call": round(ours, 1), "ratio_median": round(ours / aiohttp_, 3)},
    ]  # fmt: skip


def main() -> None:
    """Measure every layer; print the table; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", action="store_true", help="count under valgrind")
    parser.add_argument("--import", dest="imports", action="store_true", help="import, counted")
    parser.add_argument("--calls", type=int, default=None, help="per candidate per round")
    parser.add_argument("--rounds", type=int, default=15, help="CPU rounds (15)")
    parser.add_argument("--kinds", default="check,job", help="check, job or both")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "layers.json")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, kind, calls, url = args.child
        _child(name, kind, int(calls), url)
        return
    args.kinds = args.kinds.split(",")
    args.calls = args.calls or (1200 if args.instructions else 1000)
    pin = run._pin(0)  # client and server on a CPU each, as run.py does
    if pin is not None:
        pin()
        run.PINNED = True
    if args.imports:
        rows = measure_import()
    else:
        with run.server() as url:
            rows = (measure_instructions if args.instructions else measure_cpu)(url, args)
    print(f"\n{'kind':<8}{'layer':<26}{'per call':>10}  {'/ bare':>7}  {'step':>7}  over")
    ratio = {(r["kind"], r["layer"]): r["ratio_median"] for r in rows}
    for r in rows:
        over = LAYERS.get(r["layer"], "")
        r["step"] = round(r["ratio_median"] - ratio[r["kind"], over], 3) if over else None
        step = "" if r["step"] is None else f"{r['step']:+.3f}"
        print(
            f"{r['kind']:<8}{r['layer']:<26}{r['per_call']:>10.1f}  {r['ratio_median']:>7.3f}"
            f"  {step:>7}  {over}"
        )
    print(f"({rows[0]['unit']}; / bare: median of the per-round ratios; step: this layer's")
    print(" ratio minus that of the layer it adds to, in units of the bare call)")
    run.write_json(args.json, rows)


if __name__ == "__main__":
    main()
