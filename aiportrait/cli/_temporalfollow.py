"""Following a training or a batch workflow (``temporal train``, ``batch`` and ``attach``): the
notes while it runs, the outcome lines and documents (as ``batch`` prints them), the summary and
the exit code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs

from .._display.batch_progress import paused_words
from ..errors import ConnectError
from ._dryrun import budget_line
from ._exit import EXIT_OK, batch_exit
from ._options import on_stop_signals
from ._output import PROG, Output, outcome_line

__all__ = ["FollowerStop", "existing", "follow_batch_lines", "follow_train", "stoppable"]


@attrs.define(eq=False)
class FollowerStop:
    """Ctrl-C and SIGTERM in ``temporal batch`` and ``attach``.

    Before the batch's workflow is started, the first ends the command (nothing is started:
    exit 130). Once it is, the first tells the workflow to stop (:func:`stop_batch`: no new
    item starts; those in flight finish on the workers and are saved) and says so in one line;
    the follower then shows the rest and the summary. The second leaves the follower: the
    workers still finish and save what is in flight, so nothing paid is lost (``attach``
    shows it)."""

    out: Output
    main: asyncio.Task[Any]
    handle: Any = None
    again: str = ""  # the command that follows the batch again
    starting: bool = False  # a start (or resume) is on its way: a stop waits for its handle
    signals: int = 0
    _asking: set[asyncio.Task[None]] = attrs.field(factory=set)

    def signalled(self) -> None:
        self.signals += 1
        if self.signals == 1 and self.handle is not None:
            self._ask()
        elif self.signals > 1 or not self.starting:
            if self.handle is not None:
                self.out.note(
                    f"{PROG}: leaving the follower: the workers still finish what is in flight "
                    f"and save it (nothing paid is lost); follow it again with: {self.again}"
                )
            self.main.cancel()

    def following(self, handle: Any, again: str) -> None:
        """The batch's workflow runs: a signal that came while it started stops it now."""
        self.handle, self.again, self.starting = handle, again, False
        if self.signals:
            self._ask()

    async def settled(self, handle: Any, again: str) -> bool:
        """``--no-follow``: the batch's workflow runs and the command returns; a signal that
        came while it started (or resumed) stops it now. Whether one came."""
        self.handle, self.again, self.starting = handle, again, False
        if self.signals:
            await self._stop(following=False)
        return bool(self.signals)

    def _ask(self) -> None:
        task = asyncio.ensure_future(self._stop())
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _stop(self, following: bool = True) -> None:
        from ..temporal import stop_batch

        try:
            progress = await stop_batch(self.handle)
        except Exception as exc:
            self.out.note(f"{PROG}: could not tell the batch to stop: {self.out.words(exc)}")
            return
        finishing = (
            "the items in flight finish"
            if progress is None
            else (f"{progress.in_flight} in flight finishing")
        )  # (None: no worker answered how many; the workflow was told all the same)
        then = (
            "Ctrl-C again leaves this follower (the workers still finish and save them: they "
            "are charged either way, and nothing is lost)"
            if following
            else f"run the same command again to resume; follow it with: {self.again}"
        )
        self.out.note(
            f"{PROG}: stopping: no new item is started; {finishing} on the workers, and they "
            f"will be saved; {then}"
        )


async def stoppable(work: Callable[[FollowerStop], Awaitable[int]], out: Output) -> int:
    """``work(stop)`` with Ctrl-C and SIGTERM handled by ``stop``: a signal that ends the
    command raises ``KeyboardInterrupt`` (exit 130)."""
    main = asyncio.current_task()
    assert main is not None
    stop = FollowerStop(out, main)
    on_stop_signals(stop.signalled)
    try:
        return await work(stop)
    except asyncio.CancelledError:
        if not stop.signals:
            raise
        raise KeyboardInterrupt from None


async def follow_train(handle: Any, out: Output, reconnect: float, address: str, again: str) -> int:
    """Follow a training: its stages as notes, then its model; its exit code. Temporal at
    ``address`` not answering for ``reconnect`` seconds: as :func:`follow_batch_lines`."""
    from ..temporal import Following, TrainWorkflow, error_of

    seen = None
    following = Following(handle, reconnect=reconnect, on_wait=_noter(out))
    try:
        with _reattach("training", address, reconnect, again):
            async for _ in following.ticks():
                try:
                    p = await handle.query(TrainWorkflow.progress)
                except Exception as exc:  # no worker answers now; the next tick asks again
                    following.tell(f"no answer to the progress query (a worker answers it): {exc}")
                    continue
                following.answered()
                if (p.stage, p.state, p.job) != seen:
                    seen = (p.stage, p.state, p.job)
                    job = f" job {p.job.job_id}" if p.job else ""
                    left = p.expected_remaining
                    about = f", about {left:.0f}s left" if left is not None else ""
                    out.note(f"{p.stage}{job} {p.state} {p.elapsed:.1f}s{about}".rstrip())
        try:
            trained = following.result()
        except Exception as exc:
            raise error_of(exc) from exc
    finally:
        following.close()
    line = f"model {trained.model_id} (the service's training time {trained.cost_time:.1f}s)"
    doc = {"id": handle.id, "model_id": trained.model_id, "cost_time": trained.cost_time}
    out.result(doc, [line])
    return EXIT_OK


def _noter(out: Output) -> Callable[[str], None]:
    """What a follower says while it waits: a note (escaped, one line)."""

    def waiting(why: str) -> None:
        out.note(out.words(why)[:300])

    return waiting


@contextlib.contextmanager
def _reattach(what: str, address: str, reconnect: float, again: str) -> Iterator[None]:
    """Temporal at ``address`` not answering for ``reconnect`` seconds, as a
    :class:`ConnectError` (exit 3) that says the command which follows the ``what`` again."""
    from ..temporal import unreachable

    try:
        yield
    except Exception as exc:
        if not unreachable(exc):
            raise
        raise ConnectError(
            f"Temporal at {address} did not answer for {reconnect:.0f}s ({exc}); the {what} "
            f"goes on without this follower: follow it again with: {again}",
            sent=False,
        ) from None


def _outcome(out: Output, outcome: Any) -> tuple[dict[str, Any], str]:
    """A batch item's outcome: its JSON document and its line (as ``batch`` prints it)."""
    doc: dict[str, Any] = {"type": "outcome", "kind": outcome.kind, "key": outcome.key}
    doc.update(ok=outcome.status == "succeeded", status=outcome.status)
    if outcome.error is not None:
        error = outcome.error.exception()
        doc["error"] = out.error_doc(error)
        word = "unknown" if outcome.status == "unknown" else "failed"
        return doc, outcome_line(word, outcome.key, out.error_text(error))
    if outcome.portrait is not None:
        p = outcome.portrait
        doc.update(uri=p.uri, format=p.format, cost_time=p.cost_time, request_id=p.request_id)
        detail = f"{p.uri}  {p.format}, {p.cost_time:.2f}s, request_id={p.request_id}"
        return doc, outcome_line("ok", outcome.key, detail)
    model = outcome.result.model_id if outcome.result is not None else ""
    doc["model_id"] = model
    return doc, outcome_line("ok", outcome.key, f"{outcome.kind} model_id {model}")


async def follow_batch_lines(
    handle: Any,
    store: Any,
    out: Output,
    reconnect: float,
    address: str,
    again: str,
    stop: FollowerStop,
    resume: str,
) -> int:
    """Follow a batch: a line (or document) per outcome, then the summary; its exit code.

    Temporal at ``address`` not answering for ``reconnect`` seconds is a :class:`ConnectError`
    (exit 3) that says the command which follows it ``again``. A batch that stopped (``stop``,
    or its budget) ends the follow once what was in flight is recorded: its summary says how
    many were not submitted, and ``resume`` how to go on (exit 130 for a stop, 6 for the
    budget, as ``batch``)."""
    from ..temporal import batch_summary, follow_batch

    stop.following(handle, again)

    def pausing(why: str) -> None:  # one line when the batch pauses, one when it goes on
        out.note(paused_words(out.words(why)[:300]) if why else "resumed: the service answers")

    counts: dict[str, int] = {}  # by status, as shown: a portrait in the store wins
    with _reattach("batch", address, reconnect, again):
        found = follow_batch(
            handle, store, on_wait=_noter(out), reconnect=reconnect, on_pause=pausing
        )
        async for outcome in found:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            doc, line = _outcome(out, outcome)
            out.result(doc, [line])
        summary = await batch_summary(handle)
    told = [f"{n} {k}" for k, n in sorted(counts.items())]
    left = summary.not_submitted
    doc = {"type": "summary", "id": handle.id, "total": summary.total, **counts}
    reached = []  # the budget line says "run again": only for a batch that waits for it
    if summary.waiting and summary.stopped in ("train", "create"):
        reached.append(budget_line(summary.stopped, summary.budget, left))
    if left:
        told.append(f"{left} not submitted (stopped)")
        doc.update(not_submitted=left, stopped=summary.stopped, budget=reached)
    text = f"batch {handle.id}: {summary.total} items: {', '.join(told) or 'none ended'}"
    out.result(doc, [*reached, text])
    stopped = KeyboardInterrupt() if stop.signals or summary.stopped == "request" else None
    if left and not summary.waiting:  # it waited for a resume long enough, and ended
        resume = "the batch ended without a resume: run them as a new batch of those items"
    if left and not reached:
        out.note(f"{PROG}: stopped: {left} not submitted (not charged); {resume}")
    return batch_exit(counts.get("unknown", 0), counts.get("failed", 0), left, stopped)


async def existing(client: Any, workflow_id: str) -> Any:
    """The handle of the workflow ``workflow_id`` (running or closed), or ``None``."""
    from temporalio.service import RPCError, RPCStatusCode

    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return handle
