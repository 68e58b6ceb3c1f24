"""Watching a job with a display: :func:`follow`, :func:`watch_lines` (the CLI) and
:func:`watch_with_progress` (notebooks).

tqdm is optional (the ``progress`` extra; ``notebook`` adds ipywidgets for Jupyter's widget).
With it, :func:`watch_with_progress` shows ``tqdm.auto`` (the notebook widget in Jupyter);
without it plain lines are printed instead. The displays live in
:mod:`aiportrait._display.watch_display`, the batch bar in
:mod:`aiportrait._display.batch_progress`.

Watching a job, a ticker task runs beside the ``async for`` over :meth:`Session.watch`: once a
second it reads the watcher's ``elapsed``, ``polls``, ``consecutive_failures`` and ``last_error``,
so that the display moves while nothing changes (a status line rewritten in place on a
terminal, the bar's elapsed time in a notebook) and says so when polls keep failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

from .._jobs.schedule import PollPolicy
from .._jobs.watch import JobUpdate
from ..errors import MalformedResponse
from ..models import TrainJob, TrainResult
from .batch_progress import BatchProgress, batch_progress
from .watch_display import (
    Echo,
    JobDisplay,
    WatchStatus,
    _TqdmJobDisplay,
    duration,
    job_display,
    job_line,
    tqdm_module,
)

if TYPE_CHECKING:
    from .._session import Session

__all__ = [
    "BatchProgress",
    "JobDisplay",
    "WatchStatus",
    "batch_progress",
    "duration",
    "follow",
    "job_display",
    "job_line",
    "watch_lines",
    "watch_with_progress",
]

Sleep = Callable[[float], Awaitable[Any]]


class _Watching(WatchStatus, Protocol):
    """A watcher: the updates, and the status the ticker reads."""

    def __aiter__(self) -> AsyncIterator[JobUpdate]: ...

    async def __anext__(self) -> JobUpdate: ...


async def _stop(task: asyncio.Task[None]) -> BaseException | None:
    """Cancel the ticker and wait for it; its exception, if it died of one."""
    task.cancel()
    await asyncio.wait({task})
    return None if task.cancelled() else task.exception()


async def follow(
    watch: _Watching,
    display: JobDisplay,
    *,
    tick: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> JobUpdate:
    """Run ``watch`` to its end, showing it on ``display``; returns the last update.

    Each update goes to ``display.changed``; a ticker task beside the ``async for`` calls
    ``display.tick(watch)`` every ``tick`` seconds (``sleep`` waits; tests pass their own). When
    the watch raises (a deadline, Ctrl-C), the display gets a last tick, so failing polls are
    reported even if the deadline came first, and is closed.
    """

    async def ticker() -> None:
        while True:
            await sleep(tick)
            display.tick(watch)

    task = asyncio.ensure_future(ticker())
    last: JobUpdate | None = None
    try:
        async for update in watch:
            display.changed(update)
            last = update
    except BaseException:
        await _stop(task)
        if not isinstance(last, JobUpdate) or not last.done:
            display.tick(watch)
        display.close()
        raise
    error = await _stop(task)
    display.close()
    if error is not None:
        raise error
    if last is None:  # pragma: no cover - a watch yields at least once or raises
        raise MalformedResponse(f"watching job {display.job_id} gave no state")
    return last


def _job_id(job: int | TrainJob) -> int:
    return job.job_id if isinstance(job, TrainJob) else job


def _deadline(watch: Any, poll: PollPolicy | None, timeout: float | None) -> float | None:
    """The watch's deadline in seconds, as :meth:`Session.watch` applies it."""
    if timeout is not None:
        return timeout
    policy = poll if poll is not None else getattr(watch, "policy", None)
    return getattr(policy, "timeout", None)


async def watch_lines(
    session: Session,
    job: int | TrainJob,
    *,
    echo: Echo = print,
    poll: PollPolicy | None = None,
    timeout: float | None = None,
    stream: IO[str] | None = None,
    tick: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> TrainResult:
    """Watch ``job`` on ``session`` and return its result, showing its progress.

    Prints a :func:`job_line` per state change with ``echo`` and says so when polls keep
    failing; when ``stream`` is a terminal, a status line on it shows the state and the elapsed
    time, rewritten in place every ``tick`` seconds. Raises
    :class:`~aiportrait.errors.JobFailed` or :class:`~aiportrait.errors.JobTimeout` like
    :meth:`Session.wait`.
    """
    watch = session.watch(job, poll=poll, timeout=timeout)
    deadline = _deadline(watch, poll, timeout)
    display = job_display(_job_id(job), echo=echo, stream=stream, deadline=deadline)
    await follow(watch, display, tick=tick, sleep=sleep)
    return await watch.result()


async def watch_with_progress(
    session: Session,
    job: int | TrainJob,
    *,
    poll: PollPolicy | None = None,
    timeout: float | None = None,
    tick: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> TrainResult:
    """Wait for a training like :meth:`Session.wait`, showing its progress live.

    Meant for notebooks: with tqdm installed (``pip install 'aiportrait[notebook]'`` brings
    ipywidgets too, for Jupyter's widget) it shows ``tqdm.auto``'s display: the job and its
    state (``job 12 RUNNING``) and the time waited (``1m02s``), updated every ``tick``
    seconds, and a line when polls keep failing. Without tqdm it prints one line per state
    change. Example::

        job = await session.train(photos)
        result = await aiportrait.watch_with_progress(session, job)

    Raises :class:`~aiportrait.errors.JobFailed` or :class:`~aiportrait.errors.JobTimeout`.
    """
    auto = tqdm_module("tqdm.auto")
    if auto is None:
        return await watch_lines(session, job, poll=poll, timeout=timeout, tick=tick, sleep=sleep)
    watch = session.watch(job, poll=poll, timeout=timeout)
    display = _TqdmJobDisplay(_job_id(job), auto, deadline=_deadline(watch, poll, timeout))
    await follow(watch, display, tick=tick, sleep=sleep)
    return await watch.result()
