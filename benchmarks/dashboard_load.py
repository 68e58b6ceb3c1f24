"""The emulator's API throughput with and without its dashboard open, side by side.

    python benchmarks/dashboard_load.py            # 25 rounds of 1 s each way, about 2 minutes
    python benchmarks/dashboard_load.py --quick    # 5 rounds of 1 s, about 25 seconds
    python benchmarks/dashboard_load.py --rate 400 # 400 queries a second, on a schedule

Three processes. The emulator runs alone in a helper process (this file with ``--serve``: an
``Emulator`` and one finished job, its CPU time read at the edges of each window: the CPU the
emulator spent answering, nothing else). The load generator is this process: an ``aiohttp`` client
keeping ``concurrency`` signed job queries, ``GET /api/v1/async_jobs/{id}``, in flight for
``window`` seconds (requests per second answered 200), or with ``--rate`` sending them on a
schedule (the same load both ways: the emulator's CPU per request at an equal rate). *With the
dashboard*, a real headless Chromium page is open on ``/_dashboard/``, connected to its event
stream, so every query is also recorded for the page and sent in its next write; the page runs in
another helper process (this file with ``--open``, Playwright's Python package driving Debian's
chromium); *without*, the same browser shows ``about:blank`` (the stream closed). After a warm-up
of both, the rounds alternate the order (without, with; with, without; ...), so the page is opened
or left once per round and half a second is given to settle after each switch and each window; each
round gives two ratios with / without, of requests per second and of the emulator's CPU time per
request, and their medians are the figures.

The emulator's process is pinned to the first CPU, this one and the browser's to the last
(``--no-pin`` to turn it off): the emulator's CPU per request is then its own cost of a
dashboard (the records it keeps, the events it sends), whatever the browser and the load
generator spend; the page counts the request events it received, printed beside the figures.
Written to ``benchmarks/results/dashboard_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import math
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

    rounds: int = 25
    window: float = 1.0  # seconds of load per candidate per round
    concurrency: int = 16
    rate: float = 0.0  # queries a second on a schedule; 0: as fast as they are answered


QUICK = Sizes(rounds=5)


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
    """The browser's helper: reads ``open`` / ``count`` / ``away`` / ``quit`` lines on stdin,
    answers each with one line (``live``; the request events the page received and the
    browser's CPU seconds since it opened or was last counted; ``blank``; ``bye``)."""
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
                answer = "live"
            elif command == "count":
                events = page.evaluate("window.requestEvents")
                answer = f"{events} {_tree_cpu(os.getpid()) - cpu:.2f}"
            elif command == "away":
                page.goto("about:blank")
                answer = "blank"
            else:
                break
            if command in ("open", "count"):
                page.evaluate("window.requestEvents = 0")
                cpu = _tree_cpu(os.getpid())
            print(answer, flush=True)
        context.close()
    print("bye", flush=True)
    return 0


def serve_main(pin: bool) -> int:
    """The emulator's helper: prints one line (its URL, its dashboard's, the path of a finished
    job and the ``Authorization`` of a query of it), then answers each ``cpu`` line on stdin
    with its CPU seconds so far, until ``quit``."""
    cpus = _cpus()
    if pin and len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[0]})
    return asyncio.run(_serve())


async def _serve() -> int:
    async with Emulator(train_seconds=1.0) as emu:
        path = f"/api/v1/async_jobs/{emu.add_synthetic_job(0.0)}"
        print(emu.url, emu.dashboard_url, path, emu.authorization("GET", path, b""), flush=True)
        while (await asyncio.to_thread(sys.stdin.readline)).strip() == "cpu":
            print(f"{time.process_time():.6f}", flush=True)
    print("bye", flush=True)
    return 0


class Helper:
    """A helper process (this file with ``options``), driven line by line."""

    def __init__(self, *options: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, *options], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    async def ask(self, command: str) -> str:
        """Send ``command``; its answer."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return await self.answer(command)

    async def answer(self, command: str) -> str:
        """The helper's next line."""
        assert self._proc.stdout is not None
        line = await asyncio.to_thread(self._proc.stdout.readline)
        if not line:
            raise SystemExit(f"dashboard_load: a helper process ended (at {command!r})")
        return line.strip()

    async def close(self) -> None:
        if self._proc.poll() is None:
            await self.ask("quit")
        await asyncio.to_thread(self._proc.wait, 30)


# -- the load --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """One candidate's window: requests answered 200 and per second, the emulator's CPU time
    per request and its share of one CPU during the window."""

    requests: int
    rps: float
    cpu_us: float
    busy: float


async def load(
    client: aiohttp.ClientSession, url: str, authorization: str, emulator: Helper, sizes: Sizes
) -> Window:
    """``concurrency`` clients querying one job for ``window`` seconds, each sending its next
    query when its last is answered (closed loop), or, with a ``rate``, when the next query of
    the schedule (``rate`` a second) is due; the emulator's CPU time counted until
    :data:`SETTLE` seconds after (its last write to a page)."""
    headers = {"Authorization": authorization}
    done = sent = 0

    async def worker() -> None:
        nonlocal done, sent
        while (now := time.monotonic()) < deadline:
            if sizes.rate:
                due = start + sent / sizes.rate
                if due >= deadline:
                    return
                sent += 1
                await asyncio.sleep(due - now)
            async with client.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"dashboard_load: {url} answered {response.status}")
                done += 1

    cpu = float(await emulator.ask("cpu"))
    start = time.monotonic()
    deadline = start + sizes.window
    await asyncio.gather(*(worker() for _ in range(sizes.concurrency)))
    seconds = time.monotonic() - start
    await asyncio.sleep(SETTLE)
    cpu = float(await emulator.ask("cpu")) - cpu
    return Window(done, done / seconds, cpu / max(1, done) * 1e6, cpu / seconds)


async def run(sizes: Sizes, *, pin: bool = True) -> dict[str, Any]:
    """Warm-up, then ``rounds`` of (without, with) in alternating order; the figures of each
    round and the medians."""
    options = () if pin else ("--no-pin",)
    emulator = Helper("--serve", *options)
    url, dashboard, path, authorization = (await emulator.answer("start")).split()
    browser = Helper("--open", dashboard, *options)
    cpus = _cpus()
    if pin and len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[-1]})
    connector = aiohttp.TCPConnector(limit=sizes.concurrency)
    rounds: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession(connector=connector) as client:

            async def window() -> Window:
                return await load(client, url + path, authorization, emulator, sizes)

            async def show(page: bool) -> None:
                await browser.ask("open" if page else "away")
                await asyncio.sleep(SETTLE)

            await window()  # warm-up, without
            await show(True)
            await window()  # warm-up, with
            await browser.ask("count")
            shown = True
            for i in range(sizes.rounds):
                measured: dict[bool, Window] = {}
                for page in (True, False) if i % 2 == 0 else (False, True):
                    if page != shown:
                        await show(page)
                        shown = page
                    measured[page] = await window()
                    if page:
                        events, browser_cpu = (await browser.ask("count")).split()
                rounds.append(_round(measured[False], measured[True], events, browser_cpu, sizes))
    finally:
        await browser.close()
        await emulator.close()
    return {"rounds": rounds, **_medians(rounds, "ratio"), **_medians(rounds, "cpu_ratio")}


def _round(
    without: Window, with_page: Window, events: str, browser_cpu: str, sizes: Sizes
) -> dict[str, Any]:
    return {
        "without_rps": round(without.rps, 1),
        "with_rps": round(with_page.rps, 1),
        "ratio": round(with_page.rps / without.rps, 4),
        "without_cpu_us": round(without.cpu_us, 1),
        "with_cpu_us": round(with_page.cpu_us, 1),
        "cpu_ratio": round(with_page.cpu_us / without.cpu_us, 4),
        "without_emulator_busy": round(without.busy, 2),
        "with_emulator_busy": round(with_page.busy, 2),
        "requests_with": with_page.requests,
        "events_received_by_page": int(events),
        "browser_cpu_share": round(float(browser_cpu) / (sizes.window + SETTLE), 2),
    }


def _medians(rounds: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = sorted(r[key] for r in rounds)
    low, high = _median_interval(len(values))
    return {
        f"median_{key}": round(statistics.median(values), 4),
        f"min_{key}": values[0],
        f"max_{key}": values[-1],
        f"median_low_{key}": values[low],
        f"median_high_{key}": values[high],
    }


def _median_interval(n: int) -> tuple[int, int]:
    """The positions, in ``n`` sorted values, of a 95 % confidence interval of their median
    (distribution-free: the ``k``-th value from each end, with ``k`` the largest such that fewer
    than ``k`` values of ``n`` fall below the median with probability at most 2.5 %); the
    extremes when ``n`` is too small for one."""
    below, k = 0.0, 0
    while below + math.comb(n, k) / 2**n <= 0.025:
        below += math.comb(n, k) / 2**n
        k += 1
    k = max(k, 1)
    return k - 1, n - k


def report(results: dict[str, Any]) -> None:
    print(
        f"{'round':>5}{'rps without':>12}{'with':>7}{'ratio':>7}{'emulator CPU us/req without':>28}"
        f"{'with':>6}{'ratio':>7}{'busy without':>13}{'with':>6}{'events received':>16}"
        f"{'browser CPU':>12}"
    )
    for i, r in enumerate(results["rounds"], 1):
        received = f"{r['events_received_by_page']}/{r['requests_with']}"
        print(
            f"{i:>5}{r['without_rps']:>12.0f}{r['with_rps']:>7.0f}{r['ratio']:>7.3f}"
            f"{r['without_cpu_us']:>28.0f}{r['with_cpu_us']:>6.0f}{r['cpu_ratio']:>7.3f}"
            f"{r['without_emulator_busy']:>13.2f}{r['with_emulator_busy']:>6.2f}"
            f"{received:>16}{r['browser_cpu_share']:>12.2f}"
        )
    for key, what in (
        ("ratio", "requests/second"),
        ("cpu_ratio", "the emulator's CPU per request"),
    ):
        print(
            f"{what}, with the dashboard open / without: median {results['median_' + key]:.3f}"
            f" (95 % interval {results['median_low_' + key]:.3f}"
            f" to {results['median_high_' + key]:.3f}; min {results['min_' + key]:.3f},"
            f" max {results['max_' + key]:.3f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of 1 s")
    parser.add_argument("--rounds", type=int, help="rounds (default 25, 5 with --quick)")
    parser.add_argument(
        "--rate", type=float, help="queries a second on a schedule (default: closed loop)"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin emulator and browser")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "dashboard_load.json")
    parser.add_argument("--open", metavar="URL", help=argparse.SUPPRESS)  # the browser's helper
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the emulator's
    args = parser.parse_args(argv)
    if args.open:
        return browser_main(args.open, not args.no_pin)
    if args.serve:
        return serve_main(not args.no_pin)
    sizes = QUICK if args.quick else Sizes()
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    if args.rate:
        sizes = dataclasses.replace(sizes, rate=args.rate)
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
