"""The heavy work, run in a bounded thread pool, never on the event loop.

The image modules (``_vision``, ``_compose``: numpy, OpenCV, dlib) are imported inside the
functions, on first use, so ``import aiportrait.emulator`` and synthetic jobs need none of them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from ._errors import ApiError
from ._wire import (
    CHECK_DECODE_ERROR,
    CHECK_MESSAGES,
    CHECK_SUCCESS,
    CREATE_ERROR_CODE,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
)

if TYPE_CHECKING:
    from ._compose import ComposeOptions, FaceModel, SceneModel
    from ._vision import FaceEngine

__all__ = [
    "CHECK_FORMATS",
    "PhotoVerdict",
    "Worker",
]

P = ParamSpec("P")
T = TypeVar("T")

#: Formats the check and the training accept (the documentation: .jpg, .jpeg and .png).
CHECK_FORMATS = frozenset({"JPEG", "PNG"})
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class PhotoVerdict:
    """One photo's check verdict, without numpy types, ready for the wire."""

    code: int
    message: str
    frontal: bool

    def to_wire(self, url: str) -> dict[str, Any]:
        """Return the ``check_results`` / ``states`` entry for ``url``."""
        return {"code": self.code, "frontal": self.frontal, "message": self.message, "url": url}


DECODE_FAILED = PhotoVerdict(CHECK_DECODE_ERROR, CHECK_MESSAGES[CHECK_DECODE_ERROR], False)


_shared_lock = threading.Lock()
_shared_pool: ThreadPoolExecutor | None = None
_shared_engine: FaceEngine | None = None


def default_workers() -> int:
    """Threads of the default pool: one core is left to the event loop (at most 4 threads).

    Composing holds the GIL part of the time; with as many busy threads as cores, requests
    that need no image work (job queries) slow down tenfold on a two-core machine.
    """
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _default_pool() -> ThreadPoolExecutor:
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = ThreadPoolExecutor(
                max_workers=default_workers(), thread_name_prefix="aiportrait-emu"
            )
        return _shared_pool


def shared_engine() -> FaceEngine:
    """The process-wide face engine (thread-safe; its models load once per thread)."""
    global _shared_engine
    with _shared_lock:
        if _shared_engine is None:
            from ._vision import FaceEngine

            _shared_engine = FaceEngine()
        return _shared_engine


#: Photos for check and training are analysed at most this large (long side, pixels): a face
#: descriptor needs no more, and many huge photos in one request must not take gigabytes.
PHOTO_SIDE = 2048


class Worker:
    """Runs the image work in a bounded thread pool with the shared face engine.

    ``workers=None`` uses one process-wide pool of :func:`default_workers` threads, shared by
    every emulator in the process, so the face models (loaded once per thread, about half a
    second) stay warm across emulators; a number gives this worker its own pool.
    """

    def __init__(self, *, workers: int | None = None, max_pixels: int = 16_000_000) -> None:
        self.max_pixels = max_pixels
        self._owns_pool = workers is not None
        if workers is not None:
            if workers < 1:
                raise ValueError("workers must be at least 1")
            self._pool = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="aiportrait-emu"
            )
        else:
            self._pool = _default_pool()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop an own pool (queued work is cancelled); the shared pool stays up."""
        if self._owns_pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def engine(self) -> FaceEngine:
        """The face engine, built on first use (call from a worker thread)."""
        return shared_engine()

    def decode(
        self,
        data: bytes | None,
        *,
        formats: frozenset[str] | None = None,
        max_side: int | None = None,
    ) -> Any:
        """Decode bytes to an RGB array, or None when they are missing or not an image."""
        from ._vision import DECODE_FORMATS, ImageDecodeError, decode_image

        if data is None:
            return None
        try:
            return decode_image(
                data,
                max_pixels=self.max_pixels,
                formats=formats or DECODE_FORMATS,
                max_side=max_side,
            )
        except ImageDecodeError:
            return None

    # -- check and training -------------------------------------------------------------------

    def check(self, blobs: Sequence[bytes | None]) -> list[PhotoVerdict]:
        """The photo check: decode each image and give the documented verdicts."""
        images = [self.decode(b, formats=CHECK_FORMATS, max_side=PHOTO_SIDE) for b in blobs]
        return self._verdicts(images)

    def _verdicts(self, images: Sequence[Any]) -> list[PhotoVerdict]:
        from ._vision import check_photos

        if not images:
            return []
        return [
            PhotoVerdict(v.code, v.message, bool(v.frontal))
            for v in check_photos(self.engine, images)
        ]

    def train_face(
        self, model_id: str, blobs: Sequence[bytes | None], directory: Path, *, sdxl: bool
    ) -> tuple[list[PhotoVerdict], bool]:
        """Check the photos, build a face model from the usable ones and save it.

        Returns the verdicts and whether a model was saved.
        """
        from ._compose import build_model

        images = [self.decode(b, formats=CHECK_FORMATS, max_side=PHOTO_SIDE) for b in blobs]
        verdicts = self._verdicts(images)
        usable = [img for img, v in zip(images, verdicts, strict=True) if v.code == CHECK_SUCCESS]
        if not usable:
            return verdicts, False
        try:
            model = build_model(self.engine, model_id, usable, sdxl=sdxl)
        except ValueError:
            return verdicts, False
        _save_atomic(model, directory)
        return verdicts, True

    def train_scene(
        self,
        scene_id: str,
        blobs: Sequence[bytes | None],
        prompts: Sequence[str],
        directory: Path,
    ) -> tuple[list[PhotoVerdict], bool]:
        """Build a scene from every photo that decodes (faces are not required) and save it."""
        from ._compose import build_scene

        images = [self.decode(b, formats=CHECK_FORMATS) for b in blobs]
        verdicts = [
            DECODE_FAILED
            if img is None
            else PhotoVerdict(CHECK_SUCCESS, CHECK_MESSAGES[CHECK_SUCCESS], False)
            for img in images
        ]
        kept = [(img, p) for img, p in zip(images, prompts, strict=True) if img is not None]
        if not kept:
            return verdicts, False
        try:
            scene = build_scene(scene_id, [k[0] for k in kept], [k[1] for k in kept])
        except ValueError:
            return verdicts, False
        _save_atomic(scene, directory)
        return verdicts, True

    # -- models ---------------------------------------------------------------------------------

    @staticmethod
    def load_face(directory: Path) -> FaceModel:
        """Load a stored face model."""
        from ._compose import FaceModel

        return FaceModel.load(directory)

    @staticmethod
    def load_scene(directory: Path) -> SceneModel:
        """Load a stored scene."""
        from ._compose import SceneModel

        return SceneModel.load(directory)

    @staticmethod
    def options(configure: Mapping[str, Any], *, sdxl: bool) -> ComposeOptions:
        """Validate ``configure``; raises :class:`ApiError` with the documented 462."""
        from ._compose import ComposeOptions, CreateFailure

        try:
            return ComposeOptions.from_configure(configure, sdxl=sdxl)
        except CreateFailure as exc:
            raise ApiError.create(exc.message) from exc

    # -- creation -------------------------------------------------------------------------------

    def create(
        self,
        *,
        options: ComposeOptions,
        models: Sequence[FaceModel],
        template: bytes | None,
        reference: bytes | None,
        prompt: str | None,
        scene: SceneModel | None,
        group: bool = False,
    ) -> bytes:
        """Compose one portrait and return it encoded (JPEG for a JPEG template, else PNG).

        ``group`` (the request had ``model_ids``) makes the face count check exact even for
        a single id.

        ``template`` None means text-to-image around ``prompt``; ``reference`` replaces the
        trained models by the face of a reference photo. Raises :class:`ApiError` with the
        documented create errors.
        """
        from ._compose import CreateFailure, compose, reference_model, t2i_compose
        from ._vision import encode_image

        try:
            if reference is not None:
                ref = self.decode(reference)
                if ref is None:
                    raise ApiError.create(E462_ROOP_DECODE)
                models = [reference_model(self.engine, ref)]
            if template is None:
                image = t2i_compose(self.engine, prompt or "", models[0], options, scene=scene)
                fmt = "PNG"
            else:
                img = self.decode(template)
                if img is None:
                    raise ApiError.create(E462_TEMPLATE_DECODE)
                image = compose(self.engine, img, models, options, group=group)
                fmt = "JPEG" if template.startswith(JPEG_MAGIC) else "PNG"
        except CreateFailure as exc:
            raise ApiError(exc.status, CREATE_ERROR_CODE, exc.message) from exc
        return encode_image(image, fmt)


class _Saveable(Protocol):
    def save(self, directory: Path) -> None: ...


def _save_atomic(obj: _Saveable, directory: Path) -> None:
    """Save into a temporary sibling directory, then rename it into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        obj.save(tmp)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
