"""Charged calls at the edges: what a journal, a deadline and a hook may and may not do to them.

Each test protects "unknown means may have run": a call that provably never ran is never
reported as unknown, and an answer that arrived is never thrown away.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from pathlib import Path
from typing import Any

import anyio
import pytest

import aiportrait
from aiportrait import CreateRequest, RetryPolicy, Session
from aiportrait._batches.journal import Journal
from aiportrait.testing import VirtualClock
from tests._mock import OK_IMAGE, Fake, until

CREATE = "/api/v1/aigc_images/create"
THROTTLED = (429, {"Retry-After": "30"}, {"code": "Throttling", "message": "slow down"})


async def test_a_create_only_ever_throttled_is_new_on_a_rerun(
    tmp_path: Path, aiportrait_instant_waits: VirtualClock
) -> None:
    journal = tmp_path / "j.sqlite"
    request = CreateRequest("m-1", "https://t/x.jpg")
    with Fake([THROTTLED] * 10, ok=OK_IMAGE) as fake:
        with anyio.CancelScope() as stop:

            def stop_in_the_wait(event: Any) -> None:
                # Stopped during the 30-s wait after the 429: the create never ran.
                if isinstance(event, aiportrait.hooks.RetryScheduled):
                    stop.cancel()

            async with Session(fake.url, "a", "t", hooks=[stop_in_the_wait]) as session:
                await session.create_many({"a": request}, journal=journal).collect()
        assert stop.cancelled_caught
        assert fake.paths() == [CREATE]
        assert Journal(journal, lock=False).counts() == {}  # not "submitting"
        fake.actions.clear()
        async with Session(fake.url, "a", "t") as session:  # a new run: no cool-down
            (again,) = await session.create_many({"a": request}, journal=journal).collect()
    assert again.ok and not again.resumed  # sent as new, not "may have run"


async def test_an_answer_that_arrived_is_never_lost_to_a_slow_hook(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    async def slow_hook(event: Any) -> None:
        if isinstance(event, aiportrait.hooks.AnswerReceived):
            aiportrait_instant_waits.advance(1000.0)  # far past the deadline below
            await asyncio.sleep(0)

    policy = RetryPolicy(deadline=300.0)
    with Fake([], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t", retry=policy, hooks=[slow_hook]) as session:
            portrait = await session.create("m-1", "https://t/x.jpg")
    assert portrait.format == "png"


async def test_a_retry_is_not_sent_when_waiting_for_a_slot_used_up_the_deadline(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    busy = (503, {"Retry-After": "1"}, {"code": "ServiceUnavailable", "message": "busy"})
    policy = RetryPolicy(deadline=10.0, min_try=5.0, base=0.01, cap=0.02)
    release = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []

    async def held(_arrival: Any) -> Any:
        await release.wait()
        return (200, {}, {"code": "OK", "data": {"job": {"state": 1}}})

    with Fake([busy], ok=OK_IMAGE, routes={"/api/v1/async_jobs/": held}) as fake:

        async def take_the_slot(event: Any) -> None:
            # Before the create's retry: a poll takes the only slot and keeps it.
            if isinstance(event, aiportrait.hooks.RetryScheduled):
                tasks.append(asyncio.create_task(session.get_job(1)))
                await until(lambda: len(fake.requests) == 2, "the poll holds the slot")

        async with Session(
            fake.url, "a", "t", retry=policy, max_in_flight=1, hooks=[take_the_slot]
        ) as session:
            create = asyncio.create_task(session.create("m-1", "https://t/x.jpg"))
            await until(lambda: session.limits.waiting() == 1, "the retry waits")
            await aiportrait_instant_waits.sleep(8.0)  # the wait for the slot eats the deadline
            release.set()
            with pytest.raises(
                aiportrait.errors.ServerError
            ):  # the real failure, nothing sent again
                await create
            await tasks[0]
    assert fake.paths().count(CREATE) == 1


async def test_retry_after_beyond_a_minute_is_honoured_up_to_the_cap(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    slow = (429, {"Retry-After": "90"}, {"code": "Throttling", "message": "slow down"})
    with Fake([slow], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t") as session:
            await session.create("m-1", "https://t/x.jpg")
    assert aiportrait_instant_waits.time >= 90  # not cut to 60 s
    assert len(fake.requests) == 2


def test_the_cli_keeps_the_token_out_of_a_tracebacks_locals(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiportrait.cli import main

    for name in ("AIPORTRAIT_HOST", "HOST", "Host"):
        monkeypatch.delenv(name, raising=False)
    failed: list[BaseException] = []
    monkeypatch.setattr(traceback, "print_exception", lambda *a, **k: failed.append(a[1]))
    args = ["check", "http://x/a.jpg", "--app-id", "a", "--token", "SUPERSECRET", "--debug"]
    assert main(args) == 2  # no host: CredentialsError, its traceback shown (--debug)
    (error,) = failed
    assert isinstance(error, aiportrait.errors.CredentialsError)
    frames = traceback.TracebackException.from_exception(error, capture_locals=True).stack
    # every frame below the command line's parsing (cli/_main.py holds argv as typed)
    inner = [f for f in frames if "/aiportrait/" in f.filename and "cli/_main" not in f.filename]
    assert any(f.name == "session" for f in inner)
    assert [f.name for f in inner if "SUPERSECRET" in repr(f.locals)] == []
    assert "SUPERSECRET" not in capsys.readouterr().err


def test_a_user_agent_with_line_breaks_is_refused_when_the_session_is_built() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="user_agent"):
        Session("h.example", "a", "t", user_agent="MyApp/1.0\r\nX-Injected: 1")
    assert Session("h.example", "a", "t", user_agent="MyApp/1.0") is not None


async def test_a_batch_on_a_keep_view_stopped_while_its_claim_is_written_leaves_it_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal's claim is written in a thread under a shield; the batch is stopped then.
    # A batch's items are not kept (their journal keeps what may have run): the item is
    # cancelled as anyio cancels, the shield holds, and the claim is given back: nothing was
    # sent, and a re-run sends the item as a new one.
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    claiming, written = threading.Event(), threading.Event()
    claim = Journal.claim

    def slow_claim(self: Journal, *args: Any) -> bool:
        won = claim(self, *args)
        claiming.set()
        written.wait(30)  # a slow disk: the row is written, the thread returns late
        return won

    monkeypatch.setattr(Journal, "claim", slow_claim)
    requests = {"a": CreateRequest("m", "https://t/x.jpg")}
    kept: list[aiportrait.Kept] = []
    with Fake(routes={CREATE: (200, {}, OK_IMAGE)}) as fake:
        async with Session(fake.url, "a", "t") as session:
            view = session.with_options(keep=kept.append)
            run = asyncio.create_task(
                view.create_many(requests, journal=journal, out_dir=out).collect()
            )
            await until(claiming.is_set, "the claim being written")
            run.cancel()  # the batch is stopped: nothing was sent
            written.set()
            with pytest.raises(asyncio.CancelledError):
                await run
            await until(
                lambda: "submitting" not in Journal(journal, lock=False).counts(), "given back"
            )
            monkeypatch.setattr(Journal, "claim", claim)
            [again] = await session.create_many(requests, journal=journal, out_dir=out).collect()
    assert again.ok, again.error
    assert fake.paths().count(CREATE) == 1 and kept == []
