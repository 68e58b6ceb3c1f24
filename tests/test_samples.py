"""aiportrait.samples: the public sample photos for demos and users' tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aiportrait.samples import SamplePhotos, sample_photos

PIL = pytest.importorskip("PIL.Image")


def test_sample_photos_writes_the_set_by_role(tmp_path: Path) -> None:
    photos = sample_photos(tmp_path / "new")  # the folder is created
    assert isinstance(photos, SamplePhotos)
    assert photos.folder == tmp_path / "new"
    assert photos.astronaut == tuple(f"astronaut_{i}.jpg" for i in range(5))
    assert photos.hopper == tuple(f"hopper_{i}.jpg" for i in range(5))
    assert photos.templates == (
        "template_hopper.jpg",
        "template_astronaut.jpg",
        "template_group.jpg",
    )
    assert (photos.hopper_template, photos.astronaut_template, photos.group_template) == (
        photos.templates
    )
    assert sorted(p.name for p in photos.folder.iterdir()) == sorted(
        [*photos.astronaut, *photos.hopper, *photos.templates]
    )
    sizes = {}
    for name in (*photos.astronaut, *photos.hopper, *photos.templates):
        with PIL.open(photos.path(name)) as img:
            assert img.format == "JPEG"
            sizes[name] = img.size
    assert {sizes[n] for n in photos.astronaut} == {(768, 768)}
    assert {sizes[n] for n in photos.hopper} == {(768, 900)}
    assert sizes[photos.group_template] == (1200, 700)


def test_sample_photos_are_the_same_every_time(tmp_path: Path) -> None:
    def digests(folder: Path) -> dict[str, str]:
        photos = sample_photos(folder)
        return {
            name: hashlib.sha256(photos.path(name).read_bytes()).hexdigest()
            for name in (*photos.astronaut, *photos.hopper, *photos.templates)
        }

    assert digests(tmp_path / "a") == digests(tmp_path / "b")


async def test_sample_photos_pass_the_emulators_check(tmp_path: Path) -> None:
    from aiportrait.emulator import Emulator

    photos = sample_photos(tmp_path)
    async with Emulator(serve_dir=photos.folder) as emu, emu.session() as session:
        report = await session.check_images([emu.media_url(n) for n in photos.astronaut])
    assert report.ok
    assert len(report.passed) == 5
