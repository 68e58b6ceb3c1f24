"""The web example under load: polls per training, creates charged for clients that left, latency.

    python benchmarks/web_load.py            # about 3 minutes
    python benchmarks/web_load.py --quick    # under a minute

One process on loopback: the emulator (trainings as synthetic jobs of a set length; creates made
to take ``create_seconds`` by its latency fault, on a small template so the image work stays
cheap), ``examples/web_backend.py``'s ``make_app`` served by ``aiohttp.web`` in front of it, and a
load generator of our own (an ``aiohttp`` client; every count and every wait is bounded). The
emulator's counters are the service's own record: what arrived when, what was charged.

1. ``followers``: one training per size, 1, 10 and 100 server-sent-event followers each, all at
   once; the upstream polls of each training (goal: the same for every size). Then 50
   followers of a long training leave after its first event: the polls of that training in the
   ``after_leave`` seconds that follow (goal: about none beyond the heartbeat).
2. ``left``: 100 ``POST /portraits`` at once with a short client timeout; once the backend is
   quiet, the creates that reached the service before the clients left, those that reached it
   after, and those charged (goal: nothing sent after the clients left, so nothing charged
   beyond what was in flight); then each client that left asks for its portrait by the ticket
   it sent (``X-Ticket``; goal: every charged one delivered).
3. ``load``: closed-loop clients (a client told to wait by ``Retry-After`` waits) at growing
   concurrency for ``window`` seconds each, side by side level by level against backends whose
   Session has the admission bound (``Session(max_waiting=..., max_wait=...)``) at its
   default, at :data:`TIGHT`, and none: latency p50/p99 and the answers by status.

Printed as tables; written to ``benchmarks/results/web_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

import aiportrait
from aiportrait.emulator import Emulator, Faults
from aiportrait.samples import sample_photos

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "examples")]
import web_backend  # noqa: E402  (the example, as its users run it)
from _meta import commit, write_results  # noqa: E402
from _web_client import Answer, LogCount, call, fetch, follow, percentile  # noqa: E402

CREATE_PATH = "/api/v1/aigc_images/create"
JOB_PATH = "/api/v1/async_jobs/"
#: Part 3's admission bounds beside the Session's default: one a web page's backend might
#: choose (at most 32 calls wait, none longer than 2 s), and none at all.
TIGHT = {"max_waiting": 32, "max_wait": 2.0}
NO_BOUND = {"max_waiting": None, "max_wait": None}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much load each part makes (``--quick`` and the test use smaller ones)."""

    followers: tuple[int, ...] = (1, 10, 100)
    job_seconds: float = 8.0  # each followed training
    leavers: int = 50
    after_leave: float = 20.0  # seconds the polls are counted after the followers left
    clients: int = 100
    client_timeout: float = 3.0
    concurrency: tuple[int, ...] = (8, 32, 128)
    window: float = 8.0  # seconds of load per concurrency level
    load_timeout: float = 15.0  # the client timeout under load
    create_seconds: float = 1.0  # what a create takes at the service
    fetch_for: float = 10.0  # how long a client that left asks for its portrait (202: again)
    settle: float = 60.0  # the longest wait for the backend to go quiet


QUICK = Sizes(
    job_seconds=3.0, leavers=20, after_leave=3.0, clients=40, client_timeout=1.5,
    concurrency=(8, 48), window=2.0, fetch_for=5.0, settle=30.0,
)  # fmt: skip


@dataclasses.dataclass
class Rig:
    """The emulator, the backends' store and media, and the load generator's client."""

    emu: Emulator
    client: aiohttp.ClientSession
    store: Path
    photos: list[str]
    template: str

    def arrivals(self, path: str, since: float = 0.0) -> list[float]:
        """When the requests to ``path`` reached the service (its monotonic clock)."""
        return [t for t, p in self.emu.counters.arrivals if p == path and t >= since]

    def charged(self) -> int:
        return self.emu.apps[self.emu.app_id].used

    @contextlib.asynccontextmanager
    async def backend(self, **options: Any) -> AsyncIterator[str]:
        """The example app on loopback, its Session made with ``options``; yields its URL."""
        runner = web_backend.runner(
            web_backend.make_app(lambda: self.emu.session(**options), self.store)
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    async def training(self, seconds: float) -> int:
        """A synthetic training of ``seconds``, stored where the backend finds it."""
        job_id = self.emu.add_synthetic_job(seconds)
        store = web_backend.JobStore(self.store)
        await store.put(aiportrait.TrainJob(job_id, f"model-{job_id}"))
        return job_id

    async def quiet(self, seconds: float, most: float) -> float:
        """Wait until no create reached the service and nothing was charged for ``seconds``
        (at most ``most``); the seconds waited."""
        start = last = time.monotonic()
        seen = (len(self.arrivals(CREATE_PATH)), self.charged())
        while time.monotonic() - last < seconds and time.monotonic() - start < most:
            await asyncio.sleep(0.25)
            now = (len(self.arrivals(CREATE_PATH)), self.charged())
            if now != seen:
                seen, last = now, time.monotonic()
        return time.monotonic() - start


async def followers(rig: Rig, sizes: Sizes) -> dict[str, Any]:
    """Part 1: polls per training as followers grow; polls after they all left."""
    out: dict[str, Any] = {}
    async with rig.backend() as base:
        jobs = {n: await rig.training(sizes.job_seconds) for n in sizes.followers}
        streams = {
            n: [follow(rig.client, f"{base}/trainings/{job_id}/events") for _ in range(n)]
            for n, job_id in jobs.items()
        }
        ends = await asyncio.wait_for(
            asyncio.gather(*(asyncio.gather(*s) for s in streams.values())),
            sizes.job_seconds + 60,
        )
        for (n, job_id), names in zip(jobs.items(), ends, strict=True):
            out[str(n)] = {
                "polls": len(rig.arrivals(JOB_PATH + str(job_id))),
                "ended_with_result": sum(e[-1:] == ["result"] for e in names),
            }
    async with rig.backend() as base:
        job_id = await rig.training(600.0)  # it stays in INIT for the whole window
        url = f"{base}/trainings/{job_id}/events"
        joined = time.monotonic()
        await asyncio.gather(*(follow(rig.client, url, leave=True) for _ in range(sizes.leavers)))
        left = time.monotonic()
        await asyncio.sleep(sizes.after_leave)
        polls = rig.arrivals(JOB_PATH + str(job_id), since=joined)
        after = [t - left for t in polls if t > left]
        out["left"] = {
            "followers": sizes.leavers,
            "polls_while_followed": len(polls) - len(after),
            "polls_after_leave": len(after),
            "window_s": sizes.after_leave,
            "last_poll_after_leave_s": round(max(after), 2) if after else None,
        }
    return out


async def trained_model(rig: Rig, base: str) -> str:
    """A model trained through the backend (``POST /trainings``, then its events)."""
    async with rig.client.post(f"{base}/trainings", json=rig.photos) as response:
        if response.status != 202:
            raise SystemExit(f"web_load: POST /trainings answered {response.status}")
        job = await response.json()
    names = await follow(rig.client, f"{base}{job['events']}")
    if names[-1:] != ["result"]:
        raise SystemExit(f"web_load: the training ended with {names[-1:]}")
    return str(job["model_id"])


async def left(rig: Rig, sizes: Sizes, model_id: str, base: str) -> dict[str, Any]:
    """Part 2: creates sent and charged for clients that timed out; their portraits fetched
    afterwards by the ticket each gave (``X-Ticket``)."""
    body = {"model_id": model_id, "template": rig.template}
    url = f"{base}/portraits"
    charged = rig.charged()
    start = time.monotonic()
    answers = await asyncio.gather(
        *(call(rig.client, url, sizes.client_timeout, body=body, ticket=f"left-{i:05d}")
          for i in range(sizes.clients))
    )  # fmt: skip
    gone = [i for i, a in enumerate(answers) if a.outcome == "timeout"]
    ends = [answers[i].end for i in gone] or [time.monotonic()]
    first, leave = min(ends), max(ends)
    waited = await rig.quiet(sizes.create_seconds + 1.5, sizes.settle)
    creates = rig.arrivals(CREATE_PATH, since=start)
    delivered = sum(a.outcome == "200" for a in answers)
    charged = rig.charged() - charged
    fetched = await asyncio.gather(
        *(fetch(rig.client, f"{url}/left-{i:05d}", sizes.fetch_for) for i in gone)
    )
    return {
        "clients": sizes.clients,
        "client_timeout_s": sizes.client_timeout,
        "answers": dict(collections.Counter(a.outcome for a in answers)),
        "delivered": delivered,
        "timed_out": len(gone),
        "sent_before_leave": sum(t <= leave for t in creates),
        "sent_after_leave": sum(t > leave for t in creates),
        "leave_spread_s": round(leave - first, 3),  # from the first timeout to the last
        "charged": charged,
        "charged_undelivered": charged - delivered,
        "fetched_later": sum(a.outcome == "200" for a in fetched),
        "fetch_answers": dict(collections.Counter(a.outcome for a in fetched)),
        "settled_after_s": round(waited, 1),
    }


async def level(rig: Rig, sizes: Sizes, url: str, body: dict[str, Any], n: int) -> dict[str, Any]:
    """``n`` closed-loop clients for ``sizes.window`` seconds; their answers summed up."""
    stop = time.monotonic() + sizes.window

    async def client() -> list[Answer]:
        answers = []
        while time.monotonic() < stop:
            answer = await call(rig.client, url, sizes.load_timeout, body=body)
            answers.append(answer)
            await asyncio.sleep(min(answer.retry_after, max(0.0, stop - time.monotonic())))
        return answers

    start = time.monotonic()
    answers = [a for each in await asyncio.gather(*(client() for _ in range(n))) for a in each]
    took = time.monotonic() - start
    waited = await rig.quiet(sizes.create_seconds + 1.5, sizes.settle)
    seconds = [a.seconds for a in answers]
    ok = [a.seconds for a in answers if a.outcome == "200"]
    return {
        "requests": len(answers),
        "ok": len(ok),
        "ok_per_s": round(len(ok) / took, 2),
        "p50_s": percentile(seconds, 50),
        "p99_s": percentile(seconds, 99),
        "ok_p50_s": percentile(ok, 50),
        "ok_p99_s": percentile(ok, 99),
        "errors": dict(collections.Counter(a.outcome for a in answers if a.outcome != "200")),
        "settled_after_s": round(waited, 1),
    }


async def load(rig: Rig, sizes: Sizes, model_id: str) -> dict[str, Any]:
    """Part 3: latency and errors as concurrency grows, the admission bound on and off."""
    modes = {"default bound": {}, "tight bound": TIGHT, "no bound": NO_BOUND}
    body = {"model_id": model_id, "template": rig.template}
    out: dict[str, Any] = {mode: {} for mode in modes}
    async with contextlib.AsyncExitStack() as stack:
        bases = {m: await stack.enter_async_context(rig.backend(**o)) for m, o in modes.items()}
        for n in sizes.concurrency:
            for mode, base in bases.items():
                out[mode][str(n)] = await level(rig, sizes, f"{base}/portraits", body, n)
    return out


def _small_template(folder: Path, name: str) -> str:
    """A copy of a sample template at a third of its size: a create's image work ~20 ms."""
    with Image.open(folder / name) as image:
        image.resize((image.width // 3, image.height // 3)).save(folder / f"small-{name}")
    return f"small-{name}"


async def run(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Every part, in order, against one emulator; the figures."""
    samples = sample_photos(workdir)
    small = _small_template(workdir, samples.templates[1])
    faults = Faults(latency=sizes.create_seconds, paths=frozenset({CREATE_PATH}))
    async with (
        Emulator(train_seconds=1.0, serve_dir=workdir, faults=faults) as emu,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client,
    ):
        photos = [emu.media_url(name) for name in samples.astronaut]
        rig = Rig(emu, client, workdir / "trainings.json", photos, emu.media_url(small))
        results: dict[str, Any] = {"followers": await followers(rig, sizes)}
        async with rig.backend() as base:
            model_id = await trained_model(rig, base)
            results["left"] = await left(rig, sizes, model_id, base)
        results["load"] = await load(rig, sizes, model_id)
    return results


def report(results: dict[str, Any]) -> None:
    """The figures as tables."""
    print(f"{'followers':>10}{'polls':>8}{'ended with result':>20}")
    for n, row in results["followers"].items():
        if n != "left":
            print(f"{n:>10}{row['polls']:>8}{row['ended_with_result']:>20}")
    gone = results["followers"]["left"]
    last = gone["last_poll_after_leave_s"]
    print(
        f"{gone['followers']} followers left after the first event: {gone['polls_after_leave']} "
        f"polls in the {gone['window_s']:g} s after" + (f" (the last at {last} s)" if last else "")
    )
    row = results["left"]
    print(
        f"\n{row['clients']} clients, {row['client_timeout_s']:g} s timeout: "
        f"{row['delivered']} delivered, {row['timed_out']} timed out; creates sent before they "
        f"left {row['sent_before_leave']}, after {row['sent_after_leave']}; charged "
        f"{row['charged']}, charged but undelivered {row['charged_undelivered']}, fetched "
        f"later by their tickets {row['fetched_later']} ({row['fetch_answers']})"
    )
    columns = ("ok/s", "p50 s", "p99 s", "ok p50", "ok p99")
    print(f"\n{'clients':>8} {'admission':<14}" + "".join(f"{c:>8}" for c in columns), " errors")
    for mode, levels in results["load"].items():
        for n, row in levels.items():
            keys = ("ok_per_s", "p50_s", "p99_s", "ok_p50_s", "ok_p99_s")
            errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) or "-"
            print(f"{n:>8} {mode:<14}" + "".join(f"{row[k]!s:>8}" for k in keys), "", errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "web_load.json")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    logs = LogCount()
    logging.getLogger().addHandler(logs)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiportrait-web-load-") as workdir:
        results = asyncio.run(run(sizes, Path(workdir)))
    results["meta"] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "sizes": dataclasses.asdict(sizes),
        "seconds": round(time.monotonic() - started, 1),
        "log_lines": {key: [n, logs.first[key]] for key, n in logs.counts.items()},
    }
    report(results)
    for key, (n, first) in results["meta"]["log_lines"].items():
        print(f"log: {n} {key} lines, the first: {first}")
    write_results(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
