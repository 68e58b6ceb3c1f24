"""The workflows of one call: a training (check, train, wait for the job) and a portrait.

Workflow code is replayed, so it only decides: every request is an activity, every wait a
durable timer. Charged activities run at most once per proof that they did not run
(:func:`~._calls.charged`); a lost answer ends them ``unknown``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from .._requests import CheckRequest, JobQuery
    from ..errors import JobFailed, JobTimeout
    from ..models import Job, JobState, TrainJob, TrainResult
    from ._activities import PortraitActivities
    from ._calls import charged, check_failure, failure, read, reraised
    from ._values import CreateInput, ErrorInfo, PortraitRef, Timeouts, TrainInput, TrainProgress

__all__ = ["CreateWorkflow", "TrainWorkflow"]


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
            report = await read(PortraitActivities.check, CheckRequest(task.request.images), t)
            if not report.ok and not task.force:
                self._progress = TrainProgress("failed")
                raise failure(check_failure(report))
        self._progress = TrainProgress("submitting")
        status, value = await charged(
            PortraitActivities.submit_training, task.request, "train", task.request.to_dict(), t
        )
        if status != "succeeded":
            self._progress = TrainProgress(status)
            raise failure(value)
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
                raise failure(ErrorInfo.of(JobTimeout(handle.job_id, last_state, elapsed)))
            await workflow.sleep(wait)
        if job.state is JobState.FAILED:
            raise failure(ErrorInfo.of(JobFailed(handle.job_id, job.message, job.raw_result)))
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
                raise failure(
                    ErrorInfo.of(JobTimeout(handle.job_id, last_state, elapsed))
                ) from None
            raise reraised(err) from None
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
        status, value = await charged(
            PortraitActivities.create, task, "create", task.request.to_dict(), task.timeouts
        )
        if status != "succeeded":
            raise failure(value)
        ref: PortraitRef = value
        return ref
