"""Every ```python block of README.md runs here, against the local emulator.

The blocks are written against a few names that this module provides, as the guide says:

- ``session``: an open :class:`aiportrait.Session` bound to the emulator (fast polling);
- ``photo_urls``, ``other_photo_urls``: five photo URLs each of two people;
- ``template_url`` (one face), ``group_template_url`` (two faces), ``reference_url`` (a photo);
- ``model_id``, ``other_model_id``: models trained on those photos; ``job``: the finished
  ``TrainJob`` of ``model_id``;
- ``batch_id``: a batch id with two jobs;
- ``aiportrait`` itself, imported (the quick start imports it; later blocks go on from there).

``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID`` and ``AIPORTRAIT_TOKEN`` point at the emulator, so
``Session.from_env()`` (and ``sync.Session.from_env()``) reach it, and each block runs in a
fresh temporary working directory. A block with top-level ``await`` runs as a coroutine in the
test's event loop; any other block (``asyncio.run(main())``, the sync facade) runs in a worker
thread. A block that defines ``test_`` functions is a test module for the pytest fixtures: it runs
under pytest in a subprocess, beside a ``photos/`` folder. The emulator itself runs on a
background loop (``aiportrait.sync.emulator``) for the whole module, so every block finds it.
A block that gives one of aiportrait's warnings says so in a comment (``# ... warns
ConfigWarning``): the test asserts that warning, and any other fails it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import sync
from aiportrait.samples import sample_photos

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = aiportrait.PollPolicy(first=0.02, cap=0.1, jitter=0.0, timeout=60)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
WARNS = re.compile(r"#.*\bwarns (\w+Warning)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    language: str
    code: str
    line: int

    @property
    def warns(self) -> tuple[type[Warning], ...]:
        """The aiportrait warnings the block says it gives (``# ... warns ConfigWarning``)."""
        return tuple(getattr(aiportrait.errors, name) for name in WARNS.findall(self.code))


def blocks(language: str | None = None) -> list[Block]:
    """The README's fenced blocks, optionally only those of one language."""
    text = README.read_text()
    found = [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]
    return [b for b in found if language is None or b.language == language]


PYTHON = blocks("python")


@dataclass
class Service:
    """The emulator every block talks to, and the names the blocks use."""

    url: str
    app_id: str
    token: str
    media: Path
    names: dict[str, Any]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    media = tmp_path_factory.mktemp("media")
    files = sample_photos(media)
    options = {"train_seconds": 0.05, "serve_dir": media, "session_options": {"poll": FAST}}
    with sync.emulator(**options) as session:
        emu = session.emulator  # type: ignore[attr-defined]
        url = emu.media_url
        people = {who: [url(n) for n in getattr(files, who)] for who in ("astronaut", "hopper")}
        job = session.train(people["astronaut"])
        other = session.train(people["hopper"])
        model_id = session.wait(job).model_id
        other_model_id = session.wait(other).model_id
        batch_id = 7
        for _ in range(2):
            emu.add_synthetic_job(0.0, batch_id=batch_id)
        names = {
            "photo_urls": people["astronaut"],
            "other_photo_urls": people["hopper"],
            "template_url": url(files.templates[0]),
            "group_template_url": url(files.templates[2]),
            "reference_url": url(files.hopper[0]),
            "model_id": model_id,
            "other_model_id": other_model_id,
            "job": job,
            "batch_id": batch_id,
        }
        yield Service(emu.url, emu.app_id, emu.token, media, names)


@pytest.fixture
def env(service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "Host", "AppId", "APP_ID", "Token", "TOKEN", "AIPORTRAIT_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIPORTRAIT_HOST", service.url)
    monkeypatch.setenv("AIPORTRAIT_APP_ID", service.app_id)
    monkeypatch.setenv("AIPORTRAIT_TOKEN", service.token)
    monkeypatch.chdir(tmp_path)


def test_the_readme_has_the_blocks_this_module_runs() -> None:
    assert len(PYTHON) >= 15
    languages = {b.language for b in blocks()}
    assert languages <= {"python", "sh"}, "a block in another language would not be run"
    quick_start = PYTHON[0]
    assert "asyncio.run(main())" in quick_start.code
    commands = [b.code for b in blocks("sh")][:2]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[emulator]' "
        "&& .venv/bin/aiportrait demo\n",
        "./scripts/test\n",
    ]


def _run_fixture_example(block: Block, service: Service, tmp_path: Path) -> None:
    """Run a README test module under pytest, with the photos it names."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(service.names["photo_urls"]):
        shutil.copy(service.media / name.rsplit("/", 1)[1], photos / f"person_{i}.jpg")
    shutil.copy(service.media / "template_hopper.jpg", photos / "template.jpg")
    (tmp_path / "test_portraits.py").write_text(block.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_portraits.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("block", PYTHON, ids=[f"line{b.line}" for b in PYTHON])
async def test_readme_block_runs(block: Block, service: Service, tmp_path: Path) -> None:
    if re.search(r"^(async )?def test_", block.code, re.MULTILINE):
        await asyncio.to_thread(_run_fixture_example, block, service, tmp_path)
        return
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(block.code, f"README.md:{block.line}", "exec", flags=flags)
    async with aiportrait.Session(service.url, service.app_id, service.token, poll=FAST) as session:
        namespace: dict[str, Any] = {"__name__": "__readme__", "aiportrait": aiportrait}
        namespace["session"] = session
        namespace.update(service.names)
        saved = aiportrait.hooks.installed()
        warns = pytest.warns(block.warns) if block.warns else contextlib.nullcontext()
        try:
            with warns:
                if code.co_flags & inspect.CO_COROUTINE:
                    await eval(code, namespace)
                else:  # e.g. asyncio.run(main()), or the sync facade: not in this loop
                    await asyncio.to_thread(exec, code, namespace)
        finally:  # a block may instrument the process (aiportrait.otel): not the later tests
            otel = sys.modules.get("aiportrait.otel")
            if otel is not None:
                otel.uninstrument()
            for hook in aiportrait.hooks.installed():  # the hooks as they were, in order
                aiportrait.hooks.remove_hook(hook)
            for hook in saved:
                aiportrait.hooks.add_hook(hook)
