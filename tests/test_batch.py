"""Batches: completion order, a full limiter, fail-fast, early exit, and the resumable journal."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

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
from aiportrait._journal import Journal
from aiportrait.emulator import Emulator

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
FAST = PollPolicy(first=0.01, growth=0.5, cap=0.04, jitter=0.0, timeout=20.0)


class Creator:
    """A loopback create endpoint: the template URL's query sets the delay and failure."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.templates: list[str] = []

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        template = body["template_image"]
        self.templates.append(template)
        query = parse_qs(urlsplit(template).query)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(float(query.get("delay", ["0.02"])[0]))
        finally:
            self.active -= 1
        if "fail" in query:
            message = "There is not face in template. Please Give a new template."
            return web.json_response({"code": "error", "message": message}, status=462)
        data = {"image": base64.b64encode(PNG).decode(), "cost_time": 0.1}
        return web.json_response({"request_id": "r", "code": "OK", "data": data})


@pytest.fixture
async def creator() -> AsyncIterator[tuple[Creator, str]]:
    state = Creator()
    app = web.Application()
    app.router.add_post("/api/v1/aigc_images/create", state.create)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield state, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


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
    _, url = creator
    requests = {
        f"k{i}": CreateRequest("m", _tpl(i, delay=0.3 if i == 0 else 0.02)) for i in range(6)
    }
    requests["bad"] = CreateRequest("m", _tpl(99, fail=1))
    async with Session(url, "a", "t") as session:
        outcomes = await session.create_many(requests, limit=3).collect()
    assert {o.key for o in outcomes} == set(requests)
    assert outcomes[-1].key == "k0"  # the slow one ends last
    bad = next(o for o in outcomes if o.key == "bad")
    assert isinstance(bad.error, aiportrait.NoFaceInTemplate)
    assert bad.request is requests["bad"]
    assert not bad.ok
    with pytest.raises(aiportrait.NoFaceInTemplate):
        bad.unwrap()
    good = [o for o in outcomes if o.ok]
    assert len(good) == 6
    assert all(o.unwrap().format == "png" for o in good)


async def test_the_limiter_stays_full(creator: tuple[Creator, str]) -> None:
    state, url = creator
    requests = [CreateRequest("m", _tpl(i, delay=0.6 if i == 0 else 0.05)) for i in range(25)]
    async with Session(url, "a", "t", max_in_flight=8, max_creations=8) as session:
        started = time.monotonic()
        outcomes = await session.create_many(requests, limit=4).collect()
        makespan = time.monotonic() - started
    assert all(o.ok for o in outcomes)
    assert state.peak == 4
    # 24 fast items on the 3 free workers take ~0.4 s, all while the slow one runs: no
    # head-of-line blocking, so the batch ends with the slow item.
    assert makespan < 0.6 + 0.35
    assert [o.key for o in outcomes][-1] == 0


async def test_fail_fast_raises_and_cancels_the_rest(creator: tuple[Creator, str]) -> None:
    state, url = creator
    requests = [CreateRequest("m", _tpl(0, fail=1, delay=0.01))]
    requests += [CreateRequest("m", _tpl(i, delay=0.5)) for i in range(1, 10)]
    before = _client_tasks()
    async with Session(url, "a", "t") as session:
        started = time.monotonic()
        with pytest.raises(aiportrait.NoFaceInTemplate):
            async for _ in session.create_many(requests, limit=4, fail_fast=True):
                pass
        assert time.monotonic() - started < 0.45
    await asyncio.sleep(0)
    assert _client_tasks() <= before
    assert len(state.templates) == 4


async def test_leaving_early_cancels_the_rest(creator: tuple[Creator, str]) -> None:
    state, url = creator
    requests = [CreateRequest("m", _tpl(i, delay=0.02 if i < 2 else 0.3)) for i in range(20)]
    before = _client_tasks()
    async with Session(url, "a", "t") as session:
        async with session.create_many(requests, limit=4) as outcomes:
            async for outcome in outcomes:
                assert outcome.ok
                break
        await asyncio.sleep(0.1)  # requests already on the wire may still land
        sent_then = len(state.templates)
        await asyncio.sleep(0.4)
    assert len(state.templates) == sent_then <= 6  # 2 done + at most 4 in flight, none after
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
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from aiportrait._demo import _photos

    folder = tmp_path_factory.mktemp("media")
    (folder / "names.json").write_text(json.dumps(_photos(folder)))
    return folder


@pytest.fixture
async def emu(media: Path, tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.3, serve_dir=media, data_dir=tmp_path / "emu") as e:
        yield e


def _names(media: Path) -> dict[str, list[str]]:
    return json.loads((media / "names.json").read_text())  # type: ignore[no-any-return]


async def _model(session: Session, emu: Emulator, media: Path) -> str:
    job = await session.train([emu.media_url(n) for n in _names(media)["astronaut"][:2]])
    return (await session.wait(job)).model_id


async def test_journal_rerun_neither_loses_nor_repeats(
    emu: Emulator, media: Path, tmp_path: Path
) -> None:
    names = _names(media)
    journal = tmp_path / "batch.sqlite"
    async with emu.session(poll=FAST) as session:
        model = await _model(session, emu, media)
        requests = {f"p{i}": CreateRequest(model, emu.media_url(t))
                    for i, t in enumerate(names["templates"][:2])}  # fmt: skip
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
    assert Journal(journal).counts("create") == {"done": 2}


async def test_training_resumes_watching_instead_of_training_again(
    emu: Emulator, media: Path, tmp_path: Path
) -> None:
    names = _names(media)
    journal = tmp_path / "train.sqlite"
    sets = {"astronaut": [emu.media_url(n) for n in names["astronaut"][:2]],
            "hopper": [emu.media_url(n) for n in names["hopper"][:2]]}  # fmt: skip
    async with emu.session(poll=FAST) as session:
        task = asyncio.create_task(session.train_many(sets, journal=journal).collect())
        while Journal(journal).counts("train").get("submitted", 0) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()  # "killed" while watching
        with pytest.raises(asyncio.CancelledError):
            await task
        assert emu.counters.trainings == 2
        outcomes = await session.train_many(sets, journal=journal).collect()
    assert emu.counters.trainings == 2  # resumed, not trained again
    assert all(isinstance(o.value, aiportrait.TrainResult) for o in outcomes)
    assert {o.key for o in outcomes} == set(sets)
    assert all(o.job is not None for o in outcomes)
    assert Journal(journal).counts("train") == {"done": 2}


async def test_in_flight_items_are_not_silently_resubmitted(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    request = CreateRequest("m", _tpl(1))
    from aiportrait._batch import fingerprint

    Journal(journal).put("create", "0", fingerprint(request), "submitting")  # died mid-call
    async with Session(url, "a", "t") as session:
        (unknown,) = await session.create_many([request], journal=journal).collect()
        assert isinstance(unknown.error, aiportrait.SubmitOutcomeUnknown)
        assert state.templates == []
        (again,) = await session.create_many(
            [request], journal=journal, resubmit_unknown=True
        ).collect()
    assert again.ok
    assert len(state.templates) == 1


async def test_recorded_failures_and_changed_requests(
    creator: tuple[Creator, str], tmp_path: Path
) -> None:
    state, url = creator
    journal = tmp_path / "j.sqlite"
    failing = CreateRequest("m", _tpl(1, fail=1))
    async with Session(url, "a", "t") as session:
        (first,) = await session.create_many([failing], journal=journal).collect()
        assert isinstance(first.error, aiportrait.NoFaceInTemplate)
        (second,) = await session.create_many([failing], journal=journal).collect()
        assert isinstance(second.error, aiportrait.PreviousFailure)
        assert "NoFaceInTemplate" in second.error.recorded
        assert len(state.templates) == 1
        (third,) = await session.create_many(
            [failing], journal=journal, retry_failed=True
        ).collect()
        assert isinstance(third.error, aiportrait.NoFaceInTemplate)
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
