"""Running one batch item: the journal around a charged call, portraits on disk, resuming.

A :class:`BatchRunner` is handed ``send`` (run one request) and ``wait`` (follow a training to
its end) and knows nothing else of a Session. With a journal it owns the file for the whole
batch (see :mod:`aiportrait._batches.journal`): an item is claimed only right before its request is
written, a training is recorded with its job id before any polling, and a finished portrait is
written atomically before its row says ``done``.

An item with local inputs (files or bytes in its image fields) has them read first (a bad one
fails the item), its row bound to their content, and its photos checked, cleaned and uploaded
only right before its charged call (see :mod:`aiportrait._local.resolve`). The journal, the
folders and the portraits are created private unless ``shared_files`` (:mod:`aiportrait._files`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from .._jobs.durations import Durations
from .._local.resolve import ReadInputs, remembering, resolve
from .._local.upload import UploadFunc
from .._requests import AnyCreateRequest, AnyRequest, TrainRequest
from .._retrying.budget import Budget, reserve
from .._retrying.loop import Claim
from .._wire.codec import converter
from ..errors import (
    InvalidArgument,
    JobFailed,
    JournalError,
    PortraitMissing,
    PreviousFailure,
    SubmitOutcomeUnknown,
    TransportError,
)
from ..models import Portrait, TrainJob, TrainResult
from .claim import JournalClaim
from .journal import Journal, Record, key_text
from .keys import file_stem, find_portrait, portraits_dir, read_item
from .outcomes import Outcome
from .steps import Resume, Step, next_step
from .stop import REPEATING, BatchStop, StopClaim

__all__ = ["BatchRunner", "Send", "Wait"]

log = logging.getLogger("aiportrait")

V = TypeVar("V")


class Send(Protocol):
    """Send one request (the Session's send path), with the journal's claim on the item and
    the batch's id for the hooks."""

    def __call__(
        self, request: AnyRequest, *, claim: Claim | None = ..., within: int | None = ...
    ) -> Awaitable[Any]: ...


class Wait(Protocol):
    """Follow a training to its end (the Session's wait), for the batch ``within``."""

    def __call__(self, job: TrainJob, *, within: int | None = ...) -> Awaitable[TrainResult]: ...


class BatchRunner:
    """Runs the items of one batch with an optional journal and output folder.

    It is handed the two things it needs, ``send`` (run one request) and ``wait`` (watch a
    training to its end), and knows nothing else of a Session.

    With a journal, the runner owns it for the whole batch (its lock is taken here, so a
    second run on the same file is refused with :class:`~aiportrait.errors.JournalLocked`).
    """

    def __init__(
        self,
        send: Send,
        wait: Wait,
        *,
        within: int | None = None,
        journal: str | os.PathLike[str] | None,
        out_dir: str | os.PathLike[str] | None,
        resubmit_unknown: bool,
        retry_failed: bool,
        recreate_missing: bool = False,
        durations: Durations | None = None,
        upload: UploadFunc | None = None,
        budgets: Sequence[Budget | None] = (),
        stop: BatchStop | None = None,
        shared_files: bool = False,
    ) -> None:
        self.send = send
        self.stop = BatchStop() if stop is None else stop  # see :class:`BatchStop`
        self.wait = wait
        self.within = within
        """The batch's id in hook events (``None`` without hooks)."""
        self.durations = durations
        self.shared_files = shared_files  # the journal, folders and portraits: private unless
        self.journal = None if journal is None else Journal(Path(journal), shared=shared_files)
        self.upload = upload if self.journal is None else remembering(upload, self.journal)
        if self.journal is not None and durations is not None:
            try:
                durations.load(self.journal.durations())  # what earlier runs learned
            except BaseException:
                self.journal.close()
                raise
        self.out_dir = portraits_dir(journal, out_dir)
        self.resume = Resume(resubmit_unknown, retry_failed, recreate_missing)
        self._keys: set[tuple[str, str]] = set()  # the items this run has started
        self.budgets = tuple(budgets)  # the batch's and the Session's: a call holds a place in each

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

    def _step(self, kind: str, key: Any, record: Record | None, has_file: bool = False) -> Step:
        """What to do with the item (:func:`next_step`), saying so when it is paid again."""
        step = next_step(kind, record, has_file, self.resume)
        if step == "charge" and record is not None and record.status == "done":
            log.warning("item %r: its portrait file is gone; creating it again", key)
        elif step == "charge" and record is not None and record.status == "submitting":
            log.warning("item %r: submitting again after an interrupted run", key)
        return step

    def _stopped(self, step: Step, key: Any, record: Record, request: object) -> Exception:
        """Why an item is not submitted again: it failed before, or it may have run."""
        if step == "failed":
            return PreviousFailure(record.error or "unknown error")
        return SubmitOutcomeUnknown(
            f"item {key!r} was on its way to the service when an earlier run stopped; it "
            "may have run there (re-run with resubmit_unknown=True to submit it again)",
            action=record.kind,
            request=request,
        )

    async def _submit(
        self,
        kind: str,
        key: Any,
        seen: Record | None,
        fp: str,
        request: Any,
        submit: Callable[[Claim | None], Awaitable[V]],
    ) -> V:
        """Run a charged call; the journal says ``submitting`` only once it is about to leave.

        The item is claimed (atomically, from the row ``seen`` before) by the
        :class:`JournalClaim` given to the send path, after the limiter slot and the 429
        cool-down: until then the request provably never left, and a failure or a cancel
        leaves the row as it was (a new item stays new). An error answer means it did not
        run: ``failed``. A call that provably never left (no connection) gets its row back as
        it was. After an ambiguous failure (``SubmitOutcomeUnknown``), or a cancel while the
        request was on the wire, the row stays ``submitting``: a re-run reports it instead of
        paying twice. Once stopped, nothing is uploaded or sent (``BatchStopped``). An error
        that repeats for every item (it did not run) gives the row back, as it was.
        """
        journal = self.journal
        inner = None if journal is None else JournalClaim(journal, kind, key, fp, seen)
        claim = StopClaim(self.stop, key, inner)
        self.stop._check(key)
        try:
            with self.stop._abandonable(claim):
                return await submit(claim)
            raise claim.abandoned(kind, request)  # only when the stop cancelled the call
        except (SubmitOutcomeUnknown, JournalError):
            raise
        except Exception as exc:
            if inner is not None and inner.claimed:
                never_ran = isinstance(exc, TransportError) and exc.sent is False
                if never_ran or isinstance(exc, REPEATING):
                    await inner.release()
                elif not isinstance(exc, TransportError):  # an error answer: it did not run
                    await self._put(kind, inner.skey, fp, "failed", error=_describe(exc))
            raise
        finally:
            claim.ended()

    # -- creations -----------------------------------------------------------------------

    def _missing(self, key: Any, stem: str, record: Record) -> PortraitMissing:
        recorded = (record.data or {}).get("file")
        where = Path(recorded) if isinstance(recorded, str) and recorded else None
        folder = self.out_dir if self.out_dir is not None else Path()
        return PortraitMissing(key, folder / (stem + (where.suffix if where else "")), where)

    async def _open(
        self, kind: str, key: Any, request: AnyRequest
    ) -> tuple[str, str, ReadInputs | None, Record | None] | Outcome[Any, Any]:
        """An item opened: its key as stored, its fingerprint, its local inputs read and its
        journal row; or the outcome that ends it now (a bad file or a key used twice: failed;
        a row that cannot be read: resumed, saying why). A journal error about the whole file
        ends the batch."""
        try:
            skey, (fp, read) = key_text(key), await read_item(request)
            record = await self._get(kind, key, skey, fp)
        except InvalidArgument as exc:
            return Outcome(key, request, error=exc)
        except JournalError as exc:
            if exc.key is None:  # the file itself: the batch stops
                raise
            return Outcome(key, request, error=self._row_error(key, exc), resumed=True)
        return skey, fp, read, record

    async def create(self, key: Any, request: AnyCreateRequest) -> Outcome[Any, Portrait]:
        """Create one portrait, journalled."""
        if self.journal is None and self.out_dir is None:  # nothing to record: just run it

            async def run(claim: Claim | None) -> Any:
                resolved = await resolve(request, self.upload)
                return await self.send(resolved, claim=claim, within=self.within)

            value, failed = await self._charged("create", key, None, "", request, run)
            return failed or Outcome(key, request, value=value)
        opened = await self._open("create", key, request)
        if isinstance(opened, Outcome):
            return opened
        skey, fp, read, record = opened
        stem = file_stem(key)
        path = None
        if record is not None and record.status in ("done", "submitting"):
            path = await anyio.to_thread.run_sync(find_portrait, self.out_dir, stem)
        step = self._step("create", key, record, path is not None)
        if step == "done" and record is not None and path is not None:
            try:
                return await self._resumed_portrait(key, request, record, path)
            except (ValueError, TypeError) as exc:
                return Outcome(key, request, error=self._row_error(key, exc), resumed=True)
        if step != "charge" and record is not None:
            if step == "missing":
                return Outcome(key, request, error=self._missing(key, stem, record), resumed=True)
            error = self._stopped(step, key, record, request)
            return Outcome(key, request, error=error, resumed=True)

        async def call(claim: Claim | None) -> Any:
            resolved = await resolve(request, self.upload, read)
            return await self.send(resolved, claim=claim, within=self.within)

        portrait, failed = await self._charged("create", key, record, fp, request, call)
        if failed is not None:
            return failed
        path = None
        data: dict[str, Any] = {"cost_time": portrait.cost_time, "request_id": portrait.request_id}
        if self.out_dir is not None:
            target = self.out_dir / (stem + portrait.extension)
            path = await anyio.to_thread.run_sync(
                lambda: portrait.save(target, shared=self.shared_files)
            )
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

    async def _charged(
        self,
        kind: str,
        key: Any,
        record: Record | None,
        fp: str,
        request: Any,
        call: Callable[[Claim | None], Awaitable[V]],
    ) -> tuple[Any, Outcome[Any, Any] | None]:
        """Run a charged call between journal writes: its value, or the item's failed outcome.

        A journal error about this item ends the item; one about the whole file ends the batch.
        Beyond a budget, it is refused (``BudgetExhausted``) before any upload, its row kept.
        """
        try:
            with reserve(self.budgets, "train" if kind == "train" else "create") as held:
                value = await self._submit(
                    kind, key, record, fp, request, lambda c: call(held.claim(c))
                )
            return value, None
        except JournalError as exc:
            if exc.key is None:
                raise
            return None, Outcome(key, request, error=exc)
        except Exception as exc:
            return None, Outcome(key, request, error=exc)

    async def _train(
        self, request: TrainRequest, read: ReadInputs | None, claim: Claim | None
    ) -> TrainJob:
        resolved = await resolve(request, self.upload, read)
        job = await self.send(resolved, claim=claim, within=self.within)
        assert isinstance(job, TrainJob)
        return job

    async def train(self, key: Any, request: TrainRequest, *, wait: bool) -> Outcome[Any, Any]:
        """Start (or resume) one training and, with ``wait``, watch it to its end."""
        opened = await self._open("train", key, request)
        if isinstance(opened, Outcome):
            return opened
        skey, fp, read, record = opened
        job = None
        if record is not None and record.job_id is not None and record.model_id is not None:
            job = TrainJob(record.job_id, record.model_id)
        step = self._step("train", key, record)
        if step == "done" and record is not None and record.data is not None:
            try:
                result = converter.structure(record.data, TrainResult)
            except Exception as exc:
                unreadable = self._row_error(key, exc)
                return Outcome(key, request, error=unreadable, job=job, resumed=True)
            value: Any = result if wait else job
            return Outcome(key, request, value=value, job=job, resumed=True)
        if step in ("failed", "unknown") and record is not None:
            error = self._stopped(step, key, record, request)
            return Outcome(key, request, error=error, job=job, resumed=True)
        if step == "charge" or job is None:
            job, failed = await self._charged(
                "train", key, record, fp, request, lambda claim: self._train(request, read, claim)
            )
            if failed is not None:
                return failed
            # Recorded before any polling: a re-run resumes watching instead of training again.
            await self._put(
                "train", skey, fp, "submitted", job_id=job.job_id, model_id=job.model_id
            )
        if not wait:
            return Outcome(key, request, value=job, job=job)
        try:
            watched = self.wait(job, within=self.within)
            result = await self.stop._unless_stopped(key, job.job_id, watched)
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
