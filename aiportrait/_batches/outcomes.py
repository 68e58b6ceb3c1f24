"""What a batch yields: one :class:`Outcome` per item, and :class:`Outcomes` to iterate them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ..errors import SubmitOutcomeUnknown
from ..models import TrainJob

if TYPE_CHECKING:
    from ..hooks import OutcomeStatus

__all__ = ["Outcome", "Outcomes"]

R = TypeVar("R")
V = TypeVar("V")


@attrs.frozen
class Outcome(Generic[R, V]):
    """One finished item of a batch.

    Attributes:
        key: the caller's key (the position in the input when none was given).
        request: the request.
        value: the result (a :class:`Portrait`, :class:`TrainResult` or :class:`TrainJob`),
            or ``None`` on error.
        error: the exception, or ``None`` on success.
        job: for trainings, the job handle (when the service acknowledged one).
        path: for portraits written to disk, the file.
        resumed: True when the journal already held this item's end.

    :attr:`status` says how it ended in the words every batch uses (hook events, Temporal's
    :class:`~aiportrait.temporal.OutcomeRecord`, the command line's JSON).
    """

    key: Any
    request: R
    value: V | None = None
    error: BaseException | None = None
    job: TrainJob | None = None
    path: Path | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """True on success."""
        return self.error is None

    @property
    def status(self) -> OutcomeStatus:
        """``succeeded``; ``failed``; or ``unknown``: a charged call that may have run
        (:class:`~aiportrait.errors.SubmitOutcomeUnknown`), never sent again without you."""
        if self.error is None:
            return "succeeded"
        return "unknown" if isinstance(self.error, SubmitOutcomeUnknown) else "failed"

    def unwrap(self) -> V:
        """The value, or raise the error."""
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class Outcomes(AsyncIterator[Outcome[R, V]]):
    """The outcomes of a running batch, in completion order.

    Iterate with ``async for``. To stop early, use it as an async context manager (``async
    with session.create_many(...) as outcomes:``) or call :meth:`aclose`: the batch's tasks are
    cancelled and awaited before it returns, so none is left behind.
    """

    def __init__(self, agen: AsyncGenerator[Outcome[R, V], None]) -> None:
        self._agen = agen

    def __aiter__(self) -> Outcomes[R, V]:
        return self

    async def __anext__(self) -> Outcome[R, V]:
        return await self._agen.__anext__()

    async def aclose(self) -> None:
        """Cancel what is still running and wait for it."""
        await self._agen.aclose()

    async def __aenter__(self) -> Outcomes[R, V]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def collect(self) -> list[Outcome[R, V]]:
        """Run the batch to the end and return every outcome."""
        return [outcome async for outcome in self]
