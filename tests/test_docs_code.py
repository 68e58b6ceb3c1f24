"""Every code block of README.md and of the documentation (docs/**/*.md) is checked here.

```python blocks run against the local emulator. They are written against a few names that this
module provides, as the guides say:

- ``session``: an open :class:`aiportrait.Session` bound to the emulator (fast polling);
- ``photo_urls``, ``other_photo_urls``: five photo URLs each of two people;
- ``template_url`` (one face), ``group_template_url`` (two faces), ``reference_url`` (a photo);
- ``model_id``, ``other_model_id``: models trained on those photos; ``job``: the finished
  ``TrainJob`` of ``model_id``;
- ``batch_id``: a batch id with two jobs;
- ``aiportrait`` itself, imported (the quick start imports it; later blocks go on from there).

A block that needs any other name defines it itself. ``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID``
and ``AIPORTRAIT_TOKEN`` point at the emulator, so ``Session.from_env()`` (and
``sync.Session.from_env()``) reach it, and each block runs in a fresh temporary working
directory and a fresh namespace. A block with top-level ``await`` runs as a coroutine in the
test's event loop; any other block (``asyncio.run(main())``, the sync facade) runs in a worker
thread. A block that defines ``test_`` functions is a test module for the pytest fixtures: it runs
under pytest in a subprocess, beside a ``photos/`` folder. The emulator itself runs on a
background loop (``aiportrait.sync.emulator``) for the whole module, so every block finds it.
A block that gives one of aiportrait's warnings says so in a comment (``# ... warns
ConfigWarning``): the test asserts that warning, and any other fails it. A block that truly
cannot run here (the real service, a Temporal server) starts with ``# not run: <reason>``: it is
only compiled.

In ```sh and ```console blocks, every line that starts with ``aiportrait `` (after an optional
``$ ``) is parsed by the command line's own click tree, as the command would parse it, and not
run: a wrong command, flag or value fails. ```json blocks parse as JSON (one document, or one per
line). ```text (output), ```toml, ```yaml, ```ini, ```http, ```csv and bare blocks are not run;
any other language fails, since nothing would check it. The API and CLI reference pages
(docs/reference/) are generated, and are checked by their own tests.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

import aiportrait
import aiportrait.cli
from aiportrait import sync
from aiportrait.samples import sample_photos

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GENERATED = ROOT / "docs" / "reference"
PAGES = [README, *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.parent != GENERATED)]
FAST = aiportrait.PollPolicy(first=0.02, cap=0.1, jitter=0.0, timeout=60)
# a fence at any indentation (in a list, an admonition), with optional attributes after the
# language (```python title="..."), closed at the same indentation
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<language>\w*)[^\n`]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
WARNS = re.compile(r"#.*\bwarns (\w+Warning)\b")
NOT_RUN = re.compile(r"\A# not run: \S")
COMMAND = re.compile(r"^(?:\$ )?(aiportrait .*)$", re.MULTILINE)
NOT_CHECKED = {"text", "toml", "yaml", "ini", "http", "csv", ""}
SHELL = {"sh", "console"}
LANGUAGES = {"python", "json"} | SHELL | NOT_CHECKED


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    language: str
    code: str
    line: int

    @property
    def id(self) -> str:
        """The page and line of the block: the test's id."""
        return f"{self.page}:{self.line}"

    @property
    def warns(self) -> tuple[type[Warning], ...]:
        """The aiportrait warnings the block says it gives (``# ... warns ConfigWarning``)."""
        return tuple(getattr(aiportrait.errors, name) for name in WARNS.findall(self.code))


def blocks(page: Path, language: str | None = None) -> list[Block]:
    """The page's fenced blocks, optionally only those of one language."""
    text = page.read_text()
    found = [
        Block(
            str(page.relative_to(ROOT)),
            m.group("language"),
            textwrap.dedent(m.group("code")),
            text.count("\n", 0, m.start()) + 1,
        )
        for m in FENCE.finditer(text)
    ]
    return [b for b in found if language is None or b.language == language]


ALL = [b for page in PAGES for b in blocks(page)]
PYTHON = [b for b in ALL if b.language == "python"]
COMMANDS = [b for b in ALL if b.language in SHELL and COMMAND.search(b.code)]
JSON = [b for b in ALL if b.language == "json"]


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
    readme = blocks(README, "python")
    quick_start = readme[0]
    assert "asyncio.run(main())" in quick_start.code
    commands = [b.code for b in blocks(README, "sh")][:2]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[emulator]' "
        "&& .venv/bin/aiportrait demo\n",
        "./scripts/test\n",
    ]


def test_the_docs_have_the_blocks_this_module_checks() -> None:
    assert len(PYTHON) >= 15
    unknown = [f"{b.id} ```{b.language}" for b in ALL if b.language not in LANGUAGES]
    assert not unknown, f"blocks in a language nothing checks: {unknown}"
    unread = [str(p.relative_to(ROOT)) for p in PAGES if p.read_text().count("```") % 2]
    assert not unread, f"a fence this module does not read (~~~, 4 backticks?): {unread}"


def _run_fixture_example(block: Block, service: Service, tmp_path: Path) -> None:
    """Run a test module of the docs under pytest, with the photos it names."""
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
    tests = len(re.findall(r"^(?:async )?def test_", block.code, re.MULTILINE))
    assert f"{tests} passed" in run.stdout


@pytest.mark.usefixtures("env")
@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
async def test_python_block_runs(block: Block, service: Service, tmp_path: Path) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(block.code, block.id, "exec", flags=flags)
    if NOT_RUN.match(block.code):
        return  # compiled: its syntax is right; what it needs is not here
    if re.search(r"^(async )?def test_", block.code, re.MULTILINE):
        await asyncio.to_thread(_run_fixture_example, block, service, tmp_path)
        return
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


def _words(line: str) -> list[str]:
    """A shell line's words up to its first operator (``|``, ``&&``, ``;``, ``>`` ...),
    without its comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for word in lexer:
        if word and all(c in lexer.punctuation_chars for c in word):
            break
        words.append(word)
    return words


@pytest.mark.parametrize("block", COMMANDS, ids=[b.id for b in COMMANDS])
def test_command_lines_parse(block: Block) -> None:
    code = block.code.replace("\\\n", " ")  # continued lines are one command
    for line in COMMAND.findall(code):
        words = _words(line)
        assert words[0] == "aiportrait", line
        try:
            aiportrait.cli.parse(words[1:])
        except click.UsageError as exc:
            pytest.fail(f"{block.id}: {line!r}: {exc.format_message()}")


@pytest.mark.parametrize("block", JSON, ids=[b.id for b in JSON])
def test_json_block_parses(block: Block) -> None:
    try:
        json.loads(block.code)
    except json.JSONDecodeError:  # else JSON Lines: one document per line
        for line in filter(str.strip, block.code.splitlines()):
            json.loads(line)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("temporal worker --concurrency x", "is not a valid integer"),
        ("check --no-such-flag URL", "No such option"),
        ("no-such-command", "No such command"),
        ("watch", "Missing argument"),
        ("temporal", "Usage:"),  # a group without its command
    ],
)
def test_a_wrong_command_line_does_not_parse(line: str, error: str) -> None:
    with pytest.raises(click.UsageError) as raised:
        aiportrait.cli.parse(line.split())
    assert error in raised.value.format_message()


def test_a_command_line_parses_without_running() -> None:
    parse = aiportrait.cli.parse
    assert parse(["--host", "http://127.0.0.1:9", "temporal", "worker", "--help"]) == (
        "aiportrait temporal worker"
    )
    assert parse(["watch", "12", "--json", "--deadline", "600"]) == "aiportrait watch"
