"""Trained face models and scenes on disk: where each lives, and loading one by id.

Each stored model is a directory (``models/<id>`` or ``scenes/<id>`` under the data directory,
see :meth:`~._faces.FaceModel.save`); loaded ones are kept in small LRU caches. A create call
resolves its ids here, with the documented create error for each way an id can fail.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ._auth import AppConfig
from ._errors import ApiError
from ._jobs import JobStore
from ._wire import E462_PROMPTS, E462_ROOP_DECODE, E500_FACE_ID_DECODE, JOB_SUCCESS
from ._work import Worker

if TYPE_CHECKING:
    from ._faces import FaceModel
    from ._scenes import SceneModel

__all__ = ["ModelStore"]

log = logging.getLogger("aiportrait.emulator")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ModelStore:
    """The face models and scenes trained under ``data_dir``, as the create calls need them.

    A model id is also the id of the training job that made it (``jobs``); models are loaded in
    the ``worker``'s pool.
    """

    def __init__(self, data_dir: Path, jobs: JobStore, worker: Worker) -> None:
        self.data_dir = data_dir
        self.jobs = jobs
        self.worker = worker
        self._faces: OrderedDict[str, FaceModel] = OrderedDict()
        self._scenes: OrderedDict[str, SceneModel] = OrderedDict()

    def face_dir(self, model_id: str) -> Path:
        """Where the face model ``model_id`` is (or will be) saved."""
        return self.data_dir / "models" / model_id

    def scene_dir(self, scene_id: str) -> Path:
        """Where the scene ``scene_id`` is (or will be) saved."""
        return self.data_dir / "scenes" / scene_id

    async def face(self, app: AppConfig, model_id: str) -> FaceModel:
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
            self._faces, 64, model_id, self.face_dir(model_id),
            lambda d: self.worker.run(Worker.load_face, d),
            missing=missing, unreadable=E500_FACE_ID_DECODE,
        )  # fmt: skip

    async def scene(self, app: AppConfig, scene_id: str) -> SceneModel:
        """Resolve a trained scene (an unknown one is 462 "Prompts get error")."""
        job = self.jobs.model_job(scene_id)
        if job is not None and (job.app_id != app.app_id or not job.scene):
            raise ApiError.create(E462_PROMPTS)
        if scene_id not in self._scenes and not _ID_RE.fullmatch(scene_id):
            raise ApiError.create(E462_PROMPTS)
        return await _load_cached(
            self._scenes, 16, scene_id, self.scene_dir(scene_id),
            lambda d: self.worker.run(Worker.load_scene, d),
            missing=E462_PROMPTS, unreadable=E462_PROMPTS,
        )  # fmt: skip


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
