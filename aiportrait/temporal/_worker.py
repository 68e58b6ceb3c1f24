"""A worker that runs the library's workflows and activities: two Temporal workers, one on the
task queue and one on the charged calls' queue."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from .._session import Session
from ..errors import InvalidArgument
from ._activities import PortraitActivities
from ._batch_workflow import PortraitBatchWorkflow
from ._calls import charged_queue
from ._client import DEFAULT_TASK_QUEUE
from ._presign import Presigner
from ._store import PortraitStore
from ._wire import data_converter
from ._workflows import CreateWorkflow, TrainWorkflow

__all__ = ["WORKFLOWS", "PortraitWorker", "new_replayer", "new_worker"]

log = logging.getLogger("aiportrait.temporal")

WORKFLOWS = (TrainWorkflow, CreateWorkflow, PortraitBatchWorkflow)
"""The workflow classes, for a ``Worker`` of your own (which must also poll
:func:`charged_queue` of its task queue with the charged activities, as :func:`new_worker`
does)."""


class PortraitWorker:
    """The two ``temporalio.worker.Worker`` of one worker process, run and stopped together.

    :attr:`main` polls the task queue: the workflows and the free activities (and the charged
    ones of workflows begun before charged calls had a queue of their own). :attr:`charged`
    polls :func:`charged_queue` of it: train submits and creates, at most ``rate`` per second
    across all workers. Use it as a ``Worker``: ``async with``, or :meth:`run` and
    :meth:`shutdown`.
    """

    def __init__(self, main: Worker, charged: Worker) -> None:
        self.main = main
        self.charged = charged

    async def run(self) -> None:
        """Run both until :meth:`shutdown`; when one ends (a fatal error), the other is shut
        down too, and the error raised."""
        runs = [asyncio.ensure_future(worker.run()) for worker in (self.main, self.charged)]
        try:
            await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self.shutdown()
            ended = await asyncio.gather(*runs, return_exceptions=True)
        for end in ended:
            if isinstance(end, BaseException):
                raise end

    async def shutdown(self) -> None:
        """Stop both at once (each gives its activities in flight ``graceful`` seconds)."""
        await asyncio.gather(self.main.shutdown(), self.charged.shutdown())

    async def __aenter__(self) -> PortraitWorker:
        await self.main.__aenter__()
        try:
            await self.charged.__aenter__()
        except BaseException:
            await self.main.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()
        try:
            await self.charged.__aexit__(*exc)
        finally:
            await self.main.__aexit__(*exc)


def new_worker(
    client: Client,
    session: Session,
    store: PortraitStore,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int | None = None,
    rate: float | None = None,
    graceful: float = 60.0,
    uploader: Presigner | None = None,
    **kwargs: Any,
) -> PortraitWorker:
    """A worker for the library's workflows and activities: a :class:`PortraitWorker`.

    Args:
        client: connected with :func:`aiportrait.temporal.connect` (the library's converter).
        session: the Session the activities send with (its own retries are switched off;
            its limits still apply to this worker).
        store: where portraits and batch files go (every worker and starter of a batch must
            reach the same store).
        task_queue: the task queue to poll (and :func:`charged_queue` of it, for the charged
            activities).
        concurrency: charged activities (train submits, creates) this worker runs at once; by
            default, and at most, what the Session's limits let run at once while one slot of
            ``max_in_flight`` stays free for reads (a larger value is lowered, with a
            warning). Free activities get the rest of ``max_in_flight``: an activity must
            never queue for a slot inside the worker, or a create that was never sent could
            time out as "may have run".
        rate: charged activities per second across ALL workers of the task queue
            (``max_task_queue_activities_per_second`` of the charged queue; the server
            enforces it, and takes the value of the latest poll: give every worker the same).
            Set it to the app's quota for trainings and creations. Free activities are not
            limited. ``None``: no cap.
        graceful: seconds a stopping worker gives its activities in flight to finish (a
            create cut short ends ``unknown``, so let it finish).
        uploader: presigns the photos the starters uploaded, just before each call (an
            :class:`~aiportrait.uploads.OSSUploader` of their bucket, endpoint and prefix):
            Temporal holds only where they are, never a usable URL. Needed for batches and
            trainings of local photos.
        kwargs: passed to both ``Worker`` (``interceptors``, ``identity``...).

    Raises:
        InvalidArgument: the Session's ``max_in_flight`` is 1 (a worker needs a slot for
            charged calls and one for reads).
    """
    limits = session.limits
    every = limits.capacity("read")  # a read holds only the Session's max_in_flight
    most = min(limits.capacity("train"), limits.capacity("create"), every - 1)
    if most < 1:
        raise InvalidArgument(
            "a Temporal worker needs a Session with max_in_flight of 2 at least: a slot for"
            " charged calls and one for reads"
        )
    if concurrency is None:
        concurrency = most
    elif concurrency > most:
        log.warning(
            "worker concurrency %d lowered to %d, what the Session's limits let run at once",
            concurrency,
            most,
        )
        concurrency = most
    activities = PortraitActivities(session, store, uploader)
    stop = timedelta(seconds=graceful)
    main = Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=activities.all(),
        max_concurrent_activities=every - concurrency,
        workflow_runner=_sandbox(),
        graceful_shutdown_timeout=stop,
        **kwargs,
    )
    charged = Worker(
        client,
        task_queue=charged_queue(task_queue),
        activities=[activities.submit_training, activities.create],
        max_concurrent_activities=concurrency,
        max_task_queue_activities_per_second=rate,
        graceful_shutdown_timeout=stop,
        **kwargs,
    )
    return PortraitWorker(main, charged)


def new_replayer(*, data_converter: DataConverter = data_converter, **kwargs: Any) -> Replayer:
    """A ``temporalio.worker.Replayer`` of the library's workflows, run as a worker runs them
    (the library's data converter, the same sandbox): replay the histories of batches in
    flight on a new version before you deploy it, ``await new_replayer().replay_workflow(
    await handle.fetch_history())``; a change that would not replay raises there, not in your
    workers. ``data_converter``: your client's, when it has a payload codec of its own (it
    must carry the library's converter, as :func:`connect` makes it). ``kwargs`` go to
    ``Replayer``."""
    return Replayer(
        workflows=list(WORKFLOWS),
        data_converter=data_converter,
        workflow_runner=_sandbox(),
        **kwargs,
    )


def _sandbox() -> SandboxedWorkflowRunner:
    """The workflows' sandbox: the library passes through (its modules are deterministic and
    imported once, not per workflow run)."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules("aiportrait")
    return SandboxedWorkflowRunner(restrictions=restrictions)
