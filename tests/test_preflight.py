"""The photo check on this machine: the service's verdicts, offline, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

import aiportrait
from aiportrait.samples import SamplePhotos, sample_photos

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> SamplePhotos:
    return sample_photos(tmp_path_factory.mktemp("photos"))


async def test_preflight_gives_the_service_codes_per_photo(
    photos: SamplePhotos, tmp_path: Path
) -> None:
    small = tmp_path / "small.png"
    Image.open(photos.path(photos.astronaut[0])).resize((300, 300)).save(small)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    good = [photos.path(n) for n in photos.astronaut[:3]]
    group = photos.path(photos.group_template)
    hopper = photos.path(photos.hopper[0]).read_bytes()
    report = await aiportrait.preflight([*good, small, text, group, hopper, tmp_path / "gone.jpg"])
    codes = [r.code for r in report.results]
    V = aiportrait.CheckVerdict
    assert codes[:3] == [V.SUCCESS] * 3
    assert codes[3:6] == [V.DECODE_ERROR, V.DECODE_ERROR, V.FACE_COUNT]
    assert codes[6] is V.NOT_SAME_PERSON
    assert codes[7] is V.DECODE_ERROR
    assert report.results[0].url == str(good[0])
    assert report.results[6].url == "bytes #7"
    assert "300x300" in report.results[3].detail
    assert report.results[3].message == "Image decode error."
    assert report.passed == tuple(str(p) for p in good)


async def test_session_check_images_local_sends_nothing(photos: SamplePhotos) -> None:
    async with aiportrait.Session("http://127.0.0.1:9", "app", "token") as session:
        report = await session.check_images([photos.path(n) for n in photos.hopper], local=True)
        assert report.ok
        with pytest.raises(aiportrait.InvalidArgument, match="Path or bytes"):
            await session.check_images(["https://x/a.jpg"], local=True)


async def test_session_without_an_uploader_checks_local_photos_on_this_machine(
    photos: SamplePhotos, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    paths = [*(photos.path(n) for n in photos.hopper), notes]
    async with aiportrait.Session("http://127.0.0.1:9", "app", "token") as session:  # no server
        report = await session.check_images(paths)
    assert [r.url for r in report.results] == [str(p) for p in paths]
    assert report.results[-1].code is aiportrait.CheckVerdict.DECODE_ERROR
    assert report.passed == tuple(str(p) for p in paths[:-1])


async def test_check_images_checks_every_photo_of_a_generator(photos: SamplePhotos) -> None:
    paths = [photos.path(n) for n in photos.hopper]
    async with aiportrait.Session("http://127.0.0.1:9", "app", "token") as session:  # no server
        for local in (True, False):
            report = await session.check_images((p for p in paths), local=local)
            assert [r.url for r in report.results] == [str(p) for p in paths]
