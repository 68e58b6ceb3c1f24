"""Progress display: live job lines, a batch progress bar, and a notebook-friendly watcher.

tqdm is optional (the ``progress`` extra; ``notebook`` adds ipywidgets for Jupyter's widget).
With it, a batch on a terminal shows a tqdm bar and :func:`watch_with_progress` shows
``tqdm.auto`` (the notebook widget in Jupyter); without it, or when the stream is not a terminal,
plain lines are printed instead.

Watching a job, a ticker task runs beside the ``async for`` over :meth:`Session.watch`: once a
second it reads the watcher's ``elapsed``, ``polls``, ``consecutive_failures`` and ``last_error``,
so that the display moves while nothing changes (a status line rewritten in place on a
terminal, the bar's elapsed time in a notebook) and says so when polls keep failing.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

from ._watch import JobUpdate, PollPolicy
from .errors import MalformedResponse
from .models import JobState, TrainJob, TrainResult

if TYPE_CHECKING:
    from ._session import Session

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

Echo = Callable[[str], None]
Sleep = Callable[[float], Awaitable[Any]]

FAILURES_TO_REPORT = 3
"""Failed polls in a row before the display says that polls are failing."""
HEARTBEAT = 300.0
"""Without a live display: seconds between "still RUNNING" lines while nothing changes."""


def _tqdm_module(name: str = "tqdm") -> Any:
    """The tqdm module (``tqdm`` or ``tqdm.auto``), or ``None`` when tqdm is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def duration(seconds: float) -> str:
    """``42s``, ``1m02s``, ``1h02m03s``: whole seconds, for people."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def job_line(update: JobUpdate) -> str:
    """One line for a job state change: state, elapsed seconds, polls (and why it failed)."""
    line = (
        f"job {update.job_id}: {update.state.name} after {update.elapsed:.1f}s "
        f"({update.polls} poll{'s' if update.polls != 1 else ''})"
    )
    if update.remaining is not None:
        line += f", about {duration(update.remaining)} left"
    if update.state is JobState.FAILED and update.message:
        line += f": {update.message}"
    return line


class WatchStatus(Protocol):
    """What the ticker reads from a watcher (:class:`~aiportrait.JobWatch` has all four)."""

    @property
    def elapsed(self) -> float:
        """Seconds since the watch started."""

    @property
    def polls(self) -> int:
        """Polls made so far, failed ones included."""

    @property
    def consecutive_failures(self) -> int:
        """Polls failed in a row since the last answer (0 after an answer)."""

    @property
    def last_error(self) -> Exception | None:
        """Why the last poll failed, while polls are failing."""


class _Watching(WatchStatus, Protocol):
    """A watcher: the updates, and the status the ticker reads."""

    def __aiter__(self) -> AsyncIterator[JobUpdate]: ...

    async def __anext__(self) -> JobUpdate: ...


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class JobDisplay:
    """Shows a watched job as plain lines: one per state change, and a word on trouble.

    :meth:`changed` gets each state change; :meth:`tick` is called about once a second with the
    watcher's status. After ``failures`` failed polls in a row it says so (with the last error
    and the time left before the deadline), again each time the count doubles, and once more
    when polls answer again. Every ``heartbeat`` seconds without a change it prints a "still
    RUNNING" line (``None``: never), so a log shows the job is being watched.

    Args:
        job_id: the watched job.
        echo: prints one line.
        deadline: the watch's deadline in seconds (``None``: none).
        failures: failed polls in a row before saying so.
        heartbeat: seconds between "still ..." lines while nothing changes, or ``None``.
    """

    def __init__(
        self,
        job_id: int,
        echo: Echo,
        *,
        deadline: float | None = None,
        failures: int = FAILURES_TO_REPORT,
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        self.job_id = job_id
        self.state: JobState | None = None
        self._echo = echo
        self._deadline = deadline
        self._failures = failures
        self._next_report = failures
        self._worst = 0
        self._heartbeat = heartbeat
        self._quiet_since = 0.0
        self._elapsed = 0.0
        self._left: float | None = None  # expected time left, when the watch expects an end

    # -- the words -----------------------------------------------------------------------

    def label(self) -> str:
        """``job 12 RUNNING`` (``job 12 waiting`` before the first answer)."""
        return f"job {self.job_id} {self.state.name if self.state is not None else 'waiting'}"

    def times(self) -> str:
        """``1m32s`` waited, and ``, ~28s left`` when an end is expected."""
        left = "" if self._left is None else f", ~{duration(self._left)} left"
        return f"{duration(self._elapsed)}{left}"

    def failure_line(self, status: WatchStatus) -> str:
        """``job 12: 3 polls failed in a row, last: ConnectError: ...; still trying ...``."""
        error = status.last_error
        last = f", last: {type(error).__name__}: {_one_line(str(error))}" if error else ""
        if self._deadline is None:
            until = "still trying (no deadline)"
        else:
            left = self._deadline - status.elapsed
            until = (
                f"still trying until the {duration(self._deadline)} deadline "
                f"({duration(left)} left)"
            )
        n = status.consecutive_failures
        return f"job {self.job_id}: {n} poll{'s' if n != 1 else ''} failed in a row{last}; {until}"

    # -- the events ----------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self._quiet_since = self._elapsed
        self._echo(line)

    def changed(self, update: JobUpdate) -> None:
        """A state change: print its :func:`job_line`."""
        self.state = update.state
        self._elapsed = update.elapsed
        self._left = update.remaining
        self._say(job_line(update))

    def tick(self, status: WatchStatus) -> None:
        """The ticker's call: report failing polls, their end, and the heartbeat."""
        self._elapsed = status.elapsed
        if self.state is None or not self.state.terminal:
            self._left = getattr(status, "expected_remaining", None)
        failing = status.consecutive_failures
        if failing >= self._next_report:
            self._say(self.failure_line(status))
            self._next_report = 2 * failing
            self._worst = failing
        elif failing == 0 and self._worst:
            self._say(f"job {self.job_id}: polls answer again (after {self._worst} failed)")
            self._next_report, self._worst = self._failures, 0
        elif self._worst:
            self._worst = max(self._worst, failing)
        quiet = status.elapsed - self._quiet_since
        if self._heartbeat is not None and quiet >= self._heartbeat:
            state = self.state.name if self.state is not None else "waiting for an answer"
            self._say(
                f"job {self.job_id}: still {state} after {duration(status.elapsed)} "
                f"({status.polls} polls)"
            )

    def close(self) -> None:
        """The watch ended (or stopped)."""


class _LiveJobDisplay(JobDisplay):
    """On a terminal: a status line rewritten in place (``job 12 RUNNING 1m32s``).

    State changes and warnings are printed as lines above it, as in :class:`JobDisplay`.
    """

    def __init__(self, job_id: int, stream: IO[str], *, deadline: float | None = None) -> None:
        super().__init__(job_id, self._line, deadline=deadline, heartbeat=None)
        self._stream = stream
        self._status = ""
        self._failing = 0

    def status(self) -> str:
        """The status line: state, elapsed time, and failing polls if any."""
        text = f"{self.label()} {self.times()}"
        if self._failing:
            text += f", {self._failing} poll{'s' if self._failing != 1 else ''} failed in a row"
        return text

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def _line(self, line: str) -> None:
        self._write(f"\r\033[K{line}\n" + (f"{self._status}" if self._status else ""))

    def changed(self, update: JobUpdate) -> None:
        """Print the state line and show the new state in the status line."""
        self._status = ""
        super().changed(update)
        self._redraw()

    def tick(self, status: WatchStatus) -> None:
        """Redraw the status line with the elapsed time."""
        self._failing = status.consecutive_failures
        super().tick(status)
        self._redraw()

    def _redraw(self) -> None:
        self._status = self.status()
        self._write(f"\r\033[K{self._status}")

    def close(self) -> None:
        """Clear the status line."""
        if self._status:
            self._write("\r\033[K")
            self._status = ""


class _TqdmJobDisplay(JobDisplay):
    """A tqdm display: description ``job 12 RUNNING``, postfix the elapsed time ``1m02s``."""

    BAR_FORMAT = "{desc}{postfix}"
    """No count, unit or rate: a job's polls mean nothing to its owner."""

    def __init__(self, job_id: int, tqdm: Any, *, deadline: float | None = None) -> None:
        super().__init__(job_id, self._above, deadline=deadline, heartbeat=None)
        self._tqdm = tqdm
        self._bar = tqdm.tqdm(total=None, desc=self.label(), bar_format=self.BAR_FORMAT, leave=True)
        self._failing = 0

    def _above(self, line: str) -> None:
        self._tqdm.tqdm.write(line)

    def _show(self) -> None:
        postfix = self.times()
        if self._failing:
            postfix += f", {self._failing} poll{'s' if self._failing != 1 else ''} failed"
        self._bar.set_description_str(self.label(), refresh=False)
        self._bar.set_postfix_str(postfix, refresh=True)

    def changed(self, update: JobUpdate) -> None:
        """Show the new state (no line: the bar shows it)."""
        self.state = update.state
        self._elapsed = update.elapsed
        self._left = update.remaining
        self._failing = 0
        self._show()

    def tick(self, status: WatchStatus) -> None:
        """Show the elapsed time (and failing polls)."""
        self._failing = status.consecutive_failures
        super().tick(status)
        self._show()

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()


def job_display(
    job_id: int,
    *,
    echo: Echo = print,
    stream: IO[str] | None = None,
    deadline: float | None = None,
) -> JobDisplay:
    """The display for watching ``job_id``: live on a terminal ``stream``, else ``echo`` lines."""
    if stream is not None and _isatty(stream):
        return _LiveJobDisplay(job_id, stream, deadline=deadline)
    return JobDisplay(job_id, echo, deadline=deadline)


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
    auto = _tqdm_module("tqdm.auto")
    if auto is None:
        return await watch_lines(session, job, poll=poll, timeout=timeout, tick=tick, sleep=sleep)
    watch = session.watch(job, poll=poll, timeout=timeout)
    display = _TqdmJobDisplay(_job_id(job), auto, deadline=_deadline(watch, poll, timeout))
    await follow(watch, display, tick=tick, sleep=sleep)
    return await watch.result()


class BatchProgress:
    """Counts finished batch items and shows them; this base class shows nothing.

    Use :func:`batch_progress` to get the right display for a stream.
    """

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self._clock = clock
        self._started = clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the progress started."""
        return self._clock() - self._started

    @property
    def rate(self) -> float:
        """Finished items per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def advance(self, ok: bool) -> None:
        """Count one finished item (``ok`` False for a failed one)."""
        self.done += 1
        if not ok:
            self.failed += 1

    def write(self, text: str, file: IO[str]) -> None:
        """Print a line to ``file`` without breaking the display."""
        print(text, file=file, flush=True)

    def summary(self) -> str:
        """``3/10 done, 1 failed, 2.5/s, 1.2s``."""
        return (
            f"{self.done}/{self.total} done, {self.failed} failed, "
            f"{self.rate:.1f}/s, {self.elapsed:.1f}s"
        )

    def close(self) -> None:
        """End the display."""


class _PlainProgress(BatchProgress):
    """Plain ``progress: ...`` lines: at most one per ``interval`` seconds, and a final one."""

    def __init__(
        self,
        total: int,
        stream: IO[str],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(total, clock=clock)
        self._stream = stream
        self._interval = interval
        self._last_line = self._started
        self._shown = -1

    def _show(self) -> None:
        print(f"progress: {self.summary()}", file=self._stream, flush=True)
        self._last_line = self._clock()
        self._shown = self.done

    def advance(self, ok: bool) -> None:
        """Count one item; print a line when ``interval`` seconds passed since the last."""
        super().advance(ok)
        if self._clock() - self._last_line >= self._interval:
            self._show()

    def close(self) -> None:
        """Print the final line (unless the last line already showed the same count)."""
        if self._shown != self.done:
            self._show()


class _TqdmProgress(BatchProgress):
    """A tqdm bar: done of total, the rate, and failed items as a postfix."""

    def __init__(self, total: int, stream: IO[str], tqdm: Any) -> None:
        super().__init__(total)
        self._tqdm = tqdm
        self._bar = tqdm.tqdm(
            total=total, file=stream, desc="batch", unit="item", dynamic_ncols=True
        )
        self._bar.set_postfix(failed=0)

    def advance(self, ok: bool) -> None:
        """Count one item and move the bar."""
        super().advance(ok)
        self._bar.set_postfix(failed=self.failed, refresh=False)
        self._bar.update(1)

    def write(self, text: str, file: IO[str]) -> None:
        """Print above the bar."""
        self._tqdm.tqdm.write(text, file=file)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()


def batch_progress(
    total: int,
    stream: IO[str],
    *,
    enabled: bool = True,
    interval: float = 5.0,
) -> BatchProgress:
    """The progress display for a batch of ``total`` items, shown on ``stream``.

    A tqdm bar when tqdm is installed and ``stream`` is a terminal; plain ``progress:`` lines
    (every ``interval`` seconds, and a final one) otherwise; nothing when not ``enabled``.
    """
    if not enabled:
        return BatchProgress(total)
    isatty = getattr(stream, "isatty", None)
    tqdm = _tqdm_module() if isatty is not None and isatty() else None
    if tqdm is not None:
        return _TqdmProgress(total, stream, tqdm)
    return _PlainProgress(total, stream, interval)
