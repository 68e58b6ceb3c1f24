"""Stopping a batch workflow and resuming it, from an application (the starter's side).

A stop is the workflow's: :func:`stop_batch` tells it to start no new item; the items in flight
end on the workers and their outcomes (portraits in the store) are written to the store's
outcome pages; then the workflow waits, open, for :func:`resume_batch` (``resume_within``, a
week by default), which goes on with the first item it did not start. No item is started
twice: the workflow keeps its place in its own state, so nothing charged is sent again. A
budget (``start_batch(max_creations=...)``) stops it the same way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from ._batch_workflow import NO_OUTCOMES, PortraitBatchWorkflow
from ._client import result
from ._values import BatchProgress, BatchSummary

__all__ = ["batch_summary", "resume_batch", "stop_batch", "stopped_progress"]


async def stop_batch(
    handle: WorkflowHandle[Any, Any], *, timeout: float = 5.0
) -> BatchProgress | None:
    """Tell the batch to start no new item: those in flight end and are recorded, and it
    waits for :func:`resume_batch` (a batch that is stopped already is not changed;
    :func:`follow_batch` ends when it waits). Returns its progress once it was told
    (``in_flight``: the items finishing), or ``None`` when no worker answered that question
    within ``timeout`` seconds: it was told all the same (Temporal keeps the signal), and
    stops when a worker takes it up. Temporal not taking the signal raises its error."""
    await handle.signal(PortraitBatchWorkflow.stop)
    try:
        progress: BatchProgress = await handle.query(
            PortraitBatchWorkflow.progress, NO_OUTCOMES, rpc_timeout=timedelta(seconds=timeout)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNAVAILABLE:  # Temporal itself
            raise
        return None  # no worker answered the query in time
    return progress


async def resume_batch(
    handle: WorkflowHandle[Any, Any],
    *,
    max_trainings: int | None = None,
    max_creations: int | None = None,
) -> None:
    """Go on with the items a stop or the budget held, on a new budget counted from now
    (``None``: no bound); a batch that is not stopped is not changed."""
    await handle.signal(PortraitBatchWorkflow.resume, args=[max_trainings, max_creations])


async def stopped_progress(handle: WorkflowHandle[Any, Any]) -> BatchProgress | None:
    """The progress of a batch that was told to stop (or reached its budget) and has not ended:
    it waits for :func:`resume_batch` (``waiting``), or will once what is in flight ended;
    ``None`` for a batch that runs on, or ended."""
    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
        return None
    progress: BatchProgress = await handle.query(PortraitBatchWorkflow.progress, NO_OUTCOMES)
    return progress if progress.stopped else None


async def batch_summary(handle: WorkflowHandle[Any, Any]) -> BatchSummary:
    """The summary of a batch that ended, or of one that stopped and waits for
    :func:`resume_batch` (its ``stopped`` and ``not_submitted`` say so); for one still
    running, its result when it ends (a failure raises the library's error, as :func:`result`)."""
    stopped = await stopped_progress(handle)
    if stopped is not None and stopped.waiting:
        return stopped.summary()
    summary: BatchSummary = await result(handle)
    return summary
