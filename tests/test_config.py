"""CreateConfig: every documented key typed and validated; None means omit; extra passes through."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from aiportrait import CreateConfig, InvalidArgument
from aiportrait.config import SD15_ONLY_KEYS, SDXL_ONLY_KEYS, closest_key
from aiportrait.errors import AIPortraitWarning, ConfigWarning

SD15_KEYS = {
    "lora_weights", "first_denoising_strength", "second_denoising_strength", "more_like_me",
    "crop_face_preprocess", "apply_face_fusion_before", "apply_face_fusion_after",
    "color_shift_middle", "color_shift_last", "background_restore", "skin_retouching_bool",
    "photo_enhancement_bool", "photo_enhancement_method", "makeup_transfer",
    "makeup_transfer_ratio", "face_shape_match", "ipa_control", "ipa_control_only",
    "ipa_image_path", "ipa_weight", "style_name", "lcm_accelerate", "sharp_ratio", "t2i_prompt",
}  # fmt: skip
SDXL_KEYS = {
    "lora_weights", "first_diffusion_steps", "first_denoising_strength", "second_diffusion_steps",
    "second_denoising_strength", "more_like_me", "crop_face_preprocess",
    "apply_face_fusion_before", "apply_face_fusion_after", "color_shift_middle",
    "color_shift_last", "background_restore", "skin_retouching_bool", "photo_enhancement_bool",
    "photo_enhancement_method", "makeup_transfer", "makeup_transfer_ratio", "ipa_control",
    "ipa_control_only", "ipa_image_path", "ipa_weight", "lcm_accelerate", "sharp_ratio",
    "scene_id", "t2i_prompt",
}  # fmt: skip


def test_every_documented_key_is_an_attribute() -> None:
    names = {a.name for a in attrs.fields(CreateConfig)} - {"extra"}
    assert names == SD15_KEYS | SDXL_KEYS
    assert SD15_KEYS - SDXL_KEYS == SD15_ONLY_KEYS
    assert SDXL_KEYS - SD15_KEYS == SDXL_ONLY_KEYS


def test_none_means_omit_and_types_go_out_as_json_types() -> None:
    assert CreateConfig().to_configure() == {}
    cfg = CreateConfig(lora_weights=1, first_diffusion_steps=30, crop_face_preprocess=False)
    out = cfg.to_configure()
    assert out == {"lora_weights": 1.0, "first_diffusion_steps": 30, "crop_face_preprocess": False}
    assert isinstance(out["lora_weights"], float)
    assert isinstance(out["first_diffusion_steps"], int)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("lora_weights", 0.4, "from 0.5 to 1.0"),
        ("lora_weights", 1.01, "from 0.5 to 1.0"),
        ("lora_weights", True, "number"),
        ("lora_weights", "0.9", "number"),
        ("lora_weights", float("nan"), "number"),
        ("more_like_me", -0.1, "from 0.0 to 1.0"),
        ("ipa_weight", 2, "from 0.0 to 1.0"),
        ("first_diffusion_steps", 19, "whole number from 20 to 50"),
        ("second_diffusion_steps", 51, "whole number from 20 to 50"),
        ("first_diffusion_steps", 30.0, "whole number"),
        ("crop_face_preprocess", 1, "True or False"),
        ("photo_enhancement_method", "sharpen", "'photo_fix', 'super_resolution'"),
        ("style_name", "realistic", "'Realistic', 'Anime'"),
        ("ipa_image_path", "not a url", "downloadable URL"),
        ("scene_id", "", "non-empty string"),
        ("t2i_prompt", 5, "non-empty string"),
    ],
)
def test_invalid_values_name_key_value_and_range(key: str, value: Any, allowed: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        CreateConfig(**{key: value})
    text = str(info.value)
    assert f"CreateConfig.{key}=" in text
    assert repr(value) in text
    assert allowed in text


def test_bounds_are_inclusive() -> None:
    cfg = CreateConfig(lora_weights=0.5, more_like_me=1, first_diffusion_steps=50, sharp_ratio=0)
    assert cfg.to_configure()["more_like_me"] == 1.0


def test_extra_passes_through_and_may_not_shadow() -> None:
    with pytest.warns(ConfigWarning):
        cfg = CreateConfig(lora_weights=0.8, extra={"new_key": [1, None], "nested": {"a": 1}})
    assert cfg.to_configure() == {"lora_weights": 0.8, "new_key": [1, None], "nested": {"a": 1}}
    with pytest.raises(InvalidArgument, match="repeats documented keys"):
        CreateConfig(extra={"lora_weights": 0.8})
    with pytest.raises(InvalidArgument, match="mapping with string keys"):
        CreateConfig(extra={1: 2})  # type: ignore[dict-item]


def test_model_mismatch() -> None:
    cfg = CreateConfig(style_name="Anime", scene_id="s")
    assert cfg.model_mismatch(sdxl=True, warn=False) == {"style_name"}
    assert cfg.model_mismatch(sdxl=False, warn=False) == {"scene_id"}


def test_unknown_config_key_warns_with_the_closest_documented_key() -> None:
    with pytest.warns(ConfigWarning) as caught:
        cfg = CreateConfig(extra={"loraweights": 0.8, "Sharp-Ratio": 0.1, "zzz_future": 1})
    messages = [str(w.message) for w in caught]
    assert messages == [
        "configure key 'loraweights' is not documented (did you mean 'lora_weights'?); "
        "it is sent unchanged",
        "configure key 'Sharp-Ratio' is not documented (did you mean 'sharp_ratio'?); "
        "it is sent unchanged",
        "configure key 'zzz_future' is not documented; it is sent unchanged",
    ]
    assert all(w.filename == __file__ for w in caught)  # shown at the caller's line
    assert cfg.to_configure() == {"loraweights": 0.8, "Sharp-Ratio": 0.1, "zzz_future": 1}
    assert closest_key("more_like_mee") == "more_like_me"
    assert closest_key("completely_else") is None


def test_key_of_the_other_model_warns_and_is_still_sent() -> None:
    cfg = CreateConfig(style_name="Anime", face_shape_match=True, scene_id="s")
    with pytest.warns(ConfigWarning, match="SD1.5 only, but this creation uses SDXL") as caught:
        assert cfg.model_mismatch(sdxl=True) == {"style_name", "face_shape_match"}
    assert "keys 'face_shape_match', 'style_name' are documented" in str(caught[0].message)
    assert caught[0].filename == __file__
    with pytest.warns(ConfigWarning, match="'scene_id' is documented for SDXL only"):
        cfg.model_mismatch(sdxl=False)
    assert issubclass(ConfigWarning, AIPortraitWarning)
    assert issubclass(ConfigWarning, UserWarning)
    assert "style_name" in cfg.to_configure()


def test_frozen() -> None:
    cfg = CreateConfig()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.lora_weights = 0.9  # type: ignore[misc]
