"""Starting workflows and reading their results from an application (the "starter" side)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

import attrs
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from .._args import short
from .._jobs.schedule import PollPolicy
from .._requests import AnyCreateRequest, Request, TrainRequest
from .._retrying.policy import OutagePolicy
from ..errors import InvalidArgument
from ..models import TrainResult
from ._batch_workflow import PortraitBatchWorkflow
from ._following import Following, unreachable
from ._store import PortraitStore, batch_portrait, find_portrait, safe_name
from ._values import (
    RESUME_WITHIN,
    BatchInput,
    BatchItem,
    BatchSummary,
    CreateInput,
    ErrorInfo,
    OutcomeRecord,
    PortraitRef,
    Timeouts,
    TrainInput,
)
from ._wire import data_converter, encoded_size, from_data, to_data
from ._workflows import CreateWorkflow, TrainWorkflow

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "ITEM_BYTES",
    "batch_id",
    "check_item",
    "connect",
    "error_of",
    "follow_batch",
    "read_outcomes",
    "result",
    "start_batch",
    "start_create",
    "start_training",
    "unreachable",
]

DEFAULT_TASK_QUEUE = "aiportrait"
DEFAULT_TIMEOUTS = Timeouts()
#: A page file of a batch holds at most this many bytes of items (Temporal refuses payloads
#: over about 2 MB; a training item with 20 signed URLs is some 6 KB).
PAGE_BYTES = 512 * 1024
ITEM_BYTES: Final = 256 * 1024
"""The most bytes a batch item may take as Temporal carries it (its payload). Temporal refuses
a payload over 2 MiB and a request to its server over 4 MB: an item travels alone in an
activity's input or an outcome, with some 1 KB of name, timeouts or error text around it, and
the workflow schedules ``limit`` items (8 by default) in one request. An eighth of the
payload limit leaves the rest as headroom (8 items: 2 MiB); a real item (20 signed photo URLs
and a config) is some 10 KB. The bound holds the key too: a 50 MB key is refused."""
#: A workflow id names one run for good: starting it again (running or finished) is refused,
#: so an id given twice never charges its items twice (follow it with ``attach`` instead).
_ONCE = WorkflowIDReusePolicy.REJECT_DUPLICATE


async def connect(
    address: str = "127.0.0.1:7233",
    *,
    namespace: str = "default",
    tracing: bool = False,
    tracer_provider: Any = None,
    data_converter: DataConverter = data_converter,
    **kwargs: Any,
) -> Client:
    """``temporalio.client.Client.connect`` with the library's data converter (``kwargs``
    pass through: ``tls``, ``api_key``, ``interceptors``...).

    ``data_converter``: the library's (the default), or one built on it: with
    :func:`~aiportrait.temporal.encrypted_converter`, what Temporal stores is ciphertext
    (give every client and worker the same key; a worker uses its client's converter).

    With ``tracing=True`` (needs ``aiportrait[otel]``), Temporal's OpenTelemetry interceptor is
    added (``tracer_provider``, or the global one): starting a workflow, the workflow and each
    activity get spans of one trace, and the library's call spans (``aiportrait.otel``, made
    in the activities of a worker built on this client) join it as children.
    """
    if tracing:
        from opentelemetry import trace
        from temporalio.contrib.opentelemetry import TracingInterceptor

        tracer = trace.get_tracer("aiportrait.temporal", tracer_provider=tracer_provider)
        interceptors = [*kwargs.pop("interceptors", ()), TracingInterceptor(tracer)]
        kwargs["interceptors"] = interceptors
    return await Client.connect(
        address, namespace=namespace, data_converter=data_converter, **kwargs
    )


def error_of(exc: BaseException) -> BaseException:
    """The library's error behind a Temporal failure (the same class, its attributes intact),
    or ``exc`` itself when there is none."""
    info = _detail(exc, ErrorInfo)
    return exc if info is None else info.exception()


T = TypeVar("T")


def _detail(exc: BaseException, kind: type[T]) -> T | None:
    """The first detail of type ``kind`` of the first application error behind ``exc`` that
    has details (``None`` when there is none)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ApplicationError) and seen.details:
            found = [d for d in seen.details if isinstance(d, kind)]
            return found[0] if found else None
        seen = seen.__cause__ or getattr(seen, "cause", None)
    return None


async def result(handle: WorkflowHandle[Any, Any]) -> Any:
    """The workflow's result; a failure raises the library's error (see :func:`error_of`)."""
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        raise error_of(exc) from exc


R = TypeVar("R", bound=Request)


def _id(prefix: str, workflow_id: str | None) -> str:
    return workflow_id or f"{prefix}-{uuid.uuid4().hex[:12]}"


def batch_id(fingerprints: Iterable[tuple[str, str]], *, check: bool = False) -> str:
    """The workflow id of a batch by its content: ``batch-`` and a digest of its items' keys
    and request fingerprints (``(key, fingerprint)`` pairs, in any order:
    :func:`aiportrait._batches.keys.fingerprint`) and of the options that change what is
    charged (``check`` may stop a training before it is charged).

    Starting the same batch again gives the same id, which Temporal refuses to run twice: so a
    batch started twice is charged once (``aiportrait temporal batch`` attaches to it instead).
    """
    doc = {"check": check, "items": sorted(fingerprints)}
    text = json.dumps(doc, separators=(",", ":"))
    return f"batch-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _by_url(request: R, what: str = "the request") -> R:
    """``request``, refused when it holds local files or bytes: workers fetch photos by URL."""
    if request.local:
        raise InvalidArgument(
            f"{what} holds local files or bytes; Temporal workers on other machines cannot read "
            "them: upload them first (resolve the request with an uploader, as `aiportrait "
            "temporal batch FILE` does) and start it with their URLs"
        )
    return request


async def start_training(
    client: Client,
    request: TrainRequest | Sequence[str],
    *,
    workflow_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    check: bool = False,
    force: bool = False,
    poll: PollPolicy = PollPolicy.TRAINING,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> WorkflowHandle[TrainWorkflow, TrainResult]:
    """Start a :class:`TrainWorkflow` (photos' URLs, or a ``TrainRequest``); returns its handle
    (``handle.id`` re-attaches later: ``client.get_workflow_handle(id)``)."""
    if not isinstance(request, TrainRequest):
        request = TrainRequest(tuple(request))
    task = TrainInput(_by_url(request), check, force, poll, timeouts)
    return await client.start_workflow(
        TrainWorkflow.run,
        task,
        id=_id("train", workflow_id),
        task_queue=task_queue,
        id_reuse_policy=_ONCE,
    )


async def start_create(
    client: Client,
    request: AnyCreateRequest,
    *,
    workflow_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    name: str | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> WorkflowHandle[CreateWorkflow, PortraitRef]:
    """Start a :class:`CreateWorkflow`; the portrait is stored as ``portraits/<name>``
    (``name`` defaults to the workflow id)."""
    wid = _id("create", workflow_id)
    task = CreateInput(_by_url(request), f"portraits/{safe_name(name or wid)}", timeouts)
    return await client.start_workflow(
        CreateWorkflow.run, task, id=wid, task_queue=task_queue, id_reuse_policy=_ONCE
    )


async def start_batch(
    client: Client,
    items: Iterable[tuple[str, TrainRequest | AnyCreateRequest]],
    *,
    store: PortraitStore | None = None,
    workflow_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    limit: int = 8,
    page: int = 500,
    per_run: int = 2000,
    check: bool = False,
    poll: PollPolicy = PollPolicy.TRAINING,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    max_trainings: int | None = None,
    max_creations: int | None = None,
    resume_within: float = RESUME_WITHIN,
    outage: OutagePolicy | None = None,
) -> WorkflowHandle[PortraitBatchWorkflow, BatchSummary]:
    """Start a :class:`PortraitBatchWorkflow` over ``(key, request)`` pairs.

    With a ``store`` (one the workers read), the items are written there as JSON Lines files
    of ``page`` items (and at most :data:`PAGE_BYTES`) each, which the workflow reads in turn: a
    batch of any size. ``per_run`` items run per workflow run (see
    :class:`PortraitBatchWorkflow`). Without
    one, they travel inline in the workflow's input (a few hundred items at most: Temporal
    refuses inputs over about 2 MB). An item over :data:`ITEM_BYTES` (:func:`check_item`) is
    an :class:`~aiportrait.errors.InvalidArgument` naming its key, before anything starts.

    ``max_trainings`` and ``max_creations`` are its budget: the most items of each kind it
    starts (``None``: no bound); at the budget it stops as :func:`stop_batch` stops it, and
    :func:`resume_batch` goes on, on a new budget. The budget is not part of the workflow id.
    A stopped batch waits ``resume_within`` seconds (a week) for its resume, then ends.
    ``outage`` says when the batch pauses because the service seems down, and how it probes
    (see :class:`PortraitBatchWorkflow`).
    """
    wid = _id("batch", workflow_id)
    batch_items = tuple(
        BatchItem(str(key), _by_url(request, f"item {short(key)}")) for key, request in items
    )
    keys = [item.key for item in batch_items]
    if len(set(keys)) != len(keys):
        raise ValueError("batch keys must be distinct")
    for item in batch_items:  # nothing is written or started for a batch with one too large
        check_item(item.key, item.request)
    common: dict[str, Any] = {
        "limit": limit,
        "page": page,
        "per_run": per_run,
        "check": check,
        "poll": poll,
        "timeouts": timeouts,
        "total": len(batch_items),
        "max_trainings": max_trainings,
        "max_creations": max_creations,
        "resume_within": resume_within,
        "outage": outage or OutagePolicy(),
    }
    if store is not None:
        # Under a folder of this start's own: a start refused for its id overwrites nothing.
        folder = f"batches/{safe_name(wid)}/{uuid.uuid4().hex[:12]}"
        pages = []
        for number, text in enumerate(_pages(batch_items, page)):
            name = f"{folder}/items-{number:06d}.jsonl"
            pages.append(await store.put(name, text.encode(), "application/x-ndjson"))
        batch = BatchInput(item_pages=tuple(pages), **common)
    else:
        batch = BatchInput(items=batch_items, **common)
    return await client.start_workflow(
        PortraitBatchWorkflow.run, batch, id=wid, task_queue=task_queue, id_reuse_policy=_ONCE
    )


def check_item(key: str, request: TrainRequest | AnyCreateRequest) -> None:
    """Refuse (:class:`~aiportrait.errors.InvalidArgument`, naming the key) an item that takes
    more than :data:`ITEM_BYTES` as Temporal carries it: :func:`start_batch` checks every item
    so before anything starts (``aiportrait temporal batch`` while it reads the file)."""
    size = encoded_size(BatchItem(key, request))
    if size > ITEM_BYTES:
        raise InvalidArgument(
            f"item {short(key)} takes {size} bytes as Temporal carries it, over the"
            f" {ITEM_BYTES // 1024} KiB an item may take (Temporal refuses a payload over 2 MiB)"
        )


def _pages(items: Sequence[BatchItem], most: int) -> Iterable[str]:
    """JSON Lines texts of at most ``most`` items and about :data:`PAGE_BYTES` each."""
    lines: list[str] = []
    size = 0
    for item in items:
        line = json.dumps(to_data(item), separators=(",", ":")) + "\n"
        if lines and (len(lines) >= most or size + len(line) > PAGE_BYTES):
            yield "".join(lines)
            lines, size = [], 0
        lines.append(line)
        size += len(line)
    if lines:
        yield "".join(lines)


async def follow_batch(
    handle: WorkflowHandle[Any, Any],
    store: PortraitStore,
    *,
    every: float = 1.0,
    on_wait: Callable[[str], object] | None = None,
    reconnect: float = 300.0,
    on_pause: Callable[[str], object] | None = None,
) -> AsyncIterator[OutcomeRecord]:
    """Yield each outcome of a batch once, as it completes, until the batch ends, or stops
    and waits for :func:`resume_batch` (then :func:`batch_summary` says how many it did not
    start).

    Live outcomes come from the workflow's ``progress`` query (every ``every`` seconds); those
    a query missed (written out when the workflow continued as new) are read from the store's
    outcome pages. A create that may have run (``unknown``) but whose portrait is in the store
    (a :class:`FindingStore`) is yielded ``succeeded``: only its report was lost. A batch that
    fails raises the library's error (:func:`error_of`), after
    the outcomes of the items that ran (its failure carries their pages); a query
    that fails (no worker answering for a while) is tried again at the next tick, and
    ``on_wait`` is told why (once for each new reason). When Temporal itself does not answer
    (a server restart, an outage), the follower keeps trying for ``reconnect`` seconds, telling
    ``on_wait``, then raises the last ``RPCError`` (the batch goes on without it).
    ``on_pause`` is told when the batch pauses because the service seems down (why:
    ``BatchProgress.paused``) and when it goes on (``""``).
    """
    shown: set[int] = set()
    latest = 0  # the highest seq shown

    async def unseen(outcomes: Iterable[OutcomeRecord]) -> list[OutcomeRecord]:
        nonlocal latest
        new = [o for o in outcomes if o.seq not in shown]
        shown.update(o.seq for o in new)
        latest = max((latest, *(o.seq for o in new)))
        return [await _stored(o, store, handle.id) for o in new]

    paused = ""  # why the batch was paused when last queried
    following = Following(handle, every=every, reconnect=reconnect, on_wait=on_wait)
    try:
        async for _ in following.ticks():
            try:
                progress = await handle.query(PortraitBatchWorkflow.progress, latest)
            except Exception as exc:  # no worker answers now; the next tick tries again
                following.tell(f"no answer to the progress query (a worker answers it): {exc}")
                continue
            following.answered()
            if on_pause is not None and progress.paused != paused:
                paused = progress.paused
                on_pause(paused)
            fresh = sorted(progress.outcomes, key=lambda o: o.seq)
            if fresh and fresh[0].seq > latest + 1:  # a run went by: its outcomes are stored
                pages = await read_outcomes(store, progress.outcome_pages)
                for outcome in await unseen(pages):
                    yield outcome
            for outcome in await unseen(fresh):
                yield outcome
            if progress.waiting:  # stopped: every outcome is written; it waits for resume
                for outcome in await unseen(await read_outcomes(store, progress.outcome_pages)):
                    yield outcome
                return
        try:
            summary: BatchSummary = following.result()
        except WorkflowFailureError as exc:  # what ran before it failed is in its summary
            ran = _detail(exc, BatchSummary)
            pages = await read_outcomes(store, ran.outcome_pages if ran else ())
            for outcome in await unseen(pages):
                yield outcome
            raise error_of(exc) from exc
        for outcome in await unseen(await read_outcomes(store, summary.outcome_pages)):
            yield outcome
    finally:
        following.close()


async def _stored(outcome: OutcomeRecord, store: PortraitStore, batch: str) -> OutcomeRecord:
    """``outcome``, or for a create that may have run (``unknown``) whose portrait is in the
    store, that it succeeded: the worker stored it, and only its report was lost."""
    if outcome.status != "unknown" or outcome.kind != "create":
        return outcome
    found = await find_portrait(store, batch_portrait(batch, outcome.key))
    if found is None:
        return outcome
    return attrs.evolve(outcome, status="succeeded", portrait=found, error=None)


async def read_outcomes(store: PortraitStore, pages: Iterable[str]) -> list[OutcomeRecord]:
    """Every outcome in the outcome pages a batch wrote (``BatchSummary.outcome_pages``)."""
    outcomes: list[OutcomeRecord] = []
    for uri in pages:
        data = await store.get(uri)
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                outcomes.append(from_data(json.loads(line), OutcomeRecord))
    return outcomes
