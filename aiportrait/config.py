"""``CreateConfig``: every documented ``configure`` key of portrait creation, typed and validated.

Each attribute is named exactly as the documentation names the key. ``None`` (the default) means
"leave it out and let the service apply its default". Values are validated when the config is
built; the error names the key, the value and what is allowed. Booleans, integers and floats go
out as JSON booleans and numbers. ``extra`` passes keys the service adds later through unchanged,
with a :class:`~aiportrait.errors.ConfigWarning` per key (naming the closest documented key, in
case it is a typo); :meth:`CreateConfig.model_mismatch` warns about keys of the other model.

Which model applies which key (from the two ``configure`` tables of the documentation):

- both SD1.5 and SDXL: ``lora_weights`` (SDXL ignores it in practice), ``first_denoising_strength``,
  ``second_denoising_strength``, ``more_like_me``, ``crop_face_preprocess``,
  ``apply_face_fusion_before``, ``apply_face_fusion_after``, ``color_shift_middle``,
  ``color_shift_last``, ``background_restore``, ``skin_retouching_bool``,
  ``photo_enhancement_bool``, ``photo_enhancement_method``, ``makeup_transfer``,
  ``makeup_transfer_ratio``, ``ipa_control``, ``ipa_control_only``, ``ipa_image_path``,
  ``ipa_weight``, ``lcm_accelerate``, ``sharp_ratio``, ``t2i_prompt``;
- SD1.5 only: ``face_shape_match``, ``style_name``;
- SDXL only (``sdxl=True``): ``first_diffusion_steps``, ``second_diffusion_steps``, ``scene_id``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from ._args import choice, flag, invalid, nonempty_text, number, url_value, whole
from .errors import ConfigWarning, InvalidArgument

__all__ = ["DOCUMENTED_KEYS", "SD15_ONLY_KEYS", "SDXL_ONLY_KEYS", "CreateConfig", "closest_key"]

SD15_ONLY_KEYS: Final = frozenset({"face_shape_match", "style_name"})
"""Keys the documentation lists for SD1.5 creation only."""
SDXL_ONLY_KEYS: Final = frozenset({"first_diffusion_steps", "second_diffusion_steps", "scene_id"})
"""Keys the documentation lists for SDXL creation (``model_name`` ``create_xl``) only."""


def _float(value: Any) -> Any:
    # Keep the type honest on the wire: 1 (int) for a float key goes out as 1.0.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _extra(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise invalid(_inst, attr.name, value, "a mapping with string keys")
    clash = sorted(set(value) & _DOCUMENTED)
    if clash:
        raise InvalidArgument(
            f"CreateConfig.extra repeats documented keys {clash}: set them as attributes instead"
        )
    for key in value:
        ConfigWarning.warn(_undocumented(key))


def closest_key(key: str) -> str | None:
    """The documented ``configure`` key closest to ``key`` (a likely typo), or ``None``."""
    import difflib  # only when a key is unknown: not loaded by ``import aiportrait``

    wanted = key.strip().lower().replace("-", "_")
    matches = difflib.get_close_matches(wanted, sorted(_DOCUMENTED), n=1, cutoff=0.6)
    return matches[0] if matches else None


@functools.lru_cache(maxsize=1024)  # a batch file repeats its keys row after row
def _undocumented(key: str) -> str:
    closest = closest_key(key)
    hint = f" (did you mean {closest!r}?)" if closest is not None and closest != key else ""
    return f"configure key {key!r} is not documented{hint}; it is sent unchanged"


def _fraction() -> Any:
    return attrs.field(default=None, converter=_float, validator=number(0.0, 1.0))


def _flag() -> Any:
    return attrs.field(default=None, validator=flag())


@attrs.frozen(kw_only=True)
class CreateConfig:
    """Options for portrait creation: the documented ``configure`` keys, all optional.

    Ranges and defaults are the documentation's (the default is what the service uses when the
    key is left out). Keys marked SD1.5 or SDXL apply to that model only.

    Attributes:
        lora_weights: LoRA strength, 0.5 to 1.0 (default 0.90; SDXL ignores it).
        first_diffusion_steps: SDXL only; steps of the first diffusion, 20 to 50 (default 50).
        first_denoising_strength: first reconstruction strength, 0.0 to 1.0 (default 0.45).
        second_diffusion_steps: SDXL only; steps of the second diffusion, 20 to 50 (default 30).
        second_denoising_strength: second reconstruction strength, 0.0 to 1.0 (default 0.30).
        more_like_me: face-merging ratio, 0.0 to 1.0 (default 0.50 SD1.5, 0.60 SDXL).
        crop_face_preprocess: crop around the face before reconstruction (default True).
        apply_face_fusion_before: first portrait merging (default True).
        apply_face_fusion_after: second portrait merging (default True).
        color_shift_middle: first colour correction (default True).
        color_shift_last: second colour correction (default True).
        background_restore: reconstruct the background (default False).
        skin_retouching_bool: skin smoothing (default False).
        photo_enhancement_bool: portrait restoration or super resolution (default True).
        photo_enhancement_method: ``"photo_fix"`` (default) or ``"super_resolution"``.
        makeup_transfer: transfer the template's makeup (default False).
        makeup_transfer_ratio: makeup strength, 0.0 to 1.0 (default 0.5).
        face_shape_match: SD1.5 only; adapt the face shape to the user (default False).
        ipa_control: IP-Adapter control (default False).
        ipa_control_only: create without training from ``ipa_image_path`` (default False).
        ipa_image_path: reference portrait URL, required with ``ipa_control_only``.
        ipa_weight: IP-Adapter strength, 0.0 to 1.0 (default 0.5).
        style_name: SD1.5 only; ``"Realistic"`` (default) or ``"Anime"``.
        lcm_accelerate: LCM acceleration (default False).
        sharp_ratio: sharpening, 0.0 to 1.0 (default 0.15).
        scene_id: SDXL only; a scene LoRA id (the ``model_id`` of a scene training).
        t2i_prompt: text-to-image prompt; the template may then be ``"t2i_generate"``.
        extra: undocumented keys, sent unchanged (may not repeat a documented key); each one
            warns :class:`~aiportrait.errors.ConfigWarning`, naming the closest documented key.
    """

    lora_weights: float | None = attrs.field(
        default=None, converter=_float, validator=number(0.5, 1.0)
    )
    first_diffusion_steps: int | None = attrs.field(default=None, validator=whole(20, 50))
    first_denoising_strength: float | None = _fraction()
    second_diffusion_steps: int | None = attrs.field(default=None, validator=whole(20, 50))
    second_denoising_strength: float | None = _fraction()
    more_like_me: float | None = _fraction()
    crop_face_preprocess: bool | None = _flag()
    apply_face_fusion_before: bool | None = _flag()
    apply_face_fusion_after: bool | None = _flag()
    color_shift_middle: bool | None = _flag()
    color_shift_last: bool | None = _flag()
    background_restore: bool | None = _flag()
    skin_retouching_bool: bool | None = _flag()
    photo_enhancement_bool: bool | None = _flag()
    photo_enhancement_method: Literal["photo_fix", "super_resolution"] | None = attrs.field(
        default=None, validator=choice("photo_fix", "super_resolution")
    )
    makeup_transfer: bool | None = _flag()
    makeup_transfer_ratio: float | None = _fraction()
    face_shape_match: bool | None = _flag()
    ipa_control: bool | None = _flag()
    ipa_control_only: bool | None = _flag()
    ipa_image_path: str | None = attrs.field(default=None, validator=url_value)
    ipa_weight: float | None = _fraction()
    style_name: Literal["Realistic", "Anime"] | None = attrs.field(
        default=None, validator=choice("Realistic", "Anime")
    )
    lcm_accelerate: bool | None = _flag()
    sharp_ratio: float | None = _fraction()
    scene_id: str | None = attrs.field(default=None, validator=nonempty_text)
    t2i_prompt: str | None = attrs.field(default=None, validator=nonempty_text)
    extra: Mapping[str, Any] | None = attrs.field(default=None, validator=_extra)

    def to_configure(self) -> dict[str, Any]:
        """Return the ``configure`` object to send: set keys only, then ``extra``."""
        out = {
            a.name: getattr(self, a.name)
            for a in _FIELDS
            if a.name != "extra" and getattr(self, a.name) is not None
        }
        if self.extra:
            out.update(self.extra)
        return out

    def model_mismatch(self, *, sdxl: bool, warn: bool = True) -> frozenset[str]:
        """Return the set keys that the documentation lists for the other model only.

        With ``warn`` (the default) a :class:`~aiportrait.errors.ConfigWarning` names them: the
        service may ignore them. ``warn=False`` only returns them.
        """
        keys = frozenset(set(self.to_configure()) & (SD15_ONLY_KEYS if sdxl else SDXL_ONLY_KEYS))
        if keys and warn:
            ConfigWarning.warn(_mismatch(keys, sdxl=sdxl))
        return keys


def _mismatch(keys: frozenset[str], *, sdxl: bool) -> str:
    other, used = ("SD1.5", "SDXL") if sdxl else ("SDXL", "SD1.5")
    names = ", ".join(repr(k) for k in sorted(keys))
    plural = len(keys) > 1
    return (
        f"configure key{'s' if plural else ''} {names} {'are' if plural else 'is'} documented "
        f"for {other} only, but this creation uses {used}; the service may ignore "
        f"{'them' if plural else 'it'} (sent unchanged)"
    )


_FIELDS = attrs.fields(CreateConfig)
_DOCUMENTED = frozenset(a.name for a in _FIELDS if a.name != "extra")

DOCUMENTED_KEYS: Final = _DOCUMENTED
"""Every documented ``configure`` key: the attributes of :class:`CreateConfig`."""
