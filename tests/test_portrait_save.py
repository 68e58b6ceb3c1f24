"""Portrait.save: the file is private (0600, a new folder 0700) unless shared=True (then the
umask decides), and the write is durable (file and folder)."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiportrait import Portrait

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_shared_portraits_follow_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    os.umask(mask)
    path = Portrait.from_bytes(PNG).save(tmp_path / "p", shared=True)
    assert path == tmp_path / "p.png"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes() == PNG
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000])
def test_saved_portraits_and_new_folders_are_private_whatever_the_umask(
    tmp_path: Path, mask: int
) -> None:
    os.umask(mask)
    path = Portrait.from_bytes(PNG).save(tmp_path / "new" / "deeper" / "p")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "deeper").stat().st_mode) == 0o700
    assert path.read_bytes() == PNG


def test_saving_flushes_the_file_and_then_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[bool, int, bool]] = []  # (a folder?, inode, was the target there?)
    target = tmp_path / "out" / "p.png"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((stat.S_ISDIR(info.st_mode), info.st_ino, target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = Portrait.from_bytes(PNG).save(target)
    folder = path.parent.stat().st_ino
    assert synced == [(False, path.stat().st_ino, False), (True, folder, True)]


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        Portrait.from_bytes(PNG).save(tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []
