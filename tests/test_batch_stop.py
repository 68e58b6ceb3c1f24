"""Stopping a batch without losing paid work: :class:`aiportrait.batches.BatchStop` in the library,
Ctrl-C and SIGTERM in ``aiportrait batch`` (real signals to a real child process), and the
errors that would repeat for every item, all against the emulator over loopback.

The emulator holds its creates (:meth:`Emulator.hold`) once a given number have passed, so
"during the creates" is a state the test waits for (the held calls have reached the service and
are counted there), never a moment guessed with a sleep. What the journal holds is read through
what a re-run does: a finished item comes back ``resumed``, one left on the wire ``unknown``, one
never submitted is submitted.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import aiportrait
from aiportrait import PollPolicy, ReferenceCreateRequest, cli
from aiportrait.batches import DEFAULT_GRACE, BatchStop
from aiportrait.cli import main
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import BatchStopped, PhotoCountWarning, QuotaExceeded
from aiportrait.samples import SamplePhotos, sample_photos
from aiportrait.testing import VirtualClock
from tests._mock import until

pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "stop-test-token-0123456789"
FAST = PollPolicy(first=0.05, cap=0.5, timeout=60)


@attrs.frozen
class Media:
    """The sample photos and templates, served by each test's emulator."""

    folder: Path
    names: SamplePhotos


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    folder = tmp_path_factory.mktemp("media")
    return Media(folder, sample_photos(folder))


@pytest.fixture
async def emu(media: Media) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=media.folder, token=TOKEN) as emulator:
        yield emulator


def _weight(i: int) -> float:
    """Each item's own ``ipa_weight``: no two items send the same body (so the emulator's
    count of bodies run twice means charged twice)."""
    return round(0.3 + i / 200, 3)


def _requests(emu: Emulator, media: Media, count: int) -> dict[str, ReferenceCreateRequest]:
    """Portraits from a reference photo (no training), each item its own request."""
    reference = emu.media_url(media.names.hopper[0])
    templates = [emu.media_url(n) for n in media.names.templates[:3]]
    return {
        f"p{i:02d}": ReferenceCreateRequest(reference, templates[i % 3], ipa_weight=_weight(i))
        for i in range(count)
    }


async def _collect(outcomes: aiportrait.Outcomes[Any, Any], beside: Any) -> list[Any]:
    """Every outcome of a batch, with ``beside()`` running meanwhile (it stops the batch)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(beside)
        return await outcomes.collect()


def _files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# -- the library ----------------------------------------------------------------------------


async def test_a_stop_lets_the_calls_in_flight_finish_and_a_rerun_does_the_rest(
    emu: Emulator, media: Media, tmp_path: Path
) -> None:
    held = emu.hold(after=2)  # two are answered, then three are held on the service's side
    requests = _requests(emu, media, 8)
    journal = tmp_path / "j.sqlite"
    stop = BatchStop()
    async with emu.session() as session:
        outcomes = session.create_many(requests, limit=3, journal=journal, stop=stop)

        async def stopper() -> None:
            await until(lambda: held.arrived == 5, "three creates held")
            assert len(stop.in_flight) == 3
            # from another thread, as a signal.signal handler or a sync caller would
            await anyio.to_thread.run_sync(functools.partial(stop.stop, grace=None))
            held.release()

        got = await _collect(outcomes, stopper)
    done = [o for o in got if o.ok]
    stopped = [o for o in got if isinstance(o.error, BatchStopped)]
    assert (len(done), len(stopped), len(got)) == (5, 3, 8)
    assert all(o.status == "failed" and o.error.job_id is None for o in stopped)  # type: ignore[union-attr]
    assert "not submitted" in str(stopped[0].error)
    assert stop.stopped and not stop.abandoned and stop.reason is None
    # Every create the service ran is saved; nothing else was sent.
    assert emu.counters.creations == held.arrived == 5
    assert _files(tmp_path / "j_portraits") == sorted(f"{o.key}.jpg" for o in done)

    async with emu.session() as session:  # the re-run does the three, and only them
        again = await session.create_many(requests, limit=3, journal=journal).collect()
    assert sum(o.resumed for o in again) == 5
    assert all(o.ok for o in again)
    assert emu.counters.creations == 8
    assert not emu.counters.charged_duplicates()
    assert len(_files(tmp_path / "j_portraits")) == 8


async def test_a_failing_input_lets_the_calls_in_flight_finish_before_it_raises(
    emu: Emulator, media: Media, tmp_path: Path
) -> None:
    """The batch's own machinery failing (here its input) stops it as a stop would: the paid
    calls on the wire finish and are saved, then the error is raised; nothing is cancelled."""
    held = emu.hold(after=1)  # the first is answered, the next two held at the service
    requests = list(_requests(emu, media, 3).items())
    journal = tmp_path / "j.sqlite"

    def items() -> Any:
        yield from requests
        raise RuntimeError("the input broke")  # asked for when the first is done

    got: list[Any] = []
    raised: list[RuntimeError] = []
    stop = BatchStop()
    async with emu.session() as session:
        outcomes = session.create_many(items(), limit=3, journal=journal, stop=stop)

        async def consume() -> None:
            try:
                async for outcome in outcomes:
                    got.append(outcome)
            except RuntimeError as exc:
                raised.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await until(lambda: held.arrived == 3 and stop.stopped, "broken with two held")
            assert len(stop.in_flight) == 2
            held.release()
    assert [str(e) for e in raised] == ["the input broke"]  # raised once the calls were saved
    # Every create the service ran (and charged) is saved; none is left "may have run".
    assert emu.counters.creations == 3
    assert sorted(o.key for o in got if o.ok) == ["p00", "p01", "p02"]
    assert _files(tmp_path / "j_portraits") == ["p00.jpg", "p01.jpg", "p02.jpg"]
    async with emu.session() as session:
        again = await session.create_many(requests, limit=3, journal=journal).collect()
    assert all(o.ok and o.resumed for o in again)
    assert emu.counters.creations == 3


async def test_a_key_utf8_cannot_hold_fails_its_item_only(
    emu: Emulator, media: Media, tmp_path: Path
) -> None:
    """A key with a lone surrogate (``"\\ud800"`` in a JSON file) can be neither a journal row
    nor a file name: that item fails, unsent; the others run."""
    requests = _requests(emu, media, 3)
    items = {"p00": requests["p00"], "\ud800": requests["p01"], "p02": requests["p02"]}
    async with emu.session() as session:
        got = await session.create_many(items, limit=3, journal=tmp_path / "j.sqlite").collect()
    bad = [o for o in got if not o.ok]
    assert [o.key for o in bad] == ["\ud800"]
    assert isinstance(bad[0].error, aiportrait.InvalidArgument)
    assert "lone surrogate" in str(bad[0].error)
    assert emu.counters.creations == 2


async def test_a_stop_during_an_outage_pause_ends_the_held_calls_at_once(
    emu: Emulator, media: Media, tmp_path: Path
) -> None:
    """Calls held by the outage pause were never sent: a stop ends them now (not submitted),
    not when the grace runs out (here no grace bound at all: the batch would never end)."""
    requests = _requests(emu, media, 8)
    stop = BatchStop()
    policy = aiportrait.OutagePolicy(probe_interval=1.0, probe_cap=2.0)
    got: list[Any] = []
    async with emu.session(outage=policy) as session:

        async def run() -> None:
            async for outcome in session.create_many(
                requests, limit=2, journal=tmp_path / "j.sqlite", stop=stop
            ):
                got.append(outcome)

        with anyio.fail_after(120):  # a guard against a hang, not a bound on speed
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await until(lambda: emu.counters.creations >= 2, "two portraits made")
                emu.faults = Faults(rate_5xx=1.0, status_5xx=500)
                await until(lambda: bool(session.limits.outage), "paused for the outage")
                stop.stop(grace=None)
    assert len(got) == 8
    stopped = [o for o in got if isinstance(o.error, BatchStopped)]
    assert stopped and all(o.status == "failed" for o in stopped)
    assert not emu.counters.charged_duplicates()


async def test_when_the_grace_runs_out_the_calls_in_flight_end_unknown(
    emu: Emulator,
    media: Media,
    tmp_path: Path,
    aiportrait_instant_waits: VirtualClock,
) -> None:
    requests = _requests(emu, media, 6)
    journal = tmp_path / "j.sqlite"
    stop = BatchStop()
    held = emu.hold()
    async with emu.session() as session:
        outcomes = session.create_many(requests, limit=2, journal=journal, stop=stop)

        async def stopper() -> None:
            await until(lambda: held.arrived == 2, "two creates held")
            stop.stop(grace=5.0)
            aiportrait_instant_waits.advance(4.9)
            await asyncio.sleep(0)
            assert not stop.abandoned
            aiportrait_instant_waits.advance(0.1)  # the grace is over

        got = await _collect(outcomes, stopper)
    assert stop.abandoned
    unknown = sorted(o.key for o in got if o.status == "unknown")
    assert len(unknown) == 2
    assert all(
        isinstance(o.error, aiportrait.SubmitOutcomeUnknown) for o in got if o.key in unknown
    )
    assert sum(isinstance(o.error, BatchStopped) for o in got) == 4
    held.release()  # the service finishes them: charged, though the client gave up on them
    await until(lambda: emu.counters.creations == 2, "the abandoned creates end")

    async with emu.session() as session:
        again = await session.create_many(requests, limit=2, journal=journal).collect()
    assert sorted(o.key for o in again if o.status == "unknown") == unknown  # named, not sent
    assert sum(o.ok for o in again) == 4
    assert emu.counters.creations == 6
    assert not emu.counters.charged_duplicates()


async def test_an_error_that_repeats_for_every_item_stops_the_batch(
    emu: Emulator, media: Media, tmp_path: Path
) -> None:
    emu.apps[emu.app_id].quota = 3
    requests = _requests(emu, media, 6)
    journal = tmp_path / "j.sqlite"
    async with emu.session() as session:
        got = await session.create_many(requests, limit=1, journal=journal).collect()
    assert [o.key for o in got if o.ok] == ["p00", "p01", "p02"]
    assert isinstance(got[3].error, QuotaExceeded)
    stopped = got[4:]
    assert len(stopped) == 2
    assert all(isinstance(o.error, BatchStopped) for o in stopped)
    assert all(isinstance(o.error.reason, QuotaExceeded) for o in stopped)  # type: ignore[union-attr]
    assert emu.counters.requests == 4  # not one request per item
    # The refused item did not run: its row is as it was, so the re-run does it.

    emu.apps[emu.app_id].quota = None
    async with emu.session() as session:
        again = await session.create_many(requests, limit=1, journal=journal).collect()
    assert all(o.ok for o in again)
    assert sum(o.resumed for o in again) == 3
    assert emu.counters.creations == 6


async def test_a_stop_drops_the_watching_of_trainings_at_once(media: Media, tmp_path: Path) -> None:
    async with Emulator(train_seconds=600, serve_dir=media.folder, token=TOKEN) as emu:
        photos = [emu.media_url(n) for n in media.names.astronaut[:2]]
        sets = {"a": photos, "b": photos[::-1]}
        journal = tmp_path / "j.sqlite"
        stop = BatchStop()
        async with emu.session(poll=FAST) as session:
            outcomes = session.train_many(sets, journal=journal, stop=stop)

            async def stopper() -> None:
                await until(lambda: emu.counters.trainings == 2, "both trainings accepted")
                stop.stop()

            with pytest.warns(PhotoCountWarning):
                got = await _collect(outcomes, stopper)
            assert all(isinstance(o.error, BatchStopped) and o.job is not None for o in got)
            assert {o.error.job_id for o in got} == {o.job.job_id for o in got}  # type: ignore[union-attr]
            assert "watching job" in str(got[0].error)
            again = await session.train_many(sets, journal=journal, wait=False).collect()
        assert {o.job for o in again} == {o.job for o in got}
        assert emu.counters.trainings == 2  # watched again, not trained again


def test_a_stop_refuses_a_bad_grace() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="grace"):
        BatchStop().stop(grace=-1)


# -- aiportrait batch: real signals to a real child ------------------------------------------


def _jsonl(emu: Emulator, media: Media, count: int, path: Path) -> Path:
    """The batch file of :func:`_requests`."""
    rows = [
        {"kind": "reference", "key": key, "reference": r.reference, "template": r.template,
         "ipa_weight": r.ipa_weight}
        for key, r in _requests(emu, media, count).items()
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _args(emu: Emulator, batch: Path, out: Path) -> list[str]:
    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return ["batch", str(batch), "--out", str(out), "--limit", "4", "--no-progress", *creds]


async def _child(args: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiportrait", *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _line(proc: asyncio.subprocess.Process, start: str) -> str:
    """The child's next stderr line that starts with ``start``."""
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        if not line:
            raise AssertionError(f"the child ended without a line starting {start!r}")
        if line.startswith(start):
            return line.rstrip("\n")


async def _run(args: list[str]) -> int:
    return await asyncio.to_thread(main, args)


@pytest.mark.slow
async def test_ctrl_c_in_a_60_item_batch_saves_every_paid_portrait(
    emu: Emulator,
    media: Media,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch, out = _jsonl(emu, media, 60, tmp_path / "b.jsonl"), tmp_path / "out"
    held = emu.hold(after=10)  # ten are done; then four are on the service at the signal
    proc = await _child(_args(emu, batch, out))
    await until(lambda: held.arrived == 14, "four creates held", seconds=120)
    proc.send_signal(signal.SIGINT)  # SIGTERM: the next test
    line = await _line(proc, "aiportrait: stopping")
    assert line == (
        "aiportrait: stopping: nothing new is sent; 4 in flight finishing (up to 300s); "
        "Ctrl-C again abandons them (abandoned ones may be charged and their results lost)"
    )
    held.release()
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == cli.EXIT_INTERRUPTED, stderr.decode()
    assert "14 ok, 0 failed (0 resumed), 46 not submitted (stopped) of 60" in stdout.decode()
    assert stderr.decode().splitlines()[-1] == (
        "aiportrait: stopped: 46 not submitted; run the same command again to resume: the "
        f"journal {out / cli.DEFAULT_JOURNAL} remembers what is done"
    )
    # Every create the service ran has its portrait, and nothing was charged twice.
    assert emu.counters.creations == 14
    assert len(_files(out)) == 14
    assert not emu.counters.charged_duplicates()

    assert await _run(_args(emu, batch, out)) == cli.EXIT_OK  # the re-run does the rest
    assert "60 ok, 0 failed (14 resumed) of 60" in capsys.readouterr().out
    assert emu.counters.creations == 60
    assert len(_files(out)) == 60
    assert not emu.counters.charged_duplicates()


@pytest.mark.slow
async def test_a_second_signal_abandons_and_names_what_may_be_charged(
    emu: Emulator, media: Media, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch, out = _jsonl(emu, media, 8, tmp_path / "b.jsonl"), tmp_path / "out"
    held = emu.hold()  # the first four (p00 to p03) wait on the service
    proc = await _child(_args(emu, batch, out))
    await until(lambda: held.arrived == 4, "four creates held", seconds=120)
    proc.send_signal(signal.SIGTERM)
    await _line(proc, "aiportrait: stopping: nothing new is sent; 4 in flight")
    proc.send_signal(signal.SIGINT)
    line = await _line(proc, "aiportrait: abandoning")
    first4 = {"'p00'", "'p01'", "'p02'", "'p03'"}
    start = "aiportrait: abandoning 4 in flight (they may be charged): "
    assert line.startswith(start)
    assert set(line.removeprefix(start).split(", ")) == first4
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == cli.EXIT_OUTCOME_UNKNOWN, stderr.decode()
    last = stderr.decode().splitlines()[-1]
    start = "aiportrait: 4 may have been charged (in flight when abandoned): "
    end = "; --resubmit-unknown submits them again"
    assert last.startswith(start) and last.endswith(end)
    assert set(last.removeprefix(start).removesuffix(end).split(", ")) == first4
    lines = stdout.decode().splitlines()
    assert sum(line.startswith("unknown p0") for line in lines) == 4
    assert "0 ok, 4 failed (0 resumed), 4 not submitted (stopped) of 8" in lines[-1]
    assert _files(out) == []
    held.release()
    await until(lambda: emu.counters.creations == 4, "the abandoned creates end")

    # The re-run names the four as unknown (not paid again) and does the other four.
    assert await _run(_args(emu, batch, out)) == cli.EXIT_OUTCOME_UNKNOWN
    assert "4 ok, 4 failed (4 resumed) of 8" in capsys.readouterr().out
    assert emu.counters.creations == 8
    assert not emu.counters.charged_duplicates()


async def test_batch_stops_on_an_exceeded_quota_with_one_message(
    emu: Emulator, media: Media, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.apps[emu.app_id].quota = 3
    batch, out = _jsonl(emu, media, 10, tmp_path / "b.jsonl"), tmp_path / "out"
    args = [*_args(emu, batch, out), "--limit", "1"]
    assert await _run(args) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    assert "3 ok, 1 failed (0 resumed), 6 not submitted (stopped) of 10" in captured.out
    stops = [line for line in captured.err.splitlines() if "stopped" in line]
    assert len(stops) == 1
    assert stops[0].startswith("aiportrait: stopped on QuotaExceeded: ")
    assert stops[0].endswith(
        ": it would fail every item; 6 not submitted; fix it, then run the same command again "
        f"to resume: the journal {out / cli.DEFAULT_JOURNAL} remembers what is done"
    )
    assert emu.counters.requests == 4


# -- examples/batch_generate.py ---------------------------------------------------------------


@pytest.mark.slow
async def test_batch_generate_stops_on_ctrl_c_and_resumes(
    emu: Emulator,
    media: Media,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    batch_generate = importlib.import_module("batch_generate")
    monkeypatch.setenv("AIPORTRAIT_HOST", emu.url)
    monkeypatch.setenv("AIPORTRAIT_APP_ID", emu.app_id)
    monkeypatch.setenv("AIPORTRAIT_TOKEN", TOKEN)
    async with emu.session(poll=FAST) as session:  # the example's --model-id
        with pytest.warns(PhotoCountWarning):
            job = await session.train([emu.media_url(media.names.astronaut[0])])
        model = (await session.wait(job)).model_id
    templates = [emu.media_url(n) for n in media.names.templates[:3]]
    argv = ["--count", "12", "--limit", "3", "--journal", str(tmp_path / "run.sqlite")]
    argv += ["--model-id", model, "--templates", *templates]
    stops: list[BatchStop] = []
    real_stop = BatchStop.stop

    def stop(self: BatchStop, grace: float | None = DEFAULT_GRACE) -> None:
        stops.append(self)
        real_stop(self, grace)

    monkeypatch.setattr(BatchStop, "stop", stop)
    held = emu.hold(after=2)

    async def ctrl_c() -> None:
        await until(lambda: held.arrived == 5, "three creates held")
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, to this process: the example's
        await until(lambda: stops, "the example stopped")  # handler stops the batch
        held.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ctrl_c)
        assert await batch_generate.main(argv) == 130
    captured = capsys.readouterr()
    assert "stopping: 3 in flight finishing; Ctrl-C again abandons them" in captured.err
    assert "5 created now, 0 from an earlier run, 0 failed" in captured.out
    assert "stopped: 7 not submitted; run the same command again to resume" in captured.err
    assert emu.counters.creations == 5
    assert len(_files(tmp_path / "run_portraits")) == 5

    assert await batch_generate.main(argv) == 0
    assert "7 created now, 5 from an earlier run, 0 failed" in capsys.readouterr().out
    assert emu.counters.creations == 12
