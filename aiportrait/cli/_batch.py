"""``batch FILE --out DIR``: every item of a batch file through ``train_many`` / ``create_many``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .. import (
    AnyCreateRequest,
    LocalRequest,
    Outcome,
    Portrait,
    Session,
    TrainJob,
    TrainRequest,
    TrainResult,
)
from .._batches.runner import file_stem
from .._display.batch_progress import BatchProgress, batch_progress
from .._wire.codec import converter
from ._batchfile import Plan
from ._commands import poll_policy
from ._exit import EXIT_BATCH_FAILED, EXIT_OK, UsageError, error_doc, error_text
from ._local import uploader_for
from ._output import Output, portrait_doc, portrait_text, result_doc
from ._parser import DEFAULT_JOURNAL, Args

__all__ = ["TRAININGS_DIR", "BatchRun", "cmd_batch", "outcome_doc", "outcome_text"]

TRAININGS_DIR: Final = "trainings"


@attrs.define
class _Tally:
    ok: int = 0
    failed: int = 0
    resumed: int = 0


def _value_doc(value: Any, path: Path | None) -> dict[str, Any]:
    if isinstance(value, Portrait):
        return portrait_doc(value, path)
    if isinstance(value, TrainResult):
        return result_doc(value)
    return {}


def outcome_doc(kind: str, outcome: Outcome[Any, Any]) -> dict[str, Any]:
    """The JSON line for one batch outcome."""
    doc: dict[str, Any] = {
        "type": "outcome",
        "kind": kind,
        "key": outcome.key,
        "ok": outcome.ok,
        "resumed": outcome.resumed,
    }
    if outcome.job is not None:
        doc.update(converter.unstructure(outcome.job))
    if outcome.error is not None:
        doc["error"] = error_doc(outcome.error, "batch")
    else:
        doc.update(_value_doc(outcome.value, outcome.path))
    return doc


def outcome_text(kind: str, outcome: Outcome[Any, Any], written: Path | None) -> str:
    """The text line for one batch outcome (``written``: the training's result file)."""
    resumed = " (resumed)" if outcome.resumed else ""
    if outcome.error is not None:
        return f"failed  {outcome.key}  {error_text(outcome.error, 'batch')}{resumed}"
    value = outcome.value
    if isinstance(value, Portrait):
        return f"ok      {outcome.key}  {outcome.path or ''}  {portrait_text(value)}{resumed}"
    model = value.model_id if isinstance(value, (TrainResult, TrainJob)) else ""
    where = f"  {written}" if written is not None else ""
    rejected = ""
    if isinstance(value, TrainResult) and any(not s.ok for s in value.states):
        count = sum(not s.ok for s in value.states)
        rejected = f"  ({count} of {len(value.states)} photos rejected by the service's check)"
    return f"ok      {outcome.key}  {kind} model_id {model}{where}{rejected}{resumed}"


def _save_training(out_dir: Path, outcome: Outcome[Any, Any]) -> Path | None:
    """Write a training's result to ``DIR/trainings/<key>.json``."""
    if outcome.error is not None or outcome.job is None:
        return None
    doc = {"key": outcome.key, **converter.unstructure(outcome.job)}
    doc.update(_value_doc(outcome.value, None))
    path = out_dir / TRAININGS_DIR / f"{file_stem(outcome.key)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


@attrs.define
class BatchRun:
    """One ``batch`` run: sends the plan's items and reports each outcome as it ends."""

    session: Session
    args: Args
    out: Output
    progress: BatchProgress
    tally: _Tally = attrs.Factory(_Tally)

    @property
    def journal(self) -> Path:
        """``--journal``, else ``DIR/.aiportrait-journal.sqlite``."""
        path: Path | None = self.args.journal
        return path if path is not None else self.args.out / DEFAULT_JOURNAL

    def _options(self) -> dict[str, Any]:
        return {
            "limit": self.args.limit,
            "journal": self.journal,
            "resubmit_unknown": self.args.resubmit_unknown,
            "retry_failed": self.args.retry_failed,
        }

    async def report(self, kind: str, outcome: Outcome[Any, Any]) -> None:
        """Count an outcome, save a training's result, and print the outcome's line."""
        written = None
        if kind == "train":
            written = await asyncio.to_thread(_save_training, self.args.out, outcome)
        self.tally.ok += outcome.ok
        self.tally.failed += not outcome.ok
        self.tally.resumed += outcome.resumed
        self.progress.advance(outcome.ok)
        if self.out.json:
            line = json.dumps(outcome_doc(kind, outcome), default=str)
        else:
            line = outcome_text(kind, outcome, written)
        self.progress.write(line, self.out.out)

    async def trainings(self, requests: Mapping[str, TrainRequest | LocalRequest]) -> None:
        """Train (and with no ``--no-wait``, watch) every training of the plan."""
        session = self.session.with_options(poll=poll_policy(self.args))
        outcomes = session.train_many(requests, wait=not self.args.no_wait, **self._options())
        async with outcomes:
            async for outcome in outcomes:
                await self.report("train", outcome)

    async def creations(self, requests: Mapping[str, AnyCreateRequest | LocalRequest]) -> None:
        """Create every portrait of the plan into ``DIR``."""
        outcomes = self.session.create_many(
            requests,
            out_dir=self.args.out,
            recreate_missing=self.args.recreate_missing,
            **self._options(),
        )
        async with outcomes:
            async for outcome in outcomes:
                await self.report("create", outcome)


async def cmd_batch(session: Session, args: Args, out: Output) -> int:
    """``batch``: the plan read before the Session was made; exit 5 when an item failed."""
    plan: Plan = args.plan
    uploader = uploader_for(args) if plan.local else None
    if plan.local and uploader is None:
        raise UsageError(
            f"{args.file}: local files need an uploader: set OSS_BUCKET (and the OSS_* keys) to "
            "upload them to OSS, or run against the local emulator; or give URLs"
        )
    if uploader is not None:
        session = session.with_options(uploader=uploader)
    started = time.monotonic()
    progress = batch_progress(len(plan), out.err, enabled=not args.no_progress)
    run = BatchRun(session, args, out, progress)
    out.resume = (
        f"run the same command again to resume: the journal {run.journal} remembers what is done"
    )
    try:
        trainings, creations = plan.all_trainings(), plan.all_creations()
        if trainings:
            await run.trainings(trainings)
        if creations:
            await run.creations(creations)
    finally:
        progress.close()
        if uploader is not None:
            await uploader.aclose()
    out.resume = None
    tally, seconds = run.tally, time.monotonic() - started
    summary = {"type": "summary", "total": len(plan), **attrs.asdict(tally), "seconds": seconds}
    summary.update(out=str(args.out), journal=str(run.journal))
    text = (
        f"{tally.ok} ok, {tally.failed} failed ({tally.resumed} resumed) of {len(plan)} "
        f"in {seconds:.1f}s -> {args.out}"
    )
    out.result(summary, [text])
    return EXIT_BATCH_FAILED if tally.failed else EXIT_OK
