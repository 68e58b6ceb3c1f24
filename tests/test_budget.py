"""Budgets and dry runs against the emulator over loopback: a charged call beyond the budget is
refused before anything of it is uploaded or sent, calls started together never go over,
a batch's refused items stay new in its journal, and a dry run sends and uploads nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import Budget, cli, sync
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import BudgetExhausted, InvalidArgument, LocalPhotoError, ModelIdError
from aiportrait.samples import SamplePhotos

pytest.importorskip("PIL.Image")

CREATE_PATH = "/api/v1/aigc_images/create"
FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)


@pytest.fixture
async def emu(sample_media: SamplePhotos) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=sample_media.folder) as emulator:
        yield emulator


def _portrait(emu: Emulator, photos: SamplePhotos, n: int = 0) -> aiportrait.PromptCreateRequest:
    """A creation that needs no training: a prompt and a reference photo."""
    reference = emu.media_url(photos.astronaut[0])
    return aiportrait.PromptCreateRequest(prompt=f"portrait {n}", reference=reference)


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
        plan = session.plan_many(creations={"a": request})
        assert [item.step for item in plan.items] == ["over_budget"]
        assert emu.counters.creations == 1


# -- batches ----------------------------------------------------------------------------------


async def test_a_batch_budget_stops_submitting_and_a_rerun_with_a_larger_one_goes_on(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    items = {f"p{i}": _portrait(emu, sample_media, i) for i in range(12)}
    async with emu.session() as session:
        first = await _all(session.create_many(items, journal=journal, budget=Budget(creations=4)))
    ok = [k for k, o in first.items() if o.ok]
    refused = [k for k, o in first.items() if isinstance(o.error, BudgetExhausted)]
    assert (len(ok), len(refused)) == (4, 8)
    assert all(first[k].status == "failed" and not first[k].resumed for k in refused)
    assert emu.counters.creations == 4
    async with emu.session() as session:  # the refused items left no row: they are new
        plan = await session.plan_many(creations=items, journal=journal)
    assert (plan.count("done"), plan.charged()) == (4, 8)

    async with emu.session() as session:
        again = await _all(session.create_many(items, journal=journal, budget=Budget(creations=50)))
    assert all(o.ok for o in again.values())
    assert sum(o.resumed for o in again.values()) == 4
    assert emu.counters.creations == 12
    assert _creates_received(emu) == 12  # nothing twice


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


# -- the dry run ------------------------------------------------------------------------------


async def test_a_dry_run_counts_a_half_done_journal_and_sends_nothing(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite"
    items: dict[str, Any] = {f"p{i}": _portrait(emu, sample_media, i) for i in range(8)}
    items["p4"] = aiportrait.PromptCreateRequest(prompt="x", model_id="no-such-model")
    async with emu.session() as session:
        first = await _all(
            session.create_many(items, journal=journal, budget=Budget(creations=3), limit=1)
        )
        assert sorted(k for k, o in first.items() if o.ok) == ["p0", "p1", "p2"]
        first["p2"].path.unlink()  # type: ignore[union-attr]  # its portrait is gone
        failed = await _all(session.create_many({"p4": items["p4"]}, journal=journal))
        assert isinstance(failed["p4"].error, ModelIdError)
        emu.faults = Faults(drop_after=1.0, paths=frozenset({CREATE_PATH}))
        lost = await _all(session.create_many({"p3": items["p3"]}, journal=journal))
        assert lost["p3"].status == "unknown"  # on its way when the answer was lost
        emu.faults = Faults()
    before = journal.read_bytes()
    photos = [sample_media.path(n) for n in sample_media.astronaut]
    trainings = {
        "good": photos,
        "two-faces": [*photos[:4], sample_media.path(sample_media.group_template)],
        "gone": [tmp_path / "missing.jpg"],
    }
    sent, recorder = emu.counters.requests, Recorder()
    async with emu.session(budget=Budget(creations=5), uploader=recorder) as session:
        plan = await session.plan_many(
            trainings, items, journal=journal, budget=Budget(creations=2)
        )
        again = await session.plan_many(
            creations=items, journal=journal, resubmit_unknown=True, retry_failed=True,
            recreate_missing=True,
        )  # fmt: skip
        await session.plan_many(creations=items, journal=tmp_path / "none.sqlite")

    assert (emu.counters.requests, recorder.calls) == (sent, [])  # nothing sent or uploaded
    assert journal.read_bytes() == before  # looked at only
    assert not (tmp_path / "none.sqlite").exists()  # and none created
    assert isinstance(plan, aiportrait.models.BatchPlan)
    assert (plan.trainings, plan.creations) == (3, 8)
    steps = {item.key: item.step for item in plan.items}
    assert steps == {
        "good": "charge", "two-faces": "refused", "gone": "refused",
        "p0": "done", "p1": "done", "p2": "missing", "p3": "unknown", "p4": "failed",
        "p5": "charge", "p6": "charge", "p7": "over_budget",
    }  # fmt: skip
    reasons = {item.key: item.reason for item in plan.items if item.reason}
    assert "failed the check on this machine" in reasons["two-faces"]
    assert "missing.jpg" in reasons["gone"]
    assert (plan.charged("train"), plan.charged("create"), plan.charged()) == (1, 2, 3)
    assert plan.summary()["create"] == {
        "items": 8, "charge": 2, "done": 2, "watch": 0, "unknown": 1, "failed": 1,
        "missing": 1, "refused": 0, "over_budget": 1,
    }  # fmt: skip
    assert again.charged() == 5  # p2 to p7 but one: the Session's budget of 5 is the bound
    assert again.count("over_budget") == 1


# -- the command line -------------------------------------------------------------------------


async def _cli(emu: Emulator | None, *args: str) -> int:
    """``aiportrait ARGS`` in a thread (it calls asyncio.run), with the emulator's credentials."""
    creds = [] if emu is None else ["--host", emu.url, "--app-id", emu.app_id, "--token", emu.token]
    return await asyncio.to_thread(cli.main, [*args, *creds])


def _sixty(emu: Emulator, photos: SamplePhotos, folder: Path) -> Path:
    reference = emu.media_url(photos.astronaut[0])
    rows = [
        {"kind": "prompt", "key": f"p{i:02}", "prompt": f"portrait {i}", "reference": reference}
        for i in range(60)
    ]
    path = folder / "sixty.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


async def test_max_creations_ten_on_sixty_items_charges_ten_says_so_and_a_rerun_goes_on(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch, out = _sixty(emu, sample_media, tmp_path), tmp_path / "out"
    args = ["batch", str(batch), "--out", str(out), "--limit", "12", "--no-progress"]
    assert await _cli(emu, *args, "--max-creations", "10") == cli.EXIT_BUDGET == 6
    text = capsys.readouterr().out
    assert emu.counters.creations == _creates_received(emu) == 10
    assert (
        "budget of 10 creations reached; 50 not submitted (not charged); "
        "run again with a higher --max-creations to go on"
    ) in text
    assert "10 ok, 0 failed (0 resumed) of 60" in text
    assert text.count("ok      ") == 10  # one line per item that ran; the others in one line
    assert len([p for p in out.iterdir() if p.is_file() and p.stem.startswith("p")]) == 10

    # what a re-run would charge, without credentials: nothing is sent
    assert await _cli(None, *args, "--dry-run", "--max-creations", "20") == cli.EXIT_OK
    text = capsys.readouterr().out
    assert "nothing was uploaded, sent or charged" in text
    assert (
        "creations: 60 in the file; 10 done in the journal, 20 would be charged now "
        "(30 more beyond --max-creations 20)"
    ) in text
    assert "would charge now: 0 trainings, 20 creations" in text
    assert _creates_received(emu) == 10

    assert await _cli(emu, *args, "--max-creations", "5", "--json") == cli.EXIT_BUDGET
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = lines[-1]
    assert (summary["ok"], summary["resumed"], summary["not_submitted"]) == (15, 10, 45)
    assert summary["budget"] == [
        "budget of 5 creations reached; 45 not submitted (not charged); "
        "run again with a higher --max-creations to go on"
    ]
    refused = [d for d in lines if d.get("type") == "outcome" and not d["ok"]]
    assert len(refused) == 45 and refused[0]["error"]["type"] == "BudgetExhausted"
    assert emu.counters.creations == _creates_received(emu) == 15  # 5 more, none twice


def local_rows(photos: SamplePhotos) -> list[dict[str, Any]]:
    """Batch rows of local files: a training whose photos pass the check on this machine
    (``good``), one with a group photo that fails it (``bad``), and a portrait (``s``)."""
    astronaut = [str(photos.folder / n) for n in photos.astronaut]
    group, hopper = (
        str(photos.folder / n) for n in (photos.group_template, photos.hopper_template)
    )
    return [
        {"kind": "train", "key": "good", "images": astronaut},
        {"kind": "train", "key": "bad", "images": [*astronaut[:4], group]},
        {"kind": "solo", "key": "s", "model_id": "m", "template": hopper},
    ]


async def test_dry_run_checks_local_photos_uploads_nothing_and_says_what_would_be_charged(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "local.jsonl"
    batch.write_text("".join(json.dumps(row) + "\n" for row in local_rows(sample_media)))
    args = ["batch", str(batch), "--out", str(tmp_path / "out"), "--dry-run"]
    assert await _cli(emu, *args, "--json") == cli.EXIT_BATCH_FAILED
    doc = json.loads(capsys.readouterr().out)
    assert doc["type"] == "dry_run"
    assert doc["charged"] == {"train": 1, "create": 1}
    assert doc["train"]["refused"] == 1 and doc["refused"][0]["key"] == "bad"
    assert "failed the check on this machine" in doc["refused"][0]["reason"]
    assert (emu.bucket.puts, emu.counters.requests) == (0, 0)  # nothing uploaded or sent
    assert not (tmp_path / "out").exists()

    assert await _cli(emu, *args) == cli.EXIT_BATCH_FAILED
    text = capsys.readouterr().out
    assert text.startswith("refused bad  ")
    trainings = "trainings: 2 in the file; 0 done in the journal, 1 refused before sending, 1 "
    assert trainings + "would be charged now" in text
    assert "would charge now: 1 training, 1 creation" in text
