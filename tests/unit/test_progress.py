"""Watching a job with a display that moves: the ticker beside the ``async for``, driven by hand.

Nothing here depends on real time: the watcher is a fake whose updates and status the test sets,
and the ticker's ``sleep`` is a gate the test opens one tick at a time (each step returns once
the code under test has handled it and is waiting again).
"""

from __future__ import annotations

import asyncio
import io
import types
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs
import pytest

import aiportrait
from aiportrait._display import progress as _progress
from aiportrait.errors import ConnectError, JobTimeout
from aiportrait.models import Job, JobState, TrainResult

T = TypeVar("T")


class Gate(Generic[T]):
    """Where the code under test waits; :meth:`step` lets it through once and waits for it."""

    def __init__(self) -> None:
        self._parked: asyncio.Queue[None] = asyncio.Queue()
        self._go: asyncio.Queue[T] = asyncio.Queue()

    async def wait(self) -> T:
        """Called by the code under test: park until the test steps."""
        self._parked.put_nowait(None)
        return await self._go.get()

    async def step(self, value: T, *, last: bool = False) -> None:
        """Let the code through with ``value``; return when it waits here again (unless last)."""
        await self._parked.get()
        self._go.put_nowait(value)
        if not last:
            await self._parked.get()
            self._parked.put_nowait(None)


class Ticks(Gate[None]):
    """The ticker's sleep: one :meth:`tick` is one second gone by."""

    async def sleep(self, _seconds: float) -> None:
        await self.wait()

    async def tick(self) -> None:
        await self.step(None)


Item = Any  # a JobUpdate to yield, an exception to raise, or None to end


class FakeWatch(Gate[Item]):
    """A watcher: the test sets its status and hands it the updates."""

    def __init__(self, job_id: int = 12) -> None:
        super().__init__()
        self.job_id = job_id
        self.elapsed = 0.0
        self.polls = 0
        self.consecutive_failures = 0
        self.last_error: Exception | None = None
        self.last: aiportrait.JobUpdate | None = None

    def __aiter__(self) -> FakeWatch:
        return self

    async def result(self) -> TrainResult:
        """As ``JobWatch.result`` on a finished watch."""
        assert self.last is not None and self.last.result is not None
        return self.last.result

    async def __anext__(self) -> aiportrait.JobUpdate:
        item = await self.wait()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, aiportrait.JobUpdate)
        self.last = item
        return item

    def update(self, state: JobState, previous: JobState | None = None) -> aiportrait.JobUpdate:
        result = TrainResult("m-12", 61.0) if state is JobState.SUCCESS else None
        job = Job(self.job_id, state, "success" if result else "", result=result)
        return aiportrait.JobUpdate(self.job_id, state, previous, self.elapsed, self.polls, job)


class FakeSession:
    """Just ``watch``, returning the fake."""

    def __init__(self, watch: FakeWatch) -> None:
        self._watch = watch

    def watch(self, job: Any, *, poll: Any = None, timeout: float | None = None) -> FakeWatch:
        return self._watch


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _started(coro: Awaitable[T]) -> asyncio.Task[T]:
    task: asyncio.Task[T] = asyncio.ensure_future(coro)
    await asyncio.sleep(0)
    return task


async def _ended(task: asyncio.Task[T]) -> T:
    return await asyncio.wait_for(task, 30)  # a guard against a hang, not a timing assertion


def test_duration_reads_like_a_clock() -> None:
    got = [_progress.duration(s) for s in (0, 7.9, 62, 92, 3599, 3723, -1)]
    assert got == ["0s", "7s", "1m02s", "1m32s", "59m59s", "1h02m03s", "0s"]


async def test_live_status_line_shows_state_and_elapsed_time_rewritten_in_place() -> None:
    watch, ticks, stream = FakeWatch(), Ticks(), Terminal()
    display = _progress.job_display(12, stream=stream, deadline=1800)
    task = await _started(_progress.follow(watch, display, sleep=ticks.sleep))

    watch.polls, watch.elapsed = 2, 2.0
    await watch.step(watch.update(JobState.RUNNING))
    assert stream.getvalue().endswith(
        "job 12: RUNNING after 2.0s (2 polls)\n\r\x1b[Kjob 12 RUNNING 2s"
    )
    watch.elapsed = 92.4
    await ticks.tick()
    assert stream.getvalue().endswith("\r\x1b[Kjob 12 RUNNING 1m32s")  # no newline: in place
    lines_before = stream.getvalue().count("\n")
    watch.elapsed = 93.5
    await ticks.tick()
    assert stream.getvalue().endswith("\r\x1b[Kjob 12 RUNNING 1m33s")
    assert stream.getvalue().count("\n") == lines_before  # a tick adds no line

    watch.elapsed, watch.polls = 95.0, 9
    await watch.step(watch.update(JobState.SUCCESS, JobState.RUNNING))
    await watch.step(None, last=True)
    last = await _ended(task)
    assert last.state is JobState.SUCCESS
    text = stream.getvalue()
    assert "job 12: SUCCESS after 95.0s (9 polls)\n" in text
    assert text.endswith("\r\x1b[K")  # the status line is cleared at the end


async def test_failing_polls_are_reported_with_the_last_error_and_the_time_left() -> None:
    watch, ticks, lines = FakeWatch(), Ticks(), []
    display = _progress.job_display(12, echo=lines.append, stream=io.StringIO(), deadline=1800)
    task = await _started(_progress.follow(watch, display, sleep=ticks.sleep))
    await watch.step(watch.update(JobState.RUNNING))
    lines.clear()

    watch.elapsed, watch.polls = 120.0, 6
    for failing in (1, 2):
        watch.consecutive_failures = failing
        watch.last_error = ConnectError("Cannot connect to host h.example:443")
        await ticks.tick()
    assert lines == []  # one or two failures: nothing said yet
    watch.consecutive_failures = 3
    await ticks.tick()
    assert lines == [
        "job 12: 3 polls failed in a row, last: ConnectError: Cannot connect to host "
        "h.example:443; still trying until the 30m00s deadline (28m00s left)"
    ]
    for failing in (4, 5):
        watch.consecutive_failures = failing
        await ticks.tick()
    assert len(lines) == 1  # not every tick
    watch.consecutive_failures, watch.elapsed = 6, 300.0
    await ticks.tick()
    assert lines[-1].startswith("job 12: 6 polls failed in a row, last: ConnectError")
    assert lines[-1].endswith("(25m00s left)")
    watch.consecutive_failures, watch.last_error = 0, None
    await ticks.tick()
    assert lines[-1] == "job 12: polls answer again (after 6 failed)"
    assert len(lines) == 3

    await watch.step(watch.update(JobState.SUCCESS, JobState.RUNNING))
    await watch.step(None, last=True)
    await _ended(task)


async def test_plain_lines_say_still_running_every_five_minutes_not_every_second() -> None:
    watch, ticks, lines = FakeWatch(), Ticks(), []
    display = _progress.job_display(12, echo=lines.append, stream=io.StringIO(), deadline=None)
    task = await _started(_progress.follow(watch, display, sleep=ticks.sleep))
    watch.elapsed, watch.polls = 1.0, 1
    await watch.step(watch.update(JobState.RUNNING))
    for second in (2, 60, 299):
        watch.elapsed = float(second)
        await ticks.tick()
    assert lines == ["job 12: RUNNING after 1.0s (1 poll)"]  # not a line a second
    watch.elapsed, watch.polls = 301.0, 14
    await ticks.tick()
    assert lines[-1] == "job 12: still RUNNING after 5m01s (14 polls)"
    watch.elapsed = 302.0
    await ticks.tick()
    assert len(lines) == 2
    await watch.step(JobTimeout(12, 1, 302.0), last=True)
    with pytest.raises(JobTimeout, match=r"last state RUNNING"):
        await _ended(task)


async def test_a_deadline_reached_while_polls_fail_still_says_why() -> None:
    watch, ticks, lines = FakeWatch(), Ticks(), []
    display = _progress.job_display(5, echo=lines.append, deadline=3.0)
    task = await _started(_progress.follow(watch, display, sleep=ticks.sleep))
    watch.elapsed, watch.polls, watch.consecutive_failures = 3.0, 9, 9
    watch.last_error = ConnectError("Connection refused")
    await watch.step(JobTimeout(5, None, 3.0), last=True)  # before any tick
    with pytest.raises(JobTimeout, match=r"\(no state seen\)"):
        await _ended(task)
    assert lines == [
        "job 5: 9 polls failed in a row, last: ConnectError: Connection refused; "
        "still trying until the 3s deadline (0s left)"
    ]
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_the_ticker_stops_with_the_watch_even_when_cancelled() -> None:
    watch, ticks, stream = FakeWatch(), Ticks(), Terminal()
    display = _progress.job_display(12, stream=stream)
    task = await _started(_progress.follow(watch, display, sleep=ticks.sleep))
    await watch.step(watch.update(JobState.INIT))
    await ticks.tick()
    task.cancel()  # Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await _ended(task)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert stream.getvalue().endswith("\r\x1b[K")  # the terminal is left clean


# -- the notebook bar ----------------------------------------------------------------------------


class FakeBar:
    """Records what a tqdm bar is told."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.desc = str(kwargs.get("desc", ""))
        self.postfix = ""
        self.closed = False
        self.shown: list[str] = []

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix_str(self, postfix: str, refresh: bool = True) -> None:
        self.postfix = postfix
        if refresh:
            self.shown.append(f"{self.desc}, {postfix}")

    def close(self) -> None:
        self.closed = True


def _fake_tqdm() -> tuple[types.SimpleNamespace, list[FakeBar], list[str]]:
    bars: list[FakeBar] = []
    written: list[str] = []

    def make(**kwargs: Any) -> FakeBar:
        bars.append(FakeBar(**kwargs))
        return bars[-1]

    factory: Callable[..., FakeBar] = make
    tqdm = types.SimpleNamespace(tqdm=factory)
    factory.write = written.append  # type: ignore[attr-defined]
    return tqdm, bars, written


async def test_notebook_bar_shows_the_state_and_the_time_waited_not_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tqdm, bars, written = _fake_tqdm()
    monkeypatch.setattr(_progress, "tqdm_module", lambda name="tqdm": tqdm)
    watch, ticks = FakeWatch(job_id=1), Ticks()
    session: Any = FakeSession(watch)
    task = await _started(_progress.watch_with_progress(session, 1, timeout=600, sleep=ticks.sleep))
    await watch.step(watch.update(JobState.INIT))
    (bar,) = bars
    assert bar.kwargs["bar_format"] == "{desc}{postfix}"  # no count, no unit, no rate
    assert "unit" not in bar.kwargs
    assert (bar.desc, bar.postfix) == ("job 1 INIT", "0s")
    watch.elapsed, watch.polls = 62.0, 5
    await watch.step(watch.update(JobState.RUNNING, JobState.INIT))
    await ticks.tick()
    assert (bar.desc, bar.postfix) == ("job 1 RUNNING", "1m02s")
    watch.consecutive_failures, watch.last_error = 3, ConnectError("refused")
    await ticks.tick()
    assert bar.postfix == "1m02s, 3 polls failed"
    assert written == [
        "job 1: 3 polls failed in a row, last: ConnectError: refused; "
        "still trying until the 10m00s deadline (8m58s left)"
    ]
    watch.consecutive_failures, watch.elapsed = 0, 75.0
    await watch.step(watch.update(JobState.SUCCESS, JobState.RUNNING))
    await watch.step(None, last=True)
    result = await _ended(task)
    assert result.model_id == "m-12"
    assert (bar.desc, bar.postfix, bar.closed) == ("job 1 SUCCESS", "1m15s", True)
    assert "poll" not in "".join(bar.shown).replace("polls failed", "")


async def test_real_tqdm_bar_reads_job_state_and_time() -> None:
    tqdm_std = pytest.importorskip("tqdm.std")
    stream = io.StringIO()

    class ToStream(tqdm_std.tqdm):  # type: ignore[misc, name-defined]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(file=stream, **kwargs)

    display = _progress._TqdmJobDisplay(1, types.SimpleNamespace(tqdm=ToStream))
    watch = FakeWatch(job_id=1)
    watch.elapsed = 62.0
    display.changed(watch.update(JobState.RUNNING))
    display.tick(watch)
    display.close()
    text = stream.getvalue()
    assert "job 1 RUNNING, 1m02s" in text
    assert "poll" not in text
    assert "it/s" not in text


def test_the_expected_time_left_is_shown_when_the_watch_expects_an_end() -> None:
    from aiportrait._display.progress import job_line

    watch = FakeWatch()
    update = watch.update(JobState.RUNNING, JobState.INIT)
    line = job_line(attrs.evolve(update, remaining=28.0))
    assert line.endswith("about 28s left")
    assert "left" not in job_line(update)  # no expected end: nothing is made up


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_batch_progress_uses_tqdm_on_a_terminal_and_lines_elsewhere() -> None:
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    bar = _progress.batch_progress(3, terminal)
    assert type(bar).__name__ == "_TqdmProgress"
    bar.advance(True)
    bar.advance(False)
    shown = io.StringIO()
    bar.write("a result line", shown)
    bar.close()
    assert "failed=1" in terminal.getvalue()
    assert "2/3" in terminal.getvalue()
    assert shown.getvalue() == "a result line\n"

    plain = io.StringIO()
    lines = _progress.batch_progress(2, plain, interval=0.0)
    lines.advance(True)
    lines.advance(False)
    lines.close()  # the last line already showed 2/2: not repeated
    text = plain.getvalue().splitlines()
    assert [t.split(",")[0] for t in text] == ["progress: 1/2 done", "progress: 2/2 done"]
    assert "1 failed" in text[1]

    silent = _progress.batch_progress(2, terminal, enabled=False)
    assert type(silent) is _progress.BatchProgress


def test_batch_progress_says_when_it_pauses_for_an_outage_and_why() -> None:
    plain = io.StringIO()
    lines = _progress.batch_progress(3, plain, interval=3600.0)
    lines.advance(True)
    lines.paused("HTTP 500 SERVICE_ERROR")  # shown at once, whatever the interval
    lines.paused("HTTP 500 SERVICE_ERROR")  # the same pause, told again: one more line
    lines.paused("")
    lines.paused("")  # no pause to end: nothing
    text = plain.getvalue().splitlines()
    assert len(text) == 3
    assert text[0].startswith("progress: 1/3 done")
    assert text[0].endswith(
        "; paused: the service seems down (HTTP 500 SERVICE_ERROR); trainings and creations"
        " wait for it"
    )
    assert text[2].endswith("; resumed") and "paused" not in text[2]

    pytest.importorskip("tqdm")
    terminal = _Terminal()
    bar = _progress.batch_progress(3, terminal)
    bar.paused("timeout")
    assert "paused: the service seems down (timeout)" in terminal.getvalue()
    bar.paused("")
    bar.advance(True)
    bar.close()
    assert terminal.getvalue().rstrip().endswith("failed=0]")


def test_the_top_level_name_is_the_display_modules() -> None:
    assert aiportrait.watch_with_progress is _progress.watch_with_progress
