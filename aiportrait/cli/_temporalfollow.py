"""Following a training or a batch workflow (``temporal train``, ``batch`` and ``attach``): the
notes while it runs, the outcome lines and documents (as ``batch`` prints them), the summary and
the exit code."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .._display.batch_progress import paused_words
from ..errors import ConnectError
from ._exit import EXIT_OK, batch_exit
from ._output import Output, outcome_line

__all__ = ["existing", "follow_batch_lines", "follow_train"]


async def follow_train(handle: Any, out: Output) -> int:
    """Follow a training: its stages as notes, then its model; its exit code."""
    from ..temporal import TrainWorkflow, error_of

    seen = None
    result = asyncio.ensure_future(handle.result())
    try:
        while not result.done():
            with contextlib.suppress(Exception):
                p = await handle.query(TrainWorkflow.progress)
                if (p.stage, p.state, p.job) != seen:
                    seen = (p.stage, p.state, p.job)
                    job = f" job {p.job.job_id}" if p.job else ""
                    left = p.expected_remaining
                    about = f", about {left:.0f}s left" if left is not None else ""
                    out.note(f"{p.stage}{job} {p.state} {p.elapsed:.1f}s{about}".rstrip())
            await asyncio.wait({result}, timeout=1.0)
        try:
            trained = result.result()
        except Exception as exc:
            raise error_of(exc) from exc
    finally:
        result.cancel()
    line = f"model {trained.model_id} (the service's training time {trained.cost_time:.1f}s)"
    doc = {"id": handle.id, "model_id": trained.model_id, "cost_time": trained.cost_time}
    out.result(doc, [line])
    return EXIT_OK


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
    handle: Any, store: Any, out: Output, reconnect: float, address: str, again: str
) -> int:
    """Follow a batch: a line (or document) per outcome, then the summary; its exit code.

    Temporal at ``address`` not answering for ``reconnect`` seconds is a :class:`ConnectError`
    (exit 3) that says the command which follows it ``again``."""
    from ..temporal import follow_batch, unreachable

    def waiting(why: str) -> None:
        out.note(out.words(why)[:300])

    def pausing(why: str) -> None:  # one line when the batch pauses, one when it goes on
        out.note(paused_words(out.words(why)[:300]) if why else "resumed: the service answers")

    counts: dict[str, int] = {}  # by status, as shown: a portrait in the store wins
    try:
        found = follow_batch(handle, store, on_wait=waiting, reconnect=reconnect, on_pause=pausing)
        async for outcome in found:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            doc, line = _outcome(out, outcome)
            out.result(doc, [line])
        summary = await handle.result()
    except Exception as exc:
        if not unreachable(exc):
            raise
        raise ConnectError(
            f"Temporal at {address} did not answer for {reconnect:.0f}s ({exc}); the batch "
            f"goes on without this follower: follow it again with: {again}",
            sent=False,
        ) from None
    told = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    doc = {"type": "summary", "id": handle.id, "total": summary.total, **counts}
    out.result(doc, [f"batch {handle.id}: {summary.total} items: {told}"])
    return batch_exit(counts.get("unknown", 0), counts.get("failed", 0))


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
