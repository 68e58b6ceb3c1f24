"""Batches: completion order, a full limiter, fail-fast, early exit, and the resumable journal."""

from __future__ import annotations

import asyncio
import base64
import io
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

import aiportrait
from aiportrait import (
    CreateRequest,
    GroupCreateRequest,
    Outcome,
    PollPolicy,
    PromptCreateRequest,
    ReferenceCreateRequest,
    Session,
    TrainRequest,
)
from aiportrait._batches.journal import Journal, key_text
from aiportrait.emulator import Emulator
from aiportrait.errors import PhotoCountWarning
from aiportrait.samples import SamplePhotos, sample_photos
from tests._mock import PHOTOS, Arrival, Fake, until

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
FAST = PollPolicy(first=0.01, growth=0.5, cap=0.04, jitter=0.0, timeout=20.0)


class Creator:
    """Answers creates through the fake; the template URL's query says how (orderings, no times).

    ``fail``: a 462 (no face in the template); ``hold``: answered once :meth:`release` is
    called; ``hang``: never answered (until the call is cancelled); ``after=N``: answered once
    N requests have arrived. Without ``full``, the others are answered at once; with
    ``full = (n, total)`` only once n requests are in flight together (the limiter is full)
    or all ``total`` have arrived.
    """

    def __init__(self, fake: Fake) -> None:
        self.fake = fake
        self.templates: list[str] = []
        self.gate: asyncio.Event | None = None  # when set, every answer waits for it
        self.full: tuple[int, int] | None = None
        self._held = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def peak(self) -> int:
        """The most creates in flight at once."""
        return self.fake.peak

    def release(self) -> None:
        """Answer the ``hold`` items."""
        self._held.set()

    async def _until(self, condition: Any) -> None:
        while not condition():
            await self._changed.wait()  # until the next arrival

    async def create(self, arrival: Arrival) -> Any:
        template = arrival.json["template_image"]
        self.templates.append(template)
        self._changed.set()  # an arrival: the conditions below may hold now
        self._changed = asyncio.Event()
        query = parse_qs(urlsplit(template).query)
        if self.gate is not None:
            await self.gate.wait()
        if "hold" in query:
            await self._held.wait()
        if "hang" in query:
            await asyncio.Event().wait()
        if "after" in query:
            count = int(query["after"][0])
            await self._until(lambda: len(self.templates) >= count)
        elif self.full is not None:
            n, total = self.full
            await self._until(lambda: self.fake.active >= n or len(self.templates) >= total)
        if "fail" in query:
            message = "There is not face in template. Please Give a new template."
            return (462, {}, {"code": "error", "message": message})
        data = {"image": base64.b64encode(PNG).decode(), "cost_time": 0.1}
        return (200, {}, {"request_id": "r", "code": "OK", "data": data})


@pytest.fixture
def creator() -> Iterator[tuple[Creator, str]]:
    with Fake() as fake:
        state = Creator(fake)
        fake.routes["/api/v1/aigc_images/create"] = state.create
        yield state, fake.url


def _tpl(i: int, **query: Any) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"https://t/{i}.jpg" + (f"?{qs}" if qs else "")


def _client_tasks() -> set[asyncio.Task[Any]]:
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", "")
    }


async def test_outcomes_in_completion_order_and_errors_do_not_stop(
    creator: tuple[Creator, str],
) -> None:
    state, url = creator
    # k0 comes first but is answered only after every other item came back.
    requests = {
        f"k{i}": CreateRequest("m", _tpl(i, hold=1) if i == 0 else _tpl(i)) for i in range(6)
    }
    requests["bad"] = CreateRequest("m", _tpl(99, fail=1))
    outcomes: list[Outcome[Any, aiportrait.Portrait]] = []
    async with Session(url, "a", "t") as session:
        with anyio.fail_after(120):  # outcomes in input order would wait for k0 for ever
            async for outcome in session.create_many(requests, limit=3):
                outcomes.append(outcome)
                if len(outcomes) == len(requests) - 1:
                    state.release()
    assert {o.key for o in outcomes} == set(requests)
    assert outcomes[-1].key == "k0"  # the held one ends last
    bad = next(o for o in outcomes if o.key == "bad")
    assert isinstance(bad.error, aiportrait.errors.NoFaceInTemplate)
    assert bad.request is requests["bad"]
    assert not bad.ok
    with pytest.raises(aiportrait.errors.NoFaceInTemplate):
        bad.unwrap()
    good = [o for o in outcomes if o.ok]
    assert len(good) == 6
    assert all(o.unwrap().format == "png" for o in good)


async def test_the_limiter_stays_full(creator: tuple[Creator, str]) -> None:
    state, url = creator
    # The first item is answered only after the 24 others came back, and each other one only
    # while 4 are in flight: with head-of-line blocking (a worker or a chunk waiting for the
    # first) the batch could never end.
    state.full = (4, 25)
    requests = [CreateRequest("m", _tpl(i, hold=1) if i == 0 else _tpl(i)) for i in range(25)]
    outcomes = []
    async with Session(url, "a", "t", max_in_flight=8, max_creations=8) as session:
        with anyio.fail_after(120):
            async for outcome in session.create_many(requests, limit=4):
                outcomes.append(outcome)
                if len(outcomes) == 24:
                    state.release()
    assert all(o.ok for o in outcomes)
    assert state.peak == 4
    assert [o.key for o in outcomes][-1] == 0


async def test_fail_fast_raises_and_cancels_the_rest(creator: tuple[Creator, str]) -> None:
    state, url = creator
    # The failure comes once 4 creates are in flight; the others would never be answered.
    requests = [CreateRequest("m", _tpl(0, fail=1, after=4))]
    requests += [CreateRequest("m", _tpl(i, hang=1)) for i in range(1, 10)]
    before = _client_tasks()
    async with Session(url, "a", "t") as session:
        # Only cancelling the others ends the batch.
        with anyio.fail_after(120), pytest.raises(aiportrait.errors.NoFaceInTemplate):
            async for _ in session.create_many(requests, limit=4, fail_fast=True):
                pass
    await asyncio.sleep(0)
    assert _client_tasks() <= before
    assert len(state.templates) == 4
    assert state.fake.cancelled == 3  # the creates in flight were cut


async def test_leaving_early_cancels_the_rest(creator: tuple[Creator, str]) -> None:
    state, url = creator
    # Two answers come at once; the other creates, once sent, are never answered.
    requests = [CreateRequest("m", _tpl(i) if i < 2 else _tpl(i, hang=1)) for i in range(20)]
    before = _client_tasks()
    async with Session(url, "a", "t") as session:
        with anyio.fail_after(120):
            async with session.create_many(requests, limit=4) as outcomes:
                async for outcome in outcomes:
                    assert outcome.ok
                    break
        sent = len(state.templates)
        for _ in range(100):  # a batch that went on would have the loop to go on with
            await asyncio.sleep(0)
        assert len(state.templates) == sent
    assert sent <= 6  # 2 done + at most 4 in flight, none after
    assert state.fake.active == 0  # the creates in flight were cut
    assert state.fake.cancelled == sent - state.fake.answered
    assert _client_tasks() <= before


async def test_input_shapes_and_out_dir(creator: tuple[Creator, str], tmp_path: Path) -> None:
    _, url = creator
    kinds = [
        CreateRequest("m", _tpl(1)),
        GroupCreateRequest(["a", "b"], _tpl(2)),
        ReferenceCreateRequest("https://r/x.jpg", _tpl(3), ipa_weight=0.5),
        PromptCreateRequest(prompt="beach", model_id="m", template=_tpl(4)),
    ]
    async with Session(url, "a", "t") as session:
        bare = await session.create_many(kinds).collect()
        assert sorted(o.key for o in bare) == [0, 1, 2, 3]
        pairs = await session.create_many([("x/y", kinds[0])], out_dir=tmp_path).collect()
        assert pairs[0].path is not None
        assert pairs[0].path.parent == tmp_path
        assert pairs[0].path.read_bytes() == PNG
        with pytest.raises(aiportrait.InvalidArgument, match="batch item 0"):
            await session.create_many(["https://t/1.jpg"]).collect()  # type: ignore[list-item]
        with pytest.raises(aiportrait.InvalidArgument, match="limit"):
            session.create_many(kinds, limit=0)


# -- the journal, against the emulator -----------------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> SamplePhotos:
    return sample_photos(tmp_path_factory.mktemp("media"))


@pytest.fixture
async def emu(media: SamplePhotos, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.3, serve_dir=media.folder, data_dir=tmp_path / "emu") as e:
        yield e


async def _model(session: Session, emu: Emulator, media: SamplePhotos) -> str:
    with pytest.warns(PhotoCountWarning):  # two photos: the training stays quick
        job = await session.train([emu.media_url(n) for n in media.astronaut[:2]])
    return (await session.wait(job)).model_id


async def test_journal_rerun_neither_loses_nor_repeats(
    emu: Emulator, media: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    async with emu.session(poll=FAST) as session:
        model = await _model(session, emu, media)
        requests = {f"p{i}": CreateRequest(model, emu.media_url(t))
                    for i, t in enumerate(media.templates[:2])}  # fmt: skip
        first = await session.create_many(requests, journal=journal).collect()
        assert all(o.ok and not o.resumed for o in first)
        made = emu.counters.creations
        second = await session.create_many(requests, journal=journal).collect()
    assert emu.counters.creations == made == 2
    assert all(o.ok and o.resumed for o in second)
    by_key = {o.key: o for o in first}
    for o in second:
        assert o.path == by_key[o.key].path
        assert o.unwrap().image == by_key[o.key].unwrap().image
    assert not emu.counters.charged_duplicates()
    assert Journal(journal, lock=False).counts("create") == {"done": 2}


async def test_training_resumes_watching_instead_of_training_again(
    emu: Emulator, media: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "train.sqlite"
    sets = {"astronaut": [emu.media_url(n) for n in media.astronaut[:2]],
            "hopper": [emu.media_url(n) for n in media.hopper[:2]]}  # fmt: skip

    def both_submitted() -> bool:
        return Journal(journal, lock=False).counts("train").get("submitted", 0) >= 2

    async with emu.session(poll=FAST) as session:
        task = asyncio.create_task(session.train_many(sets, journal=journal).collect())
        with pytest.warns(PhotoCountWarning):  # two photos a set: the trainings stay quick
            await until(both_submitted, "both trainings submitted")  # the task runs from here on
        task.cancel()  # "killed" while watching
        with pytest.raises(asyncio.CancelledError):
            await task
        assert emu.counters.trainings == 2
        outcomes = await session.train_many(sets, journal=journal).collect()
    assert emu.counters.trainings == 2  # resumed, not trained again
    assert all(isinstance(o.value, aiportrait.TrainResult) for o in outcomes)
    assert {o.key for o in outcomes} == set(sets)
    assert all(o.job is not None for o in outcomes)
    assert Journal(journal, lock=False).counts("train") == {"done": 2}


async def test_a_failed_training_is_its_items_job_failed_not_a_group(
    emu: Emulator, media: SamplePhotos
) -> None:
    from aiportrait.emulator import Faults
    from aiportrait.errors import JobFailed

    emu.faults = Faults(job_failure=1.0)
    photos = [emu.media_url(n) for n in media.astronaut]
    async with emu.session(poll=FAST) as session:
        (outcome,) = await session.train_many({"me": photos}).collect()
    assert type(outcome.error) is JobFailed  # as itself: not in an ExceptionGroup
    assert outcome.error.job_id == outcome.job.job_id


async def test_in_flight_items_are_not_silently_resubmitted(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    request = CreateRequest("m", _tpl(1))
    state.gate = gate = asyncio.Event()  # the request sent gets no answer
    async with Session(url, "a", "t") as session:
        died = asyncio.create_task(session.create_many([request], journal=journal).collect())
        await until(lambda: len(state.templates) == 1, "the create on the wire")
        died.cancel()  # the run dies mid-call
        with pytest.raises(asyncio.CancelledError):
            await died
        state.gate = None
        gate.set()  # let the abandoned handler end
        (unknown,) = await session.create_many([request], journal=journal).collect()
        assert isinstance(unknown.error, aiportrait.SubmitOutcomeUnknown)
        assert len(state.templates) == 1  # not sent again
        (again,) = await session.create_many(
            [request], journal=journal, resubmit_unknown=True
        ).collect()
    assert again.ok
    assert len(state.templates) == 2


async def test_recorded_failures_and_changed_requests(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    failing = CreateRequest("m", _tpl(1, fail=1))
    async with Session(url, "a", "t") as session:
        (first,) = await session.create_many([failing], journal=journal).collect()
        assert isinstance(first.error, aiportrait.errors.NoFaceInTemplate)
        (second,) = await session.create_many([failing], journal=journal).collect()
        assert isinstance(second.error, aiportrait.errors.PreviousFailure)
        assert "NoFaceInTemplate" in second.error.recorded
        assert len(state.templates) == 1
        (third,) = await session.create_many(
            [failing], journal=journal, retry_failed=True
        ).collect()
        assert isinstance(third.error, aiportrait.errors.NoFaceInTemplate)
        assert len(state.templates) == 2
        changed = CreateRequest("other", _tpl(1))
        (fourth,) = await session.create_many([changed], journal=journal).collect()
        assert isinstance(fourth.error, aiportrait.InvalidArgument)
        assert "different request" in str(fourth.error)


def test_outcome_helpers() -> None:
    outcome: Outcome[Any, int] = Outcome("k", None, value=3)
    assert outcome.ok
    assert outcome.unwrap() == 3
    db = sqlite3.connect(":memory:")
    db.close()
    assert TrainRequest(["https://a/1.jpg"]).images == ("https://a/1.jpg",)
    with pytest.raises(aiportrait.InvalidArgument):
        TrainRequest("https://a/1.jpg")
    assert io.BytesIO  # keep imports honest


# -- the journal: ownership, keys, what "unknown" means, missing files, bad rows -------------------


async def test_second_batch_on_a_journal_in_use_is_refused(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    _, url = creator
    journal = tmp_path / "j.sqlite"
    requests = {"a": CreateRequest("m", _tpl(1))}
    async with Session(url, "a", "t") as session:
        first = session.create_many(requests, journal=journal)
        with pytest.raises(
            aiportrait.errors.JournalLocked, match="in use by another run"
        ) as refused:
            session.create_many(requests, journal=journal)
        assert refused.value.path == journal
        assert "pid" in refused.value.holder
        assert all(o.ok for o in await first.collect())
        (again,) = await session.create_many(requests, journal=journal).collect()
    assert again.resumed


async def test_keys_that_print_alike_are_different_items(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    async with Session(url, "a", "t") as session:
        # the file name the key "a b" gets, as a key of its own
        probe = [("a b", CreateRequest("m", _tpl(99)))]
        (named,) = await session.create_many(probe, out_dir=tmp_path / "probe").collect()
        assert named.path is not None and named.path.stem != "a b"
        keys: list[Any] = [1, "1", "a b", named.path.stem]
        requests = [(key, CreateRequest("m", _tpl(i))) for i, key in enumerate(keys)]
        del state.templates[:]
        first = {o.key: o for o in await session.create_many(requests, journal=journal).collect()}
        again = {o.key: o for o in await session.create_many(requests, journal=journal).collect()}
    assert all(o.ok and not o.resumed for o in first.values()), first
    assert len({o.path for o in first.values()}) == 4  # one file each
    assert all(o.ok and o.resumed and o.path == first[k].path for k, o in again.items())
    assert len(state.templates) == 4  # each ran once, none twice
    assert Journal(journal, lock=False).counts("create") == {"done": 4}


async def test_items_waiting_for_a_slot_are_new_on_a_rerun(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    requests = {k: CreateRequest("m", _tpl(i)) for i, k in enumerate("abc")}
    state.gate = gate = asyncio.Event()  # the request sent hangs; the others wait for the slot
    async with Session(url, "a", "t", max_creations=1) as session:
        limits = session.limits
        running = asyncio.create_task(
            session.create_many(requests, journal=journal, limit=3).collect()
        )
        await until(
            lambda: len(state.templates) == 1 and limits.waiting("create") == 2,
            "one request on the wire, two items waiting for the slot",
        )
        running.cancel()  # stopped: the request on the wire may have run, the others never left
        with pytest.raises(asyncio.CancelledError):
            await running
        sent = next(k for k, r in requests.items() if r.template == state.templates[0])
        assert Journal(journal, lock=False).counts("create") == {"submitting": 1}
        state.gate = None
        gate.set()  # let the abandoned handler end
        rerun = {o.key: o for o in await session.create_many(requests, journal=journal).collect()}
    assert isinstance(rerun[sent].error, aiportrait.SubmitOutcomeUnknown)
    assert all(o.ok and not o.resumed for k, o in rerun.items() if k != sent)
    assert len(state.templates) == 3  # the unknown one was not sent again


async def test_one_key_twice_in_a_batch_is_sent_once(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    request = CreateRequest("m", _tpl(1, hold=1))  # in flight until the other item is refused
    outcomes = []
    async with Session(url, "a", "t") as session:
        batch = session.create_many(
            [("k", request), ("k", request)], journal=tmp_path / "j.sqlite", limit=2
        )
        with anyio.fail_after(120):
            async for outcome in batch:
                outcomes.append(outcome)
                state.release()
    assert len(state.templates) == 1
    assert sorted(o.ok for o in outcomes) == [False, True]
    (twice,) = [o for o in outcomes if not o.ok]
    assert isinstance(twice.error, aiportrait.InvalidArgument)
    assert "more than one item" in str(twice.error)


async def test_a_finished_portrait_whose_file_is_gone_is_not_created_again(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    requests = {"p": CreateRequest("m", _tpl(1))}
    async with Session(url, "a", "t") as session:
        (first,) = await session.create_many(requests, journal=journal).collect()
        assert first.path is not None
        written = first.path.absolute()
        # Another output folder: the portrait is not there.
        other = tmp_path / "other"
        (elsewhere,) = await session.create_many(requests, journal=journal, out_dir=other).collect()
        assert isinstance(elsewhere.error, aiportrait.errors.PortraitMissing)
        assert elsewhere.resumed
        assert elsewhere.error.path == other / "p.png"
        assert elsewhere.error.recorded == written
        assert "recreate_missing=True" in str(elsewhere.error)
        assert str(written) in str(elsewhere.error)
        # The file was moved away.
        first.path.rename(tmp_path / "moved.png")
        (moved,) = await session.create_many(requests, journal=journal).collect()
        assert isinstance(moved.error, aiportrait.errors.PortraitMissing)
        assert moved.error.path == first.path
        assert len(state.templates) == 1  # neither case paid again
        # The caller asks for it explicitly.
        (again,) = await session.create_many(
            requests, journal=journal, recreate_missing=True
        ).collect()
    assert again.ok and not again.resumed
    assert again.path == first.path and first.path.is_file()
    assert len(state.templates) == 2
    assert Journal(journal, lock=False).counts("create") == {"done": 1}


async def test_a_garbage_journal_row_is_that_items_error_and_the_batch_goes_on(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    requests = {"a": CreateRequest("m", _tpl(1)), "b": CreateRequest("m", _tpl(2))}
    async with Session(url, "a", "t") as session:
        await session.create_many(requests, journal=journal).collect()
        with sqlite3.connect(journal) as db:
            db.execute("UPDATE items SET data = '{not json' WHERE key = ?", (key_text("a"),))
        rerun = {o.key: o for o in await session.create_many(requests, journal=journal).collect()}
    assert isinstance(rerun["a"].error, aiportrait.errors.JournalError)
    assert rerun["a"].error.path == journal
    assert "'a'" in str(rerun["a"].error) and "move it aside" in str(rerun["a"].error)
    assert rerun["b"].ok and rerun["b"].resumed
    assert len(state.templates) == 2  # nothing ran again


async def test_an_unreadable_journal_file_stops_the_batch_with_a_library_error(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"garbage, not an SQLite file " * 100)
    async with Session(url, "a", "t") as session:
        with pytest.raises(aiportrait.errors.JournalError, match="move it aside"):
            session.create_many({"a": CreateRequest("m", _tpl(1))}, journal=journal)
        with pytest.raises(aiportrait.errors.JournalError, match="move it aside"):
            session.train_many({"a": PHOTOS}, journal=journal)
    assert state.templates == []


async def test_job_ids_beyond_int32_are_malformed() -> None:
    def trained(job_id: int) -> dict[str, Any]:
        return {"code": "OK", "data": {"job_id": job_id, "model_id": "m"}}

    with Fake([], ok=trained(2**31 - 1)) as fake:
        async with Session(fake.url, "a", "t") as session:
            assert (await session.train(PHOTOS)).job_id == 2**31 - 1
    for bad in (10**30, 2**31, -1):
        with Fake([], ok=trained(bad)) as fake:
            async with Session(fake.url, "a", "t") as session:
                with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                    await session.train(PHOTOS)  # the training may have started
        assert isinstance(info.value.__cause__, aiportrait.errors.MalformedResponse)
        assert "range of job ids" in str(info.value.__cause__)
        job = {"code": "OK", "data": {"job": {"state": 1, "id": bad}}}
        batch = {"code": "OK", "data": {"jobs": [{"state": 1, "id": bad}]}}
        with Fake([], ok=job) as fake:
            async with Session(fake.url, "a", "t") as session:
                with pytest.raises(aiportrait.errors.MalformedResponse, match="range of job ids"):
                    await session.get_job(1)
        with Fake([], ok=batch) as fake:
            async with Session(fake.url, "a", "t") as session:
                with pytest.raises(aiportrait.errors.MalformedResponse):
                    await session.get_batch_jobs(1)


async def test_a_job_id_beyond_int32_leaves_that_item_unknown_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    huge = {"code": "OK", "data": {"job_id": 10**30, "model_id": "m-1"}}
    fine = {"code": "OK", "data": {"job_id": 7, "model_id": "m-2"}}
    journal = tmp_path / "j.sqlite"
    sets = [("x", PHOTOS), ("y", PHOTOS[::-1])]
    with Fake([(200, {}, huge)], ok=fine) as fake:
        async with Session(fake.url, "a", "t") as session:
            outcomes = {o.key: o for o in await session.train_many(
                sets, journal=journal, limit=1, wait=False
            ).collect()}  # fmt: skip
    assert isinstance(outcomes["x"].error, aiportrait.SubmitOutcomeUnknown)
    assert outcomes["y"].value == aiportrait.TrainJob(7, "m-2")
    assert Journal(journal, lock=False).counts("train") == {"submitting": 1, "submitted": 1}
    assert len(fake.requests) == 2
