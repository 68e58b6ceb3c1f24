"""The outage pause and requests per second, measured at the emulator over loopback HTTP.

An outage is the emulator answering 500 to every request that arrives (``Faults``); it lasts
10 s of the library's virtual clock, which moves only while the Session waits between probes,
so nothing here sleeps for real and no assertion depends on the machine's speed. Rates are
real time; what is asserted is the emulator's own record of arrival times, an upper bound that
a slow machine only makes easier to meet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiportrait
from aiportrait import CreateRequest, OutagePolicy, PollPolicy, Session
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import ModelIdError, PhotoCountWarning, ServerError
from aiportrait.hooks import OutagePause
from aiportrait.samples import SamplePhotos
from aiportrait.testing import VirtualClock
from tests._mock import until
from tests._server import closed_url

FAST = PollPolicy(first=0.01, growth=0.5, cap=0.04, jitter=0.0, timeout=20.0)
CREATE_PATH = "/api/v1/aigc_images/create"
OUTAGE = Faults(rate_5xx=1.0, status_5xx=500)


@pytest.fixture
def media(sample_media: SamplePhotos) -> SamplePhotos:
    return sample_media


@pytest.fixture
async def emu(media: SamplePhotos, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0, serve_dir=media.folder, data_dir=tmp_path / "emu") as e:
        yield e


@pytest.fixture
def template(media: SamplePhotos) -> str:
    """A small template (256 px): 60 portraits composed in a few seconds."""
    from PIL import Image

    with Image.open(media.folder / media.templates[1]) as image:
        image.resize((256, 256)).save(media.folder / "small_template.jpg")
    return "small_template.jpg"


async def _model(session: Session, emu: Emulator, media: SamplePhotos) -> str:
    with pytest.warns(PhotoCountWarning):  # two photos: the training stays quick
        job = await session.train([emu.media_url(n) for n in media.astronaut[:2]])
    # The virtual clock moves a poll's wait at once: the watch's 20 s would pass in as many
    # real polls as the training's real image work allows. It is asked once the job ended.
    await until(lambda: emu.counters.trainings_succeeded >= 1, "the training", seconds=300)
    return (await session.wait(job)).model_id


class _Run:
    """What a batch through an outage saw: its outcomes, the pause events with the library's
    clock when each came, and the emulator's monotonic clock when the outage began and
    ended."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.events: list[tuple[OutagePause, float]] = []
        self.on = self.off = 0.0
        self.made = 0  # portraits made when the outage began

    def creates_during_outage(self, emu: Emulator) -> int:
        return sum(self.on <= t <= self.off for t, p in emu.counters.arrivals if p == CREATE_PATH)


async def _batch_through_outage(
    emu: Emulator,
    media: SamplePhotos,
    template: str,
    clock: VirtualClock,
    outage: OutagePolicy,
    tmp: Path,
) -> _Run:
    """60 creates, 4 in flight; after the 20th portrait the emulator answers 500 to every
    request for 10 s of the library's clock."""
    run = _Run()

    def hook(event: object) -> None:
        if isinstance(event, OutagePause):
            run.events.append((event, clock.time))

    async with emu.session(poll=FAST, outage=outage, hooks=[hook]) as session:
        model = await _model(session, emu, media)
        url = emu.media_url(template)
        # Each body its own (the emulator counts a body seen twice as charged twice).
        requests = {f"p{i}": CreateRequest(model, f"{url}?item={i}") for i in range(60)}

        async def outage_of_10s() -> None:
            await until(lambda: emu.counters.creations >= 20, "20 portraits", seconds=300)
            emu.faults = OUTAGE
            run.on, run.made = time.monotonic(), emu.counters.creations
            with clock.deadline(10):  # cancelled when the probes' waits have moved 10 s on
                await anyio.sleep_forever()
            emu.faults = None
            run.off = time.monotonic()

        async with anyio.create_task_group() as tg:
            tg.start_soon(outage_of_10s)
            run.outcomes = await session.create_many(
                requests, limit=4, journal=tmp / "journal.sqlite"
            ).collect()
            if not run.off:  # nothing waited: the outage outlasted the batch
                emu.faults, run.off = None, time.monotonic()
            tg.cancel_scope.cancel()
    return run


async def test_an_outage_leaves_at_most_the_first_calls_unknown(
    emu: Emulator,
    media: SamplePhotos,
    template: str,
    tmp_path: Path,
    aiportrait_instant_waits: VirtualClock,
) -> None:
    run = await _batch_through_outage(
        emu, media, template, aiportrait_instant_waits, OutagePolicy(), tmp_path
    )
    unknown = [o for o in run.outcomes if o.status == "unknown"]
    # The emulator fails what arrives during the outage; what was in flight when it began
    # is processed. The creates that may end unknown are the ones written before any answer
    # said the service was down: at most the batch's 4 in flight. Every later one waited.
    assert 1 <= len(unknown) <= 4
    assert run.creates_during_outage(emu) == len(unknown)
    assert all(isinstance(o.error.__cause__, ServerError) for o in unknown)
    assert [o.status for o in run.outcomes].count("succeeded") == 60 - len(unknown)
    assert emu.counters.creations == 60 - len(unknown)  # the 500s ran nothing
    assert not emu.counters.charged_duplicates()
    # One pause, told when it began and when it ended, after the 10 s.
    (paused, paused_at), (resumed, resumed_at) = run.events
    assert paused.paused and paused.reason.startswith("HTTP 500")
    assert paused.failures == OutagePolicy().threshold
    assert not resumed.paused and resumed.seconds >= resumed_at - paused_at - 1e-9
    assert resumed_at - paused_at >= 10


async def test_without_the_pause_every_create_of_the_outage_is_unknown(
    emu: Emulator,
    media: SamplePhotos,
    template: str,
    tmp_path: Path,
    aiportrait_instant_waits: VirtualClock,
) -> None:
    run = await _batch_through_outage(
        emu, media, template, aiportrait_instant_waits, OutagePolicy.OFF, tmp_path
    )
    unknown = [o for o in run.outcomes if o.status == "unknown"]
    # Nothing waits, so the virtual clock never moves: the outage outlasts the batch, and
    # every create written after it began ran into it: every item not yet made nor in flight.
    assert len(unknown) == run.creates_during_outage(emu) >= 60 - run.made - 4
    assert run.events == []


async def test_a_single_failure_holds_creates_until_a_probe_answers(
    emu: Emulator, aiportrait_instant_waits: VirtualClock
) -> None:
    # One 500 (a create's, unknown) and the next create waits for one free probe, no pause.
    template = "https://example.invalid/t.jpg"
    events: list[object] = []
    async with emu.session(hooks=[events.append]) as session:
        emu.faults = Faults(rate_5xx=1.0, status_5xx=500, paths=frozenset({CREATE_PATH}))
        with pytest.raises(aiportrait.SubmitOutcomeUnknown):
            await session.create("nope", template)
        assert session.limits.outage.startswith("HTTP 500")
        emu.faults = None
        with pytest.raises(ModelIdError):  # an answer: the service is up
            await session.create("nope", template)
        assert session.limits.outage == ""
    paths = [p for _, p in emu.counters.arrivals]
    assert paths == [CREATE_PATH, "/api/v1/batch_jobs/1", CREATE_PATH]
    assert not [e for e in events if isinstance(e, OutagePause)]  # no pause: one failure
    assert aiportrait_instant_waits.time == 0  # the probe went at once


async def test_reads_go_on_and_their_answer_ends_the_pause(emu: Emulator) -> None:
    # Real time, probes every 50 ms: how many there are depends on the machine, not what
    # is asserted. Batch queries (the probe's path too) answer 500; job queries do not.
    emu.faults = Faults(rate_5xx=1.0, status_5xx=500, paths=frozenset({"/api/v1/batch_jobs/"}))
    job = emu.add_synthetic_job(0.0)
    outage = OutagePolicy(threshold=1, probe_interval=0.05, probe_cap=0.05)
    async with emu.session(outage=outage, retry=aiportrait.RetryPolicy.NEVER) as session:
        with pytest.raises(ServerError):
            await session.get_batch_jobs(7)  # a read's 500: the pause
        assert session.limits.outage
        create = asyncio.create_task(session.create("nope", "https://example.invalid/t.jpg"))
        await until(lambda: emu.counters.requests >= 3, "probes of the pause")
        assert not create.done()  # held: every probe failed, no create reached the emulator
        with anyio.fail_after(60):
            while not create.done():  # a read written after the last failing probe ends it
                assert (await session.get_job(job)).done
                await asyncio.sleep(0)
        with pytest.raises(ModelIdError):
            await create  # the held create went on, once
    paths = [p for _, p in emu.counters.arrivals]
    assert paths.count(CREATE_PATH) == 1
    assert paths.index(CREATE_PATH) > paths.index(f"/api/v1/async_jobs/{job}")
    assert emu.counters.faults["5xx"] == paths.count("/api/v1/batch_jobs/7") + paths.count(
        "/api/v1/batch_jobs/1"
    )


async def test_a_create_held_to_its_deadline_fails_unsent(
    emu: Emulator, aiportrait_instant_waits: VirtualClock
) -> None:
    emu.faults = OUTAGE
    async with emu.session(retry=aiportrait.RetryPolicy(deadline=60)) as session:
        with pytest.raises(ServerError):
            await session.get_batch_jobs(7)
        with pytest.raises(aiportrait.errors.RequestTimeout) as info:
            await session.create("nope", "https://example.invalid/t.jpg")
    assert info.value.sent is False  # not charged: nothing was written
    assert "not sent: the service seemed down (HTTP 500 SERVICE_ERROR)" in str(info.value)
    assert CREATE_PATH not in [p for _, p in emu.counters.arrivals]


async def test_a_max_wait_shorter_than_the_probe_wait_does_not_stop_the_probes(
    emu: Emulator, aiportrait_instant_waits: VirtualClock
) -> None:
    # Each create waits 10 s at most (max_wait), the probe 30 s after the pause began: the
    # first create is turned away while it waits its turn to probe, and the next one probes
    # when that time comes (it is kept by the breaker, not started again by each prober).
    clock = aiportrait_instant_waits
    outage = OutagePolicy(threshold=1, probe_interval=30, probe_cap=30)
    emu.faults = Faults(rate_5xx=1.0, status_5xx=500, paths=frozenset({"/api/v1/batch_jobs/7"}))
    async with emu.session(outage=outage, retry=aiportrait.RetryPolicy.NEVER, max_wait=10) as s:
        with pytest.raises(ServerError):
            await s.get_batch_jobs(7)  # the pause
        began = clock.time
        with pytest.raises(aiportrait.errors.Overloaded):
            await s.create("nope", "https://example.invalid/t.jpg")
        with pytest.raises(ModelIdError):  # the probe answered: the create went
            await s.create("nope", "https://example.invalid/t.jpg")
        assert s.limits.outage == ""
    paths = [p for _, p in emu.counters.arrivals]
    assert paths == ["/api/v1/batch_jobs/7", "/api/v1/batch_jobs/1", CREATE_PATH]
    assert clock.time - began == pytest.approx(30)  # one probe, on its schedule


async def test_a_service_never_reached_fails_at_once_and_one_that_answered_pauses(
    tmp_path: Path, aiportrait_instant_waits: VirtualClock
) -> None:
    # Nothing listens: a wrong address fails each create unsent, as it did, with no pause.
    url = await closed_url()
    async with Session(url, "a", "t", retry=aiportrait.RetryPolicy.NEVER) as session:
        for _ in range(4):
            with pytest.raises(aiportrait.errors.ConnectError):
                await session.create("m", "https://example.invalid/t.jpg")
        assert session.limits.outage == ""
    assert aiportrait_instant_waits.slept == []
    # Once the service has answered, a refused connection is an outage like a 500.
    first = await Emulator(token="t", data_dir=tmp_path).start()
    async with first.session(retry=aiportrait.RetryPolicy.NEVER) as session:
        assert await session.get_batch_jobs(7) == ()
        await first.close()  # its port refuses connections now
        with pytest.raises(aiportrait.errors.ConnectError):
            await session.get_batch_jobs(7)
        assert session.limits.outage == "could not connect: nothing was sent"
        async with Emulator(token="t", data_dir=tmp_path, port=first.port):  # back
            with pytest.raises(ModelIdError):
                await session.create("nope", "https://example.invalid/t.jpg")  # after a probe
        assert session.limits.outage == ""


def test_outage_policy_validation_and_schedule() -> None:
    policy = OutagePolicy(threshold=2, probe_interval=0.5, probe_cap=3)
    assert [policy.probe_wait(n) for n in range(1, 7)] == [0, 0.5, 1, 2, 3, 3]
    assert policy.probe_wait(10**6) == 3  # a long outage: the cap, no overflow
    for bad in ({"threshold": 0}, {"probe_interval": 0}, {"pause": "yes"}):
        with pytest.raises(aiportrait.InvalidArgument):
            OutagePolicy(**bad)
    with pytest.raises(aiportrait.InvalidArgument, match="OutagePolicy"):
        Session("http://127.0.0.1:1", "a", "t", outage=3)  # type: ignore[arg-type]


# -- requests per second -------------------------------------------------------------------------


async def test_requests_per_second_hold_at_the_emulator(emu: Emulator) -> None:
    # 16 reads and 6 creates at once: 8 reads a second (every kind without its own rate)
    # and 3 creates.
    template = "https://example.invalid/t.jpg"
    async with emu.session(per_second=8, creations_per_second=3) as session:
        assert session.limits.per_second("create") == 3
        assert session.limits.per_second("read") == 8
        with anyio.fail_after(120):
            answers = await asyncio.gather(
                *(session.get_batch_jobs(7) for _ in range(16)),
                *(session.create("nope", template) for _ in range(6)),
                return_exceptions=True,
            )
    assert answers[:16] == [()] * 16
    assert all(isinstance(a, ModelIdError) for a in answers[16:])
    counters = emu.counters
    assert len(counters.arrivals) == 22
    # Evenly spaced (a bucket of one): any second of the emulator's clock holds at most
    # rate + 1 arrivals of each kind.
    assert counters.most_within(1.0, "/api/v1/batch_jobs/7") <= 8 + 1
    assert counters.most_within(1.0, CREATE_PATH) <= 3 + 1


def test_requests_per_second_validation() -> None:
    for bad in (0, -1, float("inf"), True, "2"):
        with pytest.raises(aiportrait.InvalidArgument, match="per_second"):
            Session("http://127.0.0.1:1", "a", "t", per_second=bad)  # type: ignore[arg-type]
    session = Session("http://127.0.0.1:1", "a", "t", trainings_per_second=0.5)
    assert session.limits.per_second("train") == 0.5
    assert session.limits.per_second("read") is None
