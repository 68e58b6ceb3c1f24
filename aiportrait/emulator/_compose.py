"""Face models and portrait compositing for the local emulator: a stand-in, not diffusion.

The cloud trains a LoRA per user and paints portraits with Stable Diffusion (EasyPhoto, see
``PROTOCOL.md`` section 3.3). This module does honest, cheap, deterministic image work instead:

* "training" (:func:`build_model`) keeps the mean dlib descriptor of the user's photos, an aligned
  256x256 face chip from the best photo and the LAB colour statistics of the user's skin;
* "creating" (:func:`compose`) finds the template's faces, warps the user's chip onto each with a
  transform fitted on the five landmarks, shifts its colour to the template's skin and blends it
  with a feathered elliptical mask, then applies the ``configure`` keys that have a natural image
  meaning (see :class:`ComposeOptions`);
* text-to-image (:func:`t2i_template`, :func:`t2i_compose`) paints a simple scene keyed by words
  of the prompt, with a head-and-shoulders figure whose face is the user's chip;
* a scene "LoRA" (:func:`build_scene`) is a colour palette and a thumbnail of the scene photos.

Everything is synchronous and thread-safe (no shared mutable state; the :class:`FaceEngine` keeps
its dlib models per thread), meant to run in a thread pool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import io
import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from aiportrait.emulator import _wire
from aiportrait.emulator._vision import Face, FaceEngine, RGBImage, decode_image, encode_image

__all__ = [
    "CHIP_SIZE",
    "ComposeOptions",
    "CreateFailure",
    "FaceModel",
    "FaceSample",
    "SceneModel",
    "build_model",
    "build_scene",
    "face_sample",
    "model_from_samples",
    "bundled_photo",
    "compose",
    "contact_sheet",
    "ReferenceModel",
    "reference_model",
    "scene_sample",
    "t2i_compose",
    "t2i_template",
]

FloatArray = NDArray[np.float64]
F32 = NDArray[np.float32]

#: Side of the aligned face chip a model keeps.
CHIP_SIZE = 256
_EYE_DISTANCE = 0.26 * CHIP_SIZE  # distance between the eye centres in the chip
_EYE_MID = np.array([CHIP_SIZE / 2, 0.41 * CHIP_SIZE])
#: Where the five dlib landmarks go in the chip, in eye distances from the eyes' midpoint.
_CANONICAL_UNITS = np.array([[0.70, 0.0], [0.30, 0.0], [-0.70, 0.0], [-0.30, 0.0], [0.0, 0.74]])
CANONICAL_LANDMARKS: FloatArray = _EYE_MID + _CANONICAL_UNITS * _EYE_DISTANCE
#: The face ellipse in chip coordinates: centre and semi-axes, in pixels.
_FACE_CENTRE = (CHIP_SIZE / 2, _EYE_MID[1] + 0.45 * _EYE_DISTANCE)
_FACE_AXES = (1.02 * _EYE_DISTANCE, 1.42 * _EYE_DISTANCE)


def bundled_photo(name: str) -> bytes:
    """The bytes of a photo shipped in ``aiportrait/emulator/data`` (``astronaut.png``,
    ``grace_hopper.jpg``; see ``SOURCES.md`` there)."""
    return (
        importlib.resources.files("aiportrait.emulator")
        .joinpath("data")
        .joinpath(name)
        .read_bytes()
    )


class CreateFailure(Exception):
    """A create request failed with one of the documented texts from ``_wire``.

    Build it from the message alone (``CreateFailure(_wire.E462_NO_FACE)``; the status comes from
    ``_wire.CREATE_ERROR_STATUS``) or with an explicit status first (``CreateFailure(462, msg)``).
    """

    status: int
    message: str

    def __init__(self, status_or_message: int | str, message: str | None = None) -> None:
        if isinstance(status_or_message, str):
            message = status_or_message
            status = _wire.CREATE_ERROR_STATUS.get(message, 500)
        else:
            if message is None:
                raise TypeError("CreateFailure(status, message) needs a message")
            status = status_or_message
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


# --------------------------------------------------------------------------------------------
# Models ("training")
# --------------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{id(data):x}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


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
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / "chip.png", encode_image(self.chip, "PNG"))
        arrays = _npz_bytes(
            model_id=np.array(self.model_id),
            descriptor=self.descriptor,
            chip_landmarks=self.chip_landmarks,
            color_mean=self.color_mean,
            color_std=self.color_std,
            sdxl=np.array(self.sdxl),
        )
        _atomic_write(directory / "model.npz", arrays)

    @classmethod
    def load(cls, directory: Path) -> FaceModel:
        """Read a model written by :meth:`save`."""
        directory = Path(directory)
        data = _load_npz(directory / "model.npz")
        return cls(
            model_id=str(data["model_id"]),
            descriptor=data["descriptor"].astype(np.float64),
            chip=decode_image((directory / "chip.png").read_bytes()),
            chip_landmarks=data["chip_landmarks"].astype(np.float64),
            color_mean=data["color_mean"].astype(np.float64),
            color_std=data["color_std"].astype(np.float64),
            sdxl=bool(data["sdxl"]),
        )


@dataclass
class SceneModel:
    """The SDXL scene-LoRA stand-in: the scene photos' palette, a thumbnail and the prompts."""

    scene_id: str
    palette: NDArray[np.uint8]
    prompts: list[str]
    thumbnail: RGBImage

    def save(self, directory: Path) -> None:
        """Write the scene into ``directory`` (``scene.npz`` + ``thumbnail.png``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / "thumbnail.png", encode_image(self.thumbnail, "PNG"))
        arrays = _npz_bytes(
            scene_id=np.array(self.scene_id),
            palette=self.palette,
            prompts=np.array(self.prompts, dtype=np.str_),
        )
        _atomic_write(directory / "scene.npz", arrays)

    @classmethod
    def load(cls, directory: Path) -> SceneModel:
        """Read a scene written by :meth:`save`."""
        directory = Path(directory)
        data = _load_npz(directory / "scene.npz")
        return cls(
            scene_id=str(data["scene_id"]),
            palette=data["palette"].astype(np.uint8),
            prompts=[str(p) for p in data["prompts"].reshape(-1)],
            thumbnail=decode_image((directory / "thumbnail.png").read_bytes()),
        )


def _fit(src: FloatArray, dst: FloatArray, *, full_affine: bool = False) -> FloatArray:
    """2x3 transform taking ``src`` points onto ``dst``: similarity, or affine if asked.

    The RANSAC threshold is huge on purpose: with five points every one is an inlier, so this is
    a least-squares fit refined by Levenberg-Marquardt.
    """
    estimate = cv2.estimateAffine2D if full_affine else cv2.estimateAffinePartial2D
    matrix, _ = estimate(src.astype(np.float32), dst.astype(np.float32), ransacReprojThreshold=1e4)
    if matrix is None or not np.all(np.isfinite(matrix)):
        raise CreateFailure(_wire.E469_FIRST_FUSION)
    return np.asarray(matrix, dtype=np.float64)


def _apply(matrix: FloatArray, points: FloatArray) -> FloatArray:
    return np.asarray(points @ matrix[:, :2].T + matrix[:, 2], dtype=np.float64)


def _chip_of(img: RGBImage, face: Face) -> tuple[RGBImage, FloatArray]:
    matrix = _fit(face.landmarks, CANONICAL_LANDMARKS)
    chip = cv2.warpAffine(
        img, matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    return np.ascontiguousarray(chip, dtype=np.uint8), _apply(matrix, face.landmarks)


def _chip_mask(scale: float = 1.0) -> NDArray[np.float32]:
    mask = np.zeros((CHIP_SIZE, CHIP_SIZE), np.float32)
    centre = (round(_FACE_CENTRE[0]), round(_FACE_CENTRE[1]))
    axes = (round(_FACE_AXES[0] * scale), round(_FACE_AXES[1] * scale))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    return mask


def _to_lab(rgb: NDArray[Any]) -> F32:
    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB), np.float32)


def _from_lab(lab: F32) -> F32:
    return np.asarray(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0, np.float32)


def _lab_stats(pixels: F32) -> tuple[FloatArray, FloatArray]:
    if len(pixels) == 0:
        return np.array([60.0, 15.0, 20.0]), np.array([15.0, 5.0, 5.0])
    return pixels.mean(axis=0).astype(np.float64), pixels.std(axis=0).astype(np.float64) + 1e-3


def _best_face(faces: Sequence[Face]) -> Face | None:
    return max(faces, key=lambda f: f.score, default=None)


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
    inside = _chip_mask(0.8) > 0
    skin = np.concatenate([_to_lab(s.chip)[inside] for s in samples])
    mean, std = _lab_stats(skin)
    descriptors = [s.face.descriptor for s in samples if s.face.descriptor is not None]
    return FaceModel(
        model_id, np.mean(descriptors, axis=0), best.chip, best.chip_landmarks, mean, std, sdxl
    )


def build_model(
    engine: FaceEngine, model_id: str, images: Sequence[RGBImage], *, sdxl: bool = False
) -> FaceModel:
    """Build a face model ("training"): identity, best aligned face and skin colour.

    ``images`` are the photos that passed the check.
    Each photo's highest-scoring face is used (see :func:`model_from_samples`). Raises
    :class:`ValueError` when no photo has a face.
    """
    samples: list[FaceSample] = []
    for img in images:
        face = _best_face(engine.detect(img, with_descriptors=False))
        if face is not None:
            samples.append(face_sample(img, engine.with_descriptor(img, face)))
    return model_from_samples(model_id, samples, sdxl=sdxl)


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
    reported with the documented roop text: ``CreateFailure(462, E462_ROOP_DECODE)``.
    """
    faces = engine.detect(reference, with_descriptors=False)
    if not faces:
        raise CreateFailure(_wire.E462_ROOP_DECODE)
    face = engine.with_descriptor(reference, faces[0])
    chip, landmarks = _chip_of(reference, face)
    mean, std = _lab_stats(_to_lab(chip)[_chip_mask(0.8) > 0])
    around = reference[_region(face.landmarks, reference.shape, crop=True).slices]
    look_mean, look_std = _lab_stats(_to_lab(around).reshape(-1, 3))
    assert face.descriptor is not None
    return ReferenceModel(
        "reference", face.descriptor, chip, landmarks, mean, std, False, look_mean, look_std
    )


#: Long side of the scene sample kept of each scene photo.
SCENE_SAMPLE_SIDE = 256


def scene_sample(img: RGBImage) -> RGBImage:
    """What a scene "training" keeps of one photo: the photo at most 256 px long."""
    return _resize_long(img, SCENE_SAMPLE_SIDE) if max(img.shape[:2]) > SCENE_SAMPLE_SIDE else img


def build_scene(scene_id: str, images: Sequence[RGBImage], prompts: Sequence[str]) -> SceneModel:
    """Build a scene model ("training" a scene LoRA).

    The model is a six-colour palette (k-means over all photos) and a 256 px thumbnail of the
    first. ``images`` may be the photos or their :func:`scene_sample`; the result is the same.
    """
    if not images:
        raise ValueError("no scene photos")
    thumbs = [scene_sample(img) for img in images]
    samples = [_resize_long(img, 96).reshape(-1, 3) for img in thumbs]
    pixels = np.concatenate(samples).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    k = min(6, len(pixels))
    cv2.setRNGSeed(0)
    kmeans: Any = cv2.kmeans  # the stubs do not allow bestLabels=None
    _, _, centres = kmeans(pixels, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    order = np.argsort(centres @ np.array([0.299, 0.587, 0.114], np.float32))
    palette = np.clip(centres[order], 0, 255).astype(np.uint8)
    return SceneModel(scene_id, palette, list(prompts), _resize_long(thumbs[0], 256))


def _resize_long(img: RGBImage, side: int) -> RGBImage:
    scale = side / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=interpolation), np.uint8)


# --------------------------------------------------------------------------------------------
# configure
# --------------------------------------------------------------------------------------------

_RATIO_KEYS = (
    "lora_weights",
    "first_denoising_strength",
    "second_denoising_strength",
    "more_like_me",
    "makeup_transfer_ratio",
    "ipa_weight",
    "sharp_ratio",
)
_STEP_KEYS = ("first_diffusion_steps", "second_diffusion_steps")
_BOOL_KEYS = (
    "crop_face_preprocess",
    "apply_face_fusion_before",
    "apply_face_fusion_after",
    "color_shift_middle",
    "color_shift_last",
    "background_restore",
    "skin_retouching_bool",
    "photo_enhancement_bool",
    "makeup_transfer",
    "face_shape_match",
    "ipa_control",
    "ipa_control_only",
    "lcm_accelerate",
)
_TEXT_KEYS = ("ipa_image_path", "t2i_prompt", "scene_id")
_CHOICES = {
    "photo_enhancement_method": ("photo_fix", "super_resolution"),
    "style_name": ("Realistic", "Anime"),
}


def _invalid() -> CreateFailure:
    return CreateFailure(_wire.E462_INVALID_INPUT)


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid()
    try:
        number = float(value)  # a 400-digit integer overflows here
    except OverflowError:
        raise _invalid() from None
    if not math.isfinite(number):
        raise _invalid()
    return min(1.0, max(0.0, number))


def _steps(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid()
    return min(50, max(1, value))


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid()
    return value


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        raise _invalid()
    return value or None


def _choice(key: str, value: Any) -> str:
    if isinstance(value, str):
        for option in _CHOICES[key]:
            if value.strip().lower() == option.lower():
                return option
    raise _invalid()


def _parse(key: str, value: Any) -> Any:
    if key in _RATIO_KEYS:
        return _ratio(value)
    if key in _STEP_KEYS:
        return _steps(value)
    if key in _BOOL_KEYS:
        return _flag(value)
    if key in _TEXT_KEYS:
        return _text(value)
    return _choice(key, value)


@dataclass(frozen=True)
class ComposeOptions:
    """The documented ``configure`` keys of a create call, and what each does here.

    Ratios accept int or float and are clamped to 0..1 (the real range checks are unpublished, so
    the emulator is lenient rather than stricter than the cloud); steps accept integral numbers and
    are clamped to 1..50; a value of the wrong type is ``CreateFailure(462, E462_INVALID_INPUT)``;
    ``None`` means the default; unknown keys are ignored.

    Identity (how much of the user replaces the template face), ``identity`` below:
    ``0.5 + 0.5 * more_like_me``, times ``0.6 + 0.4 * lora_weights / 0.9`` on SD1.5 (SDXL's prompt
    carries the LoRA without a weight, so ``lora_weights`` is ignored there, as in the cloud), then
    ``ipa_control`` closes ``ipa_weight / 2`` of the remaining gap to 1.

    Reference only (``ipa_control_only``, no trained model): the face comes from the one
    reference photo and ``identity`` is ``ipa_weight`` itself (no LoRA, so ``more_like_me`` and
    ``lora_weights`` do not apply); the face keeps the reference's own colouring (no
    ``color_shift_middle``), the reference's look (the LAB colour statistics around its face)
    is carried into the work region at ``ipa_weight``, as an IP-Adapter carries the reference
    image's lighting and palette along with the face, and on SD1.5 the region gets the slide-film
    look of the ``FilmVelvia3`` LoRA that EasyPhoto's reference-only prompt adds at 0.65 (its
    SDXL prompt does not). So a reference-only portrait is visibly not a trained one.

    * ``apply_face_fusion_before``: blend the warped user face at ``identity`` over the face mask;
      when off the face is blended at half ``identity`` (what the LoRA alone would carry).
    * ``apply_face_fusion_after``: a second blend at half ``identity`` over the inner face
      (eyes, nose, mouth).
    * ``first_denoising_strength``: size of the face mask (0.85x to 1.18x of the face ellipse).
    * ``second_denoising_strength``: softness of the mask edge (Gaussian feather width).
    * ``color_shift_middle``: LAB mean/std transfer of the user's face to the template's skin.
    * ``color_shift_last``: after blending, shift the face's LAB mean back onto the template's.
    * ``face_shape_match``: keep the user's face shape (similarity transform from the five
      landmarks); otherwise a full affine fit makes the face follow the template's proportions.
    * ``makeup_transfer`` / ``makeup_transfer_ratio``: mix the template face's colour (LAB a/b)
      back into the result at that ratio.
    * ``skin_retouching_bool``: bilateral smoothing of the face.
    * ``photo_enhancement_bool`` + ``photo_enhancement_method``: ``photo_fix`` is a light
      non-local-means denoise of the face's box; ``super_resolution`` is ``cv2.detailEnhance``
      over the work region, at 50 percent, without changing the size.
    * ``sharp_ratio``: unsharp mask over the work region, amount ``2 * sharp_ratio``.
    * ``crop_face_preprocess``: the work region is three times the face box (pasted back with a
      feathered edge) instead of the whole image.
    * ``background_restore``: an edge-preserving smoothing of everything outside the faces,
      blended at 35 percent (EasyPhoto's default background denoise), plus a mild tone match.
    * ``style_name``: ``Anime`` runs ``cv2.stylization`` over the result.
    * ``t2i_prompt``, ``scene_id``, ``ipa_control_only``, ``ipa_image_path``: parsed here, acted on
      by the server (text-to-image scene, scene model, reference photo instead of a model).

    Accepted and ignored: ``first_diffusion_steps``, ``second_diffusion_steps``, ``lcm_accelerate``.
    """

    sdxl: bool = False
    lora_weights: float = 0.9
    first_denoising_strength: float = 0.45
    second_denoising_strength: float = 0.30
    more_like_me: float = 0.5
    first_diffusion_steps: int = 50
    second_diffusion_steps: int = 30
    crop_face_preprocess: bool = True
    apply_face_fusion_before: bool = True
    apply_face_fusion_after: bool = True
    color_shift_middle: bool = True
    color_shift_last: bool = True
    background_restore: bool = False
    skin_retouching_bool: bool = False
    photo_enhancement_bool: bool = True
    photo_enhancement_method: str = "photo_fix"
    makeup_transfer: bool = False
    makeup_transfer_ratio: float = 0.5
    face_shape_match: bool = False
    ipa_control: bool = False
    ipa_control_only: bool = False
    ipa_image_path: str | None = None
    ipa_weight: float = 0.5
    style_name: str = "Realistic"
    lcm_accelerate: bool = False
    sharp_ratio: float = 0.15
    t2i_prompt: str | None = None
    scene_id: str | None = None

    honoured: ClassVar[frozenset[str]] = frozenset(
        {
            "lora_weights",
            "first_denoising_strength",
            "second_denoising_strength",
            "more_like_me",
            "crop_face_preprocess",
            "apply_face_fusion_before",
            "apply_face_fusion_after",
            "color_shift_middle",
            "color_shift_last",
            "background_restore",
            "skin_retouching_bool",
            "photo_enhancement_bool",
            "photo_enhancement_method",
            "makeup_transfer",
            "makeup_transfer_ratio",
            "face_shape_match",
            "ipa_control",
            "ipa_control_only",
            "ipa_image_path",
            "ipa_weight",
            "style_name",
            "sharp_ratio",
            "t2i_prompt",
            "scene_id",
        }
    )
    accepted_only: ClassVar[frozenset[str]] = frozenset(
        {"first_diffusion_steps", "second_diffusion_steps", "lcm_accelerate"}
    )

    @classmethod
    def from_configure(cls, configure: Mapping[str, Any] | None, *, sdxl: bool) -> ComposeOptions:
        """Options from a request's ``configure`` object, with the documented defaults.

        More-like-me defaults to 0.50 on SD1.5 and 0.60 on SDXL (``create_xl``).
        """
        values: dict[str, Any] = {"sdxl": sdxl, "more_like_me": 0.6 if sdxl else 0.5}
        if configure is not None and not isinstance(configure, Mapping):
            raise _invalid()
        for key, value in (configure or {}).items():
            if key in cls.honoured | cls.accepted_only and value is not None:
                values[key] = _parse(key, value)
        return cls(**values)

    @property
    def identity(self) -> float:
        """How much of the user's face replaces the template's, 0..1 (see the class docs)."""
        if self.ipa_control_only:
            return self.ipa_weight
        strength = 0.5 + 0.5 * self.more_like_me
        if not self.sdxl:
            strength *= 0.6 + 0.4 * self.lora_weights / 0.9
        if self.ipa_control:
            strength += (1.0 - strength) * self.ipa_weight / 2
        return min(1.0, max(0.0, strength))


# --------------------------------------------------------------------------------------------
# Compositing
# --------------------------------------------------------------------------------------------


@dataclass
class _Region:
    """The part of the canvas one face's work happens in (a crop or the whole image)."""

    x0: int
    y0: int
    x1: int
    y1: int
    whole: bool

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def size(self) -> tuple[int, int]:
        return self.x1 - self.x0, self.y1 - self.y0


def _region(landmarks: FloatArray, shape: tuple[int, ...], crop: bool) -> _Region:
    height, width = shape[:2]
    if not crop:
        return _Region(0, 0, width, height, True)
    centre = landmarks.mean(axis=0)
    eyes = np.linalg.norm(landmarks[0:2].mean(axis=0) - landmarks[2:4].mean(axis=0))
    half = 1.5 * max(2.2 * float(eyes), 8.0)  # three times a face box about 2.2 eye distances
    x0, y0 = max(0, int(centre[0] - half)), max(0, int(centre[1] - half))
    x1, y1 = min(width, int(centre[0] + half) + 1), min(height, int(centre[1] + half) + 1)
    return _Region(x0, y0, x1, y1, (x0, y0, x1, y1) == (0, 0, width, height))


@dataclass
class _Fusion:
    """One face being fused: the user's face warped into a region, and its masks."""

    warped: F32
    mask: F32  # feathered full face, 0..1
    inner: F32  # feathered eyes-nose-mouth area, 0..1
    hard: NDArray[np.bool_] = field(repr=False)  # unfeathered face, for statistics


def _warp_mask(matrix: FloatArray, size: tuple[int, int], scale: float, feather: float) -> F32:
    mask = cv2.warpAffine(_chip_mask(scale), matrix, size, flags=cv2.INTER_LINEAR)
    if feather > 0.5:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return np.asarray(mask, np.float32)


def _prepare(
    model: FaceModel, target: FloatArray, region: _Region, opts: ComposeOptions
) -> _Fusion:
    local = target - (region.x0, region.y0)
    matrix = _fit(model.chip_landmarks, local, full_affine=not opts.face_shape_match)
    warped = cv2.warpAffine(
        model.chip.astype(np.float32),
        matrix,
        region.size,
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    pixels_per_chip_px = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    feather = pixels_per_chip_px * _EYE_DISTANCE * (0.05 + 0.25 * opts.second_denoising_strength)
    scale = 0.85 + 0.33 * opts.first_denoising_strength
    return _Fusion(
        warped=np.asarray(warped, np.float32),
        mask=_warp_mask(matrix, region.size, scale, feather),
        inner=_warp_mask(matrix, region.size, 0.62, feather * 0.7),
        hard=_warp_mask(matrix, region.size, 0.8, 0.0) > 0.5,
    )


def _transfer_colour(warped: F32, model: FaceModel, target: F32, hard: NDArray[np.bool_]) -> F32:
    """Move the user's skin LAB statistics onto the template face's."""
    mean, std = _lab_stats(_to_lab(target)[hard])
    ratio = np.clip(std / model.color_std, 0.5, 2.0)
    lab = (_to_lab(warped) - model.color_mean) * ratio + mean
    return np.clip(_from_lab(lab.astype(np.float32)), 0, 255)


def _blend(base: F32, top: F32, weight: F32) -> F32:
    w = weight[..., None]
    return np.asarray(base * (1.0 - w) + top * w, np.float32)


def _shift_mean(result: F32, original: F32, hard: NDArray[np.bool_], mask: F32) -> F32:
    """``color_shift_last``: move the fused face's LAB mean onto the template face's."""
    lab = _to_lab(result)
    delta = _lab_stats(_to_lab(original)[hard])[0] - _lab_stats(lab[hard])[0]
    shifted = _from_lab((lab + delta.astype(np.float32)).astype(np.float32))
    return _blend(result, np.clip(shifted, 0, 255), mask)


def _makeup(result: F32, original: F32, mask: F32, ratio: float) -> F32:
    """``makeup_transfer``: the template face's chroma (LAB a/b) mixed back in at ``ratio``."""
    lab, template = _to_lab(result), _to_lab(original)
    lab[..., 1:] = lab[..., 1:] * (1 - ratio) + template[..., 1:] * ratio
    return _blend(result, np.clip(_from_lab(lab), 0, 255), mask)


def _retouch(result: F32, mask: F32) -> F32:
    """``skin_retouching_bool``: edge-preserving bilateral smoothing of the face."""
    smooth = cv2.bilateralFilter(result, 9, 30.0, 7.0)
    return _blend(result, np.asarray(smooth, np.float32), mask * 0.8)


def _photo_fix(result: F32, mask: F32) -> F32:
    """``photo_fix``: a light non-local-means denoise, only over the face's bounding box."""
    ys, xs = np.nonzero(mask > 0.05)
    if len(xs) == 0:
        return result
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    patch = np.clip(result[box], 0, 255).astype(np.uint8)
    clean = np.asarray(cv2.fastNlMeansDenoisingColored(patch, None, 3, 3, 5, 11), np.float32)
    out: F32 = result.copy()
    out[box] = _blend(result[box], clean, mask[box])
    return out


def _fuse(
    canvas: F32,
    original: F32,
    model: FaceModel,
    target: FloatArray,
    opts: ComposeOptions,
    identity: float,
) -> F32:
    """Fuse one user face onto one template face; returns the region's feathered face mask."""
    region = _region(target, canvas.shape, opts.crop_face_preprocess)
    fusion = _prepare(model, target, region, opts)
    work, before = canvas[region.slices].copy(), original[region.slices]
    face = fusion.warped
    reference = model if isinstance(model, ReferenceModel) else None
    if opts.color_shift_middle and reference is None:
        face = _transfer_colour(face, model, before, fusion.hard)
    first = identity if opts.apply_face_fusion_before else identity / 2
    work = _blend(work, face, np.float32(first) * fusion.mask)
    if opts.apply_face_fusion_after:
        work = _blend(work, face, np.float32(identity / 2) * fusion.inner)
    work = _face_ops(work, before, fusion, opts)
    if reference is not None:
        spot = _spot(region, target.mean(axis=0) - (region.x0, region.y0))
        work = _carry_look(work, reference, spot * np.float32(opts.ipa_weight))
        if not opts.sdxl:
            work = _blend(work, _film_look(work, FILM_LOOK_WEIGHT), spot)
    weight = _region_weight(region, fusion.mask)
    if opts.crop_face_preprocess:
        work = _region_ops(work, opts)  # else once over the whole image, in _finish
    canvas[region.slices] = _blend(canvas[region.slices], work, weight)
    full = np.zeros(canvas.shape[:2], np.float32)
    full[region.slices] = fusion.mask
    return full


def _spot(region: _Region, centre: FloatArray) -> F32:
    """A round, soft weight over the work region: 1 around ``centre`` (region coordinates),
    fading to nothing before the region's edges, so no box shows where the region ends."""
    width, height = region.size
    xs = (np.arange(width, dtype=np.float32) - np.float32(centre[0])) / np.float32(0.5 * width)
    ys = (np.arange(height, dtype=np.float32) - np.float32(centre[1])) / np.float32(0.5 * height)
    distance = np.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)
    return np.asarray(np.clip(1.6 - 1.6 * distance, 0.0, 1.0), np.float32)


def _carry_look(work: F32, reference: ReferenceModel, weight: F32) -> F32:
    """Move the region's LAB statistics onto the reference photo's, blended by ``weight``."""
    lab = _to_lab(work)
    mean, std = _lab_stats(lab.reshape(-1, 3))
    ratio = np.clip(reference.look_std / std, 0.5, 2.0)
    moved = (lab - mean) * ratio + reference.look_mean
    return _blend(work, np.clip(_from_lab(moved.astype(np.float32)), 0, 255), weight)


#: EasyPhoto's reference-only prompt carries ``<lora:FilmVelvia3:0.65>`` on SD1.5 (not on SDXL).
FILM_LOOK_WEIGHT = 0.65


def _film_look(work: F32, strength: float) -> F32:
    """A slide-film look (the FilmVelvia LoRA's): richer colour and more contrast."""
    lab = _to_lab(work)
    lab[..., 0] = 50.0 + (lab[..., 0] - 50.0) * (1.0 + 0.35 * strength)
    lab[..., 1:] *= 1.0 + 0.8 * strength
    return np.asarray(np.clip(_from_lab(lab), 0, 255), np.float32)


def _face_ops(work: F32, before: F32, fusion: _Fusion, opts: ComposeOptions) -> F32:
    if opts.color_shift_last:
        work = _shift_mean(work, before, fusion.hard, fusion.mask)
    if opts.makeup_transfer:
        work = _makeup(work, before, fusion.mask, opts.makeup_transfer_ratio)
    if opts.skin_retouching_bool:
        work = _retouch(work, fusion.mask)
    if opts.photo_enhancement_bool and opts.photo_enhancement_method == "photo_fix":
        work = _photo_fix(work, fusion.mask)
    return work


def _region_ops(work: F32, opts: ComposeOptions) -> F32:
    """Operations over the whole work region: detail enhancement and sharpening."""
    if opts.photo_enhancement_bool and opts.photo_enhancement_method == "super_resolution":
        detail = cv2.detailEnhance(np.clip(work, 0, 255).astype(np.uint8), None, 10, 0.15)
        work = np.asarray((work + detail.astype(np.float32)) / 2, np.float32)
    if opts.sharp_ratio > 0:
        blurred = cv2.GaussianBlur(work, (0, 0), 1.5)
        work = work + 2 * opts.sharp_ratio * (work - blurred)
    return np.asarray(np.clip(work, 0, 255), np.float32)


def _region_weight(region: _Region, mask: F32) -> F32:
    """How the processed region is pasted back: a feathered rectangle (or everything)."""
    width, height = region.size
    if region.whole:
        return np.ones((height, width), np.float32)
    margin = max(2, min(width, height) // 8)
    ramp_x = np.clip(np.minimum(np.arange(width), np.arange(width)[::-1]) / margin, 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(height), np.arange(height)[::-1]) / margin, 0, 1)
    weight = np.outer(ramp_y, ramp_x).astype(np.float32)
    return np.maximum(weight, mask)


def _restore_background(canvas: F32, faces: F32) -> F32:
    """``background_restore``: re-render the background a little (smoothing + tone match)."""
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    smooth = cv2.edgePreservingFilter(image, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.2)
    background = 1.0 - np.clip(faces, 0, 1)
    out = _blend(canvas, smooth.astype(np.float32), background * 0.35)
    if faces.max() > 0.5:
        inside, outside = faces > 0.5, faces < 0.05
        lab = _to_lab(out)
        if outside.any():
            delta = lab[inside].mean(axis=0) - lab[outside].mean(axis=0)
            lab[..., 1:] += delta[1:] * 0.1
            out = _blend(out, np.clip(_from_lab(lab), 0, 255), background)
    return out


def _finish(canvas: F32, faces: F32, opts: ComposeOptions) -> RGBImage:
    if not opts.crop_face_preprocess:
        canvas = _region_ops(canvas, opts)
    if opts.background_restore:
        canvas = _restore_background(canvas, faces)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if opts.style_name == "Anime":
        image = np.asarray(cv2.stylization(image, sigma_s=60, sigma_r=0.45), np.uint8)
    return np.ascontiguousarray(image, np.uint8)


def _pair(
    faces: Sequence[Face], models: Sequence[FaceModel], group: bool
) -> list[tuple[Face, FaceModel]]:
    """Which template face each model goes onto; raises the documented create errors."""
    if not models:
        raise CreateFailure(_wire.E462_INVALID_INPUT)
    if not group:
        if not faces:
            raise CreateFailure(_wire.E462_NO_FACE)
        largest = max(faces, key=lambda f: f.box[2] * f.box[3])
        return [(largest, models[0])]
    if len(faces) != len(models):
        raise CreateFailure(_wire.E469_FACE_COUNT)
    return list(zip(faces, models, strict=True))  # both left to right


def compose(
    engine: FaceEngine,
    template: RGBImage,
    models: Sequence[FaceModel],
    options: ComposeOptions,
    *,
    group: bool | None = None,
) -> RGBImage:
    """Put the users' faces into the template; the result has the template's size.

    Solo (one model, ``group`` false): the template's largest face is replaced (the main subject;
    other faces are left alone); no face is ``CreateFailure(462, E462_NO_FACE)``. Group (``group``
    true; by default when there are several models, pass ``group=True`` for a ``model_ids`` call
    with a single id): the template must have exactly as many faces as models, else
    ``CreateFailure(469, E469_FACE_COUNT)``; faces and models are paired left to right, as the
    cloud documents.
    """
    if len(models) > 1 and group is False:
        raise ValueError("several models need group mode")
    faces = engine.detect(template, with_descriptors=False)
    pairs = _pair(faces, models, len(models) > 1 if group is None else group)
    original = template.astype(np.float32)
    canvas = original.copy()
    masks = np.zeros(template.shape[:2], np.float32)
    for face, model in pairs:
        mask = _fuse(canvas, original, model, face.landmarks, options, options.identity)
        masks = np.maximum(masks, mask)
    return _finish(canvas, masks, options)


# --------------------------------------------------------------------------------------------
# Text to image
# --------------------------------------------------------------------------------------------

_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (190, 40, 45),
    "pink": (235, 150, 180),
    "orange": (235, 130, 40),
    "yellow": (240, 210, 60),
    "green": (60, 140, 70),
    "blue": (50, 90, 180),
    "purple": (120, 70, 160),
    "white": (240, 240, 235),
    "black": (30, 30, 35),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "brown": (110, 70, 40),
}
_HAIR: dict[str, tuple[int, int, int]] = {
    "blonde": (215, 180, 110),
    "brown": (95, 60, 35),
    "black": (25, 22, 22),
    "red": (150, 60, 30),
    "white": (225, 225, 220),
    "grey": (150, 150, 150),
}
_CLOTHES = ("sweater", "dress", "shirt", "jacket", "coat", "suit", "uniform", "top", "cloth")


@dataclass(frozen=True)
class _Scene:
    """What the prompt asks for, as the painter understands it."""

    sky_top: tuple[int, int, int]
    sky_bottom: tuple[int, int, int]
    ground: tuple[int, int, int]
    horizon: float
    words: frozenset[str]
    clothes: tuple[int, int, int]
    hair: tuple[int, int, int]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _has(words: frozenset[str], *keys: str) -> bool:
    return any(key in words for key in keys)


def _sky(words: frozenset[str]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    if _has(words, "night", "dark", "stars", "moon"):
        return (10, 14, 40), (40, 50, 90)
    if _has(words, "sunset", "dusk", "sunrise", "dawn"):
        return (90, 70, 140), (250, 160, 90)
    if _has(words, "indoor", "indoors", "studio", "room", "office"):
        return (200, 190, 175), (225, 215, 200)
    if _has(words, "snow", "winter"):
        return (190, 200, 215), (235, 238, 242)
    return (90, 150, 225), (200, 225, 245)


def _ground(words: frozenset[str]) -> tuple[tuple[int, int, int], float]:
    if _has(words, "beach", "sea", "ocean", "sand"):
        return (225, 205, 160), 0.62
    if _has(words, "garden", "flower", "flowers", "park", "grass", "forest", "outdoors", "tree"):
        return (70, 135, 60), 0.6
    if _has(words, "city", "street", "urban"):
        return (95, 95, 100), 0.7
    if _has(words, "snow", "winter"):
        return (245, 247, 250), 0.6
    return (150, 135, 120), 0.72


def _clothes(tokens: list[str], rng: np.random.Generator) -> tuple[int, int, int]:
    for first, second in itertools.pairwise(tokens):
        if first in _COLOURS and second in _CLOTHES:
            return _COLOURS[first]
    named = [_COLOURS[t] for t in tokens if t in _COLOURS]
    if named:
        return named[0]
    r, g, b = (int(v) for v in rng.integers(40, 200, 3))
    return r, g, b


def _hair(tokens: list[str]) -> tuple[int, int, int]:
    for first, second in itertools.pairwise(tokens):
        if second == "hair" and first in _HAIR:
            return _HAIR[first]
    for token in tokens:
        if token.endswith("hair") and token[:-4] in _HAIR:
            return _HAIR[token[:-4]]
        if token in ("blonde", "brunette"):
            return _HAIR["blonde" if token == "blonde" else "brown"]
    return _HAIR["brown"]


def _read_prompt(prompt: str, scene: SceneModel | None, rng: np.random.Generator) -> _Scene:
    text = prompt + " " + " ".join(scene.prompts if scene else [])
    tokens = _words(text.replace("_", " "))
    words = frozenset(tokens)
    top, bottom = _sky(words)
    ground, horizon = _ground(words)
    if scene is not None and len(scene.palette) >= 3:
        bottom, top = _rgb(scene.palette[-1]), _rgb(scene.palette[len(scene.palette) // 2])
        ground = _rgb(scene.palette[0])
    return _Scene(top, bottom, ground, horizon, words, _clothes(tokens, rng), _hair(tokens))


def _rgb(values: NDArray[Any]) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in values[:3])
    return r, g, b


def _seed(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _paint_background(spec: _Scene, size: tuple[int, int], rng: np.random.Generator) -> RGBImage:
    width, height = size
    horizon = int(height * spec.horizon)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    sky = np.array(spec.sky_top) * (1 - t) + np.array(spec.sky_bottom) * t
    canvas = np.zeros((height, width, 3), np.float32)
    canvas[:horizon] = sky[:, None, :]
    shade = np.linspace(1.0, 0.75, height - horizon)[:, None, None]
    canvas[horizon:] = np.array(spec.ground, np.float32) * shade
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    _paint_details(image, spec, horizon, rng)
    return image


def _paint_details(image: RGBImage, spec: _Scene, horizon: int, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    words = spec.words
    if _has(words, "city", "street", "urban"):
        for _ in range(9):
            x, w = int(rng.integers(0, width)), int(rng.integers(width // 12, width // 5))
            top = int(rng.integers(horizon // 5, horizon * 3 // 4))
            grey = int(rng.integers(60, 140))
            cv2.rectangle(image, (x, top), (x + w, horizon), (grey, grey, grey + 10), -1)
    if _has(words, "beach", "sea", "ocean"):
        cv2.rectangle(image, (0, horizon - height // 14), (width, horizon), (40, 110, 170), -1)
    if _has(words, "night", "stars"):
        for _ in range(60):
            point = (int(rng.integers(0, width)), int(rng.integers(0, horizon)))
            cv2.circle(image, point, 1, (255, 255, 230), -1)
    if _has(words, "garden", "flower", "flowers", "bouquet", "hydrangea", "rose", "park"):
        palette = [c for n, c in _COLOURS.items() if n in words] or [
            (240, 240, 235),
            (235, 150, 180),
        ]
        for _ in range(80):
            point = (int(rng.integers(0, width)), int(rng.integers(horizon, height)))
            colour = palette[int(rng.integers(0, len(palette)))]
            cv2.circle(image, point, int(rng.integers(4, 12)), colour, -1)
    if _has(words, "sun", "sunlight", "sunny", "sunset"):
        cv2.circle(image, (width * 4 // 5, horizon // 4), max(8, width // 14), (255, 235, 170), -1)


def _head_layout(size: tuple[int, int]) -> tuple[FloatArray, float]:
    """Where the painted head's eyes go: their midpoint and their distance, in pixels."""
    width, height = size
    eye_distance = 0.115 * min(width, height * 0.75)
    return np.array([width / 2, height * 0.33]), eye_distance


def _paint_figure(
    image: RGBImage, spec: _Scene, skin: tuple[int, int, int], size: tuple[int, int]
) -> None:
    height = size[1]
    mid, eyes = _head_layout(size)
    cx, cy = int(mid[0]), int(mid[1] + 0.45 * eyes)
    head_axes = (int(1.15 * eyes), int(1.55 * eyes))
    cv2.ellipse(
        image,
        (cx, cy - int(0.25 * eyes)),
        (int(1.5 * eyes), int(1.75 * eyes)),
        0,
        0,
        360,
        spec.hair,
        -1,
    )
    neck_top, neck_half = cy + int(1.2 * eyes), int(0.55 * eyes)
    cv2.rectangle(
        image, (cx - neck_half, neck_top), (cx + neck_half, cy + int(2.4 * eyes)), skin, -1
    )
    shoulders, half = (cx, cy + int(3.8 * eyes)), int(2.9 * eyes)
    cv2.ellipse(image, shoulders, (half, int(1.6 * eyes)), 0, 180, 360, spec.clothes, -1)
    cv2.rectangle(image, (cx - half, shoulders[1]), (cx + half, height), spec.clothes, -1)
    cv2.ellipse(image, (cx, cy), head_axes, 0, 0, 360, skin, -1)


def t2i_template(
    prompt: str,
    *,
    size: tuple[int, int] = (768, 1024),
    scene: SceneModel | None = None,
    skin: tuple[int, int, int] = (225, 185, 160),
) -> RGBImage:
    """Paint a deterministic scene for ``prompt`` (``size`` is width, height), without a face.

    The same prompt (and scene) always gives the same picture. Words choose the sky (night,
    sunset, indoor, snow), the ground (beach, garden/flower, city, snow), details (stars,
    flowers, buildings, sea, sun), the clothes ("green sweater") and the hair ("brown_hair").
    A scene model lends its palette and a blurred wash of its thumbnail. The figure's head is a
    blank ``skin`` oval whose eyes sit where :func:`t2i_compose` puts the user's face.
    """
    rng = np.random.default_rng(_seed(prompt, scene.scene_id if scene else ""))
    spec = _read_prompt(prompt, scene, rng)
    image: Any = _paint_background(spec, size, rng)
    if scene is not None:
        wash = cv2.resize(scene.thumbnail, size, interpolation=cv2.INTER_LINEAR)
        wash = cv2.GaussianBlur(wash, (0, 0), max(size) / 60)
        image = cv2.addWeighted(image, 0.6, wash, 0.4, 0.0)
    if _has(spec.words, "bokeh", "blurry", "blur"):
        image = cv2.GaussianBlur(image, (0, 0), max(size) / 150)
    painted: RGBImage = np.ascontiguousarray(image, np.uint8)
    _paint_figure(painted, spec, skin, size)
    return painted


def _skin_rgb(model: FaceModel) -> tuple[int, int, int]:
    lab = model.color_mean.astype(np.float32).reshape(1, 1, 3)
    return _rgb(np.clip(_from_lab(lab).reshape(3), 0, 255))


def t2i_compose(
    engine: FaceEngine,
    prompt: str,
    model: FaceModel,
    options: ComposeOptions,
    *,
    scene: SceneModel | None = None,
    size: tuple[int, int] = (768, 1024),
) -> RGBImage:
    """Text-to-image: the :func:`t2i_template` scene with the user's face on the painted head.

    The head's position is known, so no detection is needed; the face is blended at full strength
    (a blank head shows through anything less), then the usual ``configure`` operations apply.
    ``engine`` is accepted for symmetry with :func:`compose`.
    """
    del engine
    template = t2i_template(prompt, size=size, scene=scene, skin=_skin_rgb(model))
    mid, eyes = _head_layout(size)
    target = mid + _CANONICAL_UNITS * eyes
    # The painted head is plain skin: no colour to match, and a wider mask lets the user's own
    # hairline show.
    opts = dataclasses.replace(
        options,
        color_shift_middle=False,
        face_shape_match=True,
        first_denoising_strength=max(options.first_denoising_strength, 0.9),
    )
    original = template.astype(np.float32)
    canvas = original.copy()
    mask = _fuse(canvas, original, model, target, opts, 1.0)
    return _finish(canvas, mask, opts)


# --------------------------------------------------------------------------------------------
# Contact sheet
# --------------------------------------------------------------------------------------------


def _fit_cell(img: RGBImage, thumb: int) -> RGBImage:
    cell = np.full((thumb, thumb, 3), 245, np.uint8)
    small = _resize_long(img, thumb)
    h, w = small.shape[:2]
    y, x = (thumb - h) // 2, (thumb - w) // 2
    cell[y : y + h, x : x + w] = small
    return cell


def contact_sheet(rows: Sequence[tuple[str, Sequence[RGBImage]]], *, thumb: int = 256) -> RGBImage:
    """A labelled grid for demos: one row per ``(caption, images)``, images fitted in squares.

    Each row is a caption band (drawn with ``cv2.putText``) above its images; the sheet is as wide
    as the longest row. Returns an RGB ``uint8`` array.
    """
    pad, band = 8, 30
    columns = max([len(images) for _, images in rows] + [1])
    width = pad + columns * (thumb + pad)
    height = pad + len(rows) * (band + thumb + pad)
    sheet = np.full((max(height, pad + band), width, 3), 255, np.uint8)
    for r, (caption, images) in enumerate(rows):
        top = pad + r * (band + thumb + pad)
        cv2.putText(
            sheet,
            caption,
            (pad, top + band - 9),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (20, 20, 20),
            1,
            cv2.LINE_AA,
        )
        for c, img in enumerate(images):
            x = pad + c * (thumb + pad)
            sheet[top + band : top + band + thumb, x : x + thumb] = _fit_cell(img, thumb)
    return sheet
