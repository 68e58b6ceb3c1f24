"""A worker that runs the library's workflows and activities."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._session import Session
from ._activities import PortraitActivities
from ._batch_workflow import PortraitBatchWorkflow
from ._client import DEFAULT_TASK_QUEUE
from ._store import PortraitStore
from ._workflows import CreateWorkflow, TrainWorkflow

__all__ = ["WORKFLOWS", "new_worker"]

log = logging.getLogger("aiportrait.temporal")

WORKFLOWS = (TrainWorkflow, CreateWorkflow, PortraitBatchWorkflow)
"""The workflow classes, for a ``Worker`` of your own."""


def new_worker(
    client: Client,
    session: Session,
    store: PortraitStore,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int | None = None,
    rate: float | None = None,
    graceful: float = 60.0,
    **kwargs: Any,
) -> Worker:
    """A ``temporalio.worker.Worker`` for the library's workflows and activities.

    Args:
        client: connected with :func:`aiportrait.temporal.connect` (the library's converter).
        session: the Session the activities send with (its own retries are switched off;
            its limits still apply to this worker).
        store: where portraits and batch files go (every worker and starter of a batch must
            reach the same store).
        task_queue: the task queue to poll.
        concurrency: activities this worker runs at once (``max_concurrent_activities``);
            by default, and at most, what the Session's limits let run at once (a larger
            value is lowered, with a warning): an activity must never queue for a slot inside
            the worker, or a create that was never sent could time out as "may have run".
        rate: activities per second across ALL workers of the task queue
            (``max_task_queue_activities_per_second``; the server enforces it): set it to
            the app's quota. ``None``: no cap.
        graceful: seconds a stopping worker gives its activities in flight to finish (a
            create cut short ends ``unknown``, so let it finish).
        kwargs: passed to ``Worker`` (``interceptors``, ``identity``...).
    """
    most = min(session.limits.capacity(kind) for kind in ("read", "train", "create"))
    if concurrency is None:
        concurrency = most
    elif concurrency > most:
        log.warning(
            "worker concurrency %d lowered to %d, what the Session's limits let run at once",
            concurrency,
            most,
        )
        concurrency = most
    activities = PortraitActivities(session, store)
    restrictions = SandboxRestrictions.default.with_passthrough_modules("aiportrait")
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=activities.all(),
        max_concurrent_activities=concurrency,
        max_task_queue_activities_per_second=rate,
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        graceful_shutdown_timeout=timedelta(seconds=graceful),
        **kwargs,
    )
