"""The ``configure`` keys of a create call, parsed into the image operations they stand for.

See :class:`ComposeOptions` for what each key does in the emulator. Parsing needs no image
library, so a create body is validated before any image work starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._errors import ApiError
from ._wire import E462_INVALID_INPUT

__all__ = ["ComposeOptions"]

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


def _invalid() -> ApiError:
    return ApiError.create(E462_INVALID_INPUT)


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
    are clamped to 1..50; a value of the wrong type is the documented 462 ``E462_INVALID_INPUT``
    (raised as :class:`~._errors.ApiError`); ``None`` means the default; unknown keys are ignored.

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
