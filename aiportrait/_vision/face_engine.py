"""Face detection, landmarks and identity descriptors with dlib, for the photo check.

This is a stand-in for the cloud's closed face pipeline (RetinaFace plus a recognition network in
EasyPhoto, see ``PROTOCOL.md`` section 3.2). It does real work with different, offline models:

* face detection with dlib's HOG frontal detector (``get_frontal_face_detector``), each candidate
  confirmed by dlib's CNN detector (``mmod_human_face_detector.dat``) on a crop around it;
* five landmarks with dlib's ``shape_predictor_5_face_landmarks.dat``;
* a 128-d identity descriptor with dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``),
  compared by L2 distance (the same person is usually below 0.6).

The model files come from the ``face_recognition_models`` distribution, located *without* importing
it (its ``__init__`` imports ``pkg_resources``). They load lazily, on first use, once per thread and
per :class:`FaceEngine`: dlib's objects are not documented as thread-safe, so no two threads ever
share one. Everything here is synchronous and meant to run in a thread pool.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np
from numpy.typing import NDArray

from .images import RGBImage

__all__ = [
    "DEFAULT_MIN_SCORE",
    "FRONTAL_MAX_ROLL_DEG",
    "FRONTAL_MAX_YAW_RATIO",
    "Face",
    "FaceEngine",
    "face_distance",
    "is_frontal",
    "model_path",
]

FloatArray = NDArray[np.float64]

#: Default HOG score threshold (without upsampling). Real faces in the bundled photos, rotated by up
#: to 12 degrees, scaled to 512-1024 px and brightened or darkened, score 0.28 to 1.6; false
#: positives (the astronaut's mission patch) score up to 0.66 and are removed by CNN confirmation.
DEFAULT_MIN_SCORE = 0.2
#: A face is frontal when its eye line is within this many degrees of horizontal ...
FRONTAL_MAX_ROLL_DEG = 15.0
#: ... and the nose tip is within this fraction of the inter-ocular distance of the eyes' midpoint.
FRONTAL_MAX_YAW_RATIO = 0.25


def model_path(filename: str) -> Path:
    """Path of a model file shipped in ``face_recognition_models``, found without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "face_recognition_models is not installed (pip install aiportrait[emulator])"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise RuntimeError(f"model file missing: {path}")
    return path


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the image given to :meth:`FaceEngine.detect`.

    ``landmarks`` are dlib's five points: 0-1 the outer and inner corner of the eye on the image's
    right, 2-3 the outer and inner corner of the eye on the image's left, 4 the bottom of the nose.
    ``frontal`` is a geometric proxy (the cloud uses an unpublished model): the eye line is within
    ``FRONTAL_MAX_ROLL_DEG`` of horizontal, and the nose is within ``FRONTAL_MAX_YAW_RATIO`` times
    the inter-ocular distance of the eyes' midpoint (a turned head moves the nose sideways).
    """

    box: tuple[int, int, int, int]
    score: float
    landmarks: FloatArray = field(repr=False)
    descriptor: FloatArray | None = field(default=None, repr=False)
    frontal: bool = True


def is_frontal(landmarks: FloatArray) -> bool:
    """The ``Face.frontal`` rule: small roll of the eye line and small sideways nose offset."""
    right_eye = landmarks[0:2].mean(axis=0)
    left_eye = landmarks[2:4].mean(axis=0)
    dx, dy = right_eye - left_eye
    distance = math.hypot(dx, dy)
    if distance < 1e-6:
        return False
    roll = abs(math.degrees(math.atan2(dy, dx)))
    # Project the nose's offset from the eyes' midpoint onto the eye line.
    offset = float(np.dot(landmarks[4] - (left_eye + right_eye) / 2, (dx, dy))) / distance
    return roll <= FRONTAL_MAX_ROLL_DEG and abs(offset) / distance <= FRONTAL_MAX_YAW_RATIO


def face_distance(a: FloatArray, b: FloatArray) -> float:
    """Euclidean (L2) distance between two descriptors; under 0.6 usually means the same person."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


class _Models(threading.local):
    """dlib's detectors, landmark model and descriptor network, loaded lazily once per thread."""

    detector: Any = None
    confirmer: Any = None
    predictor: Any = None
    encoder: Any = None

    def face_detector(self) -> Any:
        if self.detector is None:
            self.detector = dlib.get_frontal_face_detector()
        return self.detector

    def face_confirmer(self) -> Any:
        if self.confirmer is None:
            path = model_path("mmod_human_face_detector.dat")
            self.confirmer = dlib.cnn_face_detection_model_v1(str(path))
        return self.confirmer

    def landmarker(self) -> Any:
        if self.predictor is None:
            path = model_path("shape_predictor_5_face_landmarks.dat")
            self.predictor = dlib.shape_predictor(str(path))
        return self.predictor

    def face_encoder(self) -> Any:
        if self.encoder is None:
            path = model_path("dlib_face_recognition_resnet_model_v1.dat")
            self.encoder = dlib.face_recognition_model_v1(str(path))
        return self.encoder


#: The per-thread models, shared by every engine (the models hold no per-engine state).
_MODELS = _Models()


class FaceEngine:
    """Face detection, landmarks and descriptors with dlib; safe to share between threads.

    Detection, in the image (or a copy downscaled so its long side is ``max_side``):

    1. dlib's HOG detector; candidates need ``score >= min_score``. When the detection image's
       long side is at most ``upsample_max_side`` it runs with ``upsample`` pyramid upsampling,
       which finds faces down to about 40 px instead of 80 (on bigger photos a portrait's face is
       large anyway, and upsampling a 1024 px image costs 0.6 s instead of 0.12 s). If the
       upsampled pass ends with no face, a plain pass is tried (scores differ between the two).
    2. Overlapping candidates are merged (the higher score wins).
    3. With ``confirm`` (the default) each candidate must be confirmed by dlib's CNN face detector
       (``mmod_human_face_detector.dat``) on a small crop around it, about 0.1 s per candidate.
       HOG alone fires on round, textured things: on a 6 degree rotation of the astronaut its
       mission patch scores up to 0.66 while the real face of a 12 degree rotation scores 0.28, so
       no score threshold separates them; the CNN does (about 1.0 against nothing).

    The dlib models load on first use in each thread (about 0.5 s) and are shared by all engines
    in that thread; no dlib object is ever used by two threads.

    Results are remembered per image content (an LRU of ``cache_size`` images, keyed by a hash of
    the pixels), so the same photo sent again (a retry, a re-run batch, a template used for many
    portraits) is analysed once.
    """

    def __init__(
        self,
        *,
        min_score: float = DEFAULT_MIN_SCORE,
        upsample: int = 1,
        max_side: int = 1024,
        upsample_max_side: int = 640,
        confirm: bool = True,
        cache_size: int = 512,
    ) -> None:
        self.min_score = min_score
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], list[Face]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.upsample = upsample
        self.max_side = max_side
        self.upsample_max_side = upsample_max_side
        self.confirm = confirm
        self._models = _MODELS

    def detect(self, img: RGBImage, *, with_descriptors: bool = True) -> list[Face]:
        """Faces found in ``img`` (see the class docs), sorted left to right by box."""
        img = np.ascontiguousarray(img, dtype=np.uint8)
        key = (img.shape, hashlib.blake2b(img.data, digest_size=16).digest(), with_descriptors)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
        faces = self._detect(img, with_descriptors=with_descriptors)
        if self.cache_size > 0:
            with self._cache_lock:
                self._cache[key] = faces
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return list(faces)

    def _detect(self, img: RGBImage, *, with_descriptors: bool) -> list[Face]:
        small, scale = _downscale(img, self.max_side)
        found: list[tuple[Any, float]] = []
        for upsample in self._passes(small):
            found = _merge_overlaps(self._candidates(small, upsample))
            if self.confirm:
                found = [c for c in found if self._confirmed(small, c[0])]
            if found:
                break
        faces = [self._face(img, rect, scale, score) for rect, score in found]
        faces.sort(key=lambda f: (f.box[0], f.box[1]))
        if with_descriptors:
            faces = [self.with_descriptor(img, face) for face in faces]
        return faces

    def _passes(self, small: RGBImage) -> list[int]:
        if self.upsample > 0 and max(small.shape[:2]) <= self.upsample_max_side:
            return [self.upsample, 0]
        return [0]

    def _candidates(self, small: RGBImage, upsample: int) -> list[tuple[Any, float]]:
        rects, scores, _ = self._models.face_detector().run(small, upsample, self.min_score)
        return [(r, float(s)) for r, s in zip(rects, scores, strict=True) if s >= self.min_score]

    def _confirmed(self, small: RGBImage, rect: Any) -> bool:
        """Whether the CNN detector also sees a face centred where HOG saw one."""
        side = max(rect.width(), rect.height())
        cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
        half = 0.75 * side
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1 = min(small.shape[1], int(cx + half) + 1)
        y1 = min(small.shape[0], int(cy + half) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        zoom = 125 / (2 * half)  # the face becomes about 83 px; the CNN finds 80 px and up
        crop = cv2.resize(small[y0:y1, x0:x1], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        for hit in self._models.face_confirmer()(np.ascontiguousarray(crop, np.uint8), 0):
            r = hit.rect
            hx, hy = (r.left() + r.right()) / 2 / zoom + x0, (r.top() + r.bottom()) / 2 / zoom + y0
            if abs(hx - cx) < 0.4 * side and abs(hy - cy) < 0.4 * side:
                return True
        return False

    def _face(self, img: RGBImage, rect: Any, scale: float, score: float) -> Face:
        x0, y0 = rect.left() / scale, rect.top() / scale
        x1, y1 = rect.right() / scale, rect.bottom() / scale
        full = dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
        shape = self._models.landmarker()(img, full)
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
        return Face(box=box, score=score, landmarks=points, frontal=is_frontal(points))

    def describe(self, img: RGBImage, face: Face) -> FloatArray:
        """The 128-d ResNet descriptor of ``face`` (computed on the full-resolution image)."""
        x, y, w, h = face.box
        rect = dlib.rectangle(x, y, x + w, y + h)
        parts = [dlib.point(round(px), round(py)) for px, py in face.landmarks]
        shape = dlib.full_object_detection(rect, parts)
        img = np.ascontiguousarray(img, dtype=np.uint8)
        vector = self._models.face_encoder().compute_face_descriptor(img, shape)
        return np.array(vector, dtype=np.float64)

    def with_descriptor(self, img: RGBImage, face: Face) -> Face:
        """A copy of ``face`` with its descriptor filled in."""
        return Face(face.box, face.score, face.landmarks, self.describe(img, face), face.frontal)


def _merge_overlaps(candidates: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
    """Drop candidates mostly covered by a better-scoring one (the same face found twice)."""
    kept: list[tuple[Any, float]] = []
    for rect, score in sorted(candidates, key=lambda c: -c[1]):
        area = max(1, rect.area())
        if all(rect.intersect(other).area() < 0.4 * min(area, other.area()) for other, _ in kept):
            kept.append((rect, score))
    return kept


def _downscale(img: RGBImage, max_side: int) -> tuple[RGBImage, float]:
    long_side = max(img.shape[:2])
    if long_side <= max_side:
        return img, 1.0
    scale = max_side / long_side
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small, dtype=np.uint8), scale
