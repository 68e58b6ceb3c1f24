"""What each call does once the gateway has let it through: check, train, create, job queries.

Handlers take the already verified raw body, parse it, and return the envelope's ``data`` or
raise :class:`ApiError`. Fetching runs on the event loop (aiohttp); decoding, face work and
composing run in the :class:`~._work.Worker` pool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._auth import AppConfig
from ._errors import BAD_BODY, ApiError
from ._faults import Counters, FaultInjector
from ._fetch import Fetcher, FetchError
from ._jobs import JobStore
from ._wire import (
    CREATE_XL,
    E462_INVALID_INPUT,
    E462_NO_TEMPLATE,
    E462_PROMPTS,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
    E500_FACE_ID_DECODE,
    JOB_FAILED,
    JOB_RUNNING,
    JOB_SUCCESS,
    MODEL_NOT_FOUND,
    T2I_TEMPLATE,
    TRAIN_XL,
)
from ._work import Worker

if TYPE_CHECKING:
    from ._compose import FaceModel, SceneModel
    from ._work import PhotoVerdict

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
#: Parallel downloads per call.
FETCH_CONCURRENCY = 8
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def parse_body(raw: bytes, error: ApiError) -> dict[str, Any]:
    """Parse a JSON object body, or raise ``error``."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise error from None
    if not isinstance(body, dict):
        raise error
    return body


def _field(body: Mapping[str, Any], key: str, kind: type, default: Any, error: ApiError) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise error
    return value


def _str_list(value: Any, error: ApiError) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error
    return value


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
    ) -> None:
        self.data_dir = data_dir
        self.train_seconds = train_seconds
        self.fetcher = fetcher
        self.worker = worker
        self.injector = injector
        self.jobs = jobs
        self.counters = Counters()
        self.apps: dict[str, AppConfig] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._faces: OrderedDict[str, FaceModel] = OrderedDict()
        self._scenes: OrderedDict[str, SceneModel] = OrderedDict()

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

    # -- fetching -------------------------------------------------------------------------------

    async def _fetch_all(self, urls: Sequence[str]) -> list[bytes | None]:
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(url: str) -> bytes | None:
            async with limit:
                try:
                    return await self.fetcher.fetch(url)
                except FetchError as exc:
                    log.debug("fetch refused or failed: %s", exc)
                    return None

        return list(await asyncio.gather(*(one(u) for u in urls)))

    # -- check ------------------------------------------------------------------------------------

    async def check(self, app: AppConfig, raw: bytes, request_id: str) -> dict[str, Any]:
        """``aigc_images/check``: per-photo verdicts; ``images`` lists the passing URLs."""
        start = time.perf_counter()
        bad = ApiError.of(BAD_BODY)
        body = parse_body(raw, bad)
        urls = _str_list(body.get("images"), bad)
        _field(body, "model_name", str, "", bad)
        _field(body, "configure", dict, {}, bad)
        if len(urls) > MAX_IMAGES:
            raise bad
        verdicts: list[PhotoVerdict] = []
        if urls:
            blobs = await self._fetch_all(urls)
            verdicts = await self.worker.run(self.worker.check, blobs)
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
        bad = ApiError.of(BAD_BODY)
        body = parse_body(raw, bad)
        urls = _str_list(body.get("images"), bad)
        model_name = _field(body, "model_name", str, "", bad)
        configure = _field(body, "configure", dict, {}, bad)
        if len(urls) > MAX_IMAGES:
            raise bad
        if model_name not in ("", TRAIN_XL) or (model_name == TRAIN_XL and not app.sdxl):
            raise ApiError.of(MODEL_NOT_FOUND)
        sdxl = model_name == TRAIN_XL
        scene = sdxl and configure.get("train_scene_lora_bool") is True
        prompts: list[str] = []
        if scene:
            prompts = _str_list(configure.get("scene_lora_prompts"), bad)
            if len(prompts) != len(urls):
                raise bad
        model_id = str(uuid.uuid4())
        forced_failure = self.injector.job_fails()
        job = self.jobs.add(
            app_id=app.app_id, kind="train", request_id=request_id, model_id=model_id, scene=scene
        )
        self.counters.trainings += 1
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
        verdicts: list[PhotoVerdict] = []
        message = TRAIN_PREPROCESS_FAILED
        ok = False
        try:
            blobs = await self._fetch_all(urls)
            if fail or not urls:
                verdicts = await self.worker.run(self.worker.check, blobs)
            elif scene:
                directory = self.data_dir / "scenes" / job.model_id
                verdicts, ok = await self.worker.run(
                    self.worker.train_scene, job.model_id, blobs, prompts, directory
                )
            else:
                directory = self.data_dir / "models" / job.model_id
                verdicts, ok = await self.worker.run(
                    self.worker.train_face, job.model_id, blobs, directory, sdxl=sdxl
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a broken model file: the job fails, the server lives
            log.exception("training %s crashed", job_id)
            message = f"Train error, error info:{exc}"
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
        else:
            self.jobs.update(job, JOB_FAILED, message, result)
            self.counters.trainings_failed += 1

    # -- create ---------------------------------------------------------------------------------

    async def create(self, app: AppConfig, raw: bytes, request_id: str) -> dict[str, Any]:
        """``aigc_images/create``: compose one portrait synchronously."""
        start = time.perf_counter()
        try:
            data = await self._create(app, raw)
        except ApiError:
            self.counters.create_errors += 1
            raise
        self.counters.creations += 1
        return {"image": data, "cost_time": round(time.perf_counter() - start, 3)}

    async def _create(self, app: AppConfig, raw: bytes) -> str:
        invalid = ApiError.create(E462_INVALID_INPUT)
        body = parse_body(raw, invalid)
        model_name = _field(body, "model_name", str, "", invalid)
        if model_name not in ("", CREATE_XL) or (model_name == CREATE_XL and not app.sdxl):
            raise ApiError.of(MODEL_NOT_FOUND)
        model_id = _field(body, "model_id", str, "", invalid)
        model_ids = _str_list(body.get("model_ids"), invalid)
        template_url = _field(body, "template_image", str, "", invalid)
        configure = _field(body, "configure", dict, {}, invalid)
        options = await self.worker.run(
            self.worker.options, configure, sdxl=model_name == CREATE_XL
        )
        prompt = _field(configure, "t2i_prompt", str, "", invalid)
        scene_id = _field(configure, "scene_id", str, "", invalid)
        reference_url = ""
        if configure.get("ipa_control_only") is True:
            reference_url = _field(configure, "ipa_image_path", str, "", invalid)
            if not reference_url:
                raise invalid
        t2i = bool(prompt) or template_url == T2I_TEMPLATE
        if not t2i and not template_url:
            raise ApiError.create(E462_NO_TEMPLATE)

        models: list[FaceModel] = []
        if not reference_url:
            ids = model_ids or ([model_id] if model_id else [])
            if not ids:
                raise ApiError.create(E462_PROMPTS)
            if t2i and len(ids) > 1:
                raise invalid
            models = [await self._face_model(app, i) for i in ids]
        scene = await self._scene(app, scene_id) if scene_id else None

        reference = None
        if reference_url:
            try:
                reference = await self.fetcher.fetch(reference_url)
            except FetchError:
                raise ApiError.create(E462_ROOP_DECODE) from None
        template = None
        if not t2i:
            try:
                template = await self.fetcher.fetch(template_url)
            except FetchError:
                raise ApiError.create(E462_TEMPLATE_DECODE) from None
        image = await self.worker.run(
            self.worker.create,
            options=options,
            models=models,
            template=template,
            reference=reference,
            prompt=prompt or None,
            scene=scene,
            group=bool(model_ids) and not reference_url,
        )
        return base64.b64encode(image).decode("ascii")

    async def _face_model(self, app: AppConfig, model_id: str) -> FaceModel:
        """Resolve a trained face model, with the documented error for each way it can fail.

        Unknown id (or another app's, or a scene's): 462 "Prompts get error". Known but not
        (successfully) trained: 462 "Roop image decode error ... trained or not". Stored but
        unreadable: 500 "Face id image decode error".
        """
        job = self.jobs.model_job(model_id)
        if job is not None and (job.app_id != app.app_id or job.scene):
            raise ApiError.create(E462_PROMPTS)
        if job is not None and job.state != JOB_SUCCESS:  # still training, or it failed
            raise ApiError.create(E462_ROOP_DECODE)
        if model_id not in self._faces and not _ID_RE.fullmatch(model_id):
            raise ApiError.create(E462_PROMPTS)
        missing = E462_ROOP_DECODE if job is not None else E462_PROMPTS
        return await _load_cached(
            self._faces, 64, model_id, self.data_dir / "models" / model_id,
            lambda d: self.worker.run(Worker.load_face, d),
            missing=missing, unreadable=E500_FACE_ID_DECODE,
        )  # fmt: skip

    async def _scene(self, app: AppConfig, scene_id: str) -> SceneModel:
        """Resolve a trained scene (an unknown one is 462 "Prompts get error")."""
        job = self.jobs.model_job(scene_id)
        if job is not None and (job.app_id != app.app_id or not job.scene):
            raise ApiError.create(E462_PROMPTS)
        if scene_id not in self._scenes and not _ID_RE.fullmatch(scene_id):
            raise ApiError.create(E462_PROMPTS)
        return await _load_cached(
            self._scenes, 16, scene_id, self.data_dir / "scenes" / scene_id,
            lambda d: self.worker.run(Worker.load_scene, d),
            missing=E462_PROMPTS, unreadable=E462_PROMPTS,
        )  # fmt: skip

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


M = TypeVar("M")


async def _load_cached(
    cache: OrderedDict[str, M],
    size: int,
    key: str,
    directory: Path,
    load: Callable[[Path], Awaitable[M]],
    *,
    missing: str,
    unreadable: str,
) -> M:
    """A stored model or scene through a small LRU cache, with the documented error when its
    directory is ``missing`` or its files are ``unreadable``."""
    cached = cache.get(key)
    if cached is not None:
        cache.move_to_end(key)
        return cached
    if not await asyncio.to_thread(directory.is_dir):
        raise ApiError.create(missing)
    try:
        value = await load(directory)
    except Exception:
        log.exception("stored %s could not be loaded", directory)
        raise ApiError.create(unreadable) from None
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)
    return value
