"""The emulator's face models, compositing, configure options, text-to-image and contact sheet."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from aiportrait.emulator import _wire  # noqa: E402
from aiportrait.emulator._compose import (  # noqa: E402
    CHIP_SIZE,
    ComposeOptions,
    CreateFailure,
    FaceModel,
    SceneModel,
    build_model,
    build_scene,
    bundled_photo,
    compose,
    contact_sheet,
    reference_model,
    t2i_compose,
    t2i_template,
)
from aiportrait.emulator._vision import FaceEngine, face_distance  # noqa: E402

PROMPT = "(portrait:1.5), 1girl, bokeh, bouquet, brown_hair, flower, outdoors, green sweater"


@pytest.fixture(scope="module")
def astro_model(engine: FaceEngine, astronaut: np.ndarray) -> FaceModel:
    photos = [cv2.resize(astronaut, (600, 600)), np.ascontiguousarray(astronaut[:, ::-1])]
    return build_model(engine, "astro", photos)


@pytest.fixture(scope="module")
def hopper_model(engine: FaceEngine, hopper: np.ndarray) -> FaceModel:
    return build_model(engine, "hopper", [hopper], sdxl=True)


@pytest.fixture(scope="module")
def pair(astronaut: np.ndarray, hopper: np.ndarray) -> np.ndarray:
    """A two-face group template: the astronaut on the left, Grace Hopper on the right."""
    return np.ascontiguousarray(np.hstack([astronaut, hopper[44:556]]))


@pytest.fixture(scope="module")
def defaults() -> ComposeOptions:
    return ComposeOptions.from_configure({}, sdxl=False)


@pytest.fixture(scope="module")
def fused(
    engine: FaceEngine, hopper: np.ndarray, astro_model: FaceModel, defaults: ComposeOptions
) -> np.ndarray:
    return compose(engine, hopper, [astro_model], defaults)


def test_bundled_photos() -> None:
    assert bundled_photo("astronaut.png")[:4] == b"\x89PNG"
    assert bundled_photo("grace_hopper.jpg")[:2] == b"\xff\xd8"


# -- models --------------------------------------------------------------------------------------


def test_build_model(astro_model: FaceModel) -> None:
    assert astro_model.model_id == "astro"
    assert astro_model.descriptor.shape == (128,)
    assert astro_model.chip.shape == (CHIP_SIZE, CHIP_SIZE, 3)
    assert astro_model.chip_landmarks.shape == (5, 2)
    assert astro_model.color_mean.shape == astro_model.color_std.shape == (3,)
    assert 30 < astro_model.color_mean[0] < 90  # LAB lightness of skin
    assert not astro_model.sdxl


def test_build_model_needs_a_face(engine: FaceEngine) -> None:
    with pytest.raises(ValueError, match="no usable face"):
        build_model(engine, "x", [np.full((600, 600, 3), 90, np.uint8)])


def test_model_round_trip(astro_model: FaceModel, tmp_path: Path) -> None:
    astro_model.save(tmp_path / "m")
    loaded = FaceModel.load(tmp_path / "m")
    assert loaded.model_id == "astro" and loaded.sdxl is False
    assert np.array_equal(loaded.chip, astro_model.chip)
    for name in ("descriptor", "chip_landmarks", "color_mean", "color_std"):
        assert np.allclose(getattr(loaded, name), getattr(astro_model, name))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["chip.png", "model.npz"]


def test_reference_model(engine: FaceEngine, pair: np.ndarray, astro_model: FaceModel) -> None:
    model = reference_model(engine, pair)  # leftmost face: the astronaut
    assert face_distance(model.descriptor, astro_model.descriptor) < 0.3


def test_reference_without_face(engine: FaceEngine) -> None:
    with pytest.raises(CreateFailure) as info:
        reference_model(engine, np.full((512, 512, 3), 200, np.uint8))
    assert (info.value.status, info.value.message) == (462, _wire.E462_ROOP_DECODE)


def test_scene_round_trip(astronaut: np.ndarray, hopper: np.ndarray, tmp_path: Path) -> None:
    scene = build_scene("s1", [astronaut, hopper], ["a rocket", "a flag"])
    assert scene.palette.shape == (6, 3) and scene.palette.dtype == np.uint8
    assert max(scene.thumbnail.shape[:2]) == 256
    scene.save(tmp_path / "s")
    loaded = SceneModel.load(tmp_path / "s")
    assert loaded.scene_id == "s1" and loaded.prompts == ["a rocket", "a flag"]
    assert np.array_equal(loaded.palette, scene.palette)
    assert np.array_equal(loaded.thumbnail, scene.thumbnail)


# -- create errors -------------------------------------------------------------------------------


def test_create_failure_forms() -> None:
    by_message = CreateFailure(_wire.E469_FACE_COUNT)
    assert (by_message.status, by_message.message) == (469, _wire.E469_FACE_COUNT)
    explicit = CreateFailure(462, _wire.E462_NO_FACE)
    assert (explicit.status, explicit.message) == (462, _wire.E462_NO_FACE)
    assert str(explicit) == f"462: {_wire.E462_NO_FACE}"


# -- configure -----------------------------------------------------------------------------------


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
    with pytest.raises(CreateFailure) as info:
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


# -- compose -------------------------------------------------------------------------------------


def _face_diff(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x, y, w, h = box
    return float(np.abs(a[y : y + h, x : x + w].astype(int) - b[y : y + h, x : x + w]).mean())


def test_compose_replaces_the_face(
    engine: FaceEngine, hopper: np.ndarray, astro_model: FaceModel, fused: np.ndarray
) -> None:
    assert fused.shape == hopper.shape and fused.dtype == np.uint8
    (before,) = engine.detect(hopper)
    assert _face_diff(fused, hopper, before.box) > 15
    for corner in (np.s_[:60, :60], np.s_[:60, -60:], np.s_[-60:, :60], np.s_[-60:, -60:]):
        assert np.abs(fused[corner].astype(int) - hopper[corner]).mean() < 1.0
    (after,) = engine.detect(fused)
    assert before.descriptor is not None and after.descriptor is not None
    was = face_distance(before.descriptor, astro_model.descriptor)
    now = face_distance(after.descriptor, astro_model.descriptor)
    assert now < was - 0.2  # the face really became the astronaut's
    assert now < 0.6


def test_more_like_me_is_more_like_me(
    engine: FaceEngine, hopper: np.ndarray, astro_model: FaceModel
) -> None:
    def distance(more: float) -> float:
        opts = ComposeOptions.from_configure({"more_like_me": more}, sdxl=False)
        (face,) = engine.detect(compose(engine, hopper, [astro_model], opts))
        assert face.descriptor is not None
        return face_distance(face.descriptor, astro_model.descriptor)

    assert distance(1.0) < distance(0.0)


@pytest.mark.parametrize(
    "configure",
    [
        {"skin_retouching_bool": True},
        {"makeup_transfer": True, "makeup_transfer_ratio": 1},
        {"photo_enhancement_method": "super_resolution"},
        {"photo_enhancement_bool": False},
        {"face_shape_match": True},
        {"color_shift_middle": False, "color_shift_last": False},
        {"apply_face_fusion_before": False, "apply_face_fusion_after": False},
        {"sharp_ratio": 0.8},
        {"first_denoising_strength": 1, "second_denoising_strength": 1},
    ],
)
def test_face_keys_change_the_face(
    engine: FaceEngine,
    hopper: np.ndarray,
    astro_model: FaceModel,
    fused: np.ndarray,
    configure: dict[str, Any],
) -> None:
    out = compose(
        engine, hopper, [astro_model], ComposeOptions.from_configure(configure, sdxl=False)
    )
    assert out.shape == hopper.shape
    assert _face_diff(out, fused, (180, 139, 186, 186)) > 0.5


@pytest.mark.parametrize(
    "configure",
    [{"background_restore": True}, {"style_name": "Anime"}, {"crop_face_preprocess": False}],
)
def test_global_keys_change_the_background(
    engine: FaceEngine,
    hopper: np.ndarray,
    astro_model: FaceModel,
    fused: np.ndarray,
    configure: dict[str, Any],
) -> None:
    out = compose(
        engine, hopper, [astro_model], ComposeOptions.from_configure(configure, sdxl=False)
    )
    assert np.abs(out[-120:, :120].astype(int) - fused[-120:, :120]).mean() > 0.3


def test_accepted_only_keys_change_nothing(
    engine: FaceEngine, hopper: np.ndarray, astro_model: FaceModel, fused: np.ndarray
) -> None:
    configure = {"first_diffusion_steps": 20, "second_diffusion_steps": 50, "lcm_accelerate": True}
    out = compose(
        engine, hopper, [astro_model], ComposeOptions.from_configure(configure, sdxl=False)
    )
    assert np.array_equal(out, fused)


def test_solo_uses_the_largest_face(
    engine: FaceEngine, pair: np.ndarray, astro_model: FaceModel, defaults: ComposeOptions
) -> None:
    out = compose(engine, pair, [astro_model], defaults)
    assert np.abs(out[:, :400].astype(int) - pair[:, :400]).mean() < 0.5  # small face untouched
    assert np.abs(out[:, 512:].astype(int) - pair[:, 512:]).mean() > 2


def test_group_pairs_left_to_right(
    engine: FaceEngine,
    pair: np.ndarray,
    astro_model: FaceModel,
    hopper_model: FaceModel,
    defaults: ComposeOptions,
) -> None:
    out = compose(engine, pair, [hopper_model, astro_model], defaults)  # swap the two people
    assert out.shape == pair.shape
    left, right = engine.detect(out)
    assert left.descriptor is not None and right.descriptor is not None
    assert face_distance(left.descriptor, hopper_model.descriptor) < face_distance(
        left.descriptor, astro_model.descriptor
    )
    assert face_distance(right.descriptor, astro_model.descriptor) < face_distance(
        right.descriptor, hopper_model.descriptor
    )


@pytest.mark.parametrize("count", [1, 3])
def test_group_face_count_mismatch(
    engine: FaceEngine,
    pair: np.ndarray,
    astro_model: FaceModel,
    defaults: ComposeOptions,
    count: int,
) -> None:
    with pytest.raises(CreateFailure) as info:
        compose(engine, pair, [astro_model] * count, defaults, group=True)
    assert (info.value.status, info.value.message) == (469, _wire.E469_FACE_COUNT)
    assert info.value.message == (
        "Please confirm if the number of faces in the template corresponds to the user ID."
    )


def test_template_without_face(
    engine: FaceEngine, astro_model: FaceModel, defaults: ComposeOptions
) -> None:
    flat = np.full((600, 500, 3), (90, 140, 200), np.uint8)
    with pytest.raises(CreateFailure) as info:
        compose(engine, flat, [astro_model], defaults)
    assert (info.value.status, info.value.message) == (462, _wire.E462_NO_FACE)
    with pytest.raises(CreateFailure) as group:
        compose(engine, flat, [astro_model, astro_model], defaults)
    assert group.value.status == 469


# -- text to image -------------------------------------------------------------------------------


def test_t2i_template_is_deterministic() -> None:
    first = t2i_template(PROMPT, size=(384, 512))
    assert first.shape == (512, 384, 3)
    assert np.array_equal(first, t2i_template(PROMPT, size=(384, 512)))
    assert not np.array_equal(first, t2i_template("a city street at night", size=(384, 512)))


def test_t2i_compose(engine: FaceEngine, astro_model: FaceModel, defaults: ComposeOptions) -> None:
    first = t2i_compose(engine, PROMPT, astro_model, defaults)
    assert first.shape == (1024, 768, 3)
    assert np.array_equal(first, t2i_compose(engine, PROMPT, astro_model, defaults))
    other = t2i_compose(engine, "a beach at sunset", astro_model, defaults)
    assert np.abs(first.astype(int) - other).mean() > 10
    (face,) = engine.detect(first)
    assert face.descriptor is not None
    assert face_distance(face.descriptor, astro_model.descriptor) < 0.45


def test_t2i_with_scene(
    engine: FaceEngine, astro_model: FaceModel, hopper: np.ndarray, defaults: ComposeOptions
) -> None:
    scene = build_scene("flags", [hopper], ["a flag"])
    plain = t2i_compose(engine, PROMPT, astro_model, defaults, size=(384, 512))
    with_scene = t2i_compose(engine, PROMPT, astro_model, defaults, scene=scene, size=(384, 512))
    assert with_scene.shape == plain.shape
    assert np.abs(with_scene.astype(int) - plain).mean() > 5


# -- reference only ------------------------------------------------------------------------------

REFERENCE_ONLY = {"ipa_control_only": True, "ipa_image_path": "https://x/ref.jpg"}


def _padded_face_box(engine: FaceEngine, img: np.ndarray) -> tuple[int, int, int, int]:
    (face,) = engine.detect(img, with_descriptors=False)
    x, y, w, h = face.box
    pad = w // 4
    return max(0, x - pad), max(0, y - pad), w + 2 * pad, h + 2 * pad


def test_reference_only_is_visibly_not_the_trained_portrait(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray, defaults: ComposeOptions
) -> None:
    """The same person onto the same template, trained or from one reference photo: the demo's
    two portraits of Grace Hopper, which used to differ by 0.1 on average."""
    trained_model = build_model(
        engine, "hopper-sd15", [hopper, np.ascontiguousarray(hopper[:, ::-1])]
    )
    template = cv2.resize(astronaut, (768, 768), interpolation=cv2.INTER_CUBIC)
    trained = compose(engine, template, [trained_model], defaults)
    options = ComposeOptions.from_configure(REFERENCE_ONLY, sdxl=False)
    reference = compose(engine, template, [reference_model(engine, hopper)], options)
    box = _padded_face_box(engine, template)
    assert _face_diff(trained, reference, box) > 12  # measured 22.8 (it was 1.0)
    assert np.abs(trained.astype(int) - reference).mean() > 1.5  # 2.5 (0.09); the rest is
    # the template's own background, which neither mode paints


def test_reference_only_blends_at_ipa_weight(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    reference = reference_model(engine, hopper)

    def distance(weight: float) -> float:
        options = ComposeOptions.from_configure(
            {**REFERENCE_ONLY, "ipa_weight": weight}, sdxl=False
        )
        assert options.identity == weight
        (face,) = engine.detect(compose(engine, astronaut, [reference], options))
        assert face.descriptor is not None
        return face_distance(face.descriptor, reference.descriptor)

    assert distance(1.0) < distance(0.5) < distance(0.1)
    unchanged = ComposeOptions.from_configure({**REFERENCE_ONLY, "more_like_me": 1.0}, sdxl=False)
    assert unchanged.identity == ComposeOptions.from_configure(REFERENCE_ONLY, sdxl=False).identity


# -- contact sheet -------------------------------------------------------------------------------


def test_contact_sheet(astronaut: np.ndarray, hopper: np.ndarray, fused: np.ndarray) -> None:
    sheet = contact_sheet([("inputs", [astronaut, hopper]), ("output", [fused])], thumb=64)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (8 + 2 * (30 + 64 + 8), 8 + 2 * (64 + 8), 3)
    assert (sheet[8:38, 8:100] < 128).any()  # the caption was drawn
