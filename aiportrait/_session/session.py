"""``Session``: one thin method per endpoint (build the request, send it), watching; its
batches are :mod:`.batches`'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _requests
from .._jobs.schedule import PollPolicy
from .._requests import BatchQuery, CheckRequest, ImageInput, JobQuery, TrainRequest
from ..models import CheckReport, Job, Portrait, TrainJob, TrainResult
from .batches import SessionBatches

if TYPE_CHECKING:
    from .._jobs.watch import JobWatch
    from ..config import CreateConfig

__all__ = ["Session"]


class Session(SessionBatches):
    """An AI Portrait session: one coroutine per call, sharing one HTTP connection pool.

    Args:
        host: the service address, with or without scheme and trailing slash.
        app_id: your AppId.
        token: your Token (never logged or shown).
        session: an ``aiohttp.ClientSession`` to borrow (never closed); without one, the
            Session makes its own on first use and closes it in :meth:`aclose`.
        timeout: an ``aiohttp.ClientTimeout`` for each try of a call, or a number of seconds
            for each try in all (default :data:`aiportrait.DEFAULT_TIMEOUT`: connect 10 s,
            180 s between bytes, 300 s in all, as a create takes tens of seconds; for checks
            and job and batch queries, whose answers are small, 180 s in all).
        user_agent: a product token put before aiportrait's own User-Agent.
        max_in_flight: calls of all kinds in flight at once (default 16).
        max_trainings: trains in flight at once (default: only ``max_in_flight``).
        max_creations: creates in flight at once (default three quarters of ``max_in_flight``,
            so that job polls find a slot while long creates run).
        per_second: requests per second at most, evenly spaced, for every kind without its
            own rate (:class:`SessionLimits`).
        trainings_per_second: trains per second at most, evenly spaced.
        creations_per_second: creates per second at most, evenly spaced.
        poll: the :class:`PollPolicy` of :meth:`watch` and :meth:`wait` (``TRAINING``: 30 min).
        retry: the :class:`RetryPolicy` (default ``RetryPolicy()``). Read-only calls are
            retried on connection errors, timeouts, 5xx, 429 and unreadable answers; train and
            create only when they provably did not run (no connection, 429, 503 with
            ``Retry-After``), else they raise :class:`~aiportrait.errors.SubmitOutcomeUnknown`.
            After a 429 every call of the Session waits out one shared cool-down.
        outage: the :class:`OutagePolicy`: no train or create while the service seems down.
        max_response_bytes: larger answers are :class:`~aiportrait.errors.ResponseTooLarge`
            (default 64 MiB: a large portrait is a few MB of base64).
        hooks: callables given every :mod:`aiportrait.hooks` event of this Session, after any
            added with :func:`aiportrait.hooks.add_hook`.
        uploader: where local photos (paths, bytes) are uploaded for the service: an
            :class:`aiportrait.uploads.Uploader` (:class:`~aiportrait.uploads.OSSUploader`) or
            an async callable ``(data, content_type, key) -> url``. Without one, a local photo
            is :class:`~aiportrait.errors.InvalidArgument` before anything is sent (and
            :meth:`check_images` checks local photos on this machine).
        budget: a :class:`~aiportrait.Budget`, the most trainings and creations this Session
            may submit (``max_trainings`` and ``max_creations`` bound those *in flight*); a call
            beyond it raises :class:`~aiportrait.errors.BudgetExhausted`, not uploaded or sent.
        max_waiting: a call that must wait before its first try (a slot, the 429 cool-down,
            the outage pause, its rate) is :class:`~aiportrait.errors.Overloaded`, never sent,
            when ``max_waiting`` calls already wait (default 1000: a ``gather`` of hundreds
            still queues). Batches and watches queue under bounds of their own.
        max_wait: such a call is :class:`~aiportrait.errors.Overloaded` after waiting
            ``max_wait`` seconds (default ``None``: only the deadline).

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


def _all_local(request: CheckRequest) -> bool:
    return len(request.local_inputs()) == len(request.images)
