"""A charged call of a ``keep`` view whose caller was cancelled: told to the ``keep`` callback
of ``Session.with_options`` (:class:`Kept`), at once when it was never written, else once it
ended in the background, because work that may be paid for is never thrown away.

The call runs in a task of its own that the caller awaits shielded (:func:`kept_call`). When
the caller is cancelled while the call still waits (a slot, the cool-down, the outage pause,
its rate's turn, or between tries), the task is cancelled too: nothing was sent, nothing is
charged, and the callback is told so at once (``Kept.sent`` False). Once a try is on the
wire, the task goes on; what it ends with goes to the callback, and ``Session.aclose()``
waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._retrying.call import request_id_of
from ..models import Portrait, TrainJob

if TYPE_CHECKING:
    from .._requests import AnyRequest
    from .._retrying.call import Call, CallState
    from .._wire.transport import Answer

__all__ = ["KeepCallback", "Kept", "kept_call", "told"]

log = logging.getLogger("aiportrait")

T = TypeVar("T")


@attrs.frozen
class Kept:
    """A charged call (train or create) whose caller was cancelled: given to
    ``Session.with_options(keep=callback)`` for every such call of the view, once.

    Attributes:
        request: the request (a :class:`TrainRequest` or a create request).
        result: the :class:`Portrait` or :class:`TrainJob`, or ``None`` when it failed or
            was not sent.
        error: ``None``, or the exception the caller would have seen:
            :class:`~aiportrait.errors.SubmitOutcomeUnknown` when the answer was lost (it may
            have run), an :class:`~aiportrait.APIError` when the service refused it.
        request_id: the service's request id (``""`` when it never answered), to quote to
            support.
        sent: ``False``: the caller left before the request was written; it never will be,
            nothing was charged (told at once; send it again when wanted). ``True``: it was
            written, and this is how it ended in the background.
    """

    request: AnyRequest
    result: Portrait | TrainJob | None = None
    error: BaseException | None = None
    request_id: str = ""
    sent: bool = True


KeepCallback = Callable[[Kept], object]
"""What ``keep=`` takes: called with each :class:`Kept`, awaited when it returns an awaitable."""


async def kept_call(
    work: Coroutine[Any, Any, tuple[T, Answer]],
    call: Call,
    state: CallState,
    request: AnyRequest,
    keep: KeepCallback,
    tasks: set[asyncio.Task[None]],
) -> T:
    """Run ``work`` (the charged ``call``, whose state is ``state``: its result and answer)
    in a task of its own and await it shielded; return the result. A caller cancelled before
    a try may have run cancels it; after, the task goes on, without another try (a retry
    would charge for a caller that left), and its end is handed to ``keep`` by a task added
    to ``tasks`` (the Session's, which ``aclose`` waits for). The caller sees
    ``CancelledError`` either way."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(_retrieved)
    try:
        result, _ = await asyncio.shield(task)
        return result
    except asyncio.CancelledError:
        if state.may_have_run or (task.done() and state.sent):
            call.tries = state.attempt  # this try is its last
            call.kept = True  # its end is told by the hand-over, not warned of
            _handing(_hand_over(task, request, keep), tasks)
        else:
            task.cancel()  # still waiting: it never leaves, nothing is charged
            told(Kept(request, sent=False), keep, tasks)
        raise


def told(kept: Kept, keep: KeepCallback, tasks: set[asyncio.Task[None]]) -> None:
    """Tell ``keep`` of ``kept`` in a task added to ``tasks`` (its caller was cancelled)."""
    _handing(_tell(keep, kept), tasks)


def _handing(telling: Coroutine[Any, Any, None], tasks: set[asyncio.Task[None]]) -> None:
    """Run ``telling`` in a task that ``tasks`` holds until it ends."""
    handing = asyncio.ensure_future(telling)
    tasks.add(handing)
    handing.add_done_callback(tasks.discard)


async def _hand_over(
    task: asyncio.Future[tuple[Any, Answer]], request: AnyRequest, keep: KeepCallback
) -> None:
    """Wait for the kept call's end and give it to ``keep``. Cut short (``aclose`` cancelled,
    a server's shutdown): an ERROR says what was lost."""
    request_id = ""
    try:
        try:
            result, answer = await task
        except Exception as exc:
            kept = Kept(request, None, exc, request_id_of(exc))
        else:
            kept = Kept(request, result, None, answer.request_id)
        request_id = kept.request_id
        await _tell(keep, kept)
    except asyncio.CancelledError:
        log.error(
            "a kept %s was cut short before its end was handed to keep (request_id=%r): "
            "kept result lost; it may be charged",
            request.kind,
            request_id,
            extra={"aiportrait.request_id": request_id},
        )
        raise


async def _tell(keep: KeepCallback, kept: Kept) -> None:
    """Give ``kept`` to ``keep`` (awaited when it returns an awaitable); a failing callback
    is logged."""
    try:
        called = keep(kept)
        if inspect.isawaitable(called):
            await called
    except Exception:
        result = kept.result
        ended = type(kept.error).__name__ if kept.error is not None else "ok"
        if isinstance(result, TrainJob):
            ended = f"job_id={result.job_id} model_id={result.model_id!r}"
        elif not kept.sent:
            ended = "not sent"
        log.exception(
            "the keep callback failed on a kept %s (request_id=%r, %s)",
            kept.request.kind,
            kept.request_id,
            ended,
            extra={"aiportrait.request_id": kept.request_id},
        )


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a task's exception as seen: the caller, or :func:`_hand_over`, has it."""
    if not task.cancelled():
        task.exception()
