"""Instrumentation hooks: every request, answer and retry, and a hook can never break a call."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait.hooks import AnswerReceived, CallEnded, CallStarted, RequestSent, RetryScheduled
from aiportrait.testing import VirtualClock
from tests._mock import Fake

PATH = "/api/v1/async_jobs/1"


async def test_hooks_see_each_try_its_answer_and_the_retry(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    events: list[Any] = []

    async def async_hook(event: Any) -> None:
        events.append(("async", type(event).__name__))

    error = (500, {}, {"code": "InternalError", "message": "boom"})
    with Fake([error]) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append, async_hook]) as session:
            await session.get_job(1)
    mine = [e for e in events if not isinstance(e, tuple)]
    assert [type(e) for e in mine] == [
        CallStarted, RequestSent, AnswerReceived, RetryScheduled, RequestSent, AnswerReceived,
        CallEnded,
    ]  # fmt: skip
    began, sent, failed, retry, _, answered, ended = mine
    assert (began.method, began.path, began.kind, began.within) == ("POST", PATH, "read", None)
    assert (ended.outcome, ended.attempts, ended.status, ended.error) == ("ok", 2, 200, None)
    assert (sent.method, sent.path, sent.kind, sent.attempt) == ("POST", PATH, "read", 1)
    assert failed.status == 500 and isinstance(failed.error, aiportrait.ServerError)
    assert retry.attempt == 1 and retry.reason.startswith("HTTP 500") and retry.wait >= 0
    assert answered.status == 200 and answered.error is None and answered.attempt == 2
    assert [name for kind, name in (e for e in events if isinstance(e, tuple))] == [
        "CallStarted", "RequestSent", "AnswerReceived", "RetryScheduled", "RequestSent",
        "AnswerReceived", "CallEnded",
    ]  # fmt: skip


async def test_a_hook_that_raises_never_breaks_a_call(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(event: Any) -> None:
        calls.append(type(event).__name__)
        raise RuntimeError("my metrics backend is down")

    with Fake() as fake:
        async with Session(fake.url, "a", "t", hooks=[broken]) as session:
            with caplog.at_level(logging.WARNING, "aiportrait"):
                assert (await session.get_job(1)).state is aiportrait.JobState.RUNNING
                await session.get_job(1)
    # still called after raising
    assert calls == ["CallStarted", "RequestSent", "AnswerReceived", "CallEnded"] * 2
    assert sum("hook" in r.getMessage() for r in caplog.records) == 1  # logged once


async def test_global_hooks_see_every_session_and_can_be_removed() -> None:
    seen: list[str] = []

    def hook(event: Any) -> None:
        seen.append(event.path)

    aiportrait.hooks.add_hook(hook)
    try:
        with Fake() as fake:
            async with Session(fake.url, "a", "t", retry=RetryPolicy.NEVER) as session:
                await session.get_job(1)
    finally:
        aiportrait.hooks.remove_hook(hook)
    assert seen == [PATH] * 4  # CallStarted, RequestSent, AnswerReceived, CallEnded
    with pytest.raises(TypeError):
        aiportrait.hooks.add_hook("not callable")  # type: ignore[arg-type]
    with pytest.raises(aiportrait.InvalidArgument):
        Session("h.example", "a", "t", hooks=[42])  # type: ignore[list-item]
