"""The workflows: a training, a portrait, and a batch of many of both.

Workflow code is replayed, so it only decides: every request is an activity, every wait a
durable timer. Charged activities are scheduled with one attempt; :func:`_charged` sends again
only after a failure that proves the call did not run (a 429, no connection, a 503 with
``Retry-After``), and reports a lost answer or a worker that stopped answering as
``unknown``: the call may have run, and only you decide to send it again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import attrs
from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from .._requests import CheckRequest, JobQuery, TrainRequest
    from .._retrying.policy import RetryPolicy, decide
    from ..errors import InvalidArgument, JobFailed, JobTimeout, SubmitOutcomeUnknown
    from ..hooks import OutcomeStatus
    from ..models import Job, JobState, TrainJob, TrainResult
    from ._activities import PortraitActivities
    from ._store import safe_name
    from ._values import (
        BatchInput,
        BatchItem,
        BatchProgress,
        BatchSummary,
        CreateInput,
        ErrorInfo,
        ItemPage,
        OutcomePage,
        OutcomeRecord,
        PortraitRef,
        Timeouts,
        TrainInput,
        TrainProgress,
    )

__all__ = ["CreateWorkflow", "PortraitBatchWorkflow", "TrainWorkflow"]

_ONE_ATTEMPT = TemporalRetryPolicy(maximum_attempts=1)
_MAX_QUERY_OUTCOMES = 500
_OUTCOMES_PER_FILE = 500


def _read_retry(t: Timeouts) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        initial_interval=timedelta(seconds=t.retry_first),
        maximum_interval=timedelta(seconds=t.retry_cap),
        maximum_attempts=t.read_attempts,
    )


async def _read(activity: Any, arg: Any, t: Timeouts) -> Any:
    """A free activity: retried by Temporal while the library's classifier allows."""
    try:
        return await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=timedelta(seconds=t.read),
            retry_policy=_read_retry(t),
        )
    except ActivityError as err:
        raise _reraised(err) from None


def _details(err: ApplicationError) -> ErrorInfo | None:
    details = err.details
    return details[0] if details and isinstance(details[0], ErrorInfo) else None


def _reraised(err: FailureError) -> ApplicationError:
    """The library's error behind ``err``, as the workflow's own non-retryable failure."""
    cause = err.cause
    info = _details(cause) if isinstance(cause, ApplicationError) else None
    if info is None:
        info = ErrorInfo.of(cause if isinstance(cause, Exception) else err)
    return _failure(info)


def _failure(info: ErrorInfo) -> ApplicationError:
    return ApplicationError(info.message, info, type=info.type, non_retryable=True)


def _unknown(action: str, request: Any, why: str) -> ErrorInfo:
    exc = SubmitOutcomeUnknown(
        f"{action} may have run: {why}; it was not sent again", action=action, request=request
    )
    return ErrorInfo.of(exc)


async def _charged(
    activity: Any, arg: Any, action: str, request: Any, t: Timeouts
) -> tuple[OutcomeStatus, Any]:
    """Run a charged activity at most once per proof that the last try did not run.

    Returns ``("succeeded", value)``, ``("failed", ErrorInfo)`` or ``("unknown", ErrorInfo)``.
    """
    tries = 0
    while True:
        tries += 1
        try:
            value = await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timedelta(seconds=t.charged),
                heartbeat_timeout=timedelta(seconds=t.heartbeat),
                retry_policy=_ONE_ATTEMPT,
            )
            return "succeeded", value
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, TimeoutError):
                kind = cause.type.name if cause.type else "timeout"
                why = f"the worker running it stopped answering ({kind})"
                return "unknown", _unknown(action, request, why)
            if not isinstance(cause, ApplicationError):
                return "unknown", _unknown(action, request, f"the activity ended with {cause!r}")
            info = _details(cause)
            if info is None:  # not the library's error: it may have failed after sending
                return "unknown", _unknown(action, request, f"{cause.type}: {cause.message}")
            if info.type == "SubmitOutcomeUnknown":
                return "unknown", info
            # The library's one retry decision (only what provably did not run is sent again),
            # with the workflow's random source for the jitter, so that a replay decides alike.
            decision = decide(
                info.exception(), charged=True, attempt=tries, policy=_policy(t),
                rng=workflow.random(),
            )  # fmt: skip
            if decision.retry:
                await workflow.sleep(decision.wait)
                continue
            return "failed", info


def _policy(t: Timeouts) -> RetryPolicy:
    """The retry policy of charged activities, from the timeouts' counts and backoff."""
    return RetryPolicy(
        attempts=t.read_attempts,
        charged_attempts=t.charged_tries,
        base=t.retry_first,
        cap=t.retry_cap,
        deadline=None,
    )


def _check_failure(report: Any) -> ErrorInfo:
    bad = [f"{c.url}: {c.code.name} {c.message}".rstrip() for c in report.failed]
    exc = InvalidArgument(
        f"{len(bad)} of {len(report.results)} photos failed the check (train with force to"
        " train anyway): " + "; ".join(bad)
    )
    return ErrorInfo.of(exc)


@workflow.defn(name="aiportrait.Train")
class TrainWorkflow:
    """Check (optionally), train, then wait for the job with durable timers.

    Returns the :class:`~aiportrait.TrainResult`; fails with the library's error (``JobFailed``,
    ``JobTimeout``, ``InvalidArgument`` for photos that failed the check,
    ``SubmitOutcomeUnknown`` when the submit may have run). Query ``progress`` for the stage,
    the job, its state, the time elapsed and the time expected.
    """

    def __init__(self) -> None:
        self._progress = TrainProgress("starting")
        self._submitted: Any = None
        self._expected: float | None = None

    @workflow.run
    async def run(self, task: TrainInput) -> TrainResult:
        """Run the training to its end."""
        t = task.timeouts
        if task.check:
            self._progress = TrainProgress("checking")
            report = await _read(PortraitActivities.check, CheckRequest(task.request.images), t)
            if not report.ok and not task.force:
                self._progress = TrainProgress("failed")
                raise _failure(_check_failure(report))
        self._progress = TrainProgress("submitting")
        status, value = await _charged(
            PortraitActivities.submit_training, task.request, "train", task.request.to_dict(), t
        )
        if status != "succeeded":
            self._progress = TrainProgress(status)
            raise _failure(value)
        job: TrainJob = value
        return await self._wait(job, task)

    async def _wait(self, handle: TrainJob, task: TrainInput) -> TrainResult:
        poll, t = task.poll, task.timeouts
        self._submitted = workflow.now()
        self._expected = poll.expected
        polls, elapsed, last_state = 0, 0.0, None
        while True:
            left = None if poll.timeout is None else poll.timeout - elapsed
            job = await self._poll(handle, t, left, last_state)
            polls += 1
            last_state = int(job.state)
            elapsed = (workflow.now() - self._submitted).total_seconds()
            stage = "training"
            if job.state is JobState.SUCCESS:
                stage = "succeeded"
            elif job.state is JobState.FAILED:
                stage = "failed"
            self._progress = TrainProgress(
                stage, handle, job.state.name, elapsed, None, polls, job.message
            )
            if job.done:
                break
            wait = poll.next_wait(elapsed, workflow.random())  # the watcher's schedule
            if wait is None:  # the deadline comes first
                if poll.timeout is not None:
                    await workflow.sleep(max(0.0, poll.timeout - elapsed))
                elapsed = (workflow.now() - self._submitted).total_seconds()
                self._progress = attrs.evolve(self._progress, stage="failed")
                raise _failure(ErrorInfo.of(JobTimeout(handle.job_id, last_state, elapsed)))
            await workflow.sleep(wait)
        if job.state is JobState.FAILED:
            raise _failure(ErrorInfo.of(JobFailed(handle.job_id, job.message, job.raw_result)))
        return job.result or TrainResult(model_id=handle.model_id)

    async def _poll(
        self, handle: TrainJob, t: Timeouts, left: float | None, last_state: int | None
    ) -> Job:
        """One job query; failed queries are tried again until the poll deadline (a charged
        training is never given up on because a read failed for a while)."""
        try:
            job: Job = await workflow.execute_activity_method(
                PortraitActivities.query_job,
                JobQuery(handle.job_id),
                start_to_close_timeout=timedelta(seconds=t.read),
                schedule_to_close_timeout=timedelta(seconds=max(left, 1.0)) if left else None,
                retry_policy=TemporalRetryPolicy(
                    initial_interval=timedelta(seconds=t.retry_first),
                    maximum_interval=timedelta(seconds=t.retry_cap),
                    maximum_attempts=0,
                ),
            )
        except ActivityError as err:
            if isinstance(err.cause, TimeoutError):  # the deadline ended while polls failed
                elapsed = (workflow.now() - self._submitted).total_seconds()
                self._progress = attrs.evolve(self._progress, stage="failed")
                raise _failure(
                    ErrorInfo.of(JobTimeout(handle.job_id, last_state, elapsed))
                ) from None
            raise _reraised(err) from None
        return job

    @workflow.query
    def progress(self) -> TrainProgress:
        """Where the training is (elapsed and expected remaining as of now)."""
        p = self._progress
        if self._submitted is None or p.stage != "training":
            return p
        elapsed = (workflow.now() - self._submitted).total_seconds()
        remaining = None if self._expected is None else max(0.0, self._expected - elapsed)
        return attrs.evolve(p, elapsed=elapsed, expected_remaining=remaining)


@workflow.defn(name="aiportrait.Create")
class CreateWorkflow:
    """Create one portrait, store it, and return where it is (a :class:`PortraitRef`).

    Fails with the library's error; ``SubmitOutcomeUnknown`` when the create may have run.
    """

    @workflow.run
    async def run(self, task: CreateInput) -> PortraitRef:
        """Run the create."""
        status, value = await _charged(
            PortraitActivities.create, task, "create", task.request.to_dict(), task.timeouts
        )
        if status != "succeeded":
            raise _failure(value)
        ref: PortraitRef = value
        return ref


@workflow.defn(name="aiportrait.PortraitBatch")
class PortraitBatchWorkflow:
    """Many trainings (child :class:`TrainWorkflow` runs) and creations, ``limit`` at a time.

    Items are read a page at a time (inline, or from page files in the store), the next page
    while the last items of one still run. After ``per_run`` items (or when Temporal suggests
    it) the run lets its items in flight end, writes their outcomes to the store, and continues
    as new, so a batch of any size stays within Temporal's history limits. Query ``progress``
    for counts by outcome and the latest outcomes; the result is a :class:`BatchSummary`.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._outcomes: list[OutcomeRecord] = []
        self._pages: list[str] = []
        self._in_flight = 0
        self._read = 0
        self._end = False
        self._seq = 0

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchSummary:
        """Run items, page after page, keeping ``limit`` in flight; after ``per_run`` items (or
        when Temporal suggests it), let those in flight end, write the outcomes, and continue
        as new with the rest."""
        self._counts = dict(batch.counts)
        self._pages = list(batch.outcome_pages)
        self._seq = batch.seq
        self._read = batch.offset
        page_number = batch.next_page
        slots = asyncio.Semaphore(batch.limit)
        running: list[asyncio.Task[None]] = []
        started = 0
        while True:
            items = await self._page(batch, page_number, self._read)
            page_number += 1
            self._read += len(items)
            for item in items:
                await slots.acquire()  # the next page is read while this one's last items run
                running.append(asyncio.create_task(self._one(item, batch, slots)))
            started += len(items)
            if self._end or started >= batch.per_run:
                break
            if workflow.info().is_continue_as_new_suggested():
                break
        await asyncio.gather(*running)
        for first in range(0, len(self._outcomes), _OUTCOMES_PER_FILE):
            chunk = tuple(self._outcomes[first : first + _OUTCOMES_PER_FILE])
            name = f"batches/{self._name()}/outcomes-{chunk[0].seq:010d}.jsonl"
            uri = await _read(
                PortraitActivities.save_outcomes, OutcomePage(name, chunk), batch.timeouts
            )
            self._pages.append(uri)
        if not self._end:
            workflow.continue_as_new(
                attrs.evolve(
                    batch,
                    offset=self._read,
                    next_page=page_number,
                    counts=self._counts,
                    outcome_pages=tuple(self._pages),
                    seq=self._seq,
                )
            )
        return BatchSummary(dict(self._counts), self._read, tuple(self._pages))

    async def _one(self, item: BatchItem, batch: BatchInput, slots: asyncio.Semaphore) -> None:
        self._in_flight += 1
        try:
            outcome = await self._item(item, batch)
        finally:
            self._in_flight -= 1
            slots.release()
        self._counts[outcome.status] = self._counts.get(outcome.status, 0) + 1
        self._outcomes.append(outcome)

    def _name(self) -> str:
        return safe_name(workflow.info().workflow_id)

    async def _page(self, batch: BatchInput, number: int, offset: int) -> tuple[BatchItem, ...]:
        """Page ``number`` of the item files, or the inline items from ``offset``."""
        if batch.item_pages:
            if number >= len(batch.item_pages):
                self._end = True
                return ()
            page: ItemPage = await _read(
                PortraitActivities.read_items, batch.item_pages[number], batch.timeouts
            )
            self._end = number + 1 >= len(batch.item_pages)
            return page.items
        items = batch.items[offset : offset + batch.page]
        self._end = offset + batch.page >= len(batch.items)
        return items

    async def _item(self, item: BatchItem, batch: BatchInput) -> OutcomeRecord:
        request = item.request
        if isinstance(request, TrainRequest):
            return await self._train(item.key, request, batch)
        name = f"portraits/{self._name()}/{safe_name(item.key)}"
        status, value = await _charged(
            PortraitActivities.create,
            CreateInput(request, name, batch.timeouts),
            "create",
            request.to_dict(),
            batch.timeouts,
        )
        return self._outcome(item.key, "create", status, value)

    async def _train(self, key: str, request: TrainRequest, batch: BatchInput) -> OutcomeRecord:
        child_id = f"{self._name()}/train/{safe_name(key)}"
        task = TrainInput(request, batch.check, False, batch.poll, batch.timeouts)
        try:
            result = await workflow.execute_child_workflow(TrainWorkflow.run, task, id=child_id)
        except ChildWorkflowError as err:
            cause = err.cause
            info = _details(cause) if isinstance(cause, ApplicationError) else None
            if info is None:
                why = f"its workflow ended with {cause!r}"
                return self._outcome(key, "train", "unknown", _unknown("train", request, why))
            status: OutcomeStatus = "unknown" if info.type == "SubmitOutcomeUnknown" else "failed"
            return self._outcome(key, "train", status, info)
        return self._outcome(key, "train", "succeeded", result)

    def _outcome(self, key: str, kind: str, status: OutcomeStatus, value: Any) -> OutcomeRecord:
        self._seq += 1
        if status != "succeeded":  # the request is the item's own: not repeated in each outcome
            attributes = {k: v for k, v in value.attributes.items() if k != "request"}
            error = attrs.evolve(value, attributes=attributes)
            return OutcomeRecord(self._seq, key, kind, status, error=error)
        if kind == "create":
            return OutcomeRecord(self._seq, key, kind, status, portrait=value)
        return OutcomeRecord(self._seq, key, kind, status, result=value)

    @workflow.query
    def progress(self, after: int = 0) -> BatchProgress:
        """Counts by outcome, and this run's outcomes with ``seq`` above ``after``."""
        newer = tuple(o for o in self._outcomes if o.seq > after)[:_MAX_QUERY_OUTCOMES]
        return BatchProgress(
            dict(self._counts),
            self._in_flight,
            self._read,
            self._end,
            newer,
            tuple(self._pages),
        )
