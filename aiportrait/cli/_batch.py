"""``batch FILE --out DIR``: every item of a batch file through ``train_many`` / ``create_many``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import click

from .. import (
    AnyCreateRequest,
    Outcome,
    PollPolicy,
    Portrait,
    Session,
    TrainJob,
    TrainRequest,
    TrainResult,
)
from .._batches.keys import file_stem
from .._display.batch_progress import BatchProgress, batch_progress
from .._files import write_atomic
from .._wire.codec import converter
from .._wire.signing import public_json
from ..batches import DEFAULT_GRACE, BatchStop
from ..errors import BatchStopped, BudgetExhausted, ConfigWarning, JobFailed, PhotoCountWarning
from ..hooks import OutagePause
from ..uploads import OSSUploader
from ._batchfile import read_plan
from ._dryrun import budget_from, budget_line, budget_options, print_dry_run
from ._exit import batch_exit
from ._options import (
    POSITIVE,
    SERVICE,
    Common,
    on_stop_signals,
    polling,
    shared,
    uploading_options,
)
from ._output import (
    PROG,
    Output,
    outcome_line,
    portrait_doc,
    portrait_text,
    result_doc,
    said_before,
    shown,
)

__all__ = ["DEFAULT_JOURNAL", "TRAININGS_DIR", "batch"]

DEFAULT_JOURNAL: Final = ".aiportrait-journal.sqlite"
TRAININGS_DIR: Final = "trainings"


@attrs.define
class _Tally:
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    resumed: int = 0
    not_submitted: int = 0
    stopped: int = 0


def _value_doc(outcome: Outcome[Any, Any], path: Path | None) -> dict[str, Any]:
    value = outcome.value
    if isinstance(value, Portrait):
        return portrait_doc(value, path)
    if isinstance(value, TrainResult):
        request = outcome.request
        inputs = request.images if isinstance(request, TrainRequest) else ()
        return result_doc(value, inputs)
    return {}


def _outcome_doc(out: Output, kind: str, outcome: Outcome[Any, Any]) -> dict[str, Any]:
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
        doc["error"] = out.error_doc(outcome.error)
    else:
        doc.update(_value_doc(outcome, outcome.path))
    return doc


def _outcome_text(out: Output, kind: str, outcome: Outcome[Any, Any], written: Path | None) -> str:
    """The text line for one batch outcome (``written``: the training's result file)."""
    resumed = " (resumed)" if outcome.resumed else ""
    if outcome.error is not None:
        return outcome_line(
            outcome.status, outcome.key, f"{out.error_text(outcome.error)}{resumed}"
        )
    value = outcome.value
    if isinstance(value, Portrait):
        detail = f"{outcome.path or ''}  {portrait_text(value)}{resumed}"
        return outcome_line("ok", outcome.key, detail)
    model = value.model_id if isinstance(value, (TrainResult, TrainJob)) else ""
    where = f"  {written}" if written is not None else ""
    rejected = ""
    if isinstance(value, TrainResult) and any(not s.ok for s in value.states):
        count = sum(not s.ok for s in value.states)
        rejected = f"  ({count} of {len(value.states)} photos rejected by the service's check)"
    return outcome_line("ok", outcome.key, f"{kind} model_id {model}{where}{rejected}{resumed}")


def _save_training(out_dir: Path, outcome: Outcome[Any, Any], shared: bool) -> Path | None:
    """Write a training's result to ``DIR/trainings/<key>.json`` (no URL's query in it;
    private unless ``shared``)."""
    if outcome.error is not None or outcome.job is None:
        return None
    doc = {"key": outcome.key, **converter.unstructure(outcome.job)}
    doc.update(_value_doc(outcome, None))
    path = out_dir / TRAININGS_DIR / f"{file_stem(outcome.key)}.json"
    text = json.dumps(public_json(doc), indent=2, default=str) + "\n"
    return write_atomic(path, text.encode(), shared=shared)


def _running(kind: str, outcome: Outcome[Any, Any]) -> bool:
    """Whether the outcome leaves a training that may still run (and read its photos)."""
    if outcome.status == "unknown":
        return True
    ended = isinstance(outcome.value, TrainResult) or isinstance(outcome.error, JobFailed)
    return kind == "train" and outcome.job is not None and not ended


@attrs.define
class _BatchRun:
    """One ``batch`` run: sends the plan's items and reports each outcome as it ends."""

    session: Session
    out: Output
    out_dir: Path
    journal: Path
    progress: BatchProgress
    options: dict[str, Any]
    grace: float
    stop: BatchStop = attrs.Factory(BatchStop)
    tally: _Tally = attrs.Factory(_Tally)
    unknown: list[Any] = attrs.Factory(list)  # the keys of the items that ended unknown
    signals: int = 0  # SIGINT and SIGTERM so far
    running: int = 0  # items that may still run on the service (and read their photos)
    budget_reached: dict[str, tuple[int, int]] = attrs.Factory(dict)  # kind: (limit, refused)

    def signalled(self) -> None:
        """SIGINT or SIGTERM: the first stops submitting, the second abandons what is in
        flight; each says so in one line."""
        keys = self.stop.in_flight
        self.signals += 1
        if self.signals == 1:
            self.stop.stop(self.grace)  # already stopped (a repeating error): changes nothing
            text = (
                f"{PROG}: stopping: nothing new is sent; {len(keys)} in flight finishing (up "
                f"to {self.grace:g}s); Ctrl-C again abandons them (abandoned ones may be "
                "charged and their results lost)"
            )
        else:
            self.stop.abandon()
            names = ", ".join(repr(key) for key in keys)
            text = f"{PROG}: abandoning {len(keys)} in flight (they may be charged): {names}"
        self.progress.write(shown(text), self.out.err)

    async def report(self, kind: str, outcome: Outcome[Any, Any]) -> None:
        """Count an outcome, save a training's result, and print the outcome's line (an item
        the budget refused, or not submitted because the batch stopped, is counted, and said
        once for all at the end)."""
        if isinstance(outcome.error, BudgetExhausted):
            limit, refused = self.budget_reached.get(kind, (outcome.error.limit, 0))
            self.budget_reached[kind] = (limit, refused + 1)
            self.tally.not_submitted += 1
            self.progress.advance(True)  # not failed (as in the summary): the budget line says it
            if self.out.json:
                self.out.line(json.dumps(_outcome_doc(self.out, kind, outcome), default=str))
            return
        written = None
        self.running += _running(kind, outcome)
        if kind == "train":
            shared = self.options.get("shared_files", False)
            written = await asyncio.to_thread(_save_training, self.out_dir, outcome, shared)
        stopped = isinstance(outcome.error, BatchStopped)
        self.tally.ok += outcome.ok
        self.tally.failed += not outcome.ok and not stopped
        self.tally.unknown += outcome.status == "unknown"
        self.tally.resumed += outcome.resumed
        self.tally.stopped += stopped
        if outcome.status == "unknown":
            self.unknown.append(outcome.key)
        self.progress.advance(outcome.ok or stopped)  # not failed: the end says how many
        if stopped and outcome.job is None and not self.out.json:
            return
        if self.out.json:
            line = json.dumps(_outcome_doc(self.out, kind, outcome), default=str)
        else:
            line = _outcome_text(self.out, kind, outcome, written)
        self.progress.write(shown(line), self.out.out)

    async def trainings(
        self, requests: Mapping[str, TrainRequest], wait: bool, poll: PollPolicy
    ) -> None:
        """Train (and with ``wait``, watch) every training of the plan."""
        session = self.session.with_options(poll=poll)
        options = {k: v for k, v in self.options.items() if k != "recreate_missing"}
        outcomes = session.train_many(
            requests, wait=wait, journal=self.journal, stop=self.stop, **options
        )
        async with outcomes:
            async for outcome in outcomes:
                await self.report("train", outcome)

    async def creations(self, requests: Mapping[str, AnyCreateRequest]) -> None:
        """Create every portrait of the plan into ``DIR``."""
        outcomes = self.session.create_many(
            requests, out_dir=self.out_dir, journal=self.journal, stop=self.stop, **self.options
        )
        async with outcomes:
            async for outcome in outcomes:
                await self.report("create", outcome)

    def stopped(self, where: Path) -> BaseException | None:
        """What stopped the batch before its end (``KeyboardInterrupt`` for a signal), said
        in a line or two; ``None`` when it ran to its end."""
        stop, out = self.stop, self.out
        if not stop.stopped:
            return None
        resume = f"run the same command again to resume: the journal {where} remembers what is done"
        left = f"{self.tally.stopped} not submitted"
        if stop.reason is None:
            out.note(f"{PROG}: stopped: {left}; {resume}")
        else:
            why = out.error_text(stop.reason)
            out.note(
                f"{PROG}: stopped on {why}: it would fail every item; {left}; fix it, then {resume}"
            )
        if self.unknown:
            names = ", ".join(repr(key) for key in self.unknown)
            out.note(
                f"{PROG}: {len(self.unknown)} may have been charged (in flight when abandoned): "
                f"{names}; --resubmit-unknown submits them again"
            )
        return KeyboardInterrupt() if stop.reason is None else stop.reason


async def _delete_uploads(
    out: Output, uploader: OSSUploader, run: _BatchRun, journal: Path
) -> None:
    """``--delete-uploads`` at the end of a batch: every photo the journal remembers (this run's
    and earlier runs'), unless an item may still be running on the service: one of this run,
    or one the journal holds in flight from an earlier run (of another file: a training
    started with ``--no-wait`` that this run did not watch)."""
    elsewhere = await asyncio.to_thread(_in_flight, journal)
    if run.stop.stopped or run.running or elsewhere:
        uploader.delete_after = False
        out.note(
            f"{PROG}: uploads kept: {run.running + elsewhere or 'some'} item(s) may still be "
            f"running; once they ended, delete them with: {PROG} uploads delete {journal}"
        )
        return
    deleted = await uploader.delete_remembered(journal)
    out.note(f"{PROG}: deleted {deleted} uploaded photo(s)")


def _in_flight(journal: Path) -> int:
    """How many items the journal holds as sent or being sent, not ended (looked at only)."""
    from .._batches.journal import Journal  # (loaded when a batch deletes, not by the CLI)

    memo = Journal(journal, lock=False)
    try:
        counts = memo.counts()
    finally:
        memo.close()
    return counts.get("submitting", 0) + counts.get("submitted", 0)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), required=True, metavar="DIR",
    help="output folder",
)  # fmt: skip
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="items in flight at once",
    show_default="the Session's capacity: 12 creations, 16 trainings",
)  # fmt: skip
@click.option(
    "--journal", type=click.Path(path_type=Path), metavar="PATH",
    help=f"default DIR/{DEFAULT_JOURNAL}",
)  # fmt: skip
@click.option(
    "--resubmit-unknown",
    is_flag=True,
    help="submit again items that were in flight when an earlier run stopped",
)
@click.option("--retry-failed", is_flag=True, help="retry items that failed before")
@click.option(
    "--recreate-missing",
    is_flag=True,
    help="create again (and pay for) finished portraits whose file is gone from DIR",
)
@click.option(
    "--per-second", type=POSITIVE, metavar="N", help="requests per second at most (polls included)"
)
@click.option("--no-wait", is_flag=True, help="trainings: stop when the service accepts them")
@click.option(
    "--grace", type=POSITIVE, default=DEFAULT_GRACE, show_default=True, metavar="SECONDS",
    help="after Ctrl-C, how long the calls in flight get to finish",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="no progress display")
@budget_options
@click.option(
    "--dry-run", is_flag=True,
    help="say what would be charged now; upload, send and charge nothing",
)  # fmt: skip
@polling
@uploading_options(wait="no_wait")
@shared(*SERVICE, "shared_files")
@click.pass_obj
def batch(
    common: Common,
    /,
    file: Path,
    out_dir: Path,
    journal: Path | None,
    per_second: float | None,
    no_wait: bool,
    no_progress: bool,
    grace: float,
    poll: PollPolicy,
    max_trainings: int | None,
    max_creations: int | None,
    dry_run: bool,
    **options: Any,
) -> int:
    """Run every request of a batch file.

    FILE: CSV or JSON Lines, one request per row (see docs/guides/cli-batch.md). Exit 5 when an item
    failed, 4 when one may or may not have run, 6 when the budget (--max-trainings,
    --max-creations) left items not submitted. With --delete-uploads, the photos uploaded,
    found or remembered by the journal are deleted at the end, unless a training may still be
    running. Ctrl-C (or SIGTERM) stops submitting and lets the calls in flight finish (exit
    130; a second Ctrl-C abandons them)."""

    async def run() -> int:
        plan = read_plan(file)  # its warnings are given now, with the file and lines
        started = time.monotonic()
        out = common.out
        budget = budget_from(max_trainings, max_creations)
        where = journal if journal is not None else out_dir / DEFAULT_JOURNAL
        if dry_run:
            return await print_dry_run(out, file, plan, where, out_dir, budget, options)
        options["budget"] = budget
        options["shared_files"] = common.shared_files
        progress = batch_progress(len(plan), out.err, enabled=not no_progress)

        def status(event: object) -> None:  # an outage pause, on the status line
            if isinstance(event, OutagePause):
                progress.paused(shown(event.reason) if event.paused else "")

        try:
            async with (
                common.session(per_second=per_second, hooks=[status]) as session,
                common.uploading(plan.local) as uploader,
            ):
                if uploader is not None:
                    session = session.with_options(uploader=uploader)
                run = _BatchRun(session, out, out_dir, where, progress, options, grace)
                on_stop_signals(run.signalled)
                out.resume = (
                    f"run the same command again to resume: the journal {where} remembers"
                    " what is done"
                )
                with said_before(ConfigWarning, PhotoCountWarning):
                    if plan.trainings():
                        await run.trainings(plan.trainings(), not no_wait, poll)
                    if plan.creations():
                        await run.creations(plan.creations())
                if uploader is not None and uploader.delete_after:
                    await _delete_uploads(out, uploader, run, where)
        finally:
            progress.close()
        out.resume = None
        tally, seconds = run.tally, time.monotonic() - started
        summary = {"type": "summary", "total": len(plan), **attrs.asdict(tally), "seconds": seconds}
        summary.update(out=str(out_dir), journal=str(where))
        stopped = f", {tally.stopped} not submitted (stopped)" if tally.stopped else ""
        text = (
            f"{tally.ok} ok, {tally.failed} failed ({tally.resumed} resumed){stopped} of "
            f"{len(plan)} in {seconds:.1f}s -> {out_dir}"
        )
        reached = [budget_line(k, *v) for k, v in run.budget_reached.items()]
        summary["budget"] = reached
        out.result(summary, [*reached, text])
        return batch_exit(tally.unknown, tally.failed, tally.not_submitted, run.stopped(where))

    return common.run("batch", run)
