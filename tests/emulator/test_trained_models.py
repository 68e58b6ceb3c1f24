"""What training keeps: face models (identity, aligned chip, skin colour) and scene models,
saved and loaded; the reference photo's model of the no-training mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("dlib")

from aiportrait._vision.face_engine import FaceEngine, face_distance
from aiportrait.emulator import _wire
from aiportrait.emulator._errors import ApiError
from aiportrait.emulator._faces import CHIP_SIZE, FaceModel, reference_model
from aiportrait.emulator._scenes import SceneModel, build_scene

from .conftest import build_model


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
    with pytest.raises(ApiError) as info:
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
