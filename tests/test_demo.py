"""The README's main command: the demo runs the whole flow offline and writes real portraits."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from aiportrait import JobState, Session
from aiportrait._demo import run_demo
from aiportrait.cli import main
from aiportrait.emulator import Emulator

PIL = pytest.importorskip("PIL.Image")


async def test_demo_writes_portraits_and_contact_sheet(tmp_path: Path) -> None:
    lines: list[str] = []
    result = await run_demo(tmp_path / "out", train_seconds=0.05, echo=lines.append)
    assert set(result.portraits) == {
        "astronaut_on_hopper", "hopper_on_astronaut", "group_swapped", "reference_only",
        "prompt_garden",
    }  # fmt: skip
    sizes = {}
    for name, path in result.portraits.items():
        with PIL.open(io.BytesIO(path.read_bytes())) as img:
            sizes[name] = img.size
    assert sizes["astronaut_on_hopper"] == (768, 900)
    assert sizes["group_swapped"] == (1200, 700)
    assert result.contact_sheet.exists()
    text = "\n".join(lines)
    assert "stand-in" in text
    assert "no diffusion" in text
    assert "5/5 usable" in text
    assert "not the same person" in text
    assert "success" in text


def test_cli_demo_and_help(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--train-seconds", "0.05"]) == 0
    assert (tmp_path / "contact_sheet.png").exists()
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
