"""Budgets and dry runs against the emulator over loopback: a charged call beyond the budget is
refused before anything of it is read, uploaded or sent, calls started together never go over,
a batch's refused items stay new in its journal, and a dry run sends and uploads nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import Budget, sync
from aiportrait._batches.journal import Journal
from aiportrait.emulator import Emulator
from aiportrait.errors import BudgetExhausted, InvalidArgument, LocalPhotoError, ModelIdError
from aiportrait.samples import SamplePhotos

pytest.importorskip("PIL.Image")

CREATE_PATH = "/api/v1/aigc_images/create"
FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)


@pytest.fixture
async def emu(sample_media: SamplePhotos) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=sample_media.folder) as emulator:
        yield emulator


def _portrait(emu: Emulator, photos: SamplePhotos) -> aiportrait.ReferenceCreateRequest:
    """A creation that needs no training: a reference photo on a template."""
    reference = emu.media_url(photos.astronaut[0])
    return aiportrait.ReferenceCreateRequest(reference, emu.media_url(photos.hopper_template))


def _creates_received(emu: Emulator) -> int:
    """Create requests the emulator processed (each one charged on the real service)."""
    return sum(n for (path, _), n in emu.counters.fingerprints.items() if path == CREATE_PATH)


class Recorder:
    """An uploader that records every upload (an async callable ``(data, type, key) -> url``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, data: bytes, content_type: str, key: str) -> str:
        self.calls.append(key)
        raise AssertionError("nothing may be uploaded here")


async def _all(outcomes: aiportrait.Outcomes[Any, Any]) -> dict[Any, aiportrait.Outcome[Any, Any]]:
    async with outcomes:
        return {o.key: o async for o in outcomes}


# -- the Session's budget ---------------------------------------------------------------------


async def test_sixty_creates_started_together_on_a_budget_of_ten_send_exactly_ten(
    emu: Emulator, sample_media: SamplePhotos
) -> None:
    budget = Budget(creations=10)
    request = _portrait(emu, sample_media)
    async with emu.session(budget=budget) as session:
        assert session.budget is budget
        results = await asyncio.gather(
            *(session.send(request) for _ in range(60)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, BudgetExhausted)]
    made = [r for r in results if isinstance(r, aiportrait.Portrait)]
    assert (len(made), len(refused)) == (10, 50)
    assert emu.counters.creations == 10
    assert _creates_received(emu) == 10
    assert (budget.spent("create"), budget.left("create")) == (10, 0)
    error = refused[0]
    assert error.sent is False and error.kind == "create" and error.limit == 10
    assert "budget of 10 creations" in str(error) and "not charged" in str(error)


async def test_a_call_that_never_left_gives_its_place_back_and_one_refused_by_the_service_keeps_it(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    budget = Budget(creations=1, trainings=0)
    template = emu.media_url(sample_media.hopper_template)
    async with emu.session(budget=budget, uploader=Recorder()) as session:
        with pytest.raises(LocalPhotoError):  # read before anything is uploaded or sent
            await session.create("m", tmp_path / "missing.jpg")
        assert (budget.spent("create"), budget.left("create")) == (0, 1)
        with pytest.raises(BudgetExhausted):  # a budget of no trainings: none is sent
            await session.train([template] * 5)
        with pytest.raises(ModelIdError):  # sent, answered with an error: it counts
            await session.create("no-such-model", template)
        assert (budget.spent("create"), budget.left("create")) == (1, 0)
        with pytest.raises(BudgetExhausted):
            await session.create("no-such-model", template)
    assert emu.counters.trainings == 0
    assert _creates_received(emu) == 1


async def test_a_refused_call_reads_and_uploads_nothing(
    emu: Emulator, sample_media: SamplePhotos
) -> None:
    recorder = Recorder()
    template = sample_media.path(sample_media.hopper_template)
    async with emu.session(budget=Budget(creations=0), uploader=recorder) as session:
        with pytest.raises(BudgetExhausted):
            await session.create("m", template)
    assert recorder.calls == []
    assert emu.counters.requests == 0


def test_a_budget_checks_its_bounds_and_says_what_it_is() -> None:
    with pytest.raises(InvalidArgument):
        Budget(creations=-1)
    with pytest.raises(InvalidArgument):
        aiportrait.Session("http://127.0.0.1:1", "a", "t", budget=10)  # type: ignore[arg-type]
    budget = Budget(trainings=2)
    assert (budget.limit("train"), budget.limit("create"), budget.left("create")) == (2, None, None)
    assert repr(budget) == "Budget(trainings=2, creations=None)"
    with pytest.raises(AttributeError):
        budget.trainings = 3  # type: ignore[misc]


def test_the_sync_facade_takes_a_budget_too(sample_media: SamplePhotos) -> None:
    budget = Budget(creations=1)
    options = {"serve_dir": sample_media.folder, "session_options": {"budget": budget}}
    with sync.emulator(**options) as session:
        emu: Emulator = session.emulator  # type: ignore[attr-defined]
        request = _portrait(emu, sample_media)
        assert session.budget is budget
        assert isinstance(session.send(request), aiportrait.Portrait)
        with pytest.raises(BudgetExhausted):
            session.send(request)
        outcomes = list(session.create_many([request, request]))
        assert all(isinstance(o.error, BudgetExhausted) for o in outcomes)
        assert emu.counters.creations == 1


# -- batches ----------------------------------------------------------------------------------


async def test_a_batch_budget_stops_submitting_and_a_rerun_with_a_larger_one_goes_on(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    items = {f"p{i}": _portrait(emu, sample_media) for i in range(20)}
    async with emu.session() as session:
        first = await _all(session.create_many(items, journal=journal, budget=Budget(creations=5)))
    ok = [k for k, o in first.items() if o.ok]
    refused = [k for k, o in first.items() if isinstance(o.error, BudgetExhausted)]
    assert (len(ok), len(refused)) == (5, 15)
    assert all(first[k].status == "failed" and not first[k].resumed for k in refused)
    assert emu.counters.creations == 5
    look = Journal(journal, lock=False)
    try:
        assert look.counts("create") == {"done": 5}  # the refused items left no row
    finally:
        look.close()

    async with emu.session() as session:
        again = await _all(session.create_many(items, journal=journal, budget=Budget(creations=50)))
    assert all(o.ok for o in again.values())
    assert sum(o.resumed for o in again.values()) == 5
    assert emu.counters.creations == 20
    assert _creates_received(emu) == 20  # nothing twice


async def test_the_sessions_budget_bounds_its_batches_and_trainings_count_on_their_own(
    emu: Emulator, sample_media: SamplePhotos
) -> None:
    budget = Budget(trainings=1, creations=3)
    photos = [emu.media_url(n) for n in sample_media.astronaut]
    async with emu.session(budget=budget, poll=FAST) as session:
        trained = await _all(session.train_many({"a": photos, "b": photos}, limit=1))
        made = await _all(
            session.create_many(
                [_portrait(emu, sample_media)] * 4, budget=Budget(creations=2), limit=2
            )
        )
    assert sorted(o.ok for o in trained.values()) == [False, True]
    assert [type(o.error) for o in trained.values() if not o.ok] == [BudgetExhausted]
    assert sum(o.ok for o in made.values()) == 2  # the batch's own, smaller budget
    assert (emu.counters.trainings, emu.counters.creations) == (1, 2)
    assert (budget.spent("train"), budget.spent("create"), budget.left("create")) == (1, 2, 1)
