"""Uploaded photos are deleted: ``OSSUploader(delete_after=True)`` deletes every object it
handed out a URL for (uploaded now, found already there, remembered by a journal);
``--delete-uploads`` on every command that uploads, once its jobs ended; ``uploads delete
JOURNAL`` deletes what a journal remembers; ``--url-lifetime`` sets how long a URL works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import aiportrait
from aiportrait import cli
from aiportrait.cli import main
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader

pytest.importorskip("alibabacloud_oss_v2")
pytest.importorskip("PIL.Image")

TOKEN = "deleted-token-0123456789"
FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)


@pytest.fixture
def photos(sample_media: SamplePhotos) -> SamplePhotos:
    """The sample photos, written once per test session (conftest)."""
    return sample_media


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token=TOKEN, train_seconds=0.05) as emulator:
        yield emulator


async def run(emu: Emulator, *args: str) -> int:
    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return await asyncio.to_thread(main, [*args, *creds])


def _me(photos: SamplePhotos, folder: Path) -> Path:
    me = folder / "me"
    me.mkdir(parents=True)
    for name in photos.astronaut:
        (me / name).write_bytes(photos.path(name).read_bytes())
    return me


# -- the library -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["uploaded", "found", "resumed"])
async def test_delete_after_deletes_every_object_it_handed_out(
    emu: Emulator, tmp_path: Path, case: str
) -> None:
    journal = tmp_path / "batch.sqlite"
    if case == "found":  # stored by an earlier run that remembered nothing
        async with OSSUploader.for_emulator(emu) as earlier:
            await earlier.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
    if case == "resumed":  # stored by a crashed run that remembered it in the journal
        async with OSSUploader.for_emulator(emu, journal=journal) as crashed:
            await crashed.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
    assert len(emu.bucket.objects) == (0 if case == "uploaded" else 1)
    async with OSSUploader.for_emulator(emu, journal=journal, delete_after=True) as uploader:
        await uploader.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
        assert uploader.puts == (1 if case == "uploaded" else 0)
        assert len(emu.bucket.objects) == 1
    assert emu.bucket.objects == {}
    async with OSSUploader.for_emulator(emu, journal=journal) as later:  # forgotten there too
        await later.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
        assert later.puts == 1  # not taken for present: asked, then stored again


async def test_a_batch_on_a_session_deletes_what_its_journal_remembers(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    paths = [photos.path(n) for n in photos.astronaut]
    async with OSSUploader.for_emulator(emu) as first:  # a run that kept its uploads
        async with emu.session(uploader=first, poll=FAST) as session:
            async with session.train_many({"a": paths}, journal=journal) as outcomes:
                assert all([o.ok async for o in outcomes])
    assert len(emu.bucket.objects) == 5
    async with OSSUploader.for_emulator(emu) as uploader:
        assert await uploader.delete_remembered(journal) == 5
    assert emu.bucket.objects == {}


# -- the command line --------------------------------------------------------------------------


async def test_check_train_and_create_delete_their_uploads(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = _me(photos, tmp_path)
    assert await run(emu, "check", f"{me}/*.jpg") == cli.EXIT_OK  # kept: no flag
    assert len(emu.bucket.objects) == 5
    assert await run(emu, "check", f"{me}/*.jpg", "--delete-uploads") == cli.EXIT_OK  # found
    assert emu.bucket.objects == {}
    code = await run(
        emu, "train", f"{me}/*.jpg", "--wait", "--poll", "0.05", "--delete-uploads", "--json"
    )
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert emu.bucket.objects == {}
    assert emu.bucket.puts == 10  # uploaded again after the deletion
    model = json.loads(captured.out.strip().splitlines()[-1])["model_id"]
    template = tmp_path / "t.jpg"
    template.write_bytes(photos.path(photos.hopper_template).read_bytes())
    args = ["create", "--model", model, "--template", str(template), "--out", str(tmp_path / "p")]
    assert await run(emu, *args, "--delete-uploads") == cli.EXIT_OK
    assert emu.bucket.objects == {}
    assert emu.counters.creations == 1


async def test_train_without_wait_refuses_to_delete_the_photos_it_trains_on(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = _me(photos, tmp_path)
    assert await run(emu, "train", f"{me}/*.jpg", "--delete-uploads") == cli.EXIT_USAGE
    assert "--delete-uploads needs --wait" in capsys.readouterr().err
    assert (emu.bucket.puts, emu.counters.trainings) == (0, 0)


def _batch_file(photos: SamplePhotos, tmp_path: Path) -> Path:
    me = _me(photos, tmp_path)
    template = tmp_path / "template.jpg"
    template.write_bytes(photos.path(photos.hopper_template).read_bytes())
    rows = [
        {"kind": "train", "key": "me", "images": f"{me}/*.jpg"},
        {"kind": "reference", "key": "ref", "reference": str(me / photos.astronaut[0]),
         "template": str(template)},
    ]  # fmt: skip
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_batch_deletes_its_uploads_at_its_end_and_those_of_a_run_it_resumes(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch_file(photos, tmp_path)
    out = tmp_path / "out"
    args = ["batch", str(batch), "--out", str(out), "--poll", "0.05"]
    assert await run(emu, *args, "--delete-uploads") == cli.EXIT_OK  # uploaded now
    assert "deleted 6 uploaded photo(s)" in capsys.readouterr().err
    assert emu.bucket.objects == {}
    again = ["batch", str(batch), "--out", str(tmp_path / "out2"), "--poll", "0.05"]
    assert await run(emu, *again) == cli.EXIT_OK  # a run that kept them
    assert len(emu.bucket.objects) == 6
    assert await run(emu, *again, "--delete-uploads") == cli.EXIT_OK  # resumed: none uploaded
    assert emu.bucket.objects == {}
    assert (emu.counters.trainings, emu.counters.creations) == (2, 2)


async def test_batch_without_waiting_keeps_them_and_uploads_delete_deletes_them_later(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch_file(photos, tmp_path)
    out = tmp_path / "out"
    args = ["batch", str(batch), "--out", str(out), "--poll", "0.05", "--no-wait"]
    assert await run(emu, *args, "--delete-uploads") == cli.EXIT_USAGE
    assert "--delete-uploads does not go with --no-wait" in capsys.readouterr().err
    assert await run(emu, *args) == cli.EXIT_OK
    assert len(emu.bucket.objects) == 6
    journal = out / ".aiportrait-journal.sqlite"
    assert await run(emu, "uploads", "delete", str(journal), "--json") == cli.EXIT_OK
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["deleted"] == 6
    assert emu.bucket.objects == {}
    assert await run(emu, "uploads", "delete", str(journal)) == cli.EXIT_OK  # forgotten
    assert "deleted 0 uploaded photo(s)" in capsys.readouterr().out
    assert await run(emu, "uploads", "delete", str(tmp_path / "none.sqlite")) == cli.EXIT_USAGE


async def test_batch_keeps_the_uploads_while_its_journal_holds_a_training_of_another_run(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch_file(photos, tmp_path)
    out = tmp_path / "out"
    journal = out / ".aiportrait-journal.sqlite"
    assert await run(emu, "batch", str(batch), "--out", str(out), "--no-wait") == cli.EXIT_OK
    other = tmp_path / "other.jsonl"  # another file on the same journal: only the create
    other.write_text(batch.read_text().splitlines()[1] + "\n")
    capsys.readouterr()
    args = ["batch", str(other), "--out", str(out), "--journal", str(journal), "--poll", "0.05"]
    assert await run(emu, *args, "--delete-uploads") == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "uploads kept: 1 item(s) may still be running" in err  # the first run's training
    assert len(emu.bucket.objects) == 6  # its photos are still there for it


async def test_url_lifetime_sets_how_long_the_uploaded_photos_urls_work(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []
    real = OSSUploader.aclose

    async def aclose(self: OSSUploader) -> None:
        seen.append(self.expires)
        await real(self)

    monkeypatch.setattr(OSSUploader, "aclose", aclose)
    me = _me(photos, tmp_path)
    assert await run(emu, "check", f"{me}/*.jpg", "--url-lifetime", "600") == cli.EXIT_OK
    assert await run(emu, "check", f"{me}/*.jpg") == cli.EXIT_OK
    assert seen == [600.0, aiportrait.uploads.DEFAULT_EXPIRES]
    assert await run(emu, "check", f"{me}/*.jpg", "--url-lifetime", "59") == cli.EXIT_USAGE


async def test_train_keeps_the_photos_of_a_training_it_stopped_watching(
    photos: SamplePhotos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = _me(photos, tmp_path)
    async with Emulator(app_id="app", token=TOKEN, train_seconds=3600) as emu:
        args = ["train", f"{me}/*.jpg", "--wait", "--poll", "0.05", "--deadline", "0.3"]
        assert await run(emu, *args, "--delete-uploads") != cli.EXIT_OK  # still training
        assert "uploads kept: a training may still be running" in capsys.readouterr().err
        assert len(emu.bucket.objects) == 5


async def test_delete_after_on_a_batchs_uploader_forgets_them_in_its_journal(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    paths = [photos.path(n) for n in photos.astronaut]
    async with OSSUploader.for_emulator(emu, delete_after=True) as uploader:
        async with emu.session(uploader=uploader, poll=FAST) as session:
            async with session.train_many({"a": paths}, journal=journal) as outcomes:
                assert all([o.ok async for o in outcomes])
        assert len(emu.bucket.objects) == 5  # the batch (and its journal) ended first
    assert emu.bucket.objects == {}
    async with OSSUploader.for_emulator(emu) as later:  # not remembered as there any more
        async with emu.session(uploader=later, poll=FAST) as session:
            items = {"b": aiportrait.TrainRequest(list(reversed(paths)))}
            async with session.train_many(items, journal=journal) as outcomes:
                assert all([o.ok async for o in outcomes])
        assert later.puts == 5
