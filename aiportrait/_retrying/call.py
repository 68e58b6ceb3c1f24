"""One call as the call loop sees it: what is sent and for what (:class:`Call`), who is told
about its tries (:class:`Claim`), and what it has seen so far (:class:`CallState`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from .._states import CallKind
from ..errors import (
    AIPortraitError,
    APIError,
    ResponseError,
    SubmitOutcomeUnknown,
    TransportError,
)

__all__ = ["CALL_ERRORS", "Call", "CallState", "Claim", "request_id_of", "unknown_outcome"]

#: The failures a try can end with that the loop classifies (anything else propagates).
CALL_ERRORS = (TransportError, ResponseError, APIError)


def request_id_of(outcome: object) -> str:
    """The service's request id an answer or an error carries (``""`` when none)."""
    return getattr(outcome, "request_id", "") or ""


class Claim(Protocol):
    """Told about a charged call's tries (the batch journal's claim on its item)."""

    async def before_send(self) -> None:
        """Right before a try is written, after its slot and the cool-down: until now the
        request provably never left. Raising here stops the call unsent."""

    async def not_sent(self) -> None:
        """A try provably did not run (429, no connection, 503 with ``Retry-After``) and will
        be sent again: what :meth:`before_send` claimed may be given back."""


class Call:
    """One call: what is sent, for what, and what is told about it (a plain slotted class:
    one is built per call, and it is internal).

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        payload: the JSON body (what :class:`SubmitOutcomeUnknown` says was sent).
        claim: told before each try of a charged call is written, and after one that did
            not run.
        within: the id of the watch or batch the call is made for (for the hooks).
        tries: tries in all, overriding the policy's (the watcher polls with one; a kept
            call whose caller left is given the try it is in as its last).
        bound: seconds one try takes at most on its own (its total timeout; ``None``: no
            bound), on the real clock.
        bounded: whether the Session's admission (``max_waiting``, ``max_wait``) applies to
            its wait before the first try; False for a batch's items and a watch's polls,
            which queue under bounds of their own (the batch's ``limit``, the jobs watched).
        kept: its caller left after it was written, and its end is handed to a ``keep``
            callback (no warning that it may be charged unseen).
    """

    __slots__ = (
        "bound", "bounded", "claim", "kept", "kind", "method", "path", "payload", "tries",
        "within",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        path: str,
        kind: CallKind,
        payload: Mapping[str, Any] | None = None,
        claim: Claim | None = None,
        within: int | None = None,
        tries: int | None = None,
        bound: float | None = None,
        bounded: bool = True,
    ) -> None:
        self.method = method
        self.path = path
        self.kind = kind
        self.payload = payload
        self.claim = claim
        self.within = within
        self.tries = tries
        self.bound = bound
        self.bounded = bounded
        self.kept = False

    @property
    def what(self) -> str:
        """``"POST /api/v1/..."``: how messages name the call."""
        return f"{self.method} {self.path}"


class CallState:
    """What one call has seen so far."""

    __slots__ = (
        "answered", "attempt", "began", "in_try", "last", "sent", "started", "undecided", "until",
        "written",
    )  # fmt: skip

    def __init__(self, started: float, deadline: float | None) -> None:
        self.started = started
        self.until = math.inf if deadline is None else started + deadline  # the deadline
        self.began = started  # when the last try was written
        self.attempt = 0
        self.sent = 0  # tries written (or being written)
        self.in_try = False  # stays True if the deadline cancels a try
        self.undecided = False  # a try failed; whether it may have run is not decided yet
        self.answered = False  # a try got its answer: the result is in hand
        self.last: AIPortraitError | None = None
        self.written = 0  # the breaker's epoch when the last try was written

    @property
    def may_have_run(self) -> bool:
        """A try is on the wire, has answered, or failed and the loop has not yet decided that
        it provably did not run (its hooks are told first): cancelling the call now could lose
        what it ran. Between tries it may not: a try is retried only when it provably did
        not run."""
        return self.in_try or self.answered or self.undecided


def unknown_outcome(exc: AIPortraitError, call: Call) -> SubmitOutcomeUnknown:
    """What a charged ``call`` that failed with ``exc`` and may have run raises."""
    text = str(exc)
    what = call.what
    return SubmitOutcomeUnknown(
        f"{text if text.startswith(what) else f'{what}: {text}'}; the service may have run it, "
        "so it was not sent again",
        action=call.kind,
        request=call.payload,
        request_id=request_id_of(exc),
    )
