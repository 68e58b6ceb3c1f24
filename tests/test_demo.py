"""The README's main command: the demo runs the whole flow offline and writes real portraits."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from aiportrait import JobState, Session, cli
from aiportrait.cli import main
from aiportrait.emulator import Emulator

PIL = pytest.importorskip("PIL.Image")


def test_cli_demo_writes_portraits_and_contact_sheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path), "--train-seconds", "0.05"]) == 0
    text = capsys.readouterr().out
    sizes = {}
    for name in ("astronaut_on_hopper", "hopper_on_astronaut", "group_swapped",
                 "reference_only", "prompt_garden"):  # fmt: skip
        (path,) = tmp_path.glob(name + ".*")
        with PIL.open(io.BytesIO(path.read_bytes())) as img:
            sizes[name] = img.size
    assert sizes["astronaut_on_hopper"] == (768, 900)
    assert sizes["hopper_on_astronaut"] == (768, 768)
    assert sizes["group_swapped"] == (1200, 700)
    assert (tmp_path / "contact_sheet.png").exists()
    _assert_every_tile_has_a_caption(tmp_path / "contact_sheet.png", [2, 3, 5])
    # The portrait from one reference photo is visibly not the trained one (same person, same
    # template): they differed by 0.14 on average before reference-only got its own look.
    assert _mean_difference(tmp_path, "hopper_on_astronaut", "reference_only") > 1.5
    assert "stand-in" in text
    assert "no diffusion" in text
    assert "5/5 usable" in text
    assert "not the same person" in text
    assert "success" in text


def _mean_difference(folder: Path, first: str, second: str) -> float:
    import numpy as np

    (a,), (b,) = folder.glob(first + ".*"), folder.glob(second + ".*")
    with PIL.open(a) as one, PIL.open(b) as other:
        return float(np.abs(np.asarray(one, int) - np.asarray(other, int)).mean())


def _assert_every_tile_has_a_caption(sheet_path: Path, row_lengths: list[int]) -> None:
    import numpy as np

    from aiportrait._demo import CAPTION_HEIGHT, _tile_box

    with PIL.open(sheet_path) as img:
        sheet = np.asarray(img.convert("L"))
    for row, length in enumerate(row_lengths):
        for column in range(length + 1):
            left, _, right, bottom = _tile_box(row, column)
            band = sheet[bottom : bottom + CAPTION_HEIGHT, left:right]
            if column == length:  # past the row's last tile: nothing drawn
                assert band.size == 0 or (band > 230).all(), (row, column)
            else:
                assert (band < 100).sum() > 50, (row, column)  # dark caption text


def test_contact_sheet_captions_each_tile(tmp_path: Path) -> None:
    from aiportrait._demo import _contact_sheet

    blank = io.BytesIO()
    PIL.new("RGB", (300, 200), "white").save(blank, "PNG")
    rows = [("row", [("first\ntile", blank.getvalue()), ("second", blank.getvalue())])]
    _assert_every_tile_has_a_caption(_contact_sheet(rows, tmp_path / "sheet.png"), [2])


def test_demo_subcommand_delegates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the demo itself runs above; here only the wiring of the options is checked
    seen: dict[str, Any] = {}

    async def fake_demo(out_dir: str, *, train_seconds: float) -> None:
        seen.update(out_dir=out_dir, train_seconds=train_seconds)

    monkeypatch.setattr("aiportrait._demo.run_demo", fake_demo)
    assert main(["demo", "--out", str(tmp_path), "--train-seconds", "0.5"]) == cli.EXIT_OK
    assert seen == {"out_dir": tmp_path, "train_seconds": 0.5}


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out


async def test_pytest_plugin_fixtures(
    aiportrait_emulator: Emulator, aiportrait_session: Session
) -> None:
    assert aiportrait_session.host == aiportrait_emulator.url
    job_id = aiportrait_emulator.add_synthetic_job(0.0, succeed=True)
    job = await aiportrait_session.get_job(job_id)
    assert job.state is JobState.SUCCESS
    assert job.app_id == aiportrait_emulator.app_id
