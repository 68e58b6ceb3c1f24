"""The emulator's API throughput with and without its dashboard open, side by side.

    python benchmarks/dashboard_load.py            # 7 rounds of 3 s each way, about a minute
    python benchmarks/dashboard_load.py --quick    # 3 rounds of 1 s, about 15 seconds

The emulator and a load generator of our own share one process (an ``aiohttp`` client keeping
``concurrency`` signed job queries, ``GET /api/v1/async_jobs/{id}``, in flight for ``window``
seconds: requests per second answered 200). *With the dashboard*, a real headless Chromium page
is open on ``/_dashboard/``, connected to its event stream, so every query is also one
``request`` event encoded, queued and sent to the page, which applies it to its table. The page
runs in a helper process (this file with ``--open``, Playwright's Python package driving
Debian's chromium); between rounds it leaves the page (``about:blank``: the stream closes) or
opens it again and waits for "live". The rounds alternate, without then with, after a warm-up
of both; each round gives a ratio with / without, and the median of the ratios is the figure.

The emulator's process is pinned to the first CPU and the browser's to the last (``--no-pin``
to turn it off), so the figure is the emulator's own cost of a dashboard (the events it records
and sends) rather than the browser competing for its CPU; the page counts the request events it
received, printed beside the figures. This process's CPU time per request (the emulator's and
the load generator's) is measured too: it moves less than the rate with whatever else the
machine runs. Written to ``benchmarks/results/dashboard_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from aiportrait.emulator import Emulator

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from _meta import commit, write_results  # noqa: E402

from tests._chromium import launch_options  # noqa: E402  (how the browser tests launch it)

#: Installed in the page by the helper: counts the request events the page's stream received.
COUNT_EVENTS = """
window.requestEvents = 0;
window.EventSource = class extends window.EventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("request", () => { window.requestEvents += 1; });
  }
};
"""


#: Seconds between opening (or leaving) the page and the next window of load.
SETTLE = 0.5


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How long and how hard (``--quick`` and the test use smaller ones)."""

    rounds: int = 7
    window: float = 3.0  # seconds of load per candidate per round
    concurrency: int = 16


QUICK = Sizes(rounds=3, window=1.0)


def _cpus() -> list[int]:
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


# -- the browser's process -------------------------------------------------------------------------


def _tree_cpu(root: int) -> float:
    """CPU seconds used so far by the processes below ``root`` (chromium's, through Playwright's
    driver), from ``/proc``; 0 where there is none."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(entry.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])))
    below, found = {root}, True
    while found:
        found = False
        for pid, (parent, _) in stats.items():
            if parent in below and pid not in below:
                below.add(pid)
                found = True
    ticks = sum(stats[pid][1] for pid in below - {root} if pid in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def browser_main(url: str, pin: bool) -> int:
    """The helper: reads ``open`` / ``away`` / ``quit`` lines on stdin, answers each with one
    line (``live``; the request events the page received while open and the browser's CPU
    seconds meanwhile; ``bye``)."""
    from tempfile import TemporaryDirectory

    from playwright.sync_api import expect, sync_playwright

    cpus = _cpus()
    if pin and len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[-1]})  # chromium, started below, inherits it
    with (
        TemporaryDirectory(prefix="aiportrait-dashboard-load-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(profile, **launch_options())
        context.add_init_script(COUNT_EVENTS)
        page = context.new_page()
        cpu = 0.0
        for line in sys.stdin:
            command = line.strip()
            if command == "open":
                page.goto(url)
                expect(page.get_by_test_id("live")).to_have_text("live", timeout=30_000)
                page.evaluate("window.requestEvents = 0")
                cpu = _tree_cpu(os.getpid())
                answer = "live"
            elif command == "away":
                events = page.evaluate("window.requestEvents")
                answer = f"{events} {_tree_cpu(os.getpid()) - cpu:.2f}"
                page.goto("about:blank")
            else:
                break
            print(answer, flush=True)
        context.close()
    print("bye", flush=True)
    return 0


class Browser:
    """The helper process, driven line by line."""

    def __init__(self, url: str, pin: bool) -> None:
        command = [sys.executable, __file__, "--open", url] + ([] if pin else ["--no-pin"])
        self._proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    async def switch(self, command: str) -> str:
        """``open`` or ``away``, then a pause before the next window: the page (or the blank
        one) has settled, as a page left open has."""
        answer = await self.ask(command)
        await asyncio.sleep(SETTLE)
        return answer

    async def ask(self, command: str) -> str:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        line = await asyncio.to_thread(self._proc.stdout.readline)
        if not line:
            raise SystemExit(f"dashboard_load: the browser helper ended (at {command!r})")
        return line.strip()

    async def close(self) -> None:
        await self.ask("quit")
        await asyncio.to_thread(self._proc.wait, 30)


# -- the load --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """One candidate's window: requests per second answered 200, and this process's CPU time
    (the emulator's and the load generator's) per request."""

    rps: float
    cpu_us: float


async def load(emu: Emulator, client: aiohttp.ClientSession, sizes: Sizes, job_id: int) -> Window:
    """``concurrency`` closed-loop clients querying one job for ``window`` seconds."""
    path = f"/api/v1/async_jobs/{job_id}"
    headers = {"Authorization": emu.authorization("GET", path, b"")}
    url = emu.url + path
    done = 0
    deadline = time.monotonic() + sizes.window

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with client.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"dashboard_load: {path} answered {response.status}")
                done += 1

    start, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(sizes.concurrency)))
    cpu = time.process_time() - cpu
    return Window(done / (time.monotonic() - start), cpu / max(1, done) * 1e6)


async def run(sizes: Sizes, *, pin: bool = True) -> dict[str, Any]:
    """Warm-up, then ``rounds`` of (without, with); the figures of each round and the median."""
    async with Emulator(train_seconds=1.0) as emu:
        browser = Browser(emu.url + "/_dashboard/", pin)
        cpus = _cpus()
        if pin and len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[0]})
        job_id = emu.add_synthetic_job(0.0)
        connector = aiohttp.TCPConnector(limit=sizes.concurrency)
        rounds: list[dict[str, Any]] = []
        try:
            async with aiohttp.ClientSession(connector=connector) as client:
                await load(emu, client, sizes, job_id)  # warm-up, without
                await browser.switch("open")
                await load(emu, client, sizes, job_id)  # warm-up, with
                await browser.switch("away")
                for _ in range(sizes.rounds):
                    without = await load(emu, client, sizes, job_id)
                    await browser.switch("open")
                    before = emu.counters.job_polls
                    with_page = await load(emu, client, sizes, job_id)
                    polls = emu.counters.job_polls - before
                    events, browser_cpu = (await browser.switch("away")).split()
                    rounds.append(
                        {
                            "without_rps": round(without.rps, 1),
                            "with_rps": round(with_page.rps, 1),
                            "ratio": round(with_page.rps / without.rps, 4),
                            "without_cpu_us": round(without.cpu_us, 1),
                            "with_cpu_us": round(with_page.cpu_us, 1),
                            "cpu_ratio": round(with_page.cpu_us / without.cpu_us, 4),
                            "requests_with": polls,
                            "events_received_by_page": int(events),
                            "browser_cpu_share": round(
                                float(browser_cpu) / (sizes.window + SETTLE), 2
                            ),
                        }
                    )
        finally:
            await browser.close()
    return {"rounds": rounds, **_medians(rounds, "ratio"), **_medians(rounds, "cpu_ratio")}


def _medians(rounds: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in rounds]
    return {
        f"median_{key}": round(statistics.median(values), 4),
        f"min_{key}": min(values),
        f"max_{key}": max(values),
    }


def report(results: dict[str, Any]) -> None:
    print(
        f"{'round':>5}{'rps without':>12}{'with':>7}{'ratio':>7}{'CPU us/req without':>19}"
        f"{'with':>6}{'ratio':>7}{'events received':>16}{'browser CPU':>12}"
    )
    for i, r in enumerate(results["rounds"], 1):
        received = f"{r['events_received_by_page']}/{r['requests_with']}"
        print(
            f"{i:>5}{r['without_rps']:>12.0f}{r['with_rps']:>7.0f}{r['ratio']:>7.3f}"
            f"{r['without_cpu_us']:>19.0f}{r['with_cpu_us']:>6.0f}{r['cpu_ratio']:>7.3f}"
            f"{received:>16}{r['browser_cpu_share']:>12.2f}"
        )
    for key, what in (("ratio", "requests/second"), ("cpu_ratio", "CPU per request")):
        print(
            f"{what}, with the dashboard open / without: median {results['median_' + key]:.3f}"
            f" (min {results['min_' + key]:.3f}, max {results['max_' + key]:.3f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s")
    parser.add_argument("--rounds", type=int, help="rounds (default 7, 3 with --quick)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin emulator and browser")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "dashboard_load.json")
    parser.add_argument("--open", metavar="URL", help=argparse.SUPPRESS)  # the helper
    args = parser.parse_args(argv)
    if args.open:
        return browser_main(args.open, not args.no_pin)
    sizes = QUICK if args.quick else Sizes()
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    started = time.monotonic()
    results = asyncio.run(run(sizes, pin=not args.no_pin))
    results["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "sizes": dataclasses.asdict(sizes),
        "pinned": not args.no_pin,
        "seconds": round(time.monotonic() - started, 1),
    }
    report(results)
    write_results(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
