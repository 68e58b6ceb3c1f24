"""Instrumentation hooks: every request, answer and retry, and a hook can never break a call."""

from __future__ import annotations

import logging
import typing
from typing import Any

import pytest

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait.hooks import (
    AnswerReceived,
    BatchEnded,
    BatchItemEnded,
    BatchStarted,
    CallEnded,
    CallStarted,
    CoolDownEnded,
    CoolDownStarted,
    JobEnded,
    JobStateChanged,
    JobWatchStarted,
    RequestSent,
    RetryScheduled,
)
from aiportrait.testing import VirtualClock
from tests._mock import OK_IMAGE, Fake

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
    assert failed.status == 500 and isinstance(failed.error, aiportrait.errors.ServerError)
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


def _job(state: int, message: str = "") -> tuple[int, dict[str, str], dict[str, Any]]:
    return 200, {}, {"code": "OK", "data": {"job": {"state": state, "message": message}}}


async def test_a_429_starts_and_ends_the_cool_down_once(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    events: list[Any] = []
    throttled = (429, {"Retry-After": "3"}, {"code": "Throttling", "message": "slow down"})
    with Fake([throttled]) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append]) as session:
            await session.get_job(1)
    started = [e for e in events if isinstance(e, CoolDownStarted)]
    ended = [e for e in events if isinstance(e, CoolDownEnded)]
    assert [(e.seconds, e.retry_after, e.path) for e in started] == [(3.0, 3.0, PATH)]
    assert [e.seconds for e in ended] == [3.0]
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("CoolDownStarted") < kinds.index("CoolDownEnded")
    assert kinds[-1] == "CallEnded" and events[-1].outcome == "ok" and events[-1].attempts == 2


async def test_call_ended_says_unknown_for_a_charged_call_that_may_have_run() -> None:
    events: list[Any] = []
    gateway = (502, {}, {"code": "BadGateway", "message": "upstream"})
    with Fake([gateway]) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append]) as session:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown):
                await session.create("m", "https://x/t.jpg")
    (ended,) = [e for e in events if isinstance(e, CallEnded)]
    assert (ended.kind, ended.outcome, ended.attempts, ended.status) == (
        "create",
        "unknown",
        1,
        502,
    )
    assert isinstance(ended.error, aiportrait.SubmitOutcomeUnknown)


async def test_call_ended_says_what_the_caller_gets_when_the_answer_cannot_be_read() -> None:
    # 200 OK, but no image in it: the create ran and its portrait is lost (unknown, not ok);
    # a job answer without its job is a failed read (failed, not ok).
    events: list[Any] = []
    unreadable = (200, {}, {"code": "OK", "data": {"cost_time": 1.0}})
    with Fake([unreadable, (200, {}, {"code": "OK", "data": {}})]) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append]) as session:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown):
                await session.create("m", "https://x/t.jpg")
            with pytest.raises(aiportrait.errors.MalformedResponse):
                await session.with_options(retry=RetryPolicy.NEVER).get_job(1)
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert [(e.kind, e.outcome) for e in ended] == [("create", "unknown"), ("read", "failed")]
    assert isinstance(ended[0].error, aiportrait.SubmitOutcomeUnknown)
    assert isinstance(ended[1].error, aiportrait.errors.MalformedResponse)


async def test_a_watch_tells_its_start_each_change_and_its_end_and_names_its_polls(
    aiportrait_instant_waits: VirtualClock,
) -> None:
    events: list[Any] = []
    answers = [_job(1), _job(1), _job(3, "no face found")]
    with Fake(answers) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append]) as session:
            with pytest.raises(aiportrait.JobFailed):
                await session.wait(1)
    (started,) = [e for e in events if isinstance(e, JobWatchStarted)]
    changes = [e for e in events if isinstance(e, JobStateChanged)]
    (ended,) = [e for e in events if isinstance(e, JobEnded)]
    assert started.job_id == 1 and started.id > 0 and started.within is None
    assert [(c.previous, c.state) for c in changes] == [
        (None, aiportrait.JobState.RUNNING),
        (aiportrait.JobState.RUNNING, aiportrait.JobState.FAILED),
    ]
    assert (ended.outcome, ended.state, ended.polls) == ("failed", aiportrait.JobState.FAILED, 3)
    assert ended.message == "no face found" and ended.id == started.id
    polls = [e for e in events if isinstance(e, CallStarted)]
    assert len(polls) == 3 and all(p.within == started.id for p in polls)


async def test_a_batch_tells_its_start_each_item_and_its_counts() -> None:
    events: list[Any] = []
    refused = (462, {}, {"code": "ModelIdError", "message": "no such model"})
    with Fake([refused], ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t", hooks=[events.append]) as session:
            requests = {k: aiportrait.CreateRequest(k, "https://x/t.jpg") for k in "abc"}
            outcomes = [o async for o in session.create_many(requests, limit=1)]
    assert sum(o.ok for o in outcomes) == 2
    (started,) = [e for e in events if isinstance(e, BatchStarted)]
    items = [e for e in events if isinstance(e, BatchItemEnded)]
    (ended,) = [e for e in events if isinstance(e, BatchEnded)]
    assert (started.kind, started.limit) == ("create", 1)
    assert sorted(i.status for i in items) == ["failed", "succeeded", "succeeded"]
    assert sorted(o.status for o in outcomes) == ["failed", "succeeded", "succeeded"]
    assert not any(i.resumed for i in items)
    (failed,) = [i for i in items if i.status == "failed"]
    assert failed.error is not None and failed.error_type == type(failed.error).__name__
    with pytest.warns(DeprecationWarning, match=r"BatchItemEnded\.status"):
        assert failed.outcome == "failed"  # the old name, and its old words
    assert (ended.items, ended.ok, ended.failed, ended.unknown, ended.error) == (3, 2, 1, 0, None)
    calls = [e for e in events if isinstance(e, CallStarted)]
    assert len(calls) == 3 and all(c.within == started.id for c in calls)


def test_the_old_names_of_the_item_outcome_warn() -> None:
    with pytest.warns(DeprecationWarning, match="OutcomeStatus"):
        old = aiportrait.hooks.ItemOutcome
    assert typing.get_args(old) == ("ok", "failed", "unknown", "resumed")
    with pytest.warns(DeprecationWarning, match="CallKind"):
        assert aiportrait.hooks.Kind is aiportrait.hooks.CallKind
    assert aiportrait.OutcomeStatus is aiportrait.hooks.OutcomeStatus
    assert typing.get_args(aiportrait.OutcomeStatus) == ("succeeded", "failed", "unknown")
    ended = BatchItemEnded(1, "create", "k", "succeeded", resumed=True)
    with pytest.warns(DeprecationWarning, match="outcome"):
        assert ended.outcome == "resumed"


async def test_log_records_carry_structured_fields(
    caplog: pytest.LogCaptureFixture, aiportrait_instant_waits: VirtualClock
) -> None:
    error = (500, {}, {"code": "InternalError", "message": "boom"})
    with Fake([error, _job(1), error, _job(2)]) as fake:
        async with Session(fake.url, "a", "t") as session:
            with caplog.at_level(logging.DEBUG, "aiportrait"):
                await session.get_job(1)  # retried once
                async for _ in session.watch(1):  # a failed poll, then the end
                    pass
    retry = next(r for r in caplog.records if "next try" in r.getMessage())
    assert getattr(retry, "aiportrait.path") == PATH
    assert getattr(retry, "aiportrait.method") == "POST"
    assert getattr(retry, "aiportrait.reason").startswith("HTTP 500")
    poll = next(r for r in caplog.records if "will poll again" in r.getMessage())
    assert getattr(poll, "aiportrait.job_id") == 1
    assert getattr(poll, "aiportrait.error_type") == "ServerError"
    job = next(r for r in caplog.records if r.getMessage().startswith("job 1: SUCCESS"))
    assert getattr(job, "aiportrait.job_id") == 1
    assert getattr(job, "aiportrait.state") == "SUCCESS"
    assert getattr(job, "aiportrait.polls") == 2
