"""The batch workflow: many trainings and portraits, ``limit`` at a time, in runs that
continue as new so that a batch of any size stays within Temporal's history limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

import attrs
from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from .._requests import TrainRequest
    from .._retrying.policy import OutagePolicy
    from ..hooks import OutcomeStatus
    from ._activities import PortraitActivities
    from ._calls import Released, charged, details, read, unknown, unpaused
    from ._pause import Pause
    from ._store import batch_portrait, safe_name
    from ._values import (
        BatchInput,
        BatchItem,
        BatchProgress,
        BatchSummary,
        CreateInput,
        ItemPage,
        OutcomePage,
        OutcomeRecord,
        TrainInput,
    )
    from ._wire import encoded_size
    from ._workflows import TrainWorkflow

__all__ = ["NO_OUTCOMES", "OUTCOME_BYTES", "PortraitBatchWorkflow"]

_Place = tuple[int, int]  # an item's page number and index in it (inline: 0, index)

_MAX_QUERY_OUTCOMES = 500
_STORED_WINS = "aiportrait.stored-portrait-wins"
_STOP_AFTER_RESUME = "aiportrait.stop-after-resume-wins"
_OUTCOMES_PER_FILE = 500
NO_OUTCOMES = 2**62
"""A ``progress`` query's ``after`` that asks for no outcome (for its counts)."""
_PAGES_BY_BYTES = "aiportrait.outcome-pages-by-bytes"
_UNSIGNED_SIZES = "aiportrait.outcomes-measured-unsigned"
"""The patch from which an outcome is measured as Temporal carries it now: its presigned URLs
cut before their query (a run begun before measures as it did, so its pages split alike)."""
OUTCOME_BYTES: Final = 1024 * 1024
"""The most bytes of outcomes an outcome page or a ``progress`` reply holds (as Temporal
carries them; but always one outcome at least): half of Temporal's 2 MiB payload limit. An
outcome is at most an item's :data:`~aiportrait.temporal.ITEM_BYTES` and its error's text,
so 500 of them may not fit in one payload."""


def _within(sizes: Sequence[int], most: int) -> int:
    """How many outcomes of encoded ``sizes`` fit in a page from the first: at most ``most``
    and :data:`OUTCOME_BYTES` of them, and one at least (when there is one)."""
    total = 0
    for count, size in enumerate(sizes[:most]):
        total += size
        if total > OUTCOME_BYTES and count:
            return count
    return min(len(sizes), most)


@workflow.defn(name="aiportrait.PortraitBatch")
class PortraitBatchWorkflow:
    """Many trainings (child :class:`TrainWorkflow` runs) and creations, ``limit`` at a time.

    Items are read a page at a time (inline, or from page files in the store), the next page
    while the last items of one still run. After ``per_run`` items (or when Temporal suggests
    it) the run lets its items in flight end, writes their outcomes to the store, and continues
    as new, so a batch of any size stays within Temporal's history limits. While the service
    seems down (``batch.outage``: activities failing as a Session's outage breaker counts),
    no training or create is started: a probe activity decides when to go on. Query
    ``progress`` for counts by outcome, the latest outcomes and a pause; the result is a
    :class:`BatchSummary`.
    """

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._outcomes: list[OutcomeRecord] = []
        self._sizes: list[int] = []  # of each of ``_outcomes``, as Temporal carries it
        self._pages: list[str] = []
        self._in_flight = 0
        self._read = 0
        self._end = False
        self._seq = 0
        self._total = 0
        self._stopped = ""  # why it starts no new item: "request", or the budget's kind
        self._budget = 0
        self._waiting = False
        self._told = False  # the stop signal came (a budget's stop releases no waiting item)
        self._redo: list[_Place] = []  # items not started yet, before the next page's
        self._resume: tuple[int | None, int | None] | None = None
        self._parked = False  # the run waits for a resume (what a stop after one goes back to)
        self._pause = Pause(OutagePolicy())

    @workflow.run
    async def run(self, batch: BatchInput) -> BatchSummary:
        """Run items, page after page, keeping ``limit`` in flight; after ``per_run`` items (or
        when Temporal suggests it), let those in flight end, write the outcomes, and continue
        as new with the rest.

        Told to ``stop`` (or at its budget), it starts no new item: those in flight end, their
        outcomes are written, and it waits (``resume_within``) for ``resume``, which goes on
        with the first item not started, on a new budget; without one, it ends with a summary
        that says how many items it did not start. Items that wait in an outage pause at a
        stop are not sent: the resume starts them first.

        A page that cannot be read fails the batch, but only after the items in flight ended
        and every outcome was written: the failure's details are the error's
        :class:`ErrorInfo` and a :class:`BatchSummary` of what ran (:func:`follow_batch` yields
        those outcomes before it raises)."""
        self._pause = Pause(batch.outage)
        self._counts = dict(batch.counts)
        self._pages = list(batch.outcome_pages)
        self._seq = batch.seq
        self._read = batch.offset
        self._total = batch.total
        self._redo = list(batch.redo)
        spent = dict(batch.spent)
        page_number, skip = batch.next_page, batch.skip
        slots = asyncio.Semaphore(batch.limit)
        running: list[asyncio.Task[None]] = []
        started = 0
        held = False  # an item was not started: a stop, or the budget
        stopped: ApplicationError | None = None
        try:
            for place, item in await self._items_at(batch, tuple(self._redo)):
                if not await self._start(item, place, batch, spent, slots, running):
                    held = True
                    break
                self._redo.remove(place)
            while not held:
                items = (await self._page(batch, page_number, self._read))[skip:]
                for done, item in enumerate(items):
                    place = (page_number, skip + done) if batch.item_pages else (0, self._read)
                    if not await self._start(item, place, batch, spent, slots, running):
                        skip = skip + done if batch.item_pages else 0  # inline: the offset
                        held = True
                        break
                    self._read += 1
                if held:
                    break
                page_number, skip = page_number + 1, 0
                started += len(items)
                if self._end or started >= batch.per_run:
                    break
                if workflow.info().is_continue_as_new_suggested():
                    break
        except ApplicationError as exc:  # items could not be read: the batch fails, but only
            stopped = exc  # once the items in flight ended and every outcome is written
        await asyncio.gather(*running)
        await self._save(batch)
        summary = BatchSummary(dict(self._counts), self._read, tuple(self._pages))
        if stopped is not None:  # the summary rides along: the follower reads its outcomes
            raise ApplicationError(
                stopped.message, *stopped.details, summary, type=stopped.type, non_retryable=True
            )
        rest = held or not self._end or bool(self._redo)  # items not started yet
        if rest and self._stopped:  # (a stop while the last ones ran holds the rest too)
            self._waiting = self._parked = True
            budget = await self._resumed(batch)
            self._parked = False
            if budget is None:  # no resume came: it ends, and the rest never start
                self._waiting = False
                return self.progress(NO_OUTCOMES).summary()
            batch = attrs.evolve(batch, max_trainings=budget[0], max_creations=budget[1])
            spent = {}
        if rest:
            workflow.continue_as_new(
                attrs.evolve(
                    batch,
                    offset=self._read,
                    next_page=page_number,
                    skip=skip,
                    counts=self._counts,
                    outcome_pages=tuple(self._pages),
                    seq=self._seq,
                    spent=spent,
                    redo=tuple(self._redo),
                )
            )
        return summary

    async def _start(
        self,
        item: BatchItem,
        place: _Place,
        batch: BatchInput,
        spent: dict[str, int],
        slots: asyncio.Semaphore,
        running: list[asyncio.Task[None]],
    ) -> bool:
        """Start ``item`` once a slot is free (the next page is read while this one's last
        run), unless it is held (:meth:`_holds`): then it and the rest wait."""
        await slots.acquire()
        if self._holds(item, batch, spent):
            slots.release()
            return False
        running.append(asyncio.create_task(self._one(item, place, batch, slots)))
        return True

    async def _items_at(
        self, batch: BatchInput, places: tuple[_Place, ...]
    ) -> list[tuple[_Place, BatchItem]]:
        """The items at ``places``, reading each page file they are in once."""
        pages: dict[int, tuple[BatchItem, ...]] = {0: batch.items}
        if batch.item_pages:
            pages = {}
            for number in sorted({number for number, _ in places}):
                page: ItemPage = await read(
                    PortraitActivities.read_items, batch.item_pages[number], batch.timeouts
                )
                pages[number] = page.items
        return [(place, pages[place[0]][place[1]]) for place in places]

    def _holds(self, item: BatchItem, batch: BatchInput, spent: dict[str, int]) -> bool:
        """Whether ``item`` is not started: the batch was told to stop, or it would go over the
        budget of its kind (which it stops, as a stop does); else it is counted."""
        if self._stopped:
            return True
        kind = "train" if isinstance(item.request, TrainRequest) else "create"
        limit = batch.max_trainings if kind == "train" else batch.max_creations
        if limit is not None and spent.get(kind, 0) >= limit:
            self._stopped, self._budget = kind, limit
            return True
        spent[kind] = spent.get(kind, 0) + 1
        return False

    async def _resumed(self, batch: BatchInput) -> tuple[int | None, int | None] | None:
        """The new budget ``resume`` gave, or ``None`` when none came within
        ``resume_within``."""
        wait = timedelta(seconds=batch.resume_within)
        try:
            await workflow.wait_condition(lambda: self._resume is not None, timeout=wait)
        except asyncio.TimeoutError:
            return None
        return self._resume

    @workflow.signal
    def stop(self) -> None:
        """Start no new item: those in flight end and their outcomes are written; then wait
        for ``resume``."""
        self._stopped = self._stopped or "request"
        self._told = True  # what waits in an outage pause is released, not sent
        # A resume not acted on yet (it came in this activation, or while the last items
        # ran): this later stop wins, and the batch waits again (a batch begun by a worker
        # without this replays as it ran: the resume went on).
        if self._resume is not None and workflow.patched(_STOP_AFTER_RESUME):
            self._resume, self._waiting = None, self._parked
            self._stopped = "request"

    @workflow.signal
    def resume(self, max_trainings: int | None = None, max_creations: int | None = None) -> None:
        """Go on with the items a stop (or the budget) held, on this budget (``None``: no
        bound), counted from now (a batch that is not stopped is not changed)."""
        if self._stopped:  # a query after this signal sees it: no longer waiting
            self._resume, self._waiting = (max_trainings, max_creations), False

    async def _save(self, batch: BatchInput) -> None:
        """Write this run's outcomes to the store, a page file per 500 (and, in a batch begun
        by a worker of this version, at most :data:`OUTCOME_BYTES`: a page over Temporal's
        payload limit would fail the batch and lose them)."""
        by_bytes = workflow.patched(_PAGES_BY_BYTES)
        first = 0
        while first < len(self._outcomes):
            count = _OUTCOMES_PER_FILE
            if by_bytes:
                count = _within(self._sizes[first:], count)
            chunk = tuple(self._outcomes[first : first + count])
            first += count
            name = f"batches/{self._name()}/outcomes-{chunk[0].seq:010d}.jsonl"
            uri = await read(
                PortraitActivities.save_outcomes, OutcomePage(name, chunk), batch.timeouts
            )
            self._pages.append(uri)

    async def _one(
        self, item: BatchItem, place: _Place, batch: BatchInput, slots: asyncio.Semaphore
    ) -> None:
        self._in_flight += 1
        try:
            outcome = await self._item(item, batch)
        except Released:  # a stop came while it waited in an outage pause: sent by the resume
            self._redo.append(place)
            return
        finally:
            self._in_flight -= 1
            slots.release()
        self._counts[outcome.status] = self._counts.get(outcome.status, 0) + 1
        self._outcomes.append(outcome)
        signed = not workflow.patched(_UNSIGNED_SIZES)
        self._sizes.append(encoded_size(outcome, signed=signed))

    def _stop_told(self) -> bool:
        return self._told

    def _name(self) -> str:
        return safe_name(workflow.info().workflow_id)

    async def _page(self, batch: BatchInput, number: int, offset: int) -> tuple[BatchItem, ...]:
        """Page ``number`` of the item files, or the inline items from ``offset``."""
        if batch.item_pages:
            if number >= len(batch.item_pages):
                self._end = True
                return ()
            page: ItemPage = await read(
                PortraitActivities.read_items, batch.item_pages[number], batch.timeouts
            )
            self._end = number + 1 >= len(batch.item_pages)
            return page.items
        items = batch.items[offset : offset + batch.page]
        self._end = offset + batch.page >= len(batch.items)
        return items

    async def _item(self, item: BatchItem, batch: BatchInput) -> OutcomeRecord:
        request = item.request
        if isinstance(request, TrainRequest):
            return await self._train(item.key, request, batch)
        name = batch_portrait(workflow.info().workflow_id, item.key)
        status, value = await charged(
            PortraitActivities.create,
            CreateInput(request, name, batch.timeouts),
            "create",
            request.to_dict(),
            batch.timeouts,
            self._pause,
            self._stop_told,
        )
        # It may have run: if its portrait is stored, it did (a batch begun by a worker of an
        # earlier version replays as it ran: the patch marks the new step in its history).
        if status == "unknown" and workflow.patched(_STORED_WINS):
            with contextlib.suppress(ApplicationError):  # the store cannot say: unknown
                stored = await read(PortraitActivities.find_portrait, name, batch.timeouts)
                if stored is not None:
                    status, value = "succeeded", stored
        return self._outcome(item.key, "create", status, value)

    async def _train(self, key: str, request: TrainRequest, batch: BatchInput) -> OutcomeRecord:
        child_id = f"{self._name()}/train/{safe_name(key)}"
        task = TrainInput(request, batch.check, False, batch.poll, batch.timeouts)
        # Its submit is charged: not into an outage (a stop releases it unsent).
        if not await unpaused(self._pause, batch.timeouts, self._stop_told):
            raise Released("train")
        try:
            result = await workflow.execute_child_workflow(TrainWorkflow.run, task, id=child_id)
        except ChildWorkflowError as err:
            cause = err.cause
            info = details(cause) if isinstance(cause, ApplicationError) else None
            if info is None:
                why = f"its workflow ended with {cause!r}"
                return self._outcome(key, "train", "unknown", unknown("train", request, why))
            status: OutcomeStatus = "unknown" if info.type == "SubmitOutcomeUnknown" else "failed"
            return self._outcome(key, "train", status, info)
        return self._outcome(key, "train", "succeeded", result)

    def _outcome(self, key: str, kind: str, status: OutcomeStatus, value: Any) -> OutcomeRecord:
        self._seq += 1
        if status != "succeeded":  # the request is the item's own: not repeated in each outcome
            attributes = {k: v for k, v in value.attributes.items() if k != "request"}
            error = attrs.evolve(value, attributes=attributes)
            return OutcomeRecord(self._seq, key, kind, status, error=error)
        if kind == "create":
            return OutcomeRecord(self._seq, key, kind, status, portrait=value)
        return OutcomeRecord(self._seq, key, kind, status, result=value)

    @workflow.query
    def progress(self, after: int = 0) -> BatchProgress:
        """Counts by outcome, and this run's outcomes with ``seq`` above ``after`` (the first
        500 of them, within :data:`OUTCOME_BYTES`: ask again after the last for more)."""
        first = next((i for i, o in enumerate(self._outcomes) if o.seq > after), None)
        newer: tuple[OutcomeRecord, ...] = ()
        if first is not None:
            count = _within(self._sizes[first:], _MAX_QUERY_OUTCOMES)
            newer = tuple(self._outcomes[first : first + count])
        return BatchProgress(
            dict(self._counts),
            self._in_flight,
            self._read - len(self._redo),
            self._end,
            newer,
            tuple(self._pages),
            self._stopped,
            self._budget,
            self._waiting,
            self._total,
            self._pause.paused,
            self._pause.breaker.episodes,
            self._pause.waiting,
        )
