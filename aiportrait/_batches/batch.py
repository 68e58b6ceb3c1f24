"""Batches: many trainings or creations under one limit, outcomes in completion order.

Items are request values (:mod:`aiportrait._requests`); the runner is handed ``send`` (run
one request) and ``wait`` (follow a training to its end) and never sees a Session. A batch
yields one :class:`Outcome` per item as it completes, with the caller's key, the request, and
either the value or the error; one failed item does not stop the others unless ``fail_fast``.
With ``limit=K``, K workers pull items as they free up, so K calls stay in flight until fewer
than K items remain (no head-of-line blocking behind a slow item).

With ``journal=`` (an SQLite file) a batch is resumable: see :mod:`aiportrait._batches.journal`.
Re-running the same batch after a crash or kill skips finished items (portraits are read back
from disk), resumes watching trainings whose job id was recorded, and never silently submits a
charged call twice: an item whose request was on the wire when the process died may or may not
have run on the service, so it comes back as :class:`~aiportrait.errors.SubmitOutcomeUnknown`
unless ``resubmit_unknown=True``. An item still waiting for a limiter slot or the 429 cool-down
never left, so it is simply new on a re-run. A finished portrait whose file is gone comes back as
:class:`~aiportrait.errors.PortraitMissing` unless ``recreate_missing=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar, cast

import anyio
import attrs

from .._args import positive_int
from .._jobs.durations import Durations
from .._local.upload import UploadFunc
from .._requests import (
    AnyCreateRequest,
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
)
from .._retrying import clock as _clock
from .._retrying.budget import Budget
from ..errors import BatchStopped, InvalidArgument
from ..hooks import BatchKind, emit, next_id
from ..hooks.events import BatchEnded, BatchItemEnded, BatchStarted, Hook, tally_word
from ..models import Portrait
from .items import BatchItems
from .outcomes import Outcome, Outcomes
from .runner import BatchRunner, Send, Wait
from .stop import BatchStop

__all__ = [
    "CREATE_KINDS",
    "TRAIN_KINDS",
    "create_many",
    "keyed",
    "run_batch",
    "train_many",
    "training",
]

log = logging.getLogger("aiportrait")

R = TypeVar("R")
V = TypeVar("V")


def keyed(items: BatchItems[R], kinds: tuple[type, ...]) -> Iterable[tuple[Any, R]]:
    """Yield ``(key, request)`` pairs from a mapping, pairs, or bare requests (key = position).

    An item of none of ``kinds`` is refused (a training is never sent as a creation).
    """
    if isinstance(items, Mapping):
        for key, item in items.items():
            if not isinstance(item, kinds):
                raise InvalidArgument(f"batch item {key!r} is {_kind_names(item, kinds)}")
            yield key, cast(R, item)
        return
    for index, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], kinds):
            yield item[0], cast(R, item[1])
        elif isinstance(item, kinds):
            yield index, cast(R, item)
        else:
            raise InvalidArgument(f"batch item {index} is {_kind_names(item, kinds)}")


def _kind_names(item: object, kinds: tuple[type, ...]) -> str:
    return f"{type(item).__name__}, not " + ", ".join(k.__name__ for k in kinds)


@attrs.frozen
class _Abort:
    """Sent by a worker when the input or the batch machinery itself failed."""

    error: Exception


async def run_batch(
    items: Iterable[tuple[Any, R]],
    work: Callable[[Any, R], Awaitable[Outcome[R, V]]],
    limit: int,
    fail_fast: bool,
    stop: BatchStop,
) -> AsyncGenerator[Outcome[R, V], None]:
    """Run ``work`` on every item with ``limit`` workers; yield outcomes as they complete.

    Workers never raise: an item's error is part of its outcome, and a failure of the input
    iterator (or of the journal, or any error of the machinery) is sent as an abort, which stops
    the batch as :meth:`BatchStop.stop` does (the calls in flight finish and are saved within
    the grace) and is raised once the workers are done. Only this generator's own frame cancels
    the workers, so cancellation never lands in the consumer's code between two outcomes.

    Once ``stop`` is stopped (or an item's error would repeat for every item, which stops it)
    no worker takes another item; when the workers are done, every item not taken ends
    :class:`~aiportrait.errors.BatchStopped`. The stop's grace runs out here.
    """
    iterator = iter(items)
    send, receive = anyio.create_memory_object_stream[Outcome[R, V] | _Abort](limit)
    failed: BaseException | None = None

    stopping = False  # with fail_fast: set by the first failure, so no new item starts

    async def worker(out: anyio.abc.ObjectSendStream[Outcome[R, V] | _Abort]) -> None:
        nonlocal stopping
        async with out:
            while not stopping and not stop.stopped:
                try:
                    pair = next(iterator, None)
                    if pair is None:
                        return
                    outcome: Outcome[R, V] | _Abort = await work(*pair)
                except Exception as exc:
                    outcome = _Abort(exc)
                    stop._halt()  # before anything else is sent
                if isinstance(outcome, _Abort) or (fail_fast and outcome.error is not None):
                    stopping = True
                else:
                    stop._stop_on(outcome.error)
                await out.send(outcome)

    async with anyio.create_task_group() as tg, receive:
        for _ in range(limit):
            tg.start_soon(worker, send.clone())
        tg.start_soon(stop._abandon_after_grace)
        send.close()
        async for outcome in receive:
            if isinstance(outcome, _Abort):
                # The input or the journal failed: nothing new starts, and the calls in flight
                # (perhaps paid) finish and are saved within the stop's grace before it raises.
                failed = failed or outcome.error
                continue
            try:
                yield outcome
            except GeneratorExit:
                # The consumer left early (aclose): cancel the workers and wait for them here,
                # in the consumer's task, so that none is left behind.
                tg.cancel_scope.cancel()
                return
            if fail_fast and outcome.error is not None:
                failed = outcome.error
                tg.cancel_scope.cancel()
                break
        tg.cancel_scope.cancel()  # every worker is done: the grace's timer too
    if failed is not None:
        raise failed
    for key, item in iterator if stop.stopped else ():
        yield Outcome(key, item, error=BatchStopped(key, stop.reason))


# -- the entry points behind Session.create_many / train_many --------------------------------


CREATE_KINDS = (
    CreateRequest,
    GroupCreateRequest,
    ReferenceCreateRequest,
    PromptCreateRequest,
)
TRAIN_KINDS = (TrainRequest, list, tuple)  # a training, or a set of photos


def create_many(
    send: Send,
    wait: Wait,
    capacity: int,
    requests: BatchItems[AnyCreateRequest],
    *,
    limit: int | None,
    fail_fast: bool,
    journal: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str] | None,
    resubmit_unknown: bool,
    retry_failed: bool,
    recreate_missing: bool,
    hooks: Sequence[Hook] = (),
    upload: UploadFunc | None = None,
    stop: BatchStop | None = None,
    budgets: Sequence[Budget | None] = (),
    shared_files: bool = False,
) -> Outcomes[AnyCreateRequest, Portrait]:
    """Run create requests as a batch (see :meth:`Session.create_many`)."""
    batch_id = next_id() if hooks else None  # what the hook events of its calls name
    runner = BatchRunner(
        send,
        wait,
        within=batch_id,
        journal=journal,
        out_dir=out_dir,
        resubmit_unknown=resubmit_unknown,
        retry_failed=retry_failed,
        recreate_missing=recreate_missing,
        upload=upload,
        stop=stop,
        budgets=budgets,
        shared_files=shared_files,
    )
    items = keyed(requests, CREATE_KINDS)
    size = _limit(limit, capacity)
    return _outcomes(items, runner.create, size, fail_fast, runner, "create", hooks, batch_id)


def train_many(
    send: Send,
    wait: Wait,
    capacity: int,
    image_sets: BatchItems[TrainRequest | Sequence[Any]],
    *,
    limit: int | None,
    wait_for_end: bool,
    fail_fast: bool,
    journal: str | os.PathLike[str] | None,
    resubmit_unknown: bool,
    retry_failed: bool,
    durations: Durations | None = None,
    hooks: Sequence[Hook] = (),
    upload: UploadFunc | None = None,
    stop: BatchStop | None = None,
    budgets: Sequence[Budget | None] = (),
    shared_files: bool = False,
) -> Outcomes[TrainRequest, Any]:
    """Run trainings as a batch (see :meth:`Session.train_many`).

    With ``durations`` (the Session's learned job durations) and a journal, the batch starts
    from the durations earlier runs stored and stores the ones it learns.
    """
    batch_id = next_id() if hooks else None  # what the hook events of its calls name
    runner = BatchRunner(
        send,
        wait,
        within=batch_id,
        journal=journal,
        out_dir=None,
        resubmit_unknown=resubmit_unknown,
        retry_failed=retry_failed,
        durations=durations,
        upload=upload,
        stop=stop,
        budgets=budgets,
        shared_files=shared_files,
    )

    async def work(key: Any, request: Any) -> Outcome[Any, Any]:
        return await runner.train(key, request, wait=wait_for_end)

    sets: Iterable[tuple[Any, TrainRequest | Sequence[Any]]] = keyed(image_sets, TRAIN_KINDS)
    pairs = ((key, training(item)) for key, item in sets)
    size = _limit(limit, capacity)
    return _outcomes(pairs, work, size, fail_fast, runner, "train", hooks, batch_id)


def training(item: TrainRequest | Sequence[Any]) -> TrainRequest:
    """A photo set as a request."""
    return item if isinstance(item, TrainRequest) else TrainRequest(item)


def _limit(limit: int | None, capacity: int) -> int:
    if limit is None:
        return capacity
    positive_int("limit", limit)
    if limit > capacity:
        log.warning(
            "limit %d exceeds the session's capacity of %d: at most %d run at once",
            limit,
            capacity,
            capacity,
        )
    return limit


def _outcomes(
    items: Iterable[tuple[Any, Any]],
    work: Callable[[Any, Any], Awaitable[Outcome[Any, Any]]],
    limit: int,
    fail_fast: bool,
    runner: BatchRunner,
    kind: BatchKind,
    hooks: Sequence[Hook],
    batch_id: int | None,
) -> Outcomes[Any, Any]:
    """The batch's outcomes, told to the hooks when there are some (``batch_id``)."""
    if batch_id is not None:
        return Outcomes(_observed(items, work, limit, fail_fast, runner, kind, hooks))
    return Outcomes(_closing(run_batch(items, work, limit, fail_fast, runner.stop), runner))


async def _closing(
    outcomes: AsyncGenerator[Outcome[Any, Any], None], runner: BatchRunner
) -> AsyncGenerator[Outcome[Any, Any], None]:
    try:
        async for outcome in outcomes:
            yield outcome
    finally:
        await outcomes.aclose()
        runner.close()


async def _observed(
    items: Iterable[tuple[Any, Any]],
    work: Callable[[Any, Any], Awaitable[Outcome[Any, Any]]],
    limit: int,
    fail_fast: bool,
    runner: BatchRunner,
    kind: BatchKind,
    hooks: Sequence[Hook],
) -> AsyncGenerator[Outcome[Any, Any], None]:
    """:func:`_closing` with the batch's hook events: started, each item, ended."""
    batch_id = runner.within
    assert batch_id is not None
    counts = {"ok": 0, "failed": 0, "unknown": 0, "resumed": 0}
    started = _clock.now()
    stopped: BaseException | None = None
    await emit(hooks, BatchStarted(batch_id, kind, limit))
    outcomes = _closing(run_batch(items, work, limit, fail_fast, runner.stop), runner)
    try:
        async for outcome in outcomes:
            error, status = outcome.error, outcome.status
            counts[tally_word(status, outcome.resumed)] += 1
            error_type = "" if error is None else type(error).__name__
            item = BatchItemEnded(
                batch_id, kind, outcome.key, status, outcome.resumed, error_type, error
            )
            await emit(hooks, item)
            yield outcome
    except BaseException as exc:
        stopped = exc
        raise
    finally:
        await outcomes.aclose()  # now, not when collected: the journal's lock is given back
        ended = BatchEnded(
            batch_id, kind, sum(counts.values()), counts["ok"], counts["failed"],
            counts["unknown"], counts["resumed"], _clock.now() - started,
            None if isinstance(stopped, GeneratorExit) else stopped,
        )  # fmt: skip
        with anyio.CancelScope(shield=True):
            await emit(hooks, ended)
