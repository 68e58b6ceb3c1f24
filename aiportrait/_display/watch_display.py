"""How a watched job is shown: a line per state change, a live status line, a tqdm bar.

A display gets each :class:`~aiportrait.JobUpdate` (``changed``) and, from a ticker beside the
watch, the watcher's status once a second (``tick``: ``elapsed``, ``polls``,
``consecutive_failures``, ``last_error`` and, when an end is expected, ``expected_remaining``),
so it moves while nothing changes and says so when polls keep failing. tqdm is optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import IO, Any, Protocol

from .._jobs.watch import JobUpdate
from ..models import JobState

__all__ = [
    "FAILURES_TO_REPORT",
    "HEARTBEAT",
    "Echo",
    "JobDisplay",
    "WatchStatus",
    "duration",
    "job_display",
    "job_line",
    "tqdm_module",
]

Echo = Callable[[str], None]

FAILURES_TO_REPORT = 3
"""Failed polls in a row before the display says that polls are failing."""
HEARTBEAT = 300.0
"""Without a live display: seconds between "still RUNNING" lines while nothing changes."""


def tqdm_module(name: str = "tqdm") -> Any:
    """The tqdm module (``tqdm`` or ``tqdm.auto``), or ``None`` when tqdm is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def isatty(stream: IO[str]) -> bool:
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
    if stream is not None and isatty(stream):
        return _LiveJobDisplay(job_id, stream, deadline=deadline)
    return JobDisplay(job_id, echo, deadline=deadline)
