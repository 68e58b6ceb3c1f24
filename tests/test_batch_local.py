"""Batches of local photos against the emulator: each item's photos are read when it starts,
checked, cleaned and uploaded right before its charged call; the journal binds the item to the
files' content and remembers the uploads, so a re-run neither uploads nor trains again, and an
expired URL is presigned again, never uploaded again."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait._batches.journal import Journal
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader

pytest.importorskip("alibabacloud_oss_v2")
Image = pytest.importorskip("PIL.Image")

FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)
TOKEN = "batch-local-token-0123456789"


@pytest.fixture
def photos(sample_media: SamplePhotos) -> SamplePhotos:
    """The sample photos, written once per test session (conftest)."""
    return sample_media


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token=TOKEN, train_seconds=0.05) as emulator:
        yield emulator


def _astronaut(photos: SamplePhotos) -> list[Path]:
    return [photos.path(n) for n in photos.astronaut]


async def _all(outcomes: aiportrait.Outcomes[Any, Any]) -> dict[Any, aiportrait.Outcome[Any, Any]]:
    async with outcomes:
        return {o.key: o async for o in outcomes}


async def _train_then_create(
    emu: Emulator, photos: SamplePhotos, journal: Path, uploader: OSSUploader
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    async with emu.session(uploader=uploader, poll=FAST) as session:
        trained = await _all(session.train_many({"alice": _astronaut(photos)}, journal=journal))
        model_id = trained["alice"].unwrap().model_id
        template = photos.path(photos.hopper_template)
        items = {
            "solo": aiportrait.CreateRequest(model_id, template),
            "bytes": aiportrait.CreateRequest(model_id, template.read_bytes()),
        }
        created = await _all(session.create_many(items, journal=journal))
    return trained, created


async def test_train_many_and_create_many_with_local_files_then_a_rerun_does_nothing_again(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    async with OSSUploader.for_emulator(emu) as uploader:
        trained, created = await _train_then_create(emu, photos, journal, uploader)
    assert trained["alice"].ok and not trained["alice"].resumed
    assert all(o.ok for o in created.values()), created
    assert trained["alice"].request.images == tuple(_astronaut(photos))  # the item as given
    assert (emu.counters.trainings, emu.counters.creations) == (1, 2)
    assert emu.bucket.puts == 6  # five photos and the template, each once
    for outcome in created.values():
        assert outcome.path is not None and outcome.path.is_file()

    async with OSSUploader.for_emulator(emu) as rerun:  # a new process: nothing in memory
        trained2, created2 = await _train_then_create(emu, photos, journal, rerun)
        assert (rerun.puts, rerun.presigns) == (0, 0)
    assert trained2["alice"].resumed and trained2["alice"].ok
    assert all(o.resumed and o.ok for o in created2.values())
    assert (emu.counters.trainings, emu.counters.creations) == (1, 2)
    assert emu.bucket.puts == 6
    assert trained2["alice"].unwrap().model_id == trained["alice"].unwrap().model_id


async def test_an_expired_url_is_presigned_again_never_uploaded_again_and_the_item_resumes(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    paths = _astronaut(photos)
    async with OSSUploader.for_emulator(emu, expires=600) as first:
        async with emu.session(uploader=first, poll=FAST) as session:
            outcomes = await _all(session.train_many({"a": paths}, journal=journal, wait=False))
        assert (first.puts, first.presigns) == (5, 5)
    assert outcomes["a"].ok
    later = time.time() + 1200  # every URL of the first run has expired
    async with OSSUploader.for_emulator(emu, expires=600, clock=lambda: later) as rerun:
        async with emu.session(uploader=rerun, poll=FAST) as session:
            items = {"a": paths, "b": aiportrait.TrainRequest(list(reversed(paths)))}
            again = await _all(session.train_many(items, journal=journal))
        assert rerun.puts == 0  # the photos are in the bucket: presigned again only
        assert rerun.presigns == 5
    assert again["a"].ok  # same files: the same item, its job watched, not trained twice
    assert again["a"].job == outcomes["a"].job
    assert again["b"].ok and not again["b"].resumed
    assert emu.counters.trainings == 2
    assert emu.bucket.puts == 5


async def test_one_bad_photo_fails_its_item_only_and_nothing_is_charged_for_it(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("hello")
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (800, 800), (128, 128, 128)).save(blank)
    paths = _astronaut(photos)
    journal = tmp_path / "batch.sqlite"
    items = {
        "good": paths,
        "unreadable": [*paths[:4], notes],
        "no-face": aiportrait.TrainRequest([*paths[:4], blank]),
        "missing": aiportrait.CreateRequest("model", tmp_path / "nowhere.jpg"),
    }
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader, poll=FAST) as session:
            trained = await _all(
                session.train_many(
                    {k: v for k, v in items.items() if k != "missing"}, journal=journal
                )
            )
            created = await _all(session.create_many({"missing": items["missing"]}))
    assert trained["good"].ok
    error = trained["unreadable"].error
    assert isinstance(error, aiportrait.errors.LocalPhotoError) and error.photo == str(notes)
    assert isinstance(trained["no-face"].error, aiportrait.errors.PreflightFailed)
    assert str(blank) in str(trained["no-face"].error)
    assert isinstance(created["missing"].error, aiportrait.errors.LocalPhotoError)
    assert emu.counters.trainings == 1
    assert emu.counters.creations == 0
    assert emu.bucket.puts == 5  # the bad items uploaded nothing
    journal_rows = Journal(journal, lock=False)
    try:
        assert journal_rows.counts("train") == {"done": 1}  # refused items left no row
    finally:
        journal_rows.close()


async def test_local_items_without_an_uploader_fail_each_item_naming_the_uploader(
    emu: Emulator, photos: SamplePhotos
) -> None:
    async with emu.session(poll=FAST) as session:
        trained = await _all(session.train_many([_astronaut(photos)]))
    assert isinstance(trained[0].error, aiportrait.InvalidArgument)
    assert "uploader" in str(trained[0].error)
    assert emu.counters.requests == 0


def test_a_request_with_local_inputs_is_validated_when_built_and_hides_its_bytes() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="scene_lora"):
        aiportrait.TrainRequest([b"\xff\xd8"], scene_lora=True)
    request = aiportrait.CreateRequest("model", b"\xff\xd8secret-bytes")
    assert "secret" not in repr(request) and "<14 bytes>" in repr(request)
    assert request.local
    with pytest.raises(aiportrait.InvalidArgument, match="local inputs"):
        request.payload()  # nothing with a placeholder can be sent
    with pytest.raises(aiportrait.InvalidArgument, match="local inputs"):
        request.to_dict()  # nor stored, nor shipped to a Temporal worker


async def test_a_creation_in_train_many_is_refused_before_anything_is_sent(
    emu: Emulator, photos: SamplePhotos
) -> None:
    request = aiportrait.CreateRequest("model", photos.path(photos.hopper_template))
    async with emu.session(poll=FAST) as session:
        with pytest.raises(aiportrait.InvalidArgument, match="not TrainRequest"):
            await _all(session.train_many({"x": request}))  # type: ignore[dict-item]
    assert emu.counters.requests == 0


def test_local_request_is_deprecated_and_builds_the_request_itself(tmp_path: Path) -> None:
    template = tmp_path / "t.jpg"
    with pytest.warns(DeprecationWarning, match="CreateRequest"):
        made = aiportrait.uploads.LocalRequest.create("model", template, sdxl=True)
    assert made == aiportrait.CreateRequest("model", template, sdxl=True)
    with pytest.warns(DeprecationWarning, match="PromptCreateRequest"):
        prompt = aiportrait.uploads.LocalRequest.create_from_prompt("hi", reference=template)
    assert prompt == aiportrait.PromptCreateRequest(prompt="hi", reference=template)
    with pytest.warns(DeprecationWarning, match="TrainRequest"):
        train = aiportrait.uploads.LocalRequest(
            aiportrait.TrainRequest, {"images": [template]}, force=True
        )
    assert train == aiportrait.TrainRequest([template], force=True)


# -- the command line: aiportrait batch FILE with local paths ---------------------------------


async def _cli(emu: Emulator, *args: str) -> int:
    from aiportrait.cli import main

    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return await asyncio.to_thread(main, [*args, *creds])


def _batch_folder(photos: SamplePhotos, tmp_path: Path) -> Path:
    """``job/`` with ``me/*.jpg``, ``template.jpg`` and a batch file of relative paths."""
    folder = tmp_path / "job"
    (folder / "me").mkdir(parents=True)
    for name in photos.astronaut:
        (folder / "me" / name).write_bytes(photos.path(name).read_bytes())
    (folder / "template.jpg").write_bytes(photos.path(photos.hopper_template).read_bytes())
    rows = [
        {"kind": "train", "key": "me", "images": "me/*.jpg"},
        {"kind": "reference", "key": "ref", "reference": "me/astronaut_0.jpg",
         "template": "template.jpg"},
    ]  # fmt: skip
    (folder / "batch.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


async def test_cli_batch_with_local_paths_end_to_end_and_a_rerun_uploads_and_charges_nothing(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiportrait import cli

    monkeypatch.delenv("OSS_BUCKET", raising=False)
    monkeypatch.chdir(tmp_path)  # paths are relative to the batch file, not to here
    folder = _batch_folder(photos, tmp_path)
    out = tmp_path / "out"
    args = ["batch", str(folder / "batch.jsonl"), "--out", str(out), "--poll", "0.05"]
    assert await _cli(emu, *args) == cli.EXIT_OK
    assert (emu.counters.trainings, emu.counters.creations) == (1, 1)
    assert emu.bucket.puts == 6  # five photos (one also the reference) and the template
    assert (out / "trainings" / "me.json").is_file()
    assert await _cli(emu, *args) == cli.EXIT_OK  # a re-run: all resumed
    assert (emu.counters.trainings, emu.counters.creations) == (1, 1)
    assert emu.bucket.puts == 6


@pytest.mark.parametrize("case", ["missing", "no-match", "text"])
async def test_cli_batch_with_a_bad_local_path_exits_2_before_any_call(
    emu: Emulator,
    photos: SamplePhotos,
    tmp_path: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from aiportrait import cli

    folder = _batch_folder(photos, tmp_path)
    (folder / "notes.jpg").write_text("hello")
    bad = {"missing": "gone.jpg", "no-match": "nobody/*.jpg", "text": "notes.jpg"}[case]
    rows = (folder / "batch.jsonl").read_text()
    row = {"kind": "solo", "key": "bad", "model_id": "m", "template": bad}
    if case == "no-match":
        row = {"kind": "train", "key": "bad", "images": bad}
    (folder / "batch.jsonl").write_text(rows + json.dumps(row) + "\n")
    args = ["batch", str(folder / "batch.jsonl"), "--out", str(tmp_path / "out")]
    assert await _cli(emu, *args) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert bad.split("/")[0] in err
    assert emu.counters.requests == 0
    assert emu.bucket.puts == 0


SIGNATURE = b"x-oss-signature"


def _signed(folder: Path) -> list[Path]:
    """The files under ``folder`` that hold a presigned URL's signature."""
    return [p for p in folder.rglob("*") if p.is_file() and SIGNATURE in p.read_bytes().lower()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("shared", [False, True])
async def test_cli_batch_files_are_private_unless_shared_and_hold_no_usable_url(
    emu: Emulator,
    photos: SamplePhotos,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shared: bool,
) -> None:
    from aiportrait import cli

    monkeypatch.delenv("OSS_BUCKET", raising=False)
    folder = _batch_folder(photos, tmp_path)
    out = tmp_path / "out"
    args = ["batch", str(folder / "batch.jsonl"), "--out", str(out), "--poll", "0.05"]
    old = os.umask(0o022)
    try:
        assert await _cli(emu, *args, *(["--shared-files"] if shared else [])) == cli.EXIT_OK
    finally:
        os.umask(old)
    file_mode, folder_mode = (0o644, 0o755) if shared else (0o600, 0o700)
    journal = out / ".aiportrait-journal.sqlite"
    (portrait,) = out.glob("ref.*")
    training = out / "trainings" / "me.json"
    assert json.loads(training.read_text())["model_id"]
    for path in (journal, journal.with_name(journal.name + ".lock"), training, portrait):
        assert _mode(path) == file_mode, path
    for path in (out, out / "trainings"):
        assert _mode(path) == folder_mode, path
    assert _signed(out) == []  # the journal's rows and the training's file: no usable URL
    owner = Journal(journal)  # while a run holds it, SQLite's -wal and -shm beside it
    try:
        owner.add_durations([("train", 1.0)])
        for suffix in ("-wal", "-shm"):
            assert _mode(journal.with_name(journal.name + suffix)) == file_mode
    finally:
        owner.close()


SIGNED = (
    "http://127.0.0.1:9/aiportrait-local/aiportrait/a.jpg?x-oss-signature-version="
    "OSS4-HMAC-SHA256&x-oss-credential=app%2F20260101&x-oss-signature=0123abcd"
)


def _format_2_journal(path: Path) -> None:
    """A journal as aiportrait wrote it before format 3: URLs in its uploads and states."""
    state = {"url": SIGNED, "verdict": "SUCCESS", "message": "ok"}
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE items (kind TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
        " status TEXT NOT NULL, job_id INTEGER, model_id TEXT, data TEXT, error TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL, PRIMARY KEY (kind, key));"
        "CREATE TABLE uploads (key TEXT PRIMARY KEY, url TEXT NOT NULL, expires REAL NOT NULL);"
        "PRAGMA user_version = 2;"
    )
    db.execute("INSERT INTO uploads VALUES (?, ?, ?)", ("aiportrait/a.jpg", SIGNED, 1e10))
    db.execute(
        "INSERT INTO items VALUES ('train', 'str:me', 'fp', 'done', 1, 'm', ?, NULL, 1, 0.0)",
        (json.dumps({"model_id": "m", "states": [state]}),),
    )
    db.commit()
    db.close()


@pytest.mark.parametrize("how", ["owner", "memo"])
def test_a_journal_of_format_2_is_migrated_and_its_urls_dropped(tmp_path: Path, how: str) -> None:
    path = tmp_path / "old.sqlite"
    _format_2_journal(path)
    journal = Journal(path) if how == "owner" else Journal(path, lock=False, memo=True)
    try:
        assert journal.upload("aiportrait/a.jpg") == (None, 1e10)  # kept, to be deleted later
        assert journal.uploads() == ["aiportrait/a.jpg"]
        record = journal.get("train", "str:me", "fp")
        assert record is not None and record.data is not None
        assert record.data["states"][0]["url"] == SIGNED.partition("?")[0]
    finally:
        journal.close()
    assert _signed(tmp_path) == []  # nor in a free page, nor in the -wal
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
    finally:
        db.close()


def test_a_journal_of_format_2_only_looked_at_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _format_2_journal(path)
    journal = Journal(path, lock=False)  # a dry run looks, never writes
    try:
        assert journal.counts() == {"done": 1}
        assert journal.uploads() == ["aiportrait/a.jpg"]
    finally:
        journal.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("SELECT url FROM uploads").fetchall() == [(SIGNED,)]
    finally:
        db.close()
