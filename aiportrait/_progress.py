"""Progress display: live job lines, a batch progress bar, and a notebook-friendly watcher.

tqdm is optional (the ``progress`` extra). With it, a batch on a terminal shows a tqdm bar and
:func:`watch_with_progress` shows ``tqdm.auto`` (the notebook widget in Jupyter); without it, or
when the stream is not a terminal, plain lines are printed instead.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ._watch import JobUpdate, PollPolicy, result_of
from .errors import MalformedResponse
from .models import JobState, TrainJob, TrainResult

if TYPE_CHECKING:
    from ._session import Session

__all__ = [
    "BatchProgress",
    "batch_progress",
    "job_line",
    "watch_lines",
    "watch_with_progress",
]

Echo = Callable[[str], None]


def _tqdm_module(name: str = "tqdm") -> Any:
    """The tqdm module (``tqdm`` or ``tqdm.auto``), or ``None`` when tqdm is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def job_line(update: JobUpdate) -> str:
    """One line for a job state change: state, elapsed seconds, polls (and why it failed)."""
    line = (
        f"job {update.job_id}: {update.state.name} after {update.elapsed:.1f}s "
        f"({update.polls} poll{'s' if update.polls != 1 else ''})"
    )
    if update.state is JobState.FAILED and update.message:
        line += f": {update.message}"
    return line


async def watch_lines(
    session: Session,
    job: int | TrainJob,
    *,
    echo: Echo = print,
    poll: PollPolicy | None = None,
    timeout: float | None = None,
) -> TrainResult:
    """Watch ``job`` on ``session``, echo a :func:`job_line` per state change, return the result.

    Raises :class:`~aiportrait.errors.JobFailed` or :class:`~aiportrait.errors.JobTimeout` like
    :meth:`Session.wait`.
    """
    last: JobUpdate | None = None
    async for update in session.watch(job, poll=poll, timeout=timeout):
        echo(job_line(update))
        last = update
    if last is None:  # pragma: no cover - a watch yields at least once or raises
        raise MalformedResponse(f"watching job {job} gave no state")
    return result_of(last, job.model_id if isinstance(job, TrainJob) else None)


async def watch_with_progress(
    session: Session,
    job: int | TrainJob,
    *,
    poll: PollPolicy | None = None,
    timeout: float | None = None,
) -> TrainResult:
    """Wait for a training like :meth:`Session.wait`, showing its progress live.

    Meant for notebooks: with tqdm installed it shows ``tqdm.auto``'s display (the notebook
    widget under Jupyter, a text bar elsewhere) with the job's state and polls; without tqdm it
    prints one line per state change. Example::

        job = await session.train(photos)
        result = await aiportrait.watch_with_progress(session, job)

    Raises :class:`~aiportrait.errors.JobFailed` or :class:`~aiportrait.errors.JobTimeout`.
    """
    auto = _tqdm_module("tqdm.auto")
    if auto is None:
        return await watch_lines(session, job, poll=poll, timeout=timeout)
    job_id = job.job_id if isinstance(job, TrainJob) else job
    bar = auto.tqdm(total=None, desc=f"job {job_id}", unit="poll", leave=True)
    try:
        last: JobUpdate | None = None
        async for update in session.watch(job, poll=poll, timeout=timeout):
            bar.set_description(f"job {job_id} {update.state.name}", refresh=False)
            bar.update(update.polls - bar.n)
            last = update
        if last is None:  # pragma: no cover - a watch yields at least once or raises
            raise MalformedResponse(f"watching job {job_id} gave no state")
        return result_of(last, job.model_id if isinstance(job, TrainJob) else None)
    finally:
        bar.close()


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
