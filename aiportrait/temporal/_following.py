"""Following a workflow to its result while Temporal may stop answering for a while (a server
restart, an outage): the one reconnect path of :func:`~aiportrait.temporal.follow_batch` and
of ``aiportrait temporal train`` and ``attach``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

__all__ = ["Following", "unreachable"]


def unreachable(error: BaseException | None) -> bool:
    """Whether ``error`` says that Temporal did not answer (it may answer again)."""
    return isinstance(error, RPCError) and error.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNKNOWN,  # "transport error": the connection broke during a call
    )


class Following:
    """A workflow followed to its result across Temporal restarts (:func:`follow_batch`,
    ``aiportrait temporal train`` and ``attach``): the one reconnect path.

    ``ticks()`` yields every ``every`` seconds while the workflow runs (ask its ``progress``
    then, and call :meth:`answered` when Temporal answered) and ends when its result is in:
    :meth:`result`. While Temporal does not answer (a server restart, an outage), the result
    is asked for again every ``every`` seconds, ``on_wait`` is told so (:meth:`tell`), and
    after ``reconnect`` seconds without an answer the last ``RPCError`` is raised (the
    workflow goes on without its follower). :meth:`close` when done with it."""

    def __init__(
        self,
        handle: WorkflowHandle[Any, Any],
        *,
        every: float = 1.0,
        reconnect: float = 300.0,
        on_wait: Callable[[str], object] | None = None,
    ) -> None:
        self.handle = handle
        self.every = every
        self.reconnect = reconnect
        self.on_wait = on_wait
        self._told = ""
        self._done: asyncio.Future[Any] | None = None
        self._lost: float | None = None  # since when Temporal has not answered

    async def ticks(self) -> AsyncIterator[None]:
        """Yield every ``every`` seconds until the workflow's result is in."""
        clock = asyncio.get_running_loop().time
        done = self._done = asyncio.ensure_future(self.handle.result())
        while True:
            if done.done():
                error = None if done.cancelled() else done.exception()
                if error is None or not unreachable(error):
                    return
                self._lost = clock() if self._lost is None else self._lost
                if clock() - self._lost > self.reconnect:
                    raise error
                self.tell(
                    f"Temporal does not answer ({error}): trying again for {self.reconnect:.0f}s"
                )
                await asyncio.sleep(self.every)
                done = self._done = asyncio.ensure_future(self.handle.result())
                continue
            yield
            await asyncio.wait({done}, timeout=self.every)

    def answered(self) -> None:
        """Temporal answered a call: a wait for it is over (``on_wait`` is told so)."""
        if self._lost is not None:
            self._lost = None
            self.tell("Temporal answers again: following the workflow")

    def tell(self, why: str) -> None:
        """Tell ``on_wait`` why the follower waits (once for each new reason)."""
        if self.on_wait is not None and why != self._told:
            self._told = why
            self.on_wait(why)

    def result(self) -> Any:
        """The workflow's result (or what it raised) once ``ticks()`` ended."""
        if self._done is None:
            raise RuntimeError("Following.result() before ticks() ended")
        return self._done.result()

    def close(self) -> None:
        """Stop asking for the result."""
        if self._done is not None:
            self._done.cancel()
