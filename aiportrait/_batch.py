"""Batches: many trainings or creations under one limit, outcomes in completion order.

Requests are small attrs classes (:class:`CreateRequest`, :class:`GroupCreateRequest`,
:class:`ReferenceCreateRequest`, :class:`PromptCreateRequest`, :class:`TrainRequest`). A batch
yields one :class:`Outcome` per item as it completes, with the caller's key, the request, and
either the value or the error; one failed item does not stop the others unless ``fail_fast``.
With ``limit=K``, K workers pull items as they free up, so K calls stay in flight until fewer
than K items remain (no head-of-line blocking behind a slow item).

With ``journal=`` (an SQLite file) a batch is resumable: see :mod:`aiportrait._journal`.
Re-running the same batch after a crash or kill skips finished items (portraits are read back
from disk), resumes watching trainings whose job id was recorded, and never silently submits a
charged call twice: an item that was in flight when the process died may or may not have run
on the service, so it comes back as :class:`~aiportrait.errors.SubmitOutcomeUnknown` unless
``resubmit_unknown=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast

import anyio
import attrs

from ._args import string_tuple
from ._codec import converter
from ._journal import Journal, Record
from .config import CreateConfig
from .errors import (
    InvalidArgument,
    JobFailed,
    PreviousFailure,
    SubmitOutcomeUnknown,
    TransportError,
)
from .models import Portrait, TrainJob, TrainResult

if TYPE_CHECKING:
    from ._session import Session

__all__ = [
    "AnyCreateRequest",
    "CreateRequest",
    "GroupCreateRequest",
    "Outcome",
    "Outcomes",
    "PromptCreateRequest",
    "ReferenceCreateRequest",
    "TrainRequest",
]

log = logging.getLogger("aiportrait")

R = TypeVar("R")
V = TypeVar("V")


def _optional_strings(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else string_tuple(value)


@attrs.frozen
class CreateRequest:
    """A solo portrait: :meth:`Session.create`."""

    model_id: str
    template: str
    sdxl: bool = False
    config: CreateConfig | None = None

    async def submit(self, session: Session) -> Portrait:
        """Run this request on ``session``."""
        return await session.create(
            self.model_id, self.template, sdxl=self.sdxl, config=self.config
        )


@attrs.frozen
class GroupCreateRequest:
    """A group portrait: :meth:`Session.create_group`."""

    model_ids: tuple[str, ...] = attrs.field(converter=string_tuple)
    template: str
    sdxl: bool = False
    config: CreateConfig | None = None

    async def submit(self, session: Session) -> Portrait:
        """Run this request on ``session``."""
        return await session.create_group(
            self.model_ids, self.template, sdxl=self.sdxl, config=self.config
        )


@attrs.frozen
class ReferenceCreateRequest:
    """A portrait from one reference photo: :meth:`Session.create_from_reference`."""

    reference: str
    template: str
    ipa_weight: float | None = None
    sdxl: bool = False
    config: CreateConfig | None = None

    async def submit(self, session: Session) -> Portrait:
        """Run this request on ``session``."""
        return await session.create_from_reference(
            self.reference,
            self.template,
            ipa_weight=self.ipa_weight,
            sdxl=self.sdxl,
            config=self.config,
        )


@attrs.frozen(kw_only=True)
class PromptCreateRequest:
    """A text-prompt portrait: :meth:`Session.create_from_prompt`."""

    prompt: str
    model_id: str | None = None
    template: str | None = None
    reference: str | None = None
    scene_id: str | None = None
    sdxl: bool = False
    config: CreateConfig | None = None

    async def submit(self, session: Session) -> Portrait:
        """Run this request on ``session``."""
        return await session.create_from_prompt(
            self.prompt,
            model_id=self.model_id,
            template=self.template,
            reference=self.reference,
            scene_id=self.scene_id,
            sdxl=self.sdxl,
            config=self.config,
        )


AnyCreateRequest = CreateRequest | GroupCreateRequest | ReferenceCreateRequest | PromptCreateRequest


@attrs.frozen
class TrainRequest:
    """A training: :meth:`Session.train`."""

    images: tuple[str, ...] = attrs.field(converter=string_tuple)
    sdxl: bool = False
    scene_lora: bool = False
    scene_prompts: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strings)

    async def submit(self, session: Session) -> TrainJob:
        """Start this training on ``session``."""
        return await session.train(
            self.images,
            sdxl=self.sdxl,
            scene_lora=self.scene_lora,
            scene_prompts=self.scene_prompts,
        )


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
    data = {"type": type(request).__name__, **converter.unstructure(request)}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(key: object) -> str:
    """A file-name stem for a key: readable where possible, unique always."""
    text = str(key)
    safe = _SAFE.sub("_", text)[:80]
    if safe == text and safe not in ("", ".", ".."):
        return safe
    return f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


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
    """Runs the items of one batch on a Session, with an optional journal and output folder."""

    def __init__(
        self,
        session: Session,
        *,
        journal: str | os.PathLike[str] | None,
        out_dir: str | os.PathLike[str] | None,
        resubmit_unknown: bool,
        retry_failed: bool,
    ) -> None:
        self.session = session
        self.journal = None if journal is None else Journal(Path(journal))
        if out_dir is None and journal is not None:
            out_dir = Path(journal).with_name(Path(journal).stem + "_portraits")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.resubmit_unknown = resubmit_unknown
        self.retry_failed = retry_failed

    def close(self) -> None:
        """Close the journal."""
        if self.journal is not None:
            self.journal.close()

    async def _get(self, kind: str, key: str, fp: str) -> Record | None:
        if self.journal is None:
            return None
        return await anyio.to_thread.run_sync(self.journal.get, kind, key, fp)

    async def _put(self, *args: Any, **kwargs: Any) -> None:
        if self.journal is not None:
            journal = self.journal
            await anyio.to_thread.run_sync(lambda: journal.put(*args, **kwargs))

    def _ended(self, record: Record | None, request: object) -> Exception | None:
        """The reason not to submit again, for a record that cannot simply be resumed."""
        if record is None:
            return None
        if record.status == "failed" and not self.retry_failed:
            return PreviousFailure(record.error or "unknown error")
        if record.status == "submitting" and not self.resubmit_unknown:
            return SubmitOutcomeUnknown(
                f"item {record.key!r} was in flight when an earlier run stopped; it may have "
                "run on the service (re-run with resubmit_unknown=True to submit it again)",
                action=record.kind,
                request=request,
            )
        if record.status == "submitting":
            log.warning("item %r: submitting again after an interrupted run", record.key)
        return None

    async def _submit(self, kind: str, skey: str, fp: str, submit: Callable[[], Awaitable[V]]) -> V:
        """Run a charged call between journal writes; on failure record what is known.

        An error answer means it did not run: ``failed``. A call that provably never left
        (no connection) is forgotten, so a re-run simply sends it. After an ambiguous failure
        (``SubmitOutcomeUnknown``) the row stays ``submitting``: a re-run reports it instead of
        paying twice.
        """
        await self._put(kind, skey, fp, "submitting")
        try:
            return await submit()
        except SubmitOutcomeUnknown:
            raise
        except TransportError as exc:
            if exc.sent is False and self.journal is not None:
                await anyio.to_thread.run_sync(self.journal.forget, kind, skey)
            raise
        except Exception as exc:
            await self._put(kind, skey, fp, "failed", error=_describe(exc))
            raise

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

    async def create(self, key: Any, request: AnyCreateRequest) -> Outcome[Any, Portrait]:
        """Create one portrait, journalled."""
        if self.journal is None and self.out_dir is None:  # nothing to record: just run it
            try:
                return Outcome(key, request, value=await request.submit(self.session))
            except Exception as exc:
                return Outcome(key, request, error=exc)
        skey, fp, stem = str(key), fingerprint(request), file_stem(key)
        try:
            record = await self._get("create", skey, fp)
        except InvalidArgument as exc:
            return Outcome(key, request, error=exc)
        if record is not None and record.status in ("done", "submitting"):
            path = await anyio.to_thread.run_sync(self._find_file, stem)
            if path is not None:  # written atomically, so it is complete
                return await self._resumed_portrait(key, request, record, path)
            if record.status == "done":
                log.warning("item %r: its portrait file is gone; creating it again", skey)
                record = None
        stop = self._ended(record, request)
        if stop is not None:
            return Outcome(key, request, error=stop, resumed=True)
        try:
            portrait = await self._submit("create", skey, fp, lambda: request.submit(self.session))
        except Exception as exc:
            return Outcome(key, request, error=exc)
        path = None
        if self.out_dir is not None:
            target = self.out_dir / (stem + portrait.extension)
            path = await anyio.to_thread.run_sync(portrait.save, target)
        data = {"cost_time": portrait.cost_time, "request_id": portrait.request_id}
        await self._put("create", skey, fp, "done", data=data)
        return Outcome(key, request, value=portrait, path=path)

    async def _resumed_portrait(
        self, key: Any, request: AnyCreateRequest, record: Record, path: Path
    ) -> Outcome[Any, Portrait]:
        data = await anyio.to_thread.run_sync(path.read_bytes)
        info = record.data or {}
        portrait = Portrait.from_bytes(
            data,
            cost_time=float(info.get("cost_time", 0.0)),
            request_id=str(info.get("request_id", "")),
        )
        if record.status != "done":
            await self._put("create", record.key, record.fingerprint, "done", data=info)
        return Outcome(key, request, value=portrait, path=path, resumed=True)

    # -- trainings -----------------------------------------------------------------------

    async def train(self, key: Any, request: TrainRequest, *, wait: bool) -> Outcome[Any, Any]:
        """Start (or resume) one training and, with ``wait``, watch it to its end."""
        skey, fp = str(key), fingerprint(request)
        try:
            record = await self._get("train", skey, fp)
        except InvalidArgument as exc:
            return Outcome(key, request, error=exc)
        job = None
        if record is not None and record.job_id is not None and record.model_id is not None:
            job = TrainJob(record.job_id, record.model_id)
            if record.status == "done" and record.data is not None:
                result = converter.structure(record.data, TrainResult)
                value: Any = result if wait else job
                return Outcome(key, request, value=value, job=job, resumed=True)
        if job is None or (record is not None and record.status == "failed"):
            stop = self._ended(record, request)
            if stop is not None:
                return Outcome(key, request, error=stop, job=job, resumed=True)
            try:
                job = await self._submit("train", skey, fp, lambda: request.submit(self.session))
            except Exception as exc:
                return Outcome(key, request, error=exc)
            # Recorded before any polling: a re-run resumes watching instead of training again.
            await self._put(
                "train", skey, fp, "submitted", job_id=job.job_id, model_id=job.model_id
            )
        if not wait:
            return Outcome(key, request, value=job, job=job)
        try:
            result = await self.session.wait(job)
        except JobFailed as exc:
            await self._put("train", skey, fp, "failed", error=_describe(exc))
            return Outcome(key, request, error=exc, job=job)
        except Exception as exc:  # timeout, auth...: the job may still end; keep it resumable
            return Outcome(key, request, error=exc, job=job)
        await self._put("train", skey, fp, "done", data=converter.unstructure(result))
        return Outcome(key, request, value=result, job=job)


_EXTENSIONS = (".jpg", ".png", ".webp", ".bin")  # every Portrait.extension


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
