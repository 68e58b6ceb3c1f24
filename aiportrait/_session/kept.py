"""A charged call whose caller left after its request was written: finished in the background
and handed to the ``keep`` callback of ``Session.with_options`` (:class:`Kept`), because work
that may be paid for is never thrown away.

The call runs in a task of its own that the caller awaits shielded (:func:`kept_call`). When
the caller is cancelled while the call still waits (a slot, the cool-down, the outage pause,
its rate's turn, or between tries), the task is cancelled too: nothing was sent, nothing is
charged. Once a try is on the wire, the task goes on; what it ends with goes to the callback,
and ``Session.aclose()`` waits for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from ..models import Portrait, TrainJob

if TYPE_CHECKING:
    from .._requests import AnyRequest
    from .._retrying.call import Call, CallState
    from .._wire.transport import Answer

__all__ = ["KeepCallback", "Kept", "kept_call"]

log = logging.getLogger("aiportrait")

T = TypeVar("T")


@attrs.frozen
class Kept:
    """A charged call (train or create) whose caller was cancelled after its request was
    written, as it ended in the background: given to ``Session.with_options(keep=callback)``.

    Attributes:
        request: the request that was sent (a :class:`TrainRequest` or a create request).
        result: the :class:`Portrait` or :class:`TrainJob`, or ``None`` when it failed.
        error: ``None``, or the exception the caller would have seen:
            :class:`~aiportrait.errors.SubmitOutcomeUnknown` when the answer was lost (it may
            have run), an :class:`~aiportrait.APIError` when the service refused it.
        request_id: the service's request id (``""`` when it never answered), to quote to
            support.
    """

    request: AnyRequest
    result: Portrait | TrainJob | None = None
    error: BaseException | None = None
    request_id: str = ""


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
        if not (state.may_have_run or (task.done() and state.sent)):
            task.cancel()  # still waiting: it never leaves
            raise
        call.tries = state.attempt  # this try is its last
        handing = asyncio.ensure_future(_hand_over(task, request, keep))
        tasks.add(handing)
        handing.add_done_callback(tasks.discard)
        raise


async def _hand_over(
    task: asyncio.Future[tuple[Any, Answer]], request: AnyRequest, keep: KeepCallback
) -> None:
    """Wait for the kept call's end and give it to ``keep``; a failing callback is logged."""
    try:
        result, answer = await task
    except Exception as exc:
        kept = Kept(request, None, exc, getattr(exc, "request_id", "") or "")
    else:
        kept = Kept(request, result, None, answer.request_id)
    try:
        called = keep(kept)
        if inspect.isawaitable(called):
            await called
    except Exception:
        result = kept.result
        ended = type(kept.error).__name__ if kept.error is not None else "ok"
        if isinstance(result, TrainJob):
            ended = f"job_id={result.job_id} model_id={result.model_id!r}"
        log.exception(
            "the keep callback failed on a kept %s (request_id=%r, %s)",
            request.kind,
            kept.request_id,
            ended,
            extra={"aiportrait.request_id": kept.request_id},
        )


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark a task's exception as seen: the caller, or :func:`_hand_over`, has it."""
    if not task.cancelled():
        task.exception()
