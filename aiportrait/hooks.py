"""Instrumentation hooks: see every request, answer and retry a Session makes.

A hook is any callable taking one event; an ``async def`` hook is awaited. Register it for one
Session (``Session(..., hooks=[my_hook])``) or for every Session of the process
(:func:`add_hook`). A hook can never break a call: one that raises is logged once (a warning on
the ``aiportrait`` logger, the first time only) and its error ignored; it is still called with
later events. No event holds the token, a signature or
image data: only the method, the resource path, the call's kind and what happened::

    def log_retries(event):
        if isinstance(event, aiportrait.hooks.RetryScheduled):
            print(f"{event.method} {event.path}: retry in {event.wait:.1f}s ({event.reason})")

    aiportrait.hooks.add_hook(log_retries)
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeAlias

import attrs

__all__ = [
    "AnswerReceived",
    "Event",
    "Hook",
    "RequestSent",
    "RetryScheduled",
    "add_hook",
    "remove_hook",
]

log = logging.getLogger("aiportrait")

Kind = Literal["read", "train", "create"]


@attrs.frozen
class RequestSent:
    """A try of a call is about to be written (its slot taken, any cool-down waited out).

    Attributes:
        method: the HTTP method.
        path: the resource path (no host, no query).
        kind: ``read``, ``train`` or ``create``.
        attempt: the try's number, from 1.
    """

    method: str
    path: str
    kind: Kind
    attempt: int


@attrs.frozen
class AnswerReceived:
    """A try ended: an answer was read, or it failed.

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        attempt: the try's number, from 1.
        status: the HTTP status (0 when no answer came).
        request_id: the service's request id, when one was read.
        seconds: how long the try took (on the library's clock).
        error: the try's error (an :class:`~aiportrait.errors.AIPortraitError`), or ``None``.
    """

    method: str
    path: str
    kind: Kind
    attempt: int
    status: int
    request_id: str
    seconds: float
    error: BaseException | None = None


@attrs.frozen
class RetryScheduled:
    """A failed try will be followed by another after ``wait`` seconds.

    Attributes:
        method: the HTTP method.
        path: the resource path.
        kind: ``read``, ``train`` or ``create``.
        attempt: the number of the try that failed.
        reason: why it may be retried (``"429"``, ``"timeout"``, ``"HTTP 500 ..."``).
        wait: seconds until the next try (the shared 429 cool-down comes on top).
    """

    method: str
    path: str
    kind: Kind
    attempt: int
    reason: str
    wait: float


Event: TypeAlias = RequestSent | AnswerReceived | RetryScheduled
Hook: TypeAlias = Callable[[Event], "Awaitable[None] | None"]

_GLOBAL: list[Hook] = []
_LOGGED: set[int] = set()  # hooks whose failure was logged already


def add_hook(hook: Hook) -> None:
    """Call ``hook`` with the events of every Session of this process."""
    if not callable(hook):
        raise TypeError(f"a hook must be callable, not {type(hook).__name__}")
    _GLOBAL.append(hook)


def remove_hook(hook: Hook) -> None:
    """Stop calling ``hook`` (added with :func:`add_hook`); nothing happens if it was not."""
    if hook in _GLOBAL:
        _GLOBAL.remove(hook)


def active(own: Sequence[Hook]) -> tuple[Hook, ...]:
    """The hooks to call for a Session: its own, then the global ones."""
    return (*own, *_GLOBAL) if _GLOBAL else tuple(own)


async def emit(hooks: Sequence[Hook], event: Event) -> None:
    """Give ``event`` to each hook; a hook that raises is logged (once) and the call goes on."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            if id(hook) not in _LOGGED:
                _LOGGED.add(id(hook))
                log.warning("hook %r raised; its errors are ignored", hook, exc_info=True)
