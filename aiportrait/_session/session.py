"""``Session``: one thin method per endpoint (build the request, send it), watching, batches."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _requests
from .._jobs.schedule import PollPolicy
from .._requests import BatchQuery, CheckRequest, ImageInput, JobQuery, TrainRequest
from ..models import CheckReport, Job, Portrait, TrainJob, TrainResult
from .core import SessionCore

if TYPE_CHECKING:
    from .._batches.items import BatchItems
    from .._batches.outcomes import Outcomes
    from .._batches.stop import BatchStop
    from .._jobs.watch import JobWatch
    from .._requests import AnyCreateRequest
    from .._retrying.budget import Budget
    from ..config import CreateConfig
    from ..models import BatchPlan

__all__ = ["Session"]


class Session(SessionCore):
    """An AI Portrait session: one coroutine per call, sharing one HTTP connection pool.

    Args:
        host: the service address, with or without scheme and trailing slash.
        app_id: your AppId.
        token: your Token (never logged or shown).
        session: an ``aiohttp.ClientSession`` to borrow; it is used and never closed.
            Without one, the Session creates its own on first use and closes it in
            :meth:`aclose`.
        timeout: an ``aiohttp.ClientTimeout`` for each try of a call, or a number of seconds
            for each try in all (default :data:`aiportrait.DEFAULT_TIMEOUT`: connect 10 s,
            180 s between bytes, 300 s in all, as a create takes tens of seconds; for checks
            and job and batch queries, whose answers are small, 180 s in all).
        user_agent: a product token put before aiportrait's own User-Agent.
        max_in_flight: calls in flight at once, all kinds together (an anyio
            ``CapacityLimiter``, separate from the HTTP connection pool).
        max_trainings: train calls in flight at once (default: only ``max_in_flight``).
        max_creations: create calls in flight at once (default: three quarters of
            ``max_in_flight``, so that job polls find a slot while long creates run).
        per_second, trainings_per_second, creations_per_second: requests per second at most,
            evenly spaced (every kind without its own rate; :class:`SessionLimits`).
        poll: the :class:`PollPolicy` of :meth:`watch` and :meth:`wait` (``TRAINING``: 30 min).
        retry: the :class:`RetryPolicy` (default ``RetryPolicy()``). Read-only calls are
            retried on connection errors, timeouts, 5xx, 429 and unreadable answers; train and
            create only when they provably did not run (no connection, 429, 503 with
            ``Retry-After``), else they raise :class:`~aiportrait.errors.SubmitOutcomeUnknown`.
            After a 429 every call of the Session waits out one shared cool-down.
        outage: the :class:`OutagePolicy`: no train or create while the service seems down.
        max_response_bytes: larger answers are :class:`~aiportrait.errors.ResponseTooLarge`
            (default 64 MiB: a large portrait is a few MB of base64).
        hooks: callables given every :mod:`aiportrait.hooks` event of this Session (a request
            sent, an answer, a retry), after any added with :func:`aiportrait.hooks.add_hook`.
        uploader: where local photos (paths, bytes) are uploaded so that the service can
            download them: an :class:`aiportrait.uploads.Uploader` (such as
            :class:`~aiportrait.uploads.OSSUploader`) or an async callable ``(data,
            content_type, key) -> url``. Without one, a local photo raises
            :class:`~aiportrait.errors.InvalidArgument` before anything is sent (and
            :meth:`check_images` checks local photos on this machine).
        budget: a :class:`~aiportrait.Budget`, the most trainings and creations this Session
            may submit (``max_trainings`` and ``max_creations`` bound those *in flight*); a call
            beyond it raises :class:`~aiportrait.errors.BudgetExhausted`, not uploaded or sent.

    Use it as ``async with Session(...) as session:`` or call :meth:`aclose` when done.
    """

    # -- the endpoints: build a request, send it ---------------------------------------------

    async def check_images(
        self, images: Sequence[ImageInput], *, local: bool = False
    ) -> CheckReport:
        """Check photos before training: one verdict per photo (free).

        Args:
            images: the photos, as :class:`CheckRequest` takes them: URLs (jpg, jpeg or png,
                larger than 512x512; 5 to 20 for training), local files (``pathlib.Path``) or
                image bytes, uploaded first with the Session's ``uploader``.
            local: check local photos on this machine instead (no upload, no call, free; see
                :func:`aiportrait.preflight`, which needs the ``emulator`` extra). A Session
                with no ``uploader`` checks local photos this way without being asked.
        """
        request = CheckRequest(images)
        if local or (request.local and self._upload is None and _all_local(request)):
            from .._local.preflight import preflight

            return await preflight(request.images)  # type: ignore[arg-type]  # refuses str itself
        return await self.send(request)

    async def train(
        self,
        images: Sequence[ImageInput],
        *,
        sdxl: bool = False,
        scene_lora: bool = False,
        scene_prompts: Sequence[str] | None = None,
        force: bool = False,
    ) -> TrainJob:
        """Start training a LoRA on photos of one person (or a scene); returns at once.

        The arguments are :class:`TrainRequest`'s: photos as URLs, local files or bytes (the
        documentation asks for 5 to 20 photos of one person; another count warns
        :class:`~aiportrait.errors.PhotoCountWarning` and is sent as given), ``sdxl``,
        ``scene_lora`` with ``scene_prompts``, and ``force``. Local photos are checked on this
        machine (a failure raises :class:`~aiportrait.errors.PreflightFailed` listing each bad
        photo, before anything is uploaded or charged, unless ``force``), cleaned of metadata
        and uploaded with the Session's ``uploader`` before the training is sent.

        Returns:
            A :class:`TrainJob` handle: watch ``job_id``, create with ``model_id``.
        """
        return await self.send(TrainRequest(images, sdxl, scene_lora, scene_prompts, force))

    async def get_job(self, job: int | TrainJob) -> Job:
        """Query an asynchronous job once (``POST /api/v1/async_jobs/{id}``)."""
        return await self.send(JobQuery(job))

    async def get_batch_jobs(self, batch_id: int) -> tuple[Job, ...]:
        """Query the jobs of a batch (``GET /api/v1/batch_jobs/{id}``)."""
        return await self.send(BatchQuery(batch_id))

    def watch(
        self,
        job: int | TrainJob,
        *,
        poll: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> JobWatch:
        """Watch a job: ``async for update in session.watch(job)`` yields each state change.

        The first update is the state seen first; the last is the terminal one (``SUCCESS``
        with ``update.result``, ``FAILED`` with ``update.message``); ``await watch.result()``
        returns the TrainResult. Raises :class:`~aiportrait.errors.JobTimeout` when the
        deadline (``timeout``, else the policy's) passes first; failed polls are polled again
        within it. Concurrent watches of a job in this Session with one poll policy
        (``timeout`` aside) and retry policy share its polls (:class:`JobWatch`); without an
        ``expected`` duration, one learned from this Session's trainings of its kind is used.
        """
        return self._watch(job, poll=poll, timeout=timeout)

    async def wait(
        self,
        job: int | TrainJob,
        *,
        poll: PollPolicy | None = None,
        timeout: float | None = None,
    ) -> TrainResult:
        """Wait for a training to end and return its result.

        Raises :class:`~aiportrait.errors.JobFailed` (with the service's message and raw
        result) when it fails and :class:`~aiportrait.errors.JobTimeout` at the deadline.
        """
        return await self.watch(job, poll=poll, timeout=timeout).result()

    async def create(
        self,
        model_id: str,
        template: ImageInput,
        *,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> Portrait:
        """Create a solo portrait: the trained person's face on the template.

        The arguments are :class:`CreateRequest`'s: the ``model_id`` of a finished training, a
        template with one face (a URL, a local file or bytes, uploaded first; or
        ``"t2i_generate"`` with a prompt), ``sdxl`` (the model must be SDXL-trained) and a
        :class:`CreateConfig` (or a plain mapping sent as is).
        """
        # The create requests are built on first use (``_requests.__getattr__``).
        return await self.send(_requests.CreateRequest(model_id, template, sdxl, config))

    async def create_group(
        self,
        model_ids: Sequence[str],
        template: ImageInput,
        *,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> Portrait:
        """Create a group portrait: model ids are paired with template faces left to right.

        The arguments are :class:`GroupCreateRequest`'s; ``template`` is a URL, a local file
        or bytes (uploaded first).
        """
        return await self.send(_requests.GroupCreateRequest(model_ids, template, sdxl, config))

    async def create_from_reference(
        self,
        reference: ImageInput,
        template: ImageInput,
        *,
        ipa_weight: float | None = None,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> Portrait:
        """Create a portrait from one reference photo, with no training (IP-Adapter only).

        The arguments are :class:`ReferenceCreateRequest`'s: a photo of the person and a
        template (each a URL, a local file or bytes, uploaded first), ``ipa_weight`` (0.0 to
        1.0, service default 0.5), ``sdxl`` and ``config``.
        """
        request = _requests.ReferenceCreateRequest(reference, template, ipa_weight, sdxl, config)
        return await self.send(request)

    async def create_from_prompt(
        self,
        prompt: str,
        *,
        model_id: str | None = None,
        template: ImageInput | None = None,
        reference: ImageInput | None = None,
        scene_id: str | None = None,
        sdxl: bool = False,
        config: CreateConfig | Mapping[str, Any] | None = None,
    ) -> Portrait:
        """Create a portrait from a text prompt (``t2i_prompt``).

        The arguments are :class:`PromptCreateRequest`'s. Give the person either as a trained
        ``model_id`` or as a ``reference`` photo; ``template`` defaults to ``"t2i_generate"``
        (generate the scene); ``scene_id`` is a scene LoRA from an SDXL scene training.
        ``template`` and ``reference`` may be local files or bytes, uploaded first.
        """
        request = _requests.PromptCreateRequest(
            prompt=prompt,
            model_id=model_id,
            template=template,
            reference=reference,
            scene_id=scene_id,
            sdxl=sdxl,
            config=config,
        )
        return await self.send(request)

    # -- batches: the runner gets send and wait, never the Session ----------------------------

    def create_many(
        self,
        requests: BatchItems[AnyCreateRequest],
        *,
        limit: int | None = None,
        fail_fast: bool = False,
        journal: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        recreate_missing: bool = False,
        budget: Budget | None = None,
        stop: BatchStop | None = None,
        shared_files: bool = False,
    ) -> Outcomes[AnyCreateRequest, Portrait]:
        """Create many portraits concurrently; yields an :class:`Outcome` per item as it ends.

        Args:
            requests: create requests (:class:`CreateRequest`, :class:`GroupCreateRequest`,
                :class:`ReferenceCreateRequest`, :class:`PromptCreateRequest`), as a mapping
                ``key -> request``, ``(key, request)`` pairs, or bare requests (key: position).
                Templates and reference photos may be local files or bytes
                (``CreateRequest(model_id, Path("t.jpg"))``).
            limit: items in flight at once (default: the Session's creation capacity).
            fail_fast: stop the batch at the first failed item and raise its error.
            journal: an SQLite file that makes the batch resumable.
            out_dir: write each portrait there as ``<key>.<ext>`` (default with a journal: a
                folder beside it named ``<journal stem>_portraits``). A key that is not a plain
                lower-case name or a non-negative int gets a digest after ``~`` in its name,
                so that distinct keys never share a file.
            resubmit_unknown: on a re-run, submit again the items that were on their way to the
                service when the earlier run stopped (they may run twice); otherwise they come
                back as :class:`~aiportrait.errors.SubmitOutcomeUnknown`. Items that were
                still waiting for a slot never left: they are simply sent.
            retry_failed: on a re-run, submit again the items that failed before.
            recreate_missing: on a re-run, create (and pay for) again a finished portrait whose
                file is not in ``out_dir`` any more; otherwise it comes back as
                :class:`~aiportrait.errors.PortraitMissing`.
            budget: a :class:`~aiportrait.Budget` for this batch, on top of the Session's: an
                item beyond either ends with :class:`~aiportrait.errors.BudgetExhausted` (not
                uploaded, sent or charged) and stays new in the journal.
            stop: a :class:`~aiportrait.batches.BatchStop` to stop the batch gracefully:
                once stopped, nothing more is submitted, the calls in flight finish and are
                saved within its grace, and the items not submitted end with
                :class:`~aiportrait.errors.BatchStopped` (a re-run does them). The batch stops
                itself the same way on an error that would repeat for every item (quota
                exceeded, unknown app, signature mismatch).
            shared_files: create the journal, folders and portraits by the umask (``0644``,
                for a web server), not private (``0600``, folders ``0700``).

        A journal is owned by one run at a time: a second run on the same file, in this
        process or another, raises :class:`~aiportrait.errors.JournalLocked` here; a file that
        is not a readable journal raises :class:`~aiportrait.errors.JournalError`.

        Local photos (files or bytes in an item) are read when the item starts (a bad file
        fails that item only, with :class:`~aiportrait.errors.LocalPhotoError`), then
        checked, cleaned and uploaded with the Session's ``uploader`` right before the item's
        charged call. The journal binds such an item to its files' content, not their URLs,
        and (with an uploader that can, such as :class:`~aiportrait.uploads.OSSUploader`)
        remembers the uploads (object key and content hash, never a URL): a re-run neither
        uploads again nor runs a finished item again (a URL is presigned again). An outcome's
        ``request`` is the item as given.
        """
        from .._batches.batch import create_many  # batches (and sqlite3) load only when used

        return create_many(
            self._send,
            self._wait,
            self._caller.limits.capacity("create"),
            requests,
            limit=limit,
            fail_fast=fail_fast,
            journal=journal,
            out_dir=out_dir,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            recreate_missing=recreate_missing,
            hooks=self._hooks,
            upload=self._upload,
            budgets=(budget, self._budget),
            stop=stop,
            shared_files=shared_files,
        )

    def train_many(
        self,
        image_sets: BatchItems[TrainRequest | Sequence[ImageInput]],
        *,
        limit: int | None = None,
        wait: bool = True,
        fail_fast: bool = False,
        journal: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        budget: Budget | None = None,
        stop: BatchStop | None = None,
        shared_files: bool = False,
    ) -> Outcomes[TrainRequest, Any]:
        """Train many models concurrently; yields an :class:`Outcome` per item as it ends.

        Args:
            image_sets: photo sets (lists of URLs, local files or bytes, each becoming a
                ``TrainRequest(set)``) or :class:`TrainRequest` objects
                (``TrainRequest(paths, sdxl=True, force=True)``), as a mapping ``key -> set``,
                ``(key, set)`` pairs, or bare sets (key: position).
            limit: trainings in progress at once (default: ``max_trainings``, else
                ``max_in_flight``).
            wait: watch each training to its end (value: :class:`TrainResult`); with False,
                the value is the :class:`TrainJob` as soon as the service accepts it.
            fail_fast: stop at the first failed item and raise its error.
            journal: an SQLite file that makes the batch resumable; a training is recorded
                with its job id before any polling, so a re-run resumes watching it.
            resubmit_unknown: see :meth:`create_many`.
            retry_failed: see :meth:`create_many`.
            budget: see :meth:`create_many` (it counts trainings submitted, not watched).
            stop: see :meth:`create_many`; a stop ends the watching of trainings at once
                (their job ids are in the journal: a re-run watches them again, and an
                outcome says :class:`~aiportrait.errors.BatchStopped` with the job).
            shared_files: see :meth:`create_many`.

        Local photos are handled per item as in :meth:`create_many`: read when the item starts,
        checked on this machine (a failure is :class:`~aiportrait.errors.PreflightFailed` for
        that item, unless the item's ``force``), cleaned and uploaded right before it is
        trained; nothing is charged for an item whose photos were refused.
        """
        from .._batches.batch import train_many  # batches (and sqlite3) load only when used

        return train_many(
            self._send,
            self._wait,
            self._caller.limits.capacity("train"),
            image_sets,
            durations=self._durations,
            limit=limit,
            wait_for_end=wait,
            fail_fast=fail_fast,
            journal=journal,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            hooks=self._hooks,
            upload=self._upload,
            budgets=(budget, self._budget),
            stop=stop,
            shared_files=shared_files,
        )

    async def plan_many(
        self,
        trainings: BatchItems[TrainRequest | Sequence[ImageInput]] = (),
        creations: BatchItems[AnyCreateRequest] = (),
        *,
        journal: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        recreate_missing: bool = False,
        budget: Budget | None = None,
    ) -> BatchPlan:
        """A dry run of :meth:`train_many` and :meth:`create_many` with these arguments: what
        they would do now (a :class:`~aiportrait.models.BatchPlan`), with nothing uploaded, sent
        or charged. Local files are read, the photos of each training that would be sent are
        checked on this machine (unless ``force``), the journal is only looked at."""
        from .._batches.plan import plan_batch  # batches (and sqlite3) load only when used

        return await plan_batch(
            trainings,
            creations,
            journal=journal,
            out_dir=out_dir,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            recreate_missing=recreate_missing,
            budgets=(budget, self._budget),
        )


def _all_local(request: CheckRequest) -> bool:
    return len(request.local_inputs()) == len(request.images)
