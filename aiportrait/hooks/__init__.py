"""Instrumentation hooks: see every call, try, retry, cool-down, watched job and batch.

A hook is any callable taking one event; an ``async def`` hook is awaited. Register it for one
Session (``Session(..., hooks=[my_hook])``) or for every Session built after it
(:func:`add_hook`). A hook that also has a ``headers()`` method (as
:class:`aiportrait.otel.Instrumentation`) gives headers to add to each request, outside the
signature. A hook can never break a call: one that raises is logged once (a warning on
the ``aiportrait`` logger, the first time only) and its error ignored; it is still called with
later events. No event holds the token, a signature or
image data: only the method, the resource path, the call's kind and what happened::

    def log_retries(event):
        if isinstance(event, aiportrait.hooks.RetryScheduled):
            print(f"{event.method} {event.path}: retry in {event.wait:.1f}s ({event.reason})")

    aiportrait.hooks.add_hook(log_retries)

The events, in the order a call makes them: :class:`CallStarted`, then for each try
:class:`RequestSent` and :class:`AnswerReceived` (and :class:`RetryScheduled` before another
try, :class:`CoolDownStarted` after a 429 that starts the shared pause,
:class:`CoolDownEnded` when a call goes on after it), and :class:`CallEnded` with the call's
outcome. :class:`OutagePause` tells when the Session holds its trains and creates back because
the service seems down, and when they go on. A watch (``session.watch`` / ``session.wait``)
makes :class:`JobWatchStarted`, one :class:`JobStateChanged` per state change and
:class:`JobEnded`; a batch (``create_many``, ``train_many``) makes :class:`BatchStarted`,
one :class:`BatchItemEnded` per item and :class:`BatchEnded`. A call made for a watch or a
batch names it in ``within`` (the watch's or batch's ``id``), so a hook can nest them
(:mod:`aiportrait.otel` makes child spans that way).
"""

import importlib
import warnings
from typing import TYPE_CHECKING, Any, Literal

from .kinds import BatchKind, CallKind, CallOutcome, JobOutcome, OutcomeStatus
from .registry import add_hook, remove_hook

# The library's own callers (the call loop, the watcher, batches, the Session) import these from
# here; they are not part of the documented surface.
from .registry import emit as emit
from .registry import emit_now as emit_now
from .registry import header_sources as header_sources
from .registry import installed as installed
from .registry import next_id as next_id
from .registry import origin as origin

if TYPE_CHECKING:
    from .events import (
        AnswerReceived,
        BatchEnded,
        BatchItemEnded,
        BatchStarted,
        CallEnded,
        CallStarted,
        CoolDownEnded,
        CoolDownStarted,
        Event,
        Hook,
        JobEnded,
        JobStateChanged,
        JobWatchStarted,
        OutagePause,
        RequestSent,
        RetryScheduled,
    )

__all__ = [
    "AnswerReceived",
    "BatchEnded",
    "BatchItemEnded",
    "BatchKind",
    "BatchStarted",
    "CallEnded",
    "CallKind",
    "CallOutcome",
    "CallStarted",
    "CoolDownEnded",
    "CoolDownStarted",
    "Event",
    "Hook",
    "JobEnded",
    "JobOutcome",
    "JobStateChanged",
    "JobWatchStarted",
    "OutagePause",
    "OutcomeStatus",
    "RequestSent",
    "RetryScheduled",
    "add_hook",
    "remove_hook",
]

#: The event classes (every public name not defined above), built on first use (:mod:`.events`):
#: ``import aiportrait`` does not pay for fourteen classes that only a registered hook needs.
_EVENTS = frozenset(__all__) - globals().keys()

#: Old names: each still works, with a DeprecationWarning naming the new one.
_DEPRECATED: dict[str, tuple[Any, str]] = {
    "ItemOutcome": (
        Literal["ok", "failed", "unknown", "resumed"],
        "aiportrait.hooks.ItemOutcome is aiportrait.hooks.OutcomeStatus (succeeded, failed,"
        " unknown; BatchItemEnded.status, with .resumed apart)",
    ),
    "Kind": (CallKind, "aiportrait.hooks.Kind is aiportrait.hooks.CallKind"),
}


def __getattr__(name: str) -> Any:
    if name in _EVENTS:
        value = getattr(importlib.import_module(".events", __name__), name)
        globals()[name] = value
        return value
    if name in _DEPRECATED:
        value, message = _DEPRECATED[name]
        warnings.warn(f"{message}; the old name will go away", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module 'aiportrait.hooks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
