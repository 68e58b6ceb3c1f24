"""The heavy work, run in a bounded thread pool, never on the event loop.

The image modules (numpy, Pillow, OpenCV, dlib: ``_images``, ``_engine``, ``_check``, ``_faces``,
``_scenes``, ``_composite``, ``_t2i``) are imported inside the functions, on first use, so
``import aiportrait.emulator`` and synthetic jobs need none of them. ``_options`` (the create
``configure`` keys) needs no image library.
"""

from __future__ import annotations

import asyncio
import functools
import logging
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
from ._fetch import Fetched, Unfetched
from ._options import ComposeOptions
from ._wire import (
    CHECK_DECODE_ERROR,
    CHECK_MESSAGES,
    CHECK_SUCCESS,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
)

if TYPE_CHECKING:
    from .._vision.check import Examined, Verdict
    from .._vision.face_engine import FaceEngine
    from .._vision.images import RGBImage
    from ._faces import FaceModel, FaceSample
    from ._scenes import SceneModel

__all__ = [
    "CHECK_FORMATS",
    "PHOTO_MIN_SIDE",
    "PHOTO_SIDE",
    "PhotoVerdict",
    "PixelBudget",
    "Worker",
]

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("aiportrait.emulator")

#: Formats the check and the training accept (the documentation: .jpg, .jpeg and .png).
CHECK_FORMATS = frozenset({"JPEG", "PNG"})
JPEG_MAGIC = b"\xff\xd8\xff"
#: Photos for check and training are analysed at most this large (each side, pixels): a face
#: descriptor needs no more, and a huge photo must not take hundreds of megabytes.
PHOTO_SIDE = 2048
#: The check's smallest accepted side, taken from the photo's header (its original size).
PHOTO_MIN_SIDE = 512


@dataclass(frozen=True)
class PhotoVerdict:
    """One photo's check verdict, without numpy types, ready for the wire.

    ``detail`` is the emulator's explanation of the cause, sent as ``emulator_detail`` next to
    the documented ``code`` and ``message`` (which stay word for word).
    """

    code: int
    message: str
    frontal: bool
    detail: str = ""

    @classmethod
    def of(cls, verdict: Verdict) -> PhotoVerdict:
        """The wire form of a :class:`~._check.Verdict`."""
        return cls(verdict.code, verdict.message, bool(verdict.frontal), verdict.detail)

    @classmethod
    def decode_error(cls, detail: str) -> PhotoVerdict:
        """Code 2, "Image decode error.", for the reason ``detail``."""
        return cls(CHECK_DECODE_ERROR, CHECK_MESSAGES[CHECK_DECODE_ERROR], False, detail)

    def to_wire(self, url: str) -> dict[str, Any]:
        """Return the ``check_results`` / ``states`` entry for ``url``."""
        return {
            "code": self.code,
            "frontal": self.frontal,
            "message": self.message,
            "url": url,
            "emulator_detail": self.detail,
        }


class PixelBudget:
    """How many more pixels the photos of one request may decode.

    The photos of a request are decoded one after another, so no lock is needed; a photo that
    would pass the budget is not decoded at all and gets code 2 with its own detail.
    """

    def __init__(self, pixels: int) -> None:
        self.left = pixels

    def take(self, pixels: int) -> bool:
        """Spend ``pixels`` if that many are left; returns whether they were."""
        if pixels > self.left:
            return False
        self.left -= pixels
        return True


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
            from .._vision.face_engine import FaceEngine

            _shared_engine = FaceEngine()
        return _shared_engine


class Worker:
    """Runs the image work in a bounded thread pool with the shared face engine.

    ``workers=None`` uses one process-wide pool of :func:`default_workers` threads, shared by
    every emulator in the process, so the face models (loaded once per thread, about half a
    second) stay warm across emulators; a number gives this worker its own pool.

    ``max_pixels`` bounds one image (from its header); ``max_request_pixels`` bounds the pixels
    the photos of one check or training may decode together (see :meth:`budget`).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        max_pixels: int = 16_000_000,
        max_request_pixels: int = 400_000_000,
    ) -> None:
        self.max_pixels = max_pixels
        self.max_request_pixels = max_request_pixels
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

    def budget(self) -> PixelBudget:
        """A fresh pixel budget for the photos of one request."""
        return PixelBudget(self.max_request_pixels)

    def decode(
        self,
        data: bytes | None,
        *,
        formats: frozenset[str] | None = None,
        max_side: int | None = None,
    ) -> Any:
        """Decode bytes to an RGB array, or None when they are missing or not an image."""
        from .._vision.images import DECODE_FORMATS, ImageDecodeError, decode_image

        if data is None:
            return None
        try:
            return decode_image(
                data,
                max_pixels=self.max_pixels,
                formats=formats or DECODE_FORMATS,
                max_side=max_side,
            )
        except ImageDecodeError as exc:
            log.info("image not decoded: %s", exc)
            return None

    def _decode_photo(
        self, source: Fetched | Unfetched, budget: PixelBudget
    ) -> tuple[RGBImage | None, str]:
        """A check or training photo at analysis size, or None and the reason it has none."""
        from .._vision.images import BudgetError, ImageDecodeError, NotAnImageError, decode_image

        if isinstance(source, Unfetched):
            return None, source.detail
        try:
            image = decode_image(
                source.data,
                max_pixels=self.max_pixels,
                formats=CHECK_FORMATS,
                max_side=PHOTO_SIDE,
                min_side=PHOTO_MIN_SIDE,
                allow=budget.take,
            )
        except NotAnImageError:
            kind = source.content_type or "unrecognised bytes"
            return None, f"not an image ({kind})"
        except BudgetError:
            return None, (
                "not decoded: the photos before it used up the pixels one request may decode "
                f"({self.max_request_pixels}, see --max-request-pixels)"
            )
        except ImageDecodeError as exc:
            return None, str(exc)
        return image, ""

    # -- check and training (one photo at a time: its pixels are dropped before the next) ----

    def examine(
        self, source: Fetched | Unfetched, budget: PixelBudget, *, sample: bool = False
    ) -> tuple[Examined, FaceSample | None]:
        """Check one photo as far as it can go alone (see :func:`~._check.examine`); with
        ``sample``, also keep what training needs of a usable face."""
        from .._vision.check import Examined, examine
        from ._faces import face_sample

        image, why = self._decode_photo(source, budget)
        if image is None:
            return Examined.failed(CHECK_DECODE_ERROR, why), None
        exam = examine(self.engine, image, min_side=0)  # the size was checked on the header
        if sample and exam.face is not None:
            return exam, face_sample(image, exam.face)
        return exam, None

    def judge(self, examined: Sequence[tuple[Examined, Any]]) -> list[PhotoVerdict]:
        """The check's verdicts for examined photos (the same-person test, see
        :func:`~._check.judge`)."""
        from .._vision.check import judge

        return [PhotoVerdict.of(v) for v in judge([e for e, _ in examined])]

    def train_face(
        self,
        model_id: str,
        examined: Sequence[tuple[Examined, FaceSample | None]],
        directory: Path,
        *,
        sdxl: bool,
    ) -> tuple[list[PhotoVerdict], bool]:
        """Judge the examined photos, build a face model from the usable ones and save it.

        Returns the verdicts and whether a model was saved.
        """
        from ._faces import model_from_samples

        verdicts = self.judge(examined)
        usable = [
            sample
            for (_, sample), verdict in zip(examined, verdicts, strict=True)
            if verdict.code == CHECK_SUCCESS and sample is not None
        ]
        if not usable:
            return verdicts, False
        try:
            model = model_from_samples(model_id, usable, sdxl=sdxl)
        except ValueError:
            return verdicts, False
        _save_atomic(model, directory)
        return verdicts, True

    def scene_photo(
        self, source: Fetched | Unfetched, budget: PixelBudget
    ) -> tuple[PhotoVerdict, RGBImage | None]:
        """A scene photo's verdict (it only has to decode) and the sample a scene keeps of it."""
        from ._scenes import scene_sample

        image, why = self._decode_photo(source, budget)
        if image is None:
            return PhotoVerdict.decode_error(why), None
        verdict = PhotoVerdict(CHECK_SUCCESS, CHECK_MESSAGES[CHECK_SUCCESS], False, "decoded")
        return verdict, scene_sample(image)

    def train_scene(
        self,
        scene_id: str,
        photos: Sequence[tuple[PhotoVerdict, RGBImage | None]],
        prompts: Sequence[str],
        directory: Path,
    ) -> tuple[list[PhotoVerdict], bool]:
        """Build a scene from every photo that decoded (faces are not required) and save it."""
        from ._scenes import build_scene

        verdicts = [verdict for verdict, _ in photos]
        kept = [
            (sample, prompt)
            for (_, sample), prompt in zip(photos, prompts, strict=True)
            if sample is not None
        ]
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
        from ._faces import FaceModel

        return FaceModel.load(directory)

    @staticmethod
    def load_scene(directory: Path) -> SceneModel:
        """Load a stored scene."""
        from ._scenes import SceneModel

        return SceneModel.load(directory)

    @staticmethod
    def options(configure: Mapping[str, Any], *, sdxl: bool) -> ComposeOptions:
        """Validate ``configure``; raises :class:`ApiError` with the documented 462."""
        return ComposeOptions.from_configure(configure, sdxl=sdxl)

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
        from .._vision.images import encode_image
        from ._composite import compose
        from ._faces import reference_model
        from ._t2i import t2i_compose

        if reference is not None:
            ref = self.decode(reference)
            if ref is None:
                raise ApiError.create(E462_ROOP_DECODE)
            models = [reference_model(self.engine, ref)]
        if template is None:
            image = t2i_compose(prompt or "", models[0], options, scene=scene)
            fmt = "PNG"
        else:
            img = self.decode(template)
            if img is None:
                raise ApiError.create(E462_TEMPLATE_DECODE)
            image = compose(self.engine, img, models, options, group=group)
            fmt = "JPEG" if template.startswith(JPEG_MAGIC) else "PNG"
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
