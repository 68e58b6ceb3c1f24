"""Face models for the local emulator: what "training" keeps of a user, without any LoRA.

The cloud trains a LoRA per user (EasyPhoto, see ``PROTOCOL.md`` section 3.3). Here "training"
keeps the mean dlib descriptor of the user's photos, an aligned 256x256 face chip from the best
photo and the LAB colour statistics of the user's skin (:class:`FaceModel`). The no-training mode
(``ipa_control_only``) makes a :class:`ReferenceModel` of one reference photo instead.

Also here: the chip's geometry (where the five landmarks go) and the work region around a face,
which compositing uses too. Everything is synchronous and thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from .._files import make_dir
from .._vision.face_engine import Face, FaceEngine
from .._vision.images import RGBImage, decode_image, encode_image
from ._colour import FloatArray, lab_stats, to_lab
from ._errors import ApiError
from ._files import atomic_write, load_npz, npz_bytes
from ._wire import E462_ROOP_DECODE, E469_FIRST_FUSION

__all__ = [
    "CANONICAL_LANDMARKS",
    "CANONICAL_UNITS",
    "CHIP_SIZE",
    "EYE_DISTANCE",
    "FaceModel",
    "FaceSample",
    "ReferenceModel",
    "Region",
    "chip_mask",
    "face_sample",
    "fit_transform",
    "model_from_samples",
    "reference_model",
    "work_region",
]

#: Side of the aligned face chip a model keeps.
CHIP_SIZE = 256
#: Distance between the eye centres in the chip, in pixels.
EYE_DISTANCE = 0.26 * CHIP_SIZE
_EYE_MID = np.array([CHIP_SIZE / 2, 0.41 * CHIP_SIZE])
#: Where the five dlib landmarks go, in eye distances from the eyes' midpoint.
CANONICAL_UNITS = np.array([[0.70, 0.0], [0.30, 0.0], [-0.70, 0.0], [-0.30, 0.0], [0.0, 0.74]])
#: Where the five dlib landmarks go in the chip, in pixels.
CANONICAL_LANDMARKS: FloatArray = _EYE_MID + CANONICAL_UNITS * EYE_DISTANCE
#: The face ellipse in chip coordinates: centre and semi-axes, in pixels.
_FACE_CENTRE = (CHIP_SIZE / 2, _EYE_MID[1] + 0.45 * EYE_DISTANCE)
_FACE_AXES = (1.02 * EYE_DISTANCE, 1.42 * EYE_DISTANCE)


@dataclass
class FaceModel:
    """What "training" keeps for one user: identity, an aligned face and skin colour.

    Saved as ``model.npz`` (arrays only, loaded with ``allow_pickle=False``) plus ``chip.png``; each
    file is written to a temporary name and renamed, the ``npz`` last, so a reader never sees a
    half-written model.
    """

    model_id: str
    descriptor: FloatArray
    chip: RGBImage
    chip_landmarks: FloatArray
    color_mean: FloatArray
    color_std: FloatArray
    sdxl: bool = False

    def save(self, directory: Path) -> None:
        """Write the model into ``directory`` (created if missing)."""
        directory = Path(directory)
        make_dir(directory)
        atomic_write(directory / "chip.png", encode_image(self.chip, "PNG"))
        arrays = npz_bytes(
            model_id=np.array(self.model_id),
            descriptor=self.descriptor,
            chip_landmarks=self.chip_landmarks,
            color_mean=self.color_mean,
            color_std=self.color_std,
            sdxl=np.array(self.sdxl),
        )
        atomic_write(directory / "model.npz", arrays)

    @classmethod
    def load(cls, directory: Path) -> FaceModel:
        """Read a model written by :meth:`save`."""
        directory = Path(directory)
        data = load_npz(directory / "model.npz")
        return cls(
            model_id=str(data["model_id"]),
            descriptor=data["descriptor"].astype(np.float64),
            chip=decode_image((directory / "chip.png").read_bytes()),
            chip_landmarks=data["chip_landmarks"].astype(np.float64),
            color_mean=data["color_mean"].astype(np.float64),
            color_std=data["color_std"].astype(np.float64),
            sdxl=bool(data["sdxl"]),
        )


def fit_transform(src: FloatArray, dst: FloatArray, *, full_affine: bool = False) -> FloatArray:
    """2x3 transform taking ``src`` points onto ``dst``: similarity, or affine if asked.

    The RANSAC threshold is huge on purpose: with five points every one is an inlier, so this is
    a least-squares fit refined by Levenberg-Marquardt.
    """
    estimate = cv2.estimateAffine2D if full_affine else cv2.estimateAffinePartial2D
    matrix, _ = estimate(src.astype(np.float32), dst.astype(np.float32), ransacReprojThreshold=1e4)
    if matrix is None or not np.all(np.isfinite(matrix)):
        raise ApiError.create(E469_FIRST_FUSION)
    return np.asarray(matrix, dtype=np.float64)


def _apply(matrix: FloatArray, points: FloatArray) -> FloatArray:
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2], dtype=np.float64)


def _chip_of(img: RGBImage, face: Face) -> tuple[RGBImage, FloatArray]:
    matrix = fit_transform(face.landmarks, CANONICAL_LANDMARKS)
    chip = cv2.warpAffine(
        img, matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return np.ascontiguousarray(chip, dtype=np.uint8), _apply(matrix, face.landmarks)


def chip_mask(scale: float = 1.0) -> NDArray[np.float32]:
    """The face ellipse in chip coordinates (1 inside, 0 outside), its axes times ``scale``."""
    mask = np.zeros((CHIP_SIZE, CHIP_SIZE), np.float32)
    centre = (round(_FACE_CENTRE[0]), round(_FACE_CENTRE[1]))
    axes = (round(_FACE_AXES[0] * scale), round(_FACE_AXES[1] * scale))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    return mask


@dataclass(frozen=True)
class FaceSample:
    """What "training" keeps of one photo once its pixels are gone: the face (with its
    descriptor) and the face aligned into a chip."""

    face: Face
    chip: RGBImage = field(repr=False)
    chip_landmarks: FloatArray = field(repr=False)


def face_sample(img: RGBImage, face: Face) -> FaceSample:
    """The :class:`FaceSample` of ``face`` (which has its descriptor) in ``img``."""
    chip, landmarks = _chip_of(img, face)
    return FaceSample(face, chip, landmarks)


def model_from_samples(
    model_id: str, samples: Sequence[FaceSample], *, sdxl: bool = False
) -> FaceModel:
    """A face model from the photos' samples: mean identity, best chip, skin colour.

    The chip comes from the sample with the highest ``score`` (halved when not frontal).
    Raises :class:`ValueError` when there is no sample.
    """
    if not samples:
        raise ValueError("no usable face in the training photos")
    ranks = [s.face.score * (1.0 if s.face.frontal else 0.5) for s in samples]
    best = samples[int(np.argmax(ranks))]
    inside = chip_mask(0.8) > 0
    skin = np.concatenate([to_lab(s.chip)[inside] for s in samples])
    mean, std = lab_stats(skin)
    descriptors = [s.face.descriptor for s in samples if s.face.descriptor is not None]
    return FaceModel(
        model_id, np.mean(descriptors, axis=0), best.chip, best.chip_landmarks, mean, std, sdxl
    )


@dataclass
class ReferenceModel(FaceModel):
    """The no-training "model" of ``ipa_control_only``: one reference photo's face, plus the look
    of the photo around it (``look_mean``, ``look_std``: LAB statistics of three times the face
    box), which an IP-Adapter carries into the picture along with the face. Never saved."""

    look_mean: FloatArray = field(default_factory=lambda: np.zeros(3))
    look_std: FloatArray = field(default_factory=lambda: np.ones(3))


def reference_model(engine: FaceEngine, reference: RGBImage) -> ReferenceModel:
    """The no-training mode (``ipa_control_only``): a model from the leftmost face of one photo.

    EasyPhoto uses the reference as its "roop" (face swap) image, so a reference without a face is
    reported with the documented roop text: a 462 :class:`~._errors.ApiError`, ``E462_ROOP_DECODE``.
    """
    faces = engine.detect(reference, with_descriptors=False)
    if not faces:
        raise ApiError.create(E462_ROOP_DECODE)
    face = engine.with_descriptor(reference, faces[0])
    chip, landmarks = _chip_of(reference, face)
    mean, std = lab_stats(to_lab(chip)[chip_mask(0.8) > 0])
    around = reference[work_region(face.landmarks, reference.shape, crop=True).slices]
    look_mean, look_std = lab_stats(to_lab(around).reshape(-1, 3))
    assert face.descriptor is not None
    return ReferenceModel(
        "reference", face.descriptor, chip, landmarks, mean, std, False, look_mean, look_std
    )


@dataclass
class Region:
    """The part of the canvas one face's work happens in (a crop or the whole image)."""

    x0: int
    y0: int
    x1: int
    y1: int
    whole: bool

    @property
    def slices(self) -> tuple[slice, slice]:
        """The region as numpy slices (rows, columns)."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def size(self) -> tuple[int, int]:
        """Width and height."""
        return self.x1 - self.x0, self.y1 - self.y0


def work_region(landmarks: FloatArray, shape: tuple[int, ...], crop: bool) -> Region:
    """Where one face's work happens in an image of ``shape``: three times the face box around
    ``landmarks`` (clipped to the image) with ``crop``, else the whole image."""
    height, width = shape[:2]
    if not crop:
        return Region(0, 0, width, height, True)
    centre = landmarks.mean(axis=0)
    eyes = np.linalg.norm(landmarks[0:2].mean(axis=0) - landmarks[2:4].mean(axis=0))
    half = 1.5 * max(2.2 * float(eyes), 8.0)  # three times a face box about 2.2 eye distances
    x0, y0 = max(0, int(centre[0] - half)), max(0, int(centre[1] - half))
    x1, y1 = min(width, int(centre[0] + half) + 1), min(height, int(centre[1] + half) + 1)
    return Region(x0, y0, x1, y1, (x0, y0, x1, y1) == (0, 0, width, height))
