"""What each call does once the gateway has let it through: check, train, create, job queries.

Handlers take the already verified raw body, parse it, and return the envelope's ``data`` or
raise :class:`ApiError`. Fetching runs on the event loop (aiohttp); decoding, face work and
composing run in the :class:`~._work.Worker` pool.

The photos of one check or training are bounded in work and memory: each distinct URL is fetched
and analysed once (a URL listed again shares the first one's result), at most
``FETCH_CONCURRENCY`` downloads are held at a time, photos are decoded and analysed one after
another (only what the check or the model needs is kept of each, never its pixels), and together
they may decode at most ``max_request_pixels`` (a photo past that gets code 2 with its own
``emulator_detail``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._vision.limits import PixelBudget
from .._vision.sources import Fetched, Unfetched
from .._vision.verdicts import Verdict
from ._activity import Activity
from ._auth import AppConfig
from ._bodies import field_of, parse_body, str_list
from ._dashboard_records import JobRecord, creation_mode
from ._errors import BAD_BODY, INVALID_CREATE, ApiError
from ._faults import FaultInjector, Hold
from ._fetch import Fetcher, FetchError, describe_url
from ._jobs import JobStore
from ._store import ModelStore
from ._wire import (
    CREATE_XL,
    E462_NO_TEMPLATE,
    E462_PROMPTS,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
    JOB_FAILED,
    JOB_RUNNING,
    JOB_SUCCESS,
    MODEL_NOT_FOUND,
    T2I_TEMPLATE,
    TRAIN_XL,
)
from ._work import Worker

if TYPE_CHECKING:
    from ._faces import FaceModel

__all__ = [
    "MAX_IMAGES",
    "TRAIN_LORA_FAILED",
    "TRAIN_NO_PHOTOS",
    "TRAIN_PREPROCESS_FAILED",
    "Service",
]

log = logging.getLogger("aiportrait.emulator")

# EasyPhoto's training messages (PROTOCOL.md 3.1), used as the failed job's message.
TRAIN_NO_PHOTOS = "Please upload training photos."
TRAIN_PREPROCESS_FAILED = (
    "Failed to obtain preprocessed images, please check the preprocessing process."
)
TRAIN_LORA_FAILED = "Failed to obtain Lora after training, please check the training process."

#: Most image URLs accepted in one check or train call (the documentation asks for 5 to 20).
MAX_IMAGES = 100
#: Downloads under way (or done and waiting for analysis) per call.
FETCH_CONCURRENCY = 4

# Emulator choices for check and train bodies that are JSON but ask for too much or too little.
TOO_MANY_IMAGES = (400, "PARAMETER_ERROR", f"too many images (at most {MAX_IMAGES} per call)")
SCENE_PROMPTS_MISMATCH = (
    400,
    "PARAMETER_ERROR",
    "scene_lora_prompts must hold one prompt per image",
)

R = TypeVar("R")


def _log_verdicts(what: str, urls: Sequence[str], verdicts: Sequence[Verdict]) -> None:
    for url, verdict in zip(urls, verdicts, strict=False):
        level = logging.DEBUG if verdict.code == 1 else logging.INFO
        log.log(
            level, "%s %s: %d %s (%s)", what, describe_url(url), verdict.code, verdict.message,
            verdict.detail,
        )  # fmt: skip


class Service:
    """The emulated AI Portrait service: apps, jobs, models and the work."""

    def __init__(
        self,
        *,
        data_dir: Path,
        train_seconds: float,
        fetcher: Fetcher,
        worker: Worker,
        injector: FaultInjector,
        jobs: JobStore,
        activity: Activity,
    ) -> None:
        self.data_dir = data_dir
        self.train_seconds = train_seconds
        self.fetcher = fetcher
        self.worker = worker
        self.injector = injector
        self.jobs = jobs
        self.activity = activity
        self.counters = activity.counters
        self.hold: Hold | None = None  # see Emulator.hold
        self.apps: dict[str, AppConfig] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.models = ModelStore(data_dir, jobs, worker)

    async def close(self) -> None:
        """Cancel running trainings (they are marked failed on the next start)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every running training has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- fetching and analysing photos -------------------------------------------------------

    async def _fetch(self, url: str) -> Fetched | Unfetched:
        try:
            return await self.fetcher.fetch_source(url)
        except FetchError as exc:
            return Unfetched(str(exc))

    async def _each_photo(
        self, urls: Sequence[str], analyse: Callable[[Fetched | Unfetched, PixelBudget], R]
    ) -> list[R]:
        """``analyse`` (run in the pool) for each photo of a call, one per distinct URL, in order.

        Downloads run ahead of the analysis, at most ``FETCH_CONCURRENCY`` at a time (held bytes
        included); one photo is analysed at a time, under one pixel budget for the call.
        """
        distinct = list(dict.fromkeys(urls))
        budget = self.worker.budget()
        results: dict[str, R] = {}
        waiting = iter(distinct)
        pending: deque[tuple[str, asyncio.Task[Fetched | Unfetched]]] = deque()

        def start_next() -> None:
            url = next(waiting, None)
            if url is not None:
                pending.append((url, asyncio.create_task(self._fetch(url))))

        try:
            for _ in range(FETCH_CONCURRENCY):
                start_next()
            while pending:
                url, task = pending.popleft()
                source = await task
                results[url] = await self.worker.run(analyse, source, budget)
                del source, task
                start_next()
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)
        return [results[url] for url in urls]

    async def _verdicts(self, urls: Sequence[str]) -> list[Verdict]:
        examined = await self._each_photo(urls, self.worker.examine)
        return await self.worker.run(self.worker.judge, examined)

    # -- check ------------------------------------------------------------------------------------

    async def check(self, app: AppConfig, raw: bytes, request_id: str) -> dict[str, Any]:
        """``aigc_images/check``: per-photo verdicts; ``images`` lists the passing URLs."""
        start = time.perf_counter()
        body = parse_body(raw, BAD_BODY)
        urls = str_list(body.get("images"), BAD_BODY)
        field_of(body, "model_name", str, "", BAD_BODY)
        field_of(body, "configure", dict, {}, BAD_BODY)
        if len(urls) > MAX_IMAGES:
            raise ApiError.of(TOO_MANY_IMAGES)
        verdicts = await self._verdicts(urls) if urls else []
        _log_verdicts("check", urls, verdicts)
        self.counters.checks += 1
        return {
            "request_id": request_id,
            "images": [u for u, v in zip(urls, verdicts, strict=True) if v.code == 1],
            "cost_time": round(time.perf_counter() - start, 3),
            "check_results": [v.to_wire(u) for u, v in zip(urls, verdicts, strict=True)],
        }

    # -- train ----------------------------------------------------------------------------------

    async def train(self, app: AppConfig, raw: bytes, request_id: str) -> dict[str, Any]:
        """``aigc_images/train``: accept a job at once; the training runs in a task."""
        body = parse_body(raw, BAD_BODY)
        urls = str_list(body.get("images"), BAD_BODY)
        model_name = field_of(body, "model_name", str, "", BAD_BODY)
        configure = field_of(body, "configure", dict, {}, BAD_BODY)
        if len(urls) > MAX_IMAGES:
            raise ApiError.of(TOO_MANY_IMAGES)
        if model_name not in ("", TRAIN_XL) or (model_name == TRAIN_XL and not app.sdxl):
            raise ApiError.of(MODEL_NOT_FOUND)
        sdxl = model_name == TRAIN_XL
        scene = sdxl and configure.get("train_scene_lora_bool") is True
        prompts: list[str] = []
        if scene:
            prompts = str_list(configure.get("scene_lora_prompts"), BAD_BODY)
            if len(prompts) != len(urls):
                raise ApiError.of(SCENE_PROMPTS_MISMATCH)
        model_id = str(uuid.uuid4())
        forced_failure = self.injector.job_fails()
        job = self.jobs.add(
            app_id=app.app_id, kind="train", request_id=request_id, model_id=model_id, scene=scene
        )
        self.counters.trainings += 1
        self.activity.training(
            job.id, app.app_id, urls, model_id=model_id, scene=scene, model=model_name
        )
        task = asyncio.create_task(
            self._train(job.id, urls, prompts, sdxl=sdxl, scene=scene, fail=forced_failure)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"job_id": job.id, "model_id": model_id}

    async def _train(
        self,
        job_id: int,
        urls: list[str],
        prompts: list[str],
        *,
        sdxl: bool,
        scene: bool,
        fail: bool,
    ) -> None:
        job = self.jobs.by_id(job_id)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(min(self.train_seconds / 10, 0.5))
        self.jobs.update(job, JOB_RUNNING)
        self.activity.job_state(job_id, "running")
        verdicts: list[Verdict] = []
        message = TRAIN_PREPROCESS_FAILED
        ok = False
        try:
            if fail or not urls:
                verdicts = await self._verdicts(urls) if urls else []
            elif scene:
                directory = self.models.scene_dir(job.model_id)
                photos = await self._each_photo(urls, self.worker.scene_photo)
                verdicts, ok = await self.worker.run(
                    self.worker.train_scene, job.model_id, photos, prompts, directory
                )
                del photos
            else:
                directory = self.models.face_dir(job.model_id)
                examine = functools.partial(self.worker.examine, sample=True)
                examined = await self._each_photo(urls, examine)
                verdicts, ok = await self.worker.run(
                    self.worker.train_face, job.model_id, examined, directory, sdxl=sdxl
                )
                del examined
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken model file: the job fails, the server lives
            log.exception("training %s crashed", job_id)
            message = f"Train error, error info:{exc}"
        _log_verdicts(f"training {job_id}", urls, verdicts)
        if fail:
            message = TRAIN_LORA_FAILED
        elif not urls:
            message = TRAIN_NO_PHOTOS
        remaining = self.train_seconds - (loop.time() - start)
        if remaining > 0:
            await asyncio.sleep(remaining)
        result = json.dumps(
            {
                "cost_time": round(loop.time() - start, 3),
                "states": [v.to_wire(u) for u, v in zip(urls, verdicts, strict=False)],
                "model_id": job.model_id,
            }
        )
        if ok:
            self.jobs.update(job, JOB_SUCCESS, "success", result)
            self.counters.trainings_succeeded += 1
            self.activity.job_state(job_id, "succeeded")
        else:
            self.jobs.update(job, JOB_FAILED, message, result)
            self.counters.trainings_failed += 1
            self.activity.job_state(job_id, "failed", message)

    # -- create ---------------------------------------------------------------------------------

    async def create(self, app: AppConfig, raw: bytes, request_id: str) -> dict[str, Any]:
        """``aigc_images/create``: compose one portrait synchronously."""
        start = time.perf_counter()
        record = self.activity.creation(app.app_id)
        try:
            image = await self._create(app, raw, record)
        except ApiError as exc:
            self.counters.create_errors += 1
            self.activity.moved(record, "failed", exc.message)
            raise
        except BaseException:
            self.activity.moved(record, "failed", "not finished: the emulator failed or stopped")
            raise
        self.counters.creations += 1
        self.activity.created(record, image)
        data = base64.b64encode(image).decode("ascii")
        return {"image": data, "cost_time": round(time.perf_counter() - start, 3)}

    async def _create(self, app: AppConfig, raw: bytes, record: JobRecord) -> bytes:
        body = parse_body(raw, INVALID_CREATE)
        model_name = field_of(body, "model_name", str, "", INVALID_CREATE)
        if model_name not in ("", CREATE_XL) or (model_name == CREATE_XL and not app.sdxl):
            raise ApiError.of(MODEL_NOT_FOUND)
        model_id = field_of(body, "model_id", str, "", INVALID_CREATE)
        model_ids = str_list(body.get("model_ids"), INVALID_CREATE)
        template_url = field_of(body, "template_image", str, "", INVALID_CREATE)
        configure = field_of(body, "configure", dict, {}, INVALID_CREATE)
        options = await self.worker.run(
            self.worker.options, configure, sdxl=model_name == CREATE_XL
        )
        prompt = field_of(configure, "t2i_prompt", str, "", INVALID_CREATE)
        scene_id = field_of(configure, "scene_id", str, "", INVALID_CREATE)
        reference_url = ""
        if configure.get("ipa_control_only") is True:
            reference_url = field_of(configure, "ipa_image_path", str, "", INVALID_CREATE)
            if not reference_url:
                raise ApiError.of(INVALID_CREATE)
        t2i = bool(prompt) or template_url == T2I_TEMPLATE
        self.activity.inputs(
            record,
            model_id=", ".join(model_ids) or model_id,
            template="" if t2i else template_url,
            mode=creation_mode(
                model_name, t2i=t2i, reference=bool(reference_url), group=bool(model_ids)
            ),
            photos=[reference_url] if reference_url else [],
        )
        if not t2i and not template_url:
            raise ApiError.create(E462_NO_TEMPLATE)

        models: list[FaceModel] = []
        if not reference_url:
            ids = model_ids or ([model_id] if model_id else [])
            if not ids:
                raise ApiError.create(E462_PROMPTS)
            if t2i and len(ids) > 1:
                raise ApiError.of(INVALID_CREATE)
            models = [await self.models.face(app, i) for i in ids]
        scene = await self.models.scene(app, scene_id) if scene_id else None

        reference = await self._fetch_image(reference_url, "reference photo", E462_ROOP_DECODE)
        template = None
        if not t2i:
            template = await self._fetch_image(template_url, "template", E462_TEMPLATE_DECODE)
        return await self.worker.run(
            self.worker.create,
            options=options,
            models=models,
            template=template,
            reference=reference,
            prompt=prompt or None,
            scene=scene,
            group=bool(model_ids) and not reference_url,
        )

    async def _fetch_image(self, url: str, what: str, failure: str) -> bytes | None:
        """The bytes of a create image (None for no URL), or the documented ``failure``."""
        if not url:
            return None
        fetched = await self._fetch(url)
        if isinstance(fetched, Unfetched):
            log.info("create: %s not fetched: %s", what, fetched.detail)
            raise ApiError.create(failure)
        return fetched.data

    # -- jobs -----------------------------------------------------------------------------------

    def job(self, app: AppConfig, job_id: int) -> dict[str, Any] | None:
        """The job query's ``data``, or None when the app has no such job."""
        job = self.jobs.get(job_id, app.app_id)
        if job is None:
            return None
        self.counters.job_polls += 1
        return {"job": job.to_wire(self.jobs.clock())}

    def batch(self, app: AppConfig, batch_id: int) -> dict[str, Any]:
        """The batch query's ``data``: the app's jobs grouped under ``batch_id``."""
        self.counters.batch_polls += 1
        now = self.jobs.clock()
        return {"jobs": [j.to_wire(now, batch=True) for j in self.jobs.batch(batch_id, app.app_id)]}
