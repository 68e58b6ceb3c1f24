"""Text-to-image: a deterministic scene painted from the prompt's words, the user's face on the
painted head, and a trained scene's palette."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("dlib")

from aiportrait._vision.face_engine import FaceEngine, face_distance
from aiportrait.emulator._faces import FaceModel
from aiportrait.emulator._options import ComposeOptions
from aiportrait.emulator._scenes import build_scene
from aiportrait.emulator._t2i import t2i_compose, t2i_template

PROMPT = "(portrait:1.5), 1girl, bokeh, bouquet, brown_hair, flower, outdoors, green sweater"


def test_t2i_template_is_deterministic() -> None:
    first = t2i_template(PROMPT, size=(384, 512))
    assert first.shape == (512, 384, 3)
    assert np.array_equal(first, t2i_template(PROMPT, size=(384, 512)))
    assert not np.array_equal(first, t2i_template("a city street at night", size=(384, 512)))


def test_t2i_compose(engine: FaceEngine, astro_model: FaceModel, defaults: ComposeOptions) -> None:
    first = t2i_compose(PROMPT, astro_model, defaults)
    assert first.shape == (1024, 768, 3)
    assert np.array_equal(first, t2i_compose(PROMPT, astro_model, defaults))
    other = t2i_compose("a beach at sunset", astro_model, defaults)
    assert np.abs(first.astype(int) - other).mean() > 10
    (face,) = engine.detect(first)
    assert face.descriptor is not None
    assert face_distance(face.descriptor, astro_model.descriptor) < 0.45


def test_t2i_with_scene(
    engine: FaceEngine, astro_model: FaceModel, hopper: np.ndarray, defaults: ComposeOptions
) -> None:
    scene = build_scene("flags", [hopper], ["a flag"])
    plain = t2i_compose(PROMPT, astro_model, defaults, size=(384, 512))
    with_scene = t2i_compose(PROMPT, astro_model, defaults, scene=scene, size=(384, 512))
    assert with_scene.shape == plain.shape
    assert np.abs(with_scene.astype(int) - plain).mean() > 5
