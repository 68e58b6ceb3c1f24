"""``RetryPolicy``: which failures are sent again, and after how long.

Read-only calls (check, job and batch queries) are retried on connection errors, timeouts,
5xx, 429 and unreadable answers. Charged calls (train, create) are retried only when the request
provably did not run: the connection could not be made (nothing was sent), a 429, or a 503 that
carries ``Retry-After``. After an ambiguous failure (the connection dropped after sending, or the
answer timed out) a charged call raises :class:`~aiportrait.errors.SubmitOutcomeUnknown` with
what was sent, never a silent second submission.

The waits use exponential backoff with full jitter, honour ``Retry-After`` (seconds or an HTTP
date, capped), and stop at the policy's overall deadline.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import attrs

from ._args import positive_int, positive_number
from .errors import (
    AIPortraitError,
    ConnectError,
    MalformedResponse,
    RateLimited,
    RequestTimeout,
    ResponseError,
    ServerError,
    ServiceError,
    TransportError,
)

__all__ = ["RetryPolicy"]


def _count(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    positive_int(f"RetryPolicy.{attr.name}", value)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a Session retries a failed call.

    Attributes:
        attempts: tries in all for a read-only call (the first one included).
        charged_attempts: tries in all for a train or create call, counting only failures
            that prove the call did not run.
        base: the first backoff, seconds; it doubles with each try.
        cap: the longest backoff, seconds.
        max_retry_after: the longest ``Retry-After`` honoured, seconds; a longer one ends
            the retries and the error is raised.
        deadline: the longest time one call may take with all its tries, seconds (``None``:
            no bound beyond the per-try timeout).
    """

    attempts: int = attrs.field(default=4, validator=_count)
    charged_attempts: int = attrs.field(default=3, validator=_count)
    base: float = attrs.field(default=0.5, validator=positive_number)
    cap: float = attrs.field(default=20.0, validator=positive_number)
    max_retry_after: float = attrs.field(default=120.0, validator=positive_number)
    deadline: float | None = attrs.field(default=600.0, validator=positive_number)

    NEVER: ClassVar[RetryPolicy]
    """One try, no retry (a 429 still waits out the Session's shared cool-down once)."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def tries(self, charged: bool) -> int:
        """Tries in all for a call of this kind."""
        return self.charged_attempts if charged else self.attempts


RetryPolicy.NEVER = RetryPolicy(attempts=1, charged_attempts=1)


def retry_reason(exc: AIPortraitError, *, charged: bool) -> str | None:
    """Why ``exc`` may be retried, or ``None`` when it must be raised.

    For charged calls only failures that prove the call did not run qualify.
    """
    if isinstance(exc, RateLimited):
        return "429"
    if isinstance(exc, TransportError) and exc.sent is False:
        return "could not connect: nothing was sent"
    if isinstance(exc, ServerError) and exc.status == 503 and exc.retry_after is not None:
        return "503 with Retry-After"
    if charged:
        return None
    if isinstance(exc, ConnectError):
        return "connection dropped"
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, (ServerError, ServiceError)):
        return f"HTTP {exc.status} {exc.code}".rstrip()
    if isinstance(exc, MalformedResponse):
        return "unreadable answer"
    return None


def ambiguous(exc: AIPortraitError) -> bool:
    """True when a charged call failed in a way that leaves open whether it ran.

    The request may have reached the service (the connection dropped or timed out after it
    was sent, or a gateway answered 500, 502 or 504), or the service answered 2xx in a way we
    cannot read (a job id or a portrait lost on the way back).
    """
    if isinstance(exc, TransportError):
        return exc.sent is not False
    if isinstance(exc, ServerError):
        # An undocumented 500, 502 or 504: a gateway or the backend failed, possibly after the
        # work started. (503 means "not taken"; the documented 500 is a CreateError.)
        return exc.status != 503
    return isinstance(exc, ResponseError) and 200 <= exc.status < 300
