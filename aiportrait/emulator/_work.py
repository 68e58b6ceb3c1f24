"""The heavy work, run in a bounded thread pool, never on the event loop.

The photo check itself (decoding, the face engine, the verdicts) is :mod:`aiportrait._vision`'s,
shared with the client's check of local photos. The image modules (numpy, Pillow, OpenCV, dlib:
``_vision.images``, ``_vision.face_engine``, ``_vision.check``, ``_faces``, ``_scenes``,
``_composite``, ``_t2i``) are imported inside the functions, on first use, so
``import aiportrait.emulator`` and synthetic jobs need none of them. ``_options`` (the create
``configure`` keys) needs no image library.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from .._files import make_dir
from .._vision.limits import MAX_PIXELS, MAX_REQUEST_PIXELS, PixelBudget
from .._vision.sources import Fetched, Unfetched
from .._vision.threads import THREAD_PREFIX, run_in, shared_engine, shared_pool
from .._vision.verdicts import CHECK_DECODE_ERROR, CHECK_SUCCESS, Verdict
from ._errors import ApiError
from ._options import ComposeOptions
from ._wire import E462_ROOP_DECODE, E462_TEMPLATE_DECODE

if TYPE_CHECKING:
    from .._vision.check import Examined
    from .._vision.face_engine import FaceEngine
    from .._vision.images import RGBImage
    from ._faces import FaceModel, FaceSample
    from ._scenes import SceneModel

__all__ = ["Worker"]

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("aiportrait.emulator")

JPEG_MAGIC = b"\xff\xd8\xff"


class Worker:
    """Runs the image work in a bounded thread pool with the shared face engine.

    ``workers=None`` uses the process-wide pool (:func:`aiportrait._vision.threads.shared_pool`),
    shared by every emulator in the process and the client's check of local photos, so the face
    models (loaded once per thread, about half a second) stay warm across them; a number gives
    this worker its own pool.

    ``max_pixels`` bounds one image (from its header); ``max_request_pixels`` bounds the pixels
    the photos of one check or training may decode together (see :meth:`budget`).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        max_pixels: int = MAX_PIXELS,
        max_request_pixels: int = MAX_REQUEST_PIXELS,
    ) -> None:
        self.max_pixels = max_pixels
        self.max_request_pixels = max_request_pixels
        self._owns_pool = workers is not None
        if workers is not None:
            if workers < 1:
                raise ValueError("workers must be at least 1")
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)
        else:
            self._pool = shared_pool()

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the pool and await its result."""
        return await run_in(self._pool, fn, *args, **kwargs)

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

    # -- check and training (one photo at a time: its pixels are dropped before the next) ----

    def examine(
        self, source: Fetched | Unfetched, budget: PixelBudget, *, sample: bool = False
    ) -> tuple[Examined, FaceSample | None]:
        """Check one photo as far as it can go alone (see
        :func:`aiportrait._vision.check.examine_photo`); with ``sample``, also keep what training
        needs of a usable face."""
        from .._vision.check import examine_photo
        from ._faces import face_sample

        exam, image = examine_photo(self.engine, source, budget, max_pixels=self.max_pixels)
        if sample and exam.face is not None and image is not None:
            return exam, face_sample(image, exam.face)
        return exam, None

    def judge(self, examined: Sequence[tuple[Examined, Any]]) -> list[Verdict]:
        """The check's verdicts for examined photos (the same-person test, see
        :func:`aiportrait._vision.check.judge`)."""
        from .._vision.check import judge

        return judge([e for e, _ in examined])

    def train_face(
        self,
        model_id: str,
        examined: Sequence[tuple[Examined, FaceSample | None]],
        directory: Path,
        *,
        sdxl: bool,
    ) -> tuple[list[Verdict], bool]:
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
    ) -> tuple[Verdict, RGBImage | None]:
        """A scene photo's verdict (it only has to decode) and the sample a scene keeps of it."""
        from .._vision.check import decode_photo
        from ._scenes import scene_sample

        image, why = decode_photo(source, budget, max_pixels=self.max_pixels)
        if image is None:
            return Verdict.of(CHECK_DECODE_ERROR, detail=why), None
        return Verdict.of(CHECK_SUCCESS, detail="decoded"), scene_sample(image)

    def train_scene(
        self,
        scene_id: str,
        photos: Sequence[tuple[Verdict, RGBImage | None]],
        prompts: Sequence[str],
        directory: Path,
    ) -> tuple[list[Verdict], bool]:
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
    make_dir(directory.parent)  # private: models hold faces
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        obj.save(tmp)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
