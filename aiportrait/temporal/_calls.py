"""How workflow code calls activities: free ones with Temporal's retries, charged ones at
most once per proof that the last try did not run.

:func:`charged` sends again only after a failure that proves the call did not run (a 429, no
connection, a 503 with ``Retry-After``), and reports a lost answer or a worker that stopped
answering as ``unknown``: the call may have run, and only you decide to send it again. Errors
become the workflow's own non-retryable failures carrying the library's :class:`ErrorInfo`.

Charged activities run on a task queue of their own beside the workflow's
(:func:`charged_queue`), which every worker also polls: the server's per-second limit (a
worker's ``rate``) applies to it alone, so free reads never use up the charged calls' quota.

While the service seems down (:class:`~aiportrait.temporal._pause.Pause`: failures of the
activities that say so), :func:`charged` schedules nothing: :func:`unpaused` probes, on Temporal
timers, until the service answers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, TimeoutError

from .._retrying.policy import OutagePolicy, RetryPolicy, decide
from ..errors import AIPortraitError, InvalidArgument, SubmitOutcomeUnknown
from ..hooks import OutcomeStatus
from ._activities import PortraitActivities
from ._pause import Pause
from ._values import ErrorInfo, Timeouts

__all__ = [
    "Released",
    "charged",
    "charged_queue",
    "check_failure",
    "details",
    "failure",
    "unpaused",
    "read",
    "reraised",
    "unknown",
]

_ONE_ATTEMPT = TemporalRetryPolicy(maximum_attempts=1)
#: The patch that moved charged activities to :func:`charged_queue`: a workflow begun before it
#: schedules them on its own task queue, as its history says (the queue is part of the command).
_CHARGED_QUEUE = "aiportrait.charged-task-queue"


def charged_queue(task_queue: str) -> str:
    """The task queue of the charged activities (train submit, create) of the workflows on
    ``task_queue``: ``<task_queue>-charged``."""
    return f"{task_queue}-charged"


def _read_retry(t: Timeouts) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        initial_interval=timedelta(seconds=t.retry_first),
        maximum_interval=timedelta(seconds=t.retry_cap),
        maximum_attempts=t.read_attempts,
    )


async def read(activity: Any, arg: Any, t: Timeouts) -> Any:
    """A free activity: retried by Temporal while the library's classifier allows."""
    try:
        return await workflow.execute_activity_method(
            activity,
            arg,
            start_to_close_timeout=timedelta(seconds=t.read),
            retry_policy=_read_retry(t),
        )
    except ActivityError as err:
        raise reraised(err) from None


def details(err: ApplicationError) -> ErrorInfo | None:
    details = err.details
    return details[0] if details and isinstance(details[0], ErrorInfo) else None


def reraised(err: FailureError) -> ApplicationError:
    """The library's error behind ``err``, as the workflow's own non-retryable failure."""
    cause = err.cause
    info = details(cause) if isinstance(cause, ApplicationError) else None
    if info is None:
        info = ErrorInfo.of(cause if isinstance(cause, Exception) else err)
    return failure(info)


def failure(info: ErrorInfo) -> ApplicationError:
    return ApplicationError(info.message, info, type=info.type, non_retryable=True)


def unknown(action: str, request: Any, why: str) -> ErrorInfo:
    exc = SubmitOutcomeUnknown(
        f"{action} may have run: {why}; it was not sent again", action=action, request=request
    )
    return ErrorInfo.of(exc)


class Released(Exception):
    """A stop came while a charged call waited in an outage pause: it was not sent (this try
    was never scheduled, and every earlier one proved it did not run)."""


async def charged(
    activity: Any,
    arg: Any,
    action: str,
    request: Any,
    t: Timeouts,
    pause: Pause | None = None,
    stopped: Callable[[], bool] | None = None,
) -> tuple[OutcomeStatus, Any]:
    """Run a charged activity at most once per proof that the last try did not run, each try
    scheduled only when ``pause`` (the workflow's, or one of this call's own) lets it.

    Returns ``("succeeded", value)``, ``("failed", ErrorInfo)`` or ``("unknown", ErrorInfo)``;
    raises :class:`Released` when ``stopped()`` became true while a try waited in the pause.
    """
    queue = charged_queue(workflow.info().task_queue) if workflow.patched(_CHARGED_QUEUE) else None
    pause = Pause(OutagePolicy()) if pause is None else pause
    tries = 0
    while True:
        if not await unpaused(pause, t, stopped):
            raise Released(action)
        written = pause.epoch
        tries += 1
        try:
            value = await workflow.execute_activity_method(
                activity,
                arg,
                start_to_close_timeout=timedelta(seconds=t.charged),
                heartbeat_timeout=timedelta(seconds=t.heartbeat),
                retry_policy=_ONE_ATTEMPT,
                task_queue=queue,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, TimeoutError):
                kind = cause.type.name if cause.type else "timeout"
                why = f"the worker running it stopped answering ({kind})"
                return "unknown", unknown(action, request, why)
            if not isinstance(cause, ApplicationError):
                return "unknown", unknown(action, request, f"the activity ended with {cause!r}")
            info = details(cause)
            if info is None:  # not the library's error: it may have failed after sending
                return "unknown", unknown(action, request, f"{cause.type}: {cause.message}")
            pause.saw(_behind(cause, info), written)
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
        pause.answered(written)
        return "succeeded", value


def _behind(cause: ApplicationError, info: ErrorInfo) -> AIPortraitError:
    """The failure that says whether the service answered: for a call that may have run, the
    one behind it (the activity's second detail), else the error itself."""
    behind = cause.details[1:2]
    return (behind[0] if behind and isinstance(behind[0], ErrorInfo) else info).exception()


async def unpaused(pause: Pause, t: Timeouts, stopped: Callable[[], bool] | None = None) -> bool:
    """Return ``True`` when ``pause`` lets charged activities be scheduled: while the service
    seems down, the Session's probe runs as an activity (one try) on the pause's schedule;
    ``False`` once ``stopped()`` is true while it waits (see :meth:`Pause.hold`)."""

    async def probe(written: int) -> None:
        policy = pause.breaker.policy
        try:
            await workflow.execute_activity_method(
                PortraitActivities.probe,
                policy.probe_timeout,
                start_to_close_timeout=timedelta(seconds=t.read),
                retry_policy=_ONE_ATTEMPT,
            )
        except ActivityError as err:
            cause = err.cause
            info = details(cause) if isinstance(cause, ApplicationError) else None
            if info is None:  # no worker's answer: a failed probe, its backoff goes on
                pause.failed(f"the probe ended with {type(cause).__name__}", written)
            else:
                pause.saw(info.exception(), written)
        else:
            pause.answered(written)

    return await pause.hold(probe, stopped)


def _policy(t: Timeouts) -> RetryPolicy:
    """The retry policy of charged activities, from the timeouts' counts and backoff."""
    return RetryPolicy(
        attempts=t.read_attempts,
        charged_attempts=t.charged_tries,
        base=t.retry_first,
        cap=t.retry_cap,
        deadline=None,
    )


def check_failure(report: Any) -> ErrorInfo:
    bad = [f"{c.url}: {c.code.name} {c.message}".rstrip() for c in report.failed]
    exc = InvalidArgument(
        f"{len(bad)} of {len(report.results)} photos failed the check (train with force to"
        " train anyway): " + "; ".join(bad)
    )
    return ErrorInfo.of(exc)
