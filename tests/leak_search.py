"""The leak search of issue 21: everything a run that uploads local photos leaves behind.

:func:`collect` runs the flows a user runs with local photos against the emulator (its bucket
taking the uploads): through the library (check, train, watch, wait, create, ``train_many`` and
``create_many`` with a journal, and failing ones: a failed training, an ambiguous training and
creation) and through the command line in this process (``check``, ``train``, ``watch``,
``create``, ``batch --journal --out``; each with and without ``--json``, some with ``--debug``,
and failing ones). It gathers every output line, log record and hook event, the repr, str and
pickle of each result and error (and the attributes errors carry), each error's traceback with
its frames' locals (``capture_locals=True``, what error trackers store), every file written
(journals with their ``-wal``/``-shm`` while open, ``--out`` files, portraits) and the
emulator's files, into :class:`Evidence`, which says where a needle was found and lists modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import pickle
import stat
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait.cli import main
from aiportrait.emulator import Emulator, Faults
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader

__all__ = ["SIGNATURE", "Evidence", "collect"]

#: What a usable presigned OSS URL always carries (searched case-insensitively).
SIGNATURE = b"x-oss-signature"
TOKEN = "leak-search-token-0123456789"
#: The service's charged calls (the documented paths), where the emulator's faults apply.
TRAIN_PATH = "/api/v1/aigc_images/train"
CREATE_PATH = "/api/v1/aigc_images/create"
FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)
#: The attributes of errors that carry what was sent or answered.
ERROR_ATTRIBUTES = ("raw_result", "request", "report", "message", "url", "detail")


@dataclass
class Evidence:
    """Every text and file gathered, by where it came from, and the modes of what was written."""

    places: list[tuple[str, bytes]] = field(default_factory=list)
    modes: list[tuple[str, int]] = field(default_factory=list)

    def text(self, where: str, value: str | bytes) -> None:
        data = value if isinstance(value, bytes) else value.encode("utf-8", "backslashreplace")
        self.places.append((where, data))

    def value(self, where: str, obj: object) -> None:
        """The repr, str and pickle of ``obj``."""
        self.text(f"repr({where})", repr(obj))
        self.text(f"str({where})", str(obj))
        try:
            self.text(f"pickle({where})", pickle.dumps(obj))
        except Exception as exc:  # an object that does not pickle holds nothing in a pickle
            self.text(f"pickle({where}) refused", f"{type(exc).__name__}: {exc}")

    def error(self, where: str, exc: BaseException) -> None:
        """An error: its repr, str, pickle, attributes and traceback with its frames' locals."""
        self.value(where, exc)
        for name in ERROR_ATTRIBUTES:
            if getattr(exc, name, None) is not None:
                self.value(f"{where}.{name}", getattr(exc, name))
        rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
        self.text(f"traceback with locals of {where}", "".join(rendered.format()))

    def files(self, where: str, root: Path, *, modes: bool = True) -> None:
        """Every file under ``root`` (its bytes); with ``modes``, the mode of each file and
        folder under it."""
        for path in sorted(root.rglob("*")):
            if modes:
                self.modes.append((str(path), stat.S_IMODE(path.lstat().st_mode)))
            if path.is_file():
                self.text(f"{where}: file {path}", path.read_bytes())

    def mode(self, path: Path) -> None:
        """The mode of ``path``, a folder the run made."""
        self.modes.append((str(path), stat.S_IMODE(path.stat().st_mode)))

    def found(self, needle: bytes) -> list[str]:
        """Each place holding ``needle`` (case-insensitively), with a little of its context."""
        lines = []
        for where, data in self.places:
            at = data.lower().find(needle.lower())
            if at >= 0:
                count = data.lower().count(needle.lower())
                context = data[max(0, at - 80) : at + 40]
                lines.append(f"{where} ({count}x): ...{context!r}...")
        return lines

    def wrong_modes(self) -> list[str]:
        """Each file not 0600 and folder not 0700, with its mode."""
        wrong = []
        for path, mode in self.modes:
            want = 0o700 if Path(path).is_dir() else 0o600
            if mode != want:
                wrong.append(f"{oct(mode)} {path}")
        return wrong


class _Records(logging.Handler):
    """Every log record of the process while it runs (any logger, DEBUG and up)."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(logging.DEBUG)
        self.evidence = evidence

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.getMessage()} {record.__dict__}"
        self.evidence.text(f"log record of {record.name}", text)


@contextlib.contextmanager
def _logging_to(evidence: Evidence) -> Iterator[None]:
    root = logging.getLogger()
    handler, level = _Records(evidence), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _inputs(photos: SamplePhotos, folder: Path) -> tuple[list[Path], Path]:
    """``folder/me/`` with the astronaut's five photos, ``folder/t.jpg`` (a template) and
    ``folder/blank.jpg``, a photo without a face that the service's check rejects."""
    from PIL import Image

    (folder / "me").mkdir(parents=True)
    Image.new("RGB", (800, 800), (128, 128, 128)).save(folder / "blank.jpg")
    paths = []
    for name in photos.astronaut:
        path = folder / "me" / name
        path.write_bytes(photos.path(name).read_bytes())
        paths.append(path)
    template = folder / "t.jpg"
    template.write_bytes(photos.path(photos.hopper_template).read_bytes())
    return paths, template


async def _outcomes(
    evidence: Evidence, where: str, outcomes: aiportrait.Outcomes[Any, Any], folder: Path
) -> list[aiportrait.Outcome[Any, Any]]:
    """Each outcome's repr, str and pickle (and its error's); the journal's folder while the
    batch still holds it open (``-wal``, ``-shm``, lock)."""
    ended = []
    async with outcomes:
        async for outcome in outcomes:
            evidence.value(f"{where} Outcome {outcome.key}", outcome)
            if outcome.error is not None:
                evidence.error(f"{where} Outcome {outcome.key}.error", outcome.error)
            ended.append(outcome)
        evidence.files(f"{where}, journal open", folder, modes=False)
    return ended


async def _library(
    emu: Emulator, evidence: Evidence, paths: list[Path], template: Path, lib: Path
) -> None:
    """The library's flows; what they write goes under ``lib`` (made by the caller)."""
    blank = template.parent / "blank.jpg"
    events: list[object] = []
    async with OSSUploader.for_emulator(emu, journal=lib / "uploads.sqlite") as uploader:
        async with emu.session(uploader=uploader, poll=FAST, hooks=[events.append]) as session:
            report = await session.check_images(paths)
            evidence.value("library CheckReport", report)
            for i, check in enumerate(report.results):
                evidence.value(f"library ImageCheck {i}", check)
            job = await session.train(paths)
            evidence.value("library TrainJob", job)
            async for update in session.watch(job):
                evidence.value("library JobUpdate", update)
            result = await session.wait(job)
            evidence.value("library TrainResult", result)
            evidence.text("library TrainResult.to_dict()", json.dumps(result.to_dict()))
            portrait = await session.create(result.model_id, template)
            evidence.value("library Portrait", portrait)
            forced = await session.wait(await session.train([*paths, blank], force=True))
            assert not forced.states[-1].ok  # the service rejected the blank photo
            evidence.value("library TrainResult with a rejected photo", forced)
            evidence.files("library, uploader's journal open", lib, modes=False)

            journal = lib / "batch" / "journal.sqlite"  # the folder made by the journal
            trained = session.train_many({"alice": paths}, journal=journal)
            await _outcomes(evidence, "library train_many", trained, journal.parent)
            items = {"solo": aiportrait.CreateRequest(result.model_id, template)}
            portraits = lib / "batch" / "portraits"
            created = session.create_many(items, journal=journal, out_dir=portraits)
            await _outcomes(evidence, "library create_many", created, journal.parent)

            await _library_failures(emu, evidence, session, paths, template, result.model_id)
            unknown = session.create_many(
                {"unknown": aiportrait.CreateRequest(result.model_id, template)},
                journal=journal,
                out_dir=portraits,
            )
            emu.faults = Faults(drop_after=1.0, paths=frozenset({CREATE_PATH}))
            try:
                await _outcomes(evidence, "library create_many (unknown)", unknown, journal.parent)
            finally:
                emu.faults = Faults()
    for i, event in enumerate(events):
        evidence.value(f"library hook event {i} {type(event).__name__}", event)
    evidence.files("library", lib)


async def _library_failures(
    emu: Emulator,
    evidence: Evidence,
    session: aiportrait.Session,
    paths: list[Path],
    template: Path,
    model_id: str,
) -> None:
    """A failed training (``JobFailed``), an ambiguous training and creation
    (``SubmitOutcomeUnknown``)."""
    emu.faults = Faults(job_failure=1.0)
    try:
        with pytest.raises(aiportrait.errors.JobFailed) as failed:
            await session.wait(await session.train(paths))
        evidence.error("library JobFailed", failed.value)
        emu.faults = Faults(drop_after=1.0, paths=frozenset({TRAIN_PATH, CREATE_PATH}))
        with pytest.raises(aiportrait.errors.SubmitOutcomeUnknown) as unknown:
            await session.train(paths)
        evidence.error("library train SubmitOutcomeUnknown", unknown.value)
        with pytest.raises(aiportrait.errors.SubmitOutcomeUnknown) as unknown:
            await session.create(model_id, template)
        evidence.error("library create SubmitOutcomeUnknown", unknown.value)
    finally:
        emu.faults = Faults()


def _command(evidence: Evidence, emu: Emulator, *args: str) -> str:
    """Run ``aiportrait ARGS`` in this process; keep its stdout and stderr; return stdout."""
    out, err = io.StringIO(), io.StringIO()
    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, *creds])
    where = f"aiportrait {' '.join(args)} (exit {code})"
    evidence.text(f"stdout of {where}", out.getvalue())
    evidence.text(f"stderr of {where}", err.getvalue())
    return out.getvalue()


def _last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


async def _cli(
    emu: Emulator, evidence: Evidence, paths: list[Path], template: Path, out: Path
) -> None:
    """The commands' flows; what they write goes under ``out`` (made by the commands)."""
    folder = template.parent
    files = [str(p) for p in paths]
    glob = f"{paths[0].parent}/*.jpg"
    poll = ("--poll", "0.05")

    async def command(*args: str) -> str:
        return await asyncio.to_thread(_command, evidence, emu, *args)

    model_id = ""
    for extra in ((), ("--json",), ("--debug",)):
        await command("check", *files, *extra)
        trained = await command("train", glob, "--wait", *poll, *extra)
        if extra == ("--json",):
            model_id = _last_json(trained)["model_id"]
    forced = ""
    for extra in ((), ("--json",)):  # the service rejects one photo: its FAIL line
        forced = await command(
            "train", glob, str(folder / "blank.jpg"), "--force", "--wait", *poll, *extra
        )
    await command("train", glob, "--json")  # not waited for
    job_id = _last_json(forced)["job_id"]  # watched: its states hold a rejected photo
    for extra in ((), ("--json",)):
        await command("watch", str(job_id), *poll, *extra)
    await command("create", "--model", model_id, "--template", str(template), "--out", f"{out}/p1")
    await command(
        "create", "--model", model_id, "--template", str(template), "--out", f"{out}/p2", "--json"
    )
    items = folder / "items.jsonl"
    rows = [
        {"kind": "train", "key": "me", "images": "me/*.jpg"},
        {"kind": "solo", "key": "me-office", "model_id": model_id, "template": "t.jpg"},
    ]
    items.write_text("".join(json.dumps(row) + "\n" for row in rows))
    journal = f"{out}/journal/batch.sqlite"
    for extra in ((), ("--json",)):  # the second run resumes from the journal
        await command(
            "batch", str(items), "--out", f"{out}/batch", "--journal", journal, *poll, *extra
        )
    await command("batch", str(items), "--out", f"{out}/batch-json", *poll, "--json")

    emu.faults = Faults(job_failure=1.0)
    try:
        for extra in ((), ("--json",)):
            await command("train", glob, "--wait", *poll, *extra)
        await command("batch", str(items), "--out", f"{out}/batch-failed", *poll, "--json")
        emu.faults = Faults(drop_after=1.0, paths=frozenset({TRAIN_PATH, CREATE_PATH}))
        for extra in ((), ("--json",)):
            await command("train", glob, *extra)
            p = f"{out}/unknown{len(extra)}"
            await command("create", "--model", model_id, "--template", str(template), "--out", p)
        await command("batch", str(items), "--out", f"{out}/batch-unknown", *poll, "--json")
    finally:
        emu.faults = Faults()
    evidence.mode(out)
    evidence.files("aiportrait commands", out)


async def collect(photos: SamplePhotos, root: Path) -> Evidence:
    """Run every flow with local photos in ``root`` (inputs in ``root/in``) against an emulator
    keeping its data in ``root/emulator``; everything they left behind."""
    evidence = Evidence()
    paths, template = _inputs(photos, root / "in")
    with pytest.MonkeyPatch.context() as patch, _logging_to(evidence):
        for name in [n for n in os.environ if n.startswith(("OSS_", "AIPORTRAIT_"))]:
            patch.delenv(name)
        async with _emulator(root / "emulator") as emu:
            (root / "out-library").mkdir()
            await _library(emu, evidence, paths, template, root / "out-library")
            await _cli(emu, evidence, paths, template, root / "out-cli")
            await emu.drain()  # the trainings no one waited for write their files
    evidence.mode(root / "emulator")
    evidence.files("the emulator's data", root / "emulator")
    evidence.files("inputs", root / "in", modes=False)
    return evidence


@contextlib.asynccontextmanager
async def _emulator(data_dir: Path) -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN, train_seconds=0.05, data_dir=data_dir) as emu:
        yield emu
