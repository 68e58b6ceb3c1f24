"""Local photos through a Session: checked, cleaned and uploaded to the emulator's bucket (with the
real alibabacloud_oss_v2 aio client) before anything is charged."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import aiportrait
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos, sample_photos
from aiportrait.uploads import OSSUploader

pytest.importorskip("alibabacloud_oss_v2")
Image = pytest.importorskip("PIL.Image")

FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> SamplePhotos:
    return sample_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token="token", train_seconds=0.05) as emulator:
        yield emulator


def _paths(photos: SamplePhotos, names: tuple[str, ...]) -> list[Path]:
    return [photos.path(n) for n in names]


def _bad_set(photos: SamplePhotos, folder: Path) -> list[Path]:
    """Two good photos of the astronaut and three bad ones."""
    small = folder / "small.jpg"
    Image.open(photos.path(photos.astronaut[0])).resize((300, 300)).save(small)
    blank = folder / "blank.jpg"
    Image.new("RGB", (800, 800), (128, 128, 128)).save(blank)
    return [*_paths(photos, photos.astronaut[:2]), small, blank, photos.path(photos.group_template)]


async def test_train_and_create_from_local_paths_end_to_end(
    emu: Emulator, photos: SamplePhotos
) -> None:
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader, poll=FAST) as session:
            job = await session.train(_paths(photos, photos.astronaut))
            result = await session.wait(job)
            assert emu.bucket.puts == 5
            portrait = await session.create(result.model_id, photos.path(photos.hopper_template))
            assert portrait.width > 0
            assert emu.bucket.puts == 6
            again = await session.train(_paths(photos, photos.astronaut))  # same photos
            await session.wait(again)
    assert emu.bucket.puts == 6  # stored once
    assert emu.counters.trainings == 2
    assert emu.counters.creations == 1
    assert all(key.startswith("aiportrait/") for key in emu.bucket.objects)


async def test_two_good_three_bad_is_refused_before_any_upload_or_charge(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path
) -> None:
    paths = _bad_set(photos, tmp_path)
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader, poll=FAST) as session:
            with pytest.raises(aiportrait.errors.PreflightFailed) as info:
                await session.train(paths)
            assert emu.counters.trainings == 0
            assert emu.counters.requests == 0
            assert emu.bucket.puts == 0
            text = str(info.value)
            for bad in paths[2:]:
                assert str(bad) in text
            codes = [c.code for c in info.value.report.failed]
            assert aiportrait.CheckVerdict.DECODE_ERROR in codes
            assert aiportrait.CheckVerdict.FACE_COUNT in codes
            assert len(info.value.report.passed) == 2
            await session.train(paths, force=True)
            assert emu.counters.trainings == 1


def _jpeg_with_gps_and_rotation() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to show
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 180, 160)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


async def test_uploaded_bytes_carry_no_exif_gps_and_are_upright(emu: Emulator) -> None:
    original = _jpeg_with_gps_and_rotation()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader) as session:
            report = await session.check_images([original])
    assert report.results[0].code is aiportrait.CheckVerdict.FACE_COUNT  # checked by the service
    (stored,) = emu.bucket.objects.values()
    uploaded = Image.open(io.BytesIO(stored.data))
    assert uploaded.size == (600, 800)  # orientation applied
    assert not uploaded.getexif()
    assert b"Exif" not in stored.data
    assert b"PhoneMaker" not in stored.data


async def test_a_local_photo_without_an_uploader_is_refused_before_sending(
    emu: Emulator, photos: SamplePhotos
) -> None:
    async with emu.session() as session:
        with pytest.raises(aiportrait.InvalidArgument, match="uploader"):
            await session.train(_paths(photos, photos.astronaut))
        with pytest.raises(aiportrait.InvalidArgument, match="template"):
            await session.create("m", photos.path(photos.astronaut_template))
    assert emu.counters.requests == 0


async def test_any_async_callable_is_an_uploader(emu: Emulator, photos: SamplePhotos) -> None:
    keys: list[str] = []
    async with OSSUploader.for_emulator(emu, prefix="mine/") as oss:

        async def upload(data: bytes, content_type: str, key: str) -> str:
            keys.append(key)
            return await oss.upload(data, content_type, key)

        async with emu.session() as plain:
            session = plain.with_options(uploader=upload)
            report = await session.check_images(_paths(photos, photos.astronaut[:2]))
    assert report.ok
    assert len(keys) == 2
    assert all(len(k) == len("0" * 64 + ".jpg") and k.endswith(".jpg") for k in keys)


async def test_same_photo_is_stored_once_and_an_expiring_url_is_presigned_again(
    emu: Emulator, photos: SamplePhotos
) -> None:
    data = photos.path(photos.astronaut[0]).read_bytes()
    async with OSSUploader.for_emulator(emu) as first:
        url = await first.upload(data, "image/jpeg", "k.jpg")
        assert await first.upload(data, "image/jpeg", "k.jpg") == url  # remembered
        assert (first.puts, first.presigns) == (1, 1)
        name = "aiportrait/k.jpg"
        first._urls[name] = (url, time.time() + 10)  # about to expire
        await first.upload(data, "image/jpeg", "k.jpg")
        assert (first.puts, first.presigns) == (1, 2)
    async with OSSUploader.for_emulator(emu) as second:  # a re-run: HEAD finds it
        await second.upload(data, "image/jpeg", "k.jpg")
        assert second.puts == 0
    assert emu.bucket.puts == 1


async def test_delete_after_removes_what_was_stored(emu: Emulator) -> None:
    async with OSSUploader.for_emulator(emu, delete_after=True) as uploader:
        url = await uploader.upload(b"\xff\xd8data", "image/jpeg", "a.jpg")
        await uploader.upload(b"\xff\xd8other", "image/jpeg", "b.jpg")
        assert await uploader.delete([url, "https://elsewhere.example/x.jpg"]) == 1
        assert len(emu.bucket.objects) == 1
    assert emu.bucket.objects == {}


async def test_a_refusing_bucket_is_one_upload_error_and_nothing_charged(
    emu: Emulator, photos: SamplePhotos
) -> None:
    emu.bucket.refuse_puts = True
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader) as session:
            with pytest.raises(aiportrait.errors.UploadError, match="AccessDenied") as info:
                await session.train(_paths(photos, photos.astronaut))
    assert "token" not in str(info.value)
    assert "x-oss-signature" not in str(info.value)
    assert emu.counters.trainings == 0
    assert emu.counters.requests == 0


def test_missing_oss_credentials_are_a_credentials_error_before_any_upload() -> None:
    with pytest.raises(aiportrait.errors.CredentialsError, match="OSS_ACCESS_KEY_ID"):
        OSSUploader(environ={"OSS_BUCKET": "b", "OSS_REGION": "cn-hangzhou"})
    uploader = OSSUploader(
        environ={
            "OSS_BUCKET": "b",
            "OSS_REGION": "cn-hangzhou",
            "OSS_ACCESS_KEY_ID": "AKID",
            "OSS_ACCESS_KEY_SECRET": "very-secret",
        }
    )
    assert "very-secret" not in repr(uploader)
    assert "very-secret" not in repr(vars(uploader))


@pytest.mark.parametrize("case", ["directory", "missing", "text", "heic", "unreadable"])
async def test_each_bad_input_is_one_clear_error_before_anything_is_sent(
    emu: Emulator, photos: SamplePhotos, tmp_path: Path, case: str
) -> None:
    bad = tmp_path / f"bad-{case}"
    expected = {
        "directory": "directory",
        "missing": "no such file",
        "text": "not a JPEG or PNG",
        "heic": "larger than the 20.0 MB limit",
        "unreadable": "permission denied",
    }[case]
    if case == "directory":
        bad.mkdir()
    elif case == "text":
        bad.write_text("hello")
    elif case == "heic":
        with bad.open("wb") as f:
            f.write(b"\0\0\0\x18ftypheic")
            f.truncate(40 * 1024 * 1024)  # a 40 MB HEIC (sparse)
    elif case == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        bad.write_bytes(b"\xff\xd8\xff")
        bad.chmod(0)
    photos_in: list[Any] = [*_paths(photos, photos.astronaut[:4]), bad]
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader) as session:
            with pytest.raises(aiportrait.errors.LocalPhotoError, match=expected) as info:
                await session.train(photos_in)
    assert info.value.photo == str(bad)
    assert isinstance(info.value, aiportrait.InvalidArgument)
    assert emu.bucket.puts == 0
    assert emu.counters.requests == 0


def test_a_small_heic_is_refused_by_its_format(tmp_path: Path) -> None:
    from aiportrait._local.photos import read_photo

    with pytest.raises(aiportrait.errors.LocalPhotoError, match="HEIC"):
        read_photo(b"\0\0\0\x18ftypheic" + b"\0" * 100, "bytes #1")


async def test_a_journal_remembers_uploads_across_runs_by_key_and_hash_never_the_url(
    emu: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite"
    async with OSSUploader.for_emulator(emu, journal=journal) as first:
        url = await first.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
    heads = emu.bucket.heads
    async with OSSUploader.for_emulator(emu, journal=journal) as rerun:
        again = await rerun.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
        assert again.partition("?")[0] == url.partition("?")[0]  # the same object
        assert (rerun.puts, rerun.presigns) == (0, 1)  # presigned on this machine
    assert emu.bucket.heads == heads + 1  # asked whether it is still there, not uploaded
    assert b"x-oss-signature" not in journal.read_bytes().lower()
    from aiportrait._batches.journal import Journal

    j = Journal(journal, lock=False)
    try:
        sha = hashlib.sha256(b"\xff\xd8photo").hexdigest()
        assert j.upload("aiportrait/a.jpg") == (sha, pytest.approx(time.time() + 86400, abs=60))
        j.remember_upload("aiportrait/a.jpg", sha, time.time() - 1)  # expired
    finally:
        j.close()
    async with OSSUploader.for_emulator(emu, journal=journal) as later:
        fresh = await later.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg")
        assert (later.puts, later.presigns) == (0, 1)  # presigned again, not uploaded again
    assert emu.bucket.heads == heads + 2  # expired: asked as well
    assert fresh.startswith(f"{emu.url}/{emu.oss_bucket}/aiportrait/a.jpg?")
    async with OSSUploader.for_emulator(emu, journal=journal) as changed:
        await changed.upload(b"\xff\xd8other", "image/jpeg", "a.jpg")  # not what was stored
    assert emu.bucket.heads == heads + 3  # another content: asked as well
    assert emu.bucket.puts == 1
    owner = Journal(journal)  # a batch can still own the journal
    try:
        assert owner.counts() == {}
        assert owner.upload("aiportrait/a.jpg") is not None
    finally:
        owner.close()


async def test_a_photo_another_run_deleted_is_uploaded_again_not_handed_out_as_a_dead_url(
    emu: Emulator, tmp_path: Path
) -> None:
    # Keys are content hashes: two runs with the same photo share its object, and one of them
    # may delete it (--delete-uploads) while the other's journal still remembers it.
    photo = b"\xff\xd8the same photo"
    async with OSSUploader.for_emulator(emu, journal=tmp_path / "a.sqlite") as first:
        await first.upload(photo, "image/jpeg", "same.jpg")
    async with OSSUploader.for_emulator(
        emu, journal=tmp_path / "b.sqlite", delete_after=True
    ) as other:
        await other.upload(photo, "image/jpeg", "same.jpg")  # found there; deleted at close
    async with OSSUploader.for_emulator(emu, journal=tmp_path / "a.sqlite") as rerun:
        url = await rerun.upload(photo, "image/jpeg", "same.jpg")
        assert rerun.puts == 1  # uploaded again
    async with aiohttp.ClientSession() as http, http.get(url.reveal()) as answer:
        assert answer.status == 200  # the URL a training would be charged with reads it
        assert await answer.read() == photo


async def test_the_emulators_data_is_private_its_job_log_included(
    photos: SamplePhotos, tmp_path: Path
) -> None:
    data = tmp_path / "emulator"
    old = os.umask(0o022)
    try:
        async with Emulator(app_id="app", token="token", train_seconds=0.05, data_dir=data) as emu:
            async with (
                OSSUploader.for_emulator(emu) as uploader,
                emu.session(uploader=uploader, poll=FAST) as session,
            ):
                job = await session.train(_paths(photos, photos.astronaut))
                await session.wait(job)
    finally:
        os.umask(old)
    log = data / "jobs.jsonl"
    assert f"/{emu.oss_bucket}/aiportrait/".encode() in log.read_bytes()  # the photos' URLs
    assert b"x-oss-signature" not in log.read_bytes().lower()  # without their query
    for path in [data, *data.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
