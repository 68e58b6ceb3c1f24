"""The ``configure`` keys of create: defaults, leniency, the documented 462 for a wrong type, and
how the keys set the identity strength."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from aiportrait.emulator import _wire
from aiportrait.emulator._errors import ApiError
from aiportrait.emulator._options import ComposeOptions


def test_option_defaults() -> None:
    sd15 = ComposeOptions.from_configure({}, sdxl=False)
    sdxl = ComposeOptions.from_configure(None, sdxl=True)
    assert (sd15.more_like_me, sdxl.more_like_me) == (0.5, 0.6)
    assert sd15.lora_weights == 0.9 and sd15.sharp_ratio == 0.15
    assert sd15.first_denoising_strength == 0.45 and sd15.second_denoising_strength == 0.30
    assert sd15.crop_face_preprocess and sd15.photo_enhancement_bool
    assert sd15.photo_enhancement_method == "photo_fix" and sd15.style_name == "Realistic"
    assert not (sd15.background_restore or sd15.skin_retouching_bool or sd15.makeup_transfer)
    assert sd15.identity == pytest.approx(0.75)
    assert sdxl.identity == pytest.approx(0.8)


def test_option_numbers_int_or_float() -> None:
    go_style = ComposeOptions.from_configure(
        {"more_like_me": 1, "first_denoising_strength": 1, "second_diffusion_steps": 20},
        sdxl=False,
    )
    java_style = ComposeOptions.from_configure(
        {"more_like_me": 1.0, "first_denoising_strength": 1.0, "second_diffusion_steps": 20.0},
        sdxl=False,
    )
    assert go_style == java_style
    assert go_style.more_like_me == 1.0 and go_style.second_diffusion_steps == 20


def test_option_leniency() -> None:
    opts = ComposeOptions.from_configure(
        {
            "more_like_me": 5,
            "sharp_ratio": -1,
            "unknown_key": object(),
            "ipa_weight": None,
            "style_name": "anime",
        },
        sdxl=False,
    )
    assert (opts.more_like_me, opts.sharp_ratio, opts.ipa_weight) == (1.0, 0.0, 0.5)
    assert opts.style_name == "Anime"


@pytest.mark.parametrize(
    "configure",
    [
        {"more_like_me": "high"},
        {"more_like_me": True},
        {"crop_face_preprocess": 1},
        {"photo_enhancement_method": "magic"},
        {"second_diffusion_steps": 20.5},
        {"t2i_prompt": 3},
        {"lora_weights": float("nan")},
    ],
)
def test_option_bad_types(configure: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as info:
        ComposeOptions.from_configure(configure, sdxl=False)
    assert (info.value.status, info.value.message) == (462, _wire.E462_INVALID_INPUT)


def test_lora_weights_ignored_on_sdxl() -> None:
    def identity(lora: float, sdxl: bool) -> float:
        return ComposeOptions.from_configure({"lora_weights": lora}, sdxl=sdxl).identity

    assert identity(0.5, sdxl=True) == identity(1.0, sdxl=True)
    assert identity(0.5, sdxl=False) < identity(1.0, sdxl=False)


def test_ipa_control_raises_identity() -> None:
    plain = ComposeOptions.from_configure({}, sdxl=False).identity
    ipa = ComposeOptions.from_configure({"ipa_control": True, "ipa_weight": 1}, sdxl=False)
    assert ipa.identity > plain


def test_key_sets() -> None:
    assert not ComposeOptions.honoured & ComposeOptions.accepted_only
    fields = {f.name for f in dataclasses.fields(ComposeOptions) if f.name != "sdxl"}
    assert ComposeOptions.honoured | ComposeOptions.accepted_only == fields
