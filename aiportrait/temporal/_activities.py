"""The activities: each one try of one request over the Session's send path.

Temporal is the one retry layer here. Each activity sends its request once (the Session's
own retries are off) and turns a failure into an ``ApplicationError`` that Temporal understands:
the library's classifier decides whether it may be retried (``non_retryable``), a ``Retry-After``
becomes ``next_retry_delay``, and the error itself travels as :class:`ErrorInfo` so that the
workflow sees the library's class. Charged activities (train, create) are scheduled with a
single attempt; the workflow alone decides to send again, and only after a failure that proves
the call did not run.

The activities that send photos (check, train, create) presign the photos the starter uploaded
just before the call, with the worker's uploader (:mod:`._presign`): Temporal holds only where
they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from .._requests import CheckRequest, JobQuery, TrainRequest
from .._retrying import clock
from .._retrying.policy import RetryPolicy, decide
from .._session import Session
from .._session.core import PROBE
from ..errors import AIPortraitError, SubmitOutcomeUnknown
from ..models import CheckReport, Job, TrainJob
from ._presign import Presigner, presigned_again
from ._store import PortraitStore, find_portrait
from ._values import (
    BatchItem,
    CreateInput,
    ErrorInfo,
    ItemPage,
    OutcomePage,
    PortraitRef,
)
from ._wire import from_data, to_data

__all__ = ["PortraitActivities", "as_application_error"]

_ONE_TRY = RetryPolicy(attempts=1, charged_attempts=1, deadline=None, hold=False)
"""One try, and a train or create that the Session's outage breaker would hold fails not sent
after one probe: the workflow waits out the outage (an activity held past its timeout would
end ``unknown``, though never sent)."""
_STORE_TRIES = RetryPolicy(attempts=3, base=1.0, cap=2.0, deadline=None)
"""How a portrait's write to the store is tried (it is idempotent, and the portrait was paid
for): three times, with the library's backoff."""
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def as_application_error(exc: AIPortraitError, *, charged: bool) -> ApplicationError:
    """``exc`` as Temporal's ``ApplicationError``: the library's class name as its ``type``,
    :class:`ErrorInfo` as its details, retryable only when the classifier says so.

    The service's answers are the item's result, not the worker's trouble: they are marked
    benign (Temporal logs them at DEBUG); a :class:`SubmitOutcomeUnknown` is not (it is logged).
    A second detail, when there is one, is the failure behind ``exc`` (what the service
    answered, or did not, to a call that may have run): the workflow's outage pause reads it.
    """
    decision = decide(exc, charged=charged, attempt=None, policy=_ONE_TRY)
    delay = decision.wait if decision.retry else 0.0
    cause = exc.__cause__
    behind = (ErrorInfo.of(cause),) if isinstance(cause, AIPortraitError) else ()
    info = ErrorInfo.of(exc)  # its message is the failure's, which Temporal keeps as it is
    return ApplicationError(
        info.message,
        info,
        *behind,
        type=type(exc).__name__,
        non_retryable=not decision.retry,
        next_retry_delay=timedelta(seconds=delay) if delay else None,
        category=(
            ApplicationErrorCategory.UNSPECIFIED
            if isinstance(exc, SubmitOutcomeUnknown)
            else ApplicationErrorCategory.BENIGN
        ),
    )


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat while the body runs, so that a dead worker is noticed within the heartbeat
    timeout (not the whole start-to-close timeout)."""
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield
        return
    every = max(timeout.total_seconds() / 3, 0.05)

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _put(store: PortraitStore, name: str, data: bytes, content_type: str) -> str:
    """``store.put``, tried as :data:`_STORE_TRIES` says: a portrait that was paid for is not
    given up on one failed write."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await store.put(name, data, content_type)
        except Exception:
            if attempt >= _STORE_TRIES.attempts:
                raise
            activity.heartbeat()
            await clock.sleep(_STORE_TRIES.backoff(attempt))  # instant under set_testing()


class PortraitActivities:
    """The activities a worker runs, bound to one Session and one store.

    Register them with ``Worker(activities=PortraitActivities(session, store).all())`` (or use
    :func:`aiportrait.temporal.new_worker`). The Session's own retries are switched off here:
    Temporal retries reads by the library's classifier, and the workflows decide about charged
    calls. The Session's limits still bound this worker's calls in flight. ``uploader`` (an
    :class:`~aiportrait.uploads.OSSUploader` of the bucket the starters upload to) presigns
    their uploaded photos just before each call; without one they are sent as Temporal holds
    them (without a query: the service cannot read a private bucket's objects so).
    """

    def __init__(
        self, session: Session, store: PortraitStore, uploader: Presigner | None = None
    ) -> None:
        self.session = session.with_options(retry=_ONE_TRY)
        self.store = store
        self.uploader = uploader

    def all(self) -> list[Any]:
        """Every activity, for ``Worker(activities=...)``."""
        return [
            self.check,
            self.submit_training,
            self.query_job,
            self.create,
            self.read_items,
            self.save_outcomes,
            self.find_portrait,
            self.probe,
        ]

    @activity.defn(name="aiportrait.check")
    async def check(self, request: CheckRequest) -> CheckReport:
        """Check photos (free; retried by Temporal when the classifier allows)."""
        try:
            return await self.session.send(await presigned_again(request, self.uploader))
        except AIPortraitError as exc:
            raise as_application_error(exc, charged=False) from None

    @activity.defn(name="aiportrait.submit_training")
    async def submit_training(self, request: TrainRequest) -> TrainJob:
        """Submit a training (charged; scheduled with one attempt)."""
        async with _heartbeating():
            try:
                return await self.session.send(await presigned_again(request, self.uploader))
            except AIPortraitError as exc:
                raise as_application_error(exc, charged=True) from None

    @activity.defn(name="aiportrait.query_job")
    async def query_job(self, query: JobQuery) -> Job:
        """Query a job once (free)."""
        try:
            return await self.session.send(query)
        except AIPortraitError as exc:
            raise as_application_error(exc, charged=False) from None

    @activity.defn(name="aiportrait.create")
    async def create(self, task: CreateInput) -> PortraitRef:
        """Create a portrait (charged; one attempt) and store it; return where it is."""
        async with _heartbeating():
            try:
                request = await presigned_again(task.request, self.uploader)
                portrait = await self.session.send(request)
            except AIPortraitError as exc:
                raise as_application_error(exc, charged=True) from None
            name = f"{task.name}{portrait.extension}"
            content_type = _CONTENT_TYPES.get(portrait.format, "application/octet-stream")
            try:
                uri = await _put(self.store, name, portrait.image, content_type)
            except Exception as exc:  # it ran and was charged: the image must not pass as lost
                lost = SubmitOutcomeUnknown(
                    f"the portrait was created (request_id={portrait.request_id}) but could"
                    f" not be stored: {type(exc).__name__}: {exc}",
                    action="create",
                    request=None,  # Temporal keeps no request body (see ErrorInfo)
                )
                raise as_application_error(lost, charged=True) from None
        return PortraitRef(
            uri, portrait.format, len(portrait.image), portrait.cost_time, portrait.request_id
        )

    @activity.defn(name="aiportrait.probe")
    async def probe(self, timeout: float) -> None:
        """The Session's probe of a service that seems down (free; one try of ``timeout``
        seconds): its answer, or its failure, is what a workflow's outage pause goes by."""
        try:
            await self.session.with_options(timeout=timeout).send(PROBE)
        except AIPortraitError as exc:
            raise as_application_error(exc, charged=False) from None

    @activity.defn(name="aiportrait.find_portrait")
    async def find_portrait(self, name: str) -> PortraitRef | None:
        """The portrait a create stored under ``name`` (see :func:`find_portrait`)."""
        return await find_portrait(self.store, name)

    @activity.defn(name="aiportrait.read_items")
    async def read_items(self, uri: str) -> ItemPage:
        """The items of one JSON Lines page file in the store."""
        data = await self.store.get(uri)
        items: list[BatchItem] = []
        lines = data.decode("utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                items.append(from_data(json.loads(line), BatchItem))
            except Exception as exc:
                raise ApplicationError(
                    f"{uri}: line {number} is not a batch item: {exc}",
                    type="InvalidArgument",
                    non_retryable=True,
                ) from None
        return ItemPage(tuple(items))

    @activity.defn(name="aiportrait.save_outcomes")
    async def save_outcomes(self, page: OutcomePage) -> str:
        """Write outcomes as JSON Lines to the store; return the address."""
        text = "".join(json.dumps(to_data(o), separators=(",", ":")) + "\n" for o in page.outcomes)
        return await self.store.put(page.name, text.encode(), "application/x-ndjson")
