"""What Temporal holds of a batch workflow, found without starting or charging anything: the
Temporal half of a batch's dry run (``aiportrait temporal batch FILE --dry-run``; the items'
half is :meth:`aiportrait.Session.plan_many`, the one planner of every batch)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from ._batch_workflow import PortraitBatchWorkflow
from ._client import _detail, _stored, read_outcomes
from ._store import PortraitStore
from ._values import BatchSummary, OutcomeRecord

__all__ = ["BatchState", "batch_state"]


@attrs.frozen
class BatchState:
    """A batch workflow that exists (running or closed), as :func:`batch_state` found it.

    Attributes:
        workflow_id: its id.
        status: Temporal's word for it, lower case: ``running``, ``completed``, ``failed``,
            ``canceled``, ``terminated``, ``timed_out``...
        counts: its items that ended, by outcome (``succeeded``, ``failed``, ``unknown``; a
            create whose portrait is in the store counts ``succeeded``), or ``None`` when they
            could not be read now (a running batch's ``progress`` query that no worker
            answered; a batch ended without a summary).
        total: its items (for a running batch begun by an earlier version, those read so
            far), or ``None``.
        held: items a stop or its budget held: it waits (or will, once its items in flight
            ended) for a resume, which starts them (and charges them, within the resume's
            budget).
    """

    workflow_id: str
    status: str
    counts: dict[str, int] | None = None
    total: int | None = None
    held: int = 0

    @property
    def ended(self) -> int | None:
        """Items that ended (``None``: not known now)."""
        return None if self.counts is None else sum(self.counts.values())


async def batch_state(
    client: Client, workflow_id: str, store: PortraitStore, *, timeout: float = 10.0
) -> BatchState | None:
    """What Temporal holds of the batch ``workflow_id``: ``None`` when no workflow has that id
    (a start would run it; with :func:`~aiportrait.temporal.batch_id`'s id, one started from
    the same items and options would be found, and a start attaches to it instead).

    Nothing is started or charged. A running batch is asked its ``progress`` (a worker
    answers it; ``timeout`` seconds at most per question) and its outcome pages are read; a
    closed one's outcomes are read from its summary's pages. Temporal not answering raises
    its ``RPCError`` (:func:`~aiportrait.temporal.unreachable` tells it)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    status = described.status
    word = status.name.lower() if status is not None else "unknown"
    if status == WorkflowExecutionStatus.RUNNING:
        found = await _running(handle, store, timeout)
    else:
        found = await _closed(handle, store)
    if found is None:
        return BatchState(workflow_id, word)
    outcomes, total, held = found
    counts: dict[str, int] = {}
    for outcome in outcomes:
        outcome = await _stored(outcome, store, workflow_id)  # a stored portrait wins
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return BatchState(workflow_id, word, counts, total, held)


async def _running(
    handle: Any, store: PortraitStore, timeout: float
) -> tuple[list[OutcomeRecord], int, int] | None:
    """A running batch's outcomes so far (its pages, then its replies: each holds only so
    many, so it is asked again after the last), its items, and those it holds when told to
    stop; ``None``: no answer."""
    wait = timedelta(seconds=timeout)
    progress_of = PortraitBatchWorkflow.progress
    try:
        progress = await handle.query(progress_of, 0, rpc_timeout=wait)
        outcomes = await read_outcomes(store, progress.outcome_pages)
        latest = max((o.seq for o in outcomes), default=0)
        while True:
            progress = await handle.query(progress_of, latest, rpc_timeout=wait)
            if not progress.outcomes:  # told to stop (or at its budget): a run resumes it,
                total = max(progress.total, progress.read)  # even while its last ones run
                return outcomes, total, total - progress.read if progress.stopped else 0
            outcomes += progress.outcomes
            latest = max(o.seq for o in progress.outcomes)
    except RPCError as exc:
        if exc.status == RPCStatusCode.UNAVAILABLE:  # Temporal itself: the caller says so
            raise
        return None  # no worker answered the query in time


async def _closed(handle: Any, store: PortraitStore) -> tuple[list[OutcomeRecord], int, int] | None:
    """A closed batch's outcomes and items from its summary (``None``: it has none)."""
    try:
        summary: BatchSummary | None = await handle.result()
    except WorkflowFailureError as exc:  # what ran before it failed is in its summary
        summary = _detail(exc, BatchSummary)
    if summary is None:
        return None
    return await read_outcomes(store, summary.outcome_pages), summary.total, 0
