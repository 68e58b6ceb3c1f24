"""Batches: many trainings or creations under one limit, outcomes in completion order.

Items are request values (:mod:`aiportrait._requests`); the runner is handed ``send`` (run
one request) and ``wait`` (follow a training to its end) and never sees a Session. A batch
yields one :class:`Outcome` per item as it completes, with the caller's key, the request, and
either the value or the error; one failed item does not stop the others unless ``fail_fast``.
With ``limit=K``, K workers pull items as they free up, so K calls stay in flight until fewer
than K items remain (no head-of-line blocking behind a slow item).

With ``journal=`` (an SQLite file) a batch is resumable: see :mod:`aiportrait._journal`.
Re-running the same batch after a crash or kill skips finished items (portraits are read back
from disk), resumes watching trainings whose job id was recorded, and never silently submits a
charged call twice: an item whose request was on the wire when the process died may or may not
have run on the service, so it comes back as :class:`~aiportrait.errors.SubmitOutcomeUnknown`
unless ``resubmit_unknown=True``. An item still waiting for a limiter slot or the 429 cool-down
never left, so it is simply new on a re-run. A finished portrait whose file is gone comes back as
:class:`~aiportrait.errors.PortraitMissing` unless ``recreate_missing=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeAlias, TypeVar, cast

import anyio
import attrs

from ._args import positive_int
from ._codec import converter
from ._durations import Durations, train_kind
from ._journal import Journal, Record, key_text
from ._requests import (
    AnyCreateRequest,
    AnyRequest,
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
    _Request,
)
from ._sendhook import before_send
from .errors import (
    InvalidArgument,
    JobFailed,
    JournalError,
    PortraitMissing,
    PreviousFailure,
    SubmitOutcomeUnknown,
    TransportError,
)
from .models import Portrait, TrainJob, TrainResult

__all__ = ["BatchRunner", "Outcome", "Outcomes", "create_many", "run_batch", "train_many"]

log = logging.getLogger("aiportrait")

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


Items: TypeAlias = "Mapping[Any, R] | Iterable[R | tuple[Any, R]]"


def keyed(items: Items[R], kinds: tuple[type, ...]) -> Iterable[tuple[Any, R]]:
    """Yield ``(key, request)`` pairs from a mapping, pairs, or bare requests (key = position)."""
    if isinstance(items, Mapping):
        yield from items.items()
        return
    for index, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], kinds):
            yield item[0], cast(R, item[1])
        elif isinstance(item, kinds):
            yield index, cast(R, item)
        else:
            names = ", ".join(k.__name__ for k in kinds)
            raise InvalidArgument(f"batch item {index} is {type(item).__name__}, not {names}")


def fingerprint(request: object) -> str:
    """A stable digest of a request's content, to detect a key reused for another request."""
    data = request.to_dict() if isinstance(request, _Request) else {"repr": repr(request)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_READABLE = re.compile(r"[a-z0-9_][a-z0-9._-]{0,79}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(key: object) -> str:
    """A file-name stem for a key: readable where possible, and distinct keys never share one.

    A non-negative ``int`` is its own stem (``7``); so is a ``str`` of lower-case letters,
    digits, ``.``, ``_`` and ``-`` (at most 80, not starting with ``.`` or ``-``) that is not
    a decimal number (those belong to ints). Any other key gets a readable prefix, ``~`` and a
    digest of the key with its type (``Alice~3f2a...``, ``1~9c1e...`` for the string ``"1"``).
    A readable stem never holds ``~`` and is lower-case, so stems stay distinct even on a
    case-insensitive file system.
    """
    if type(key) is int and key >= 0:
        return str(key)
    if type(key) is str and _READABLE.fullmatch(key) and not _DECIMAL.fullmatch(key):
        return key
    prefix = _UNSAFE.sub("_", key if isinstance(key, str) else str(key))[:40].lstrip(".-")
    return f"{prefix}~{hashlib.sha256(key_text(key).encode()).hexdigest()[:16]}"


@attrs.frozen
class _Abort:
    """Sent by a worker when the input or the batch machinery itself failed."""

    error: Exception


async def run_batch(
    items: Iterable[tuple[Any, R]],
    work: Callable[[Any, R], Awaitable[Outcome[R, V]]],
    limit: int,
    fail_fast: bool,
) -> AsyncGenerator[Outcome[R, V], None]:
    """Run ``work`` on every item with ``limit`` workers; yield outcomes as they complete.

    Workers never raise: an item's error is part of its outcome, and a failure of the input
    iterator (or of the journal) is sent as an abort. Only this generator's own frame cancels
    the workers, so cancellation never lands in the consumer's code between two outcomes.
    """
    iterator = iter(items)
    send, receive = anyio.create_memory_object_stream[Outcome[R, V] | _Abort](limit)
    failed: BaseException | None = None

    stopping = False  # with fail_fast: set by the first failure, so no new item starts

    async def worker(out: anyio.abc.ObjectSendStream[Outcome[R, V] | _Abort]) -> None:
        nonlocal stopping
        async with out:
            while not stopping:
                try:
                    pair = next(iterator, None)
                    if pair is None:
                        return
                    outcome: Outcome[R, V] | _Abort = await work(*pair)
                except Exception as exc:
                    outcome = _Abort(exc)
                if isinstance(outcome, _Abort) or (fail_fast and outcome.error is not None):
                    stopping = True
                await out.send(outcome)

    async with anyio.create_task_group() as tg, receive:
        for _ in range(limit):
            tg.start_soon(worker, send.clone())
        send.close()
        async for outcome in receive:
            if isinstance(outcome, _Abort):
                failed = outcome.error
                tg.cancel_scope.cancel()
                break
            try:
                yield outcome
            except GeneratorExit:
                # The consumer left early (aclose): cancel the workers and wait for them here,
                # in the consumer's task, so that none is left behind.
                tg.cancel_scope.cancel()
                break
            if fail_fast and outcome.error is not None:
                failed = outcome.error
                tg.cancel_scope.cancel()
                break
    if failed is not None:
        raise failed


class BatchRunner:
    """Runs the items of one batch with an optional journal and output folder.

    It is handed the two things it needs, ``send`` (run one request) and ``wait`` (watch a
    training to its end), and knows nothing else of a Session.

    With a journal, the runner owns it for the whole batch (its lock is taken here, so a
    second run on the same file is refused with :class:`~aiportrait.errors.JournalLocked`).
    """

    def __init__(
        self,
        send: Callable[[AnyRequest], Awaitable[Any]],
        wait: Callable[[TrainJob], Awaitable[TrainResult]],
        *,
        journal: str | os.PathLike[str] | None,
        out_dir: str | os.PathLike[str] | None,
        resubmit_unknown: bool,
        retry_failed: bool,
        recreate_missing: bool = False,
        durations: Durations | None = None,
    ) -> None:
        self.send = send
        self.wait = wait
        self.durations = durations
        self.journal = None if journal is None else Journal(Path(journal))
        if self.journal is not None and durations is not None:
            try:
                durations.load(self.journal.durations())  # what earlier runs learned
            except BaseException:
                self.journal.close()
                raise
        if out_dir is None and journal is not None:
            out_dir = Path(journal).with_name(Path(journal).stem + "_portraits")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.resubmit_unknown = resubmit_unknown
        self.retry_failed = retry_failed
        self.recreate_missing = recreate_missing
        self._keys: set[tuple[str, str]] = set()  # the items this run has started

    def close(self) -> None:
        """Close the journal (and give up its lock)."""
        if self.journal is not None:
            self.journal.close()

    async def _get(self, kind: str, key: Any, skey: str, fp: str) -> Record | None:
        """The item's row; refuses a key another item of this batch has (one row, one file)."""
        if self.journal is None and self.out_dir is None:
            return None  # the key only labels the outcome
        if (kind, skey) in self._keys:
            raise InvalidArgument(
                f"batch key {key!r} is used by more than one item; give each item its own key"
            )
        self._keys.add((kind, skey))
        if self.journal is None:
            return None
        return await anyio.to_thread.run_sync(self.journal.get, kind, skey, fp)

    async def _put(self, *args: Any, **kwargs: Any) -> None:
        if self.journal is not None:
            journal = self.journal
            await anyio.to_thread.run_sync(lambda: journal.put(*args, **kwargs))

    def _row_error(self, key: Any, exc: Exception) -> JournalError:
        """A journal row that exists but cannot be used (written by hand, or damaged)."""
        path = self.journal.path if self.journal is not None else Path()
        if isinstance(exc, JournalError) and exc.__cause__ is not None:
            detail: BaseException = exc.__cause__  # the reason, without the stored key
        else:
            detail = exc
        return JournalError(
            f"journal {path}: the row of item {key!r} cannot be read ({detail}); move it aside "
            "to start over (the items it recorded would then be submitted again)",
            path=path,
            key=key,
        )

    def _ended(self, key: Any, record: Record | None, request: object) -> Exception | None:
        """The reason not to submit again, for a record that cannot simply be resumed."""
        if record is None:
            return None
        if record.status == "failed" and not self.retry_failed:
            return PreviousFailure(record.error or "unknown error")
        if record.status == "submitting" and not self.resubmit_unknown:
            return SubmitOutcomeUnknown(
                f"item {key!r} was on its way to the service when an earlier run stopped; it "
                "may have run there (re-run with resubmit_unknown=True to submit it again)",
                action=record.kind,
                request=request,
            )
        if record.status == "submitting":
            log.warning("item %r: submitting again after an interrupted run", key)
        return None

    async def _submit(
        self,
        kind: str,
        key: Any,
        seen: Record | None,
        fp: str,
        submit: Callable[[], Awaitable[V]],
    ) -> V:
        """Run a charged call; the journal says ``submitting`` only once it is about to leave.

        The item is claimed (atomically, from the row ``seen`` before) by the Session's
        :data:`~aiportrait._sendhook.before_send` hook, after the limiter slot and the 429
        cool-down: until then the request provably never left, and a failure or a cancel
        leaves the row as it was (a new item stays new). An error answer means it did not
        run: ``failed``. A call that provably never left (no connection) gets its row back as
        it was. After an ambiguous failure (``SubmitOutcomeUnknown``), or a cancel while the
        request was on the wire, the row stays ``submitting``: a re-run reports it instead of
        paying twice.
        """
        journal = self.journal
        if journal is None:
            return await submit()
        skey = key_text(key)
        claimed = False

        async def release() -> None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(journal.release, kind, skey, fp, seen)

        async def claim() -> None:
            nonlocal claimed
            if claimed:  # a later try of the same call
                return
            with anyio.CancelScope(shield=True):
                won = await anyio.to_thread.run_sync(journal.claim, kind, skey, fp, seen)
            if not won:
                raise JournalError(
                    f"journal {journal.path}: item {key!r} was claimed by another run or by "
                    "another item with the same key; it was not submitted",
                    path=journal.path,
                    key=key,
                )
            claimed = True
            try:  # a cancel that came during the write lands here: nothing was sent
                await anyio.lowlevel.checkpoint_if_cancelled()
            except BaseException:
                claimed = False
                await release()
                raise

        token = before_send.set(claim)
        try:
            return await submit()
        except SubmitOutcomeUnknown:
            raise
        except TransportError as exc:
            if claimed and exc.sent is False:
                await release()
            raise
        except JournalError:
            raise
        except Exception as exc:
            if claimed:
                await self._put(kind, skey, fp, "failed", error=_describe(exc))
            raise
        finally:
            before_send.reset(token)

    # -- creations -----------------------------------------------------------------------

    def _find_file(self, stem: str) -> Path | None:
        """The finished portrait of an item, by its exact name (``<stem>.<ext>``)."""
        if self.out_dir is None:
            return None
        for ext in _EXTENSIONS:
            path = self.out_dir / (stem + ext)
            if path.is_file():
                return path
        return None

    def _missing(self, key: Any, stem: str, record: Record) -> PortraitMissing:
        recorded = (record.data or {}).get("file")
        where = Path(recorded) if isinstance(recorded, str) and recorded else None
        folder = self.out_dir if self.out_dir is not None else Path()
        return PortraitMissing(key, folder / (stem + (where.suffix if where else "")), where)

    async def create(self, key: Any, request: AnyCreateRequest) -> Outcome[Any, Portrait]:
        """Create one portrait, journalled."""
        if self.journal is None and self.out_dir is None:  # nothing to record: just run it
            try:
                return Outcome(key, request, value=await self.send(request))
            except Exception as exc:
                return Outcome(key, request, error=exc)
        skey, fp, stem = key_text(key), fingerprint(request), file_stem(key)
        try:
            record = await self._get("create", key, skey, fp)
        except InvalidArgument as exc:
            return Outcome(key, request, error=exc)
        except JournalError as exc:
            if exc.key is None:  # the file itself: the batch stops
                raise
            return Outcome(key, request, error=self._row_error(key, exc), resumed=True)
        if record is not None and record.status in ("done", "submitting"):
            path = await anyio.to_thread.run_sync(self._find_file, stem)
            if path is not None:  # written atomically, so it is complete
                try:
                    return await self._resumed_portrait(key, request, record, path)
                except (ValueError, TypeError) as exc:
                    return Outcome(key, request, error=self._row_error(key, exc), resumed=True)
            if record.status == "done":
                if not self.recreate_missing:
                    error = self._missing(key, stem, record)
                    return Outcome(key, request, error=error, resumed=True)
                log.warning("item %r: its portrait file is gone; creating it again", key)
        stop = self._ended(key, record, request)
        if stop is not None:
            return Outcome(key, request, error=stop, resumed=True)
        try:
            portrait = await self._submit("create", key, record, fp, lambda: self.send(request))
        except JournalError as exc:
            if exc.key is None:
                raise
            return Outcome(key, request, error=exc)
        except Exception as exc:
            return Outcome(key, request, error=exc)
        path = None
        data: dict[str, Any] = {"cost_time": portrait.cost_time, "request_id": portrait.request_id}
        if self.out_dir is not None:
            target = self.out_dir / (stem + portrait.extension)
            path = await anyio.to_thread.run_sync(portrait.save, target)
            data["file"] = await anyio.to_thread.run_sync(os.path.abspath, path)
        await self._put("create", skey, fp, "done", data=data)
        return Outcome(key, request, value=portrait, path=path)

    async def _resumed_portrait(
        self, key: Any, request: AnyCreateRequest, record: Record, path: Path
    ) -> Outcome[Any, Portrait]:
        info = dict(record.data or {})
        cost_time = float(info.get("cost_time", 0.0))
        request_id = str(info.get("request_id", ""))
        data = await anyio.to_thread.run_sync(path.read_bytes)
        portrait = Portrait.from_bytes(data, cost_time=cost_time, request_id=request_id)
        if record.status != "done":
            info["file"] = await anyio.to_thread.run_sync(os.path.abspath, path)
            await self._put("create", record.key, record.fingerprint, "done", data=info)
        return Outcome(key, request, value=portrait, path=path, resumed=True)

    # -- trainings -----------------------------------------------------------------------

    async def _train(self, request: TrainRequest) -> TrainJob:
        job = await self.send(request)
        assert isinstance(job, TrainJob)
        return job

    async def train(self, key: Any, request: TrainRequest, *, wait: bool) -> Outcome[Any, Any]:
        """Start (or resume) one training and, with ``wait``, watch it to its end."""
        skey, fp = key_text(key), fingerprint(request)
        try:
            record = await self._get("train", key, skey, fp)
        except InvalidArgument as exc:
            return Outcome(key, request, error=exc)
        except JournalError as exc:
            if exc.key is None:
                raise
            return Outcome(key, request, error=self._row_error(key, exc), resumed=True)
        job = None
        if record is not None and record.job_id is not None and record.model_id is not None:
            job = TrainJob(record.job_id, record.model_id)
            if record.status == "done" and record.data is not None:
                try:
                    result = converter.structure(record.data, TrainResult)
                except Exception as exc:
                    error = self._row_error(key, exc)
                    return Outcome(key, request, error=error, job=job, resumed=True)
                value: Any = result if wait else job
                return Outcome(key, request, value=value, job=job, resumed=True)
        if job is None or (record is not None and record.status == "failed"):
            stop = self._ended(key, record, request)
            if stop is not None:
                return Outcome(key, request, error=stop, job=job, resumed=True)
            try:
                job = await self._submit("train", key, record, fp, lambda: self._train(request))
            except JournalError as exc:
                if exc.key is None:
                    raise
                return Outcome(key, request, error=exc)
            except Exception as exc:
                return Outcome(key, request, error=exc)
            # Recorded before any polling: a re-run resumes watching instead of training again.
            await self._put(
                "train", skey, fp, "submitted", job_id=job.job_id, model_id=job.model_id
            )
        if not wait:
            return Outcome(key, request, value=job, job=job)
        if self.durations is not None:
            self.durations.started(job.job_id, train_kind(request))  # a resumed job too
        try:
            result = await self.wait(job)
        except JobFailed as exc:
            await self._put("train", skey, fp, "failed", error=_describe(exc))
            return Outcome(key, request, error=exc, job=job)
        except Exception as exc:  # timeout, auth...: the job may still end; keep it resumable
            return Outcome(key, request, error=exc, job=job)
        await self._put("train", skey, fp, "done", data=converter.unstructure(result))
        await self._keep_durations()
        return Outcome(key, request, value=result, job=job)

    async def _keep_durations(self) -> None:
        """Store the job durations learned since the last time, for later runs."""
        if self.journal is not None and self.durations is not None:
            new = self.durations.drain()
            if new:
                await anyio.to_thread.run_sync(self.journal.add_durations, new)


_EXTENSIONS = (".jpg", ".png", ".webp", ".bin")  # every Portrait.extension


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- the entry points behind Session.create_many / train_many --------------------------------

Send = Callable[[AnyRequest], Awaitable[Any]]
Wait = Callable[[TrainJob], Awaitable[TrainResult]]

_CREATE_KINDS = (CreateRequest, GroupCreateRequest, ReferenceCreateRequest, PromptCreateRequest)


def create_many(
    send: Send,
    wait: Wait,
    capacity: int,
    requests: Items[AnyCreateRequest],
    *,
    limit: int | None,
    fail_fast: bool,
    journal: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str] | None,
    resubmit_unknown: bool,
    retry_failed: bool,
    recreate_missing: bool,
) -> Outcomes[AnyCreateRequest, Portrait]:
    """Run create requests as a batch (see :meth:`Session.create_many`)."""
    runner = BatchRunner(
        send,
        wait,
        journal=journal,
        out_dir=out_dir,
        resubmit_unknown=resubmit_unknown,
        retry_failed=retry_failed,
        recreate_missing=recreate_missing,
    )
    items = keyed(requests, _CREATE_KINDS)
    return Outcomes(
        _closing(run_batch(items, runner.create, _limit(limit, capacity), fail_fast), runner)
    )


def train_many(
    send: Send,
    wait: Wait,
    capacity: int,
    image_sets: Items[TrainRequest | Sequence[str]],
    *,
    limit: int | None,
    wait_for_end: bool,
    fail_fast: bool,
    journal: str | os.PathLike[str] | None,
    resubmit_unknown: bool,
    retry_failed: bool,
    durations: Durations | None = None,
) -> Outcomes[TrainRequest, Any]:
    """Run trainings as a batch (see :meth:`Session.train_many`).

    With ``durations`` (the Session's learned job durations) and a journal, the batch starts
    from the durations earlier runs stored and stores the ones it learns.
    """
    runner = BatchRunner(
        send,
        wait,
        journal=journal,
        out_dir=None,
        resubmit_unknown=resubmit_unknown,
        retry_failed=retry_failed,
        durations=durations,
    )

    async def work(key: Any, request: TrainRequest) -> Outcome[TrainRequest, Any]:
        return await runner.train(key, request, wait=wait_for_end)

    sets: Iterable[tuple[Any, TrainRequest | Sequence[str]]] = keyed(
        image_sets, (TrainRequest, list, tuple)
    )
    pairs = (
        (key, item if isinstance(item, TrainRequest) else TrainRequest(item)) for key, item in sets
    )
    return Outcomes(_closing(run_batch(pairs, work, _limit(limit, capacity), fail_fast), runner))


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


async def _closing(
    outcomes: AsyncGenerator[Outcome[Any, Any], None], runner: BatchRunner
) -> AsyncGenerator[Outcome[Any, Any], None]:
    try:
        async for outcome in outcomes:
            yield outcome
    finally:
        await outcomes.aclose()
        runner.close()
