"""What the call loop's events say of a call: :class:`~aiportrait.hooks.AnswerReceived` after
each try, :class:`~aiportrait.hooks.CallEnded` at its end (built only when hooks listen)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import SubmitOutcomeUnknown
from . import clock as _clock
from .call import Call, CallState, request_id_of

if TYPE_CHECKING:
    from ..hooks import CallOutcome
    from ..hooks.events import AnswerReceived, CallEnded

__all__ = ["answer_received", "call_ended"]


def answer_received(call: Call, state: CallState, outcome: object) -> AnswerReceived:
    """The event of a try's answer (``outcome``: the answer, or the failure)."""
    from ..hooks.events import AnswerReceived  # built on first use (with hooks)

    error = outcome if isinstance(outcome, BaseException) else None
    status = getattr(outcome, "status", 0) or 0
    request_id = request_id_of(outcome)
    seconds = _clock.now() - state.began
    return AnswerReceived(
        call.method, call.path, call.kind, state.attempt, status, request_id, seconds, error
    )


def call_ended(call: Call, state: CallState, outcome: object) -> CallEnded:
    """The event of a call's end (``outcome``: its answer, or what it raised)."""
    from ..hooks.events import CallEnded  # built on first use (with hooks)

    seconds = _clock.now() - state.started
    job_id = cost_time = None
    if isinstance(outcome, BaseException):
        if isinstance(outcome, SubmitOutcomeUnknown):
            verdict: CallOutcome = "unknown"
        elif not isinstance(outcome, Exception):  # cancelled (by the caller or the deadline)
            verdict = "unknown" if state.in_try and call.kind != "read" else "cancelled"
        else:
            verdict = "failed"
        seen = state.last if state.last is not None else outcome
        status = getattr(seen, "status", 0) or 0
        request_id = request_id_of(seen)
        error: BaseException | None = outcome
    else:
        verdict, error = "ok", None
        status = getattr(outcome, "status", 0) or 0
        request_id = request_id_of(outcome)
        data = getattr(outcome, "data", None)
        if isinstance(data, dict):
            found = data.get("job_id")
            job_id = found if type(found) is int else None
            cost = data.get("cost_time")
            if call.kind == "create" and isinstance(cost, (int, float)):
                cost_time = None if isinstance(cost, bool) else float(cost)
    return CallEnded(
        call.method, call.path, call.kind, verdict, state.sent, seconds, status,
        request_id, error, job_id, cost_time,
    )  # fmt: skip
