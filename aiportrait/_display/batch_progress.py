"""Progress of a batch: a tqdm bar on a terminal, a plain line now and then elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

from .watch_display import tqdm_module

__all__ = ["BatchProgress", "batch_progress", "paused_words"]


class BatchProgress:
    """Counts finished batch items and shows them; this base class shows nothing.

    Use :func:`batch_progress` to get the right display for a stream.
    """

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.pause = ""
        """Why trains and creates wait for the service (``""``: they do not)."""
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

    def paused(self, reason: str) -> None:
        """Say that trains and creates wait because the service seems down (``reason``, shown
        as it is: escape it first), or with ``""`` that they go on again."""
        self.pause = reason

    def write(self, text: str, file: IO[str]) -> None:
        """Print a line to ``file`` without breaking the display."""
        print(text, file=file, flush=True)

    def summary(self) -> str:
        """``3/10 done, 1 failed, 2.5/s, 1.2s`` (and, in a pause, why: ``; paused: ...``)."""
        line = (
            f"{self.done}/{self.total} done, {self.failed} failed, "
            f"{self.rate:.1f}/s, {self.elapsed:.1f}s"
        )
        return f"{line}; {paused_words(self.pause)}" if self.pause else line

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

    def paused(self, reason: str) -> None:
        """Print a line at once: the pause and why, or that it is over."""
        was = self.pause
        super().paused(reason)
        if reason:
            self._show()
        elif was:
            print(f"progress: {self.summary()}; resumed", file=self._stream, flush=True)

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
        self._bar.set_postfix(self._postfix(), refresh=False)
        self._bar.update(1)

    def paused(self, reason: str) -> None:
        """Show the pause (or its end) on the bar at once."""
        super().paused(reason)
        self._bar.set_postfix(self._postfix())

    def _postfix(self) -> dict[str, object]:
        if self.pause:
            return {"failed": self.failed, "paused": paused_words(self.pause)}
        return {"failed": self.failed}

    def write(self, text: str, file: IO[str]) -> None:
        """Print above the bar."""
        self._tqdm.tqdm.write(text, file=file)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()


def paused_words(reason: str) -> str:
    """What a status line says of an outage pause (``reason``: why; escape it first)."""
    return f"paused: the service seems down ({reason}); trainings and creations wait for it"


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
    tqdm = tqdm_module() if isatty is not None and isatty() else None
    if tqdm is not None:
        return _TqdmProgress(total, stream, tqdm)
    return _PlainProgress(total, stream, interval)
