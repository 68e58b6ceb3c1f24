"""The ``aiportrait`` command with local files and globs, against the local emulator: files are
checked on this machine, then uploaded to the emulator's bucket before any charged call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiportrait import cli
from aiportrait.cli import main
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("alibabacloud_oss_v2")

TOKEN = "cli-local-token-0123456789"


@pytest.fixture
def photos(sample_media: SamplePhotos) -> SamplePhotos:
    """The sample photos, written once per test session (conftest)."""
    return sample_media


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def me(photos: SamplePhotos, tmp_path: Path) -> Path:
    """A folder ``me`` with the astronaut's five photos."""
    folder = tmp_path / "me"
    folder.mkdir()
    for name in photos.astronaut:
        (folder / name).write_bytes(photos.path(name).read_bytes())
    return folder


async def run(emu: Emulator, *args: str, host: str | None = None) -> int:
    creds = ["--host", host or emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return await asyncio.to_thread(main, [*args, *creds])


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(folder.glob(pattern))


def one_json(text: str) -> Any:
    (line,) = text.strip().splitlines()
    return json.loads(line)


async def test_train_a_glob_wait_then_create_with_a_local_template(
    emu: Emulator,
    me: Path,
    photos: SamplePhotos,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await run(emu, "train", f"{me}/*.jpg", "--wait", "--poll", "0.05", "--json")
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    doc = one_json(captured.out)
    assert doc["state"] == "SUCCESS"
    assert emu.bucket.puts == 5
    assert emu.counters.trainings == 1

    template = tmp_path / "t.jpg"
    template.write_bytes(photos.path(photos.hopper_template).read_bytes())
    out = tmp_path / "portrait"
    code = await run(
        emu, "create", "--model", doc["model_id"], "--template", str(template), "--out", str(out)
    )
    captured = capsys.readouterr()
    assert code == cli.EXIT_OK, captured.err
    assert "wrote" in captured.out
    assert _files(tmp_path, "portrait.*")
    assert emu.bucket.puts == 6
    assert emu.counters.creations == 1


async def test_check_local_files_offline_and_uploaded(
    emu: Emulator, me: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(emu, "check", "--local", f"{me}/*.jpg") == cli.EXIT_OK
    assert "5/5 photos usable" in capsys.readouterr().out
    assert emu.counters.requests == 0
    two = [str(p) for p in _files(me)[:2]]
    assert await run(emu, "check", *two) == cli.EXIT_OK
    # each photo by its path, not by the signed URL it was uploaded to
    assert capsys.readouterr().out.splitlines() == [
        f"ok    {two[0]}  SUCCESS",
        f"ok    {two[1]}  SUCCESS",
        "2/2 photos usable",
    ]
    assert emu.bucket.puts == 2
    assert await run(emu, "check", *two, "--json") == cli.EXIT_OK
    doc = one_json(capsys.readouterr().out)
    assert doc["passed"] == two
    assert [r["path"] for r in doc["results"]] == two  # the url is query-less: no signature
    assert all(r["url"].startswith(emu.url) and "?" not in r["url"] for r in doc["results"])


async def test_two_good_three_bad_exit_2_listing_each_unless_forced(
    emu: Emulator, me: Path, photos: SamplePhotos, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in _files(me)[2:]:
        extra.unlink()
    Image.new("RGB", (800, 800), (128, 128, 128)).save(me / "blank.jpg")
    Image.open(photos.path(photos.astronaut[0])).resize((300, 300)).save(me / "small.jpg")
    (me / "group.jpg").write_bytes(photos.path(photos.group_template).read_bytes())
    assert await run(emu, "train", f"{me}/*.jpg") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "PreflightFailed" in err
    for name in ("blank.jpg", "small.jpg", "group.jpg"):
        assert name in err
    assert emu.counters.trainings == 0
    assert emu.bucket.puts == 0
    assert await run(emu, "train", f"{me}/*.jpg", "--force") == cli.EXIT_OK
    assert emu.counters.trainings == 1


@pytest.mark.parametrize("case", ["no-match", "directory", "text", "huge"])
async def test_bad_local_inputs_exit_2_before_any_call(
    emu: Emulator, me: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {
        "no-match": [f"{tmp_path}/nothing/*.jpg"],
        "directory": [str(me)],
        "text": [str(tmp_path / "notes.jpg")],
        "huge": [str(tmp_path / "big.heic")],
    }[case]
    (tmp_path / "notes.jpg").write_text("hello")
    with (tmp_path / "big.heic").open("wb") as f:
        f.write(b"\0\0\0\x18ftypheic")
        f.truncate(40 * 1024 * 1024)
    assert await run(emu, "train", *args) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert emu.counters.requests == 0
    assert emu.bucket.puts == 0


async def test_a_local_file_without_an_uploader_exits_2(
    emu: Emulator, me: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OSS_BUCKET", raising=False)
    code = await run(emu, "check", str(_files(me)[0]), host="https://portrait.invalid")
    assert code == cli.EXIT_USAGE
    assert "uploader" in capsys.readouterr().err
