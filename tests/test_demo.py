"""The README's main command: the demo runs the whole flow offline and writes real portraits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from aiportrait import JobState, Session
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
    assert "stand-in" in text
    assert "no diffusion" in text
    assert "5/5 usable" in text
    assert "not the same person" in text
    assert "success" in text


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


async def test_pytest_plugin_fixtures(
    aiportrait_emulator: Emulator, aiportrait_session: Session
) -> None:
    assert aiportrait_session.host == aiportrait_emulator.url
    job_id = aiportrait_emulator.add_synthetic_job(0.0, succeed=True)
    job = await aiportrait_session.get_job(job_id)
    assert job.state is JobState.SUCCESS
    assert job.app_id == aiportrait_emulator.app_id
