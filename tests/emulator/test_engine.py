"""The face engine: dlib detection confirmed by the CNN, landmarks, descriptors and the frontal
rule, on the bundled photos; models loaded per thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from aiportrait._vision.face_engine import (  # noqa: E402
    DEFAULT_MIN_SCORE,
    FaceEngine,
    face_distance,
    is_frontal,
)


def test_models_load_lazily_per_thread(engine: FaceEngine, astronaut: np.ndarray) -> None:
    engine.detect(astronaut)  # loaded in this thread

    def loaded() -> list[bool]:
        models = FaceEngine()._models
        return [m is not None for m in (models.detector, models.confirmer, models.encoder)]

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(loaded).result() == [False, False, False]


def test_astronaut_has_one_face(engine: FaceEngine, astronaut: np.ndarray) -> None:
    faces = engine.detect(astronaut)
    assert len(faces) == 1  # the mission patch (score 0.12) stays below the threshold
    face = faces[0]
    assert face.score >= DEFAULT_MIN_SCORE
    x, y, w, h = face.box
    assert abs(x - 175) < 10 and abs(y - 76) < 10 and 80 < w < 100 and 80 < h < 100
    assert face.landmarks.shape == (5, 2)
    assert face.descriptor is not None and face.descriptor.shape == (128,)
    assert face.frontal


def test_cnn_confirmation_drops_the_mission_patch(astronaut: np.ndarray) -> None:
    hog_only = FaceEngine(min_score=-0.2, confirm=False).detect(astronaut, with_descriptors=False)
    assert len(hog_only) >= 2
    assert [f.box[0] for f in hog_only] == sorted(f.box[0] for f in hog_only)  # left to right
    assert all(f.descriptor is None for f in hog_only)
    confirmed = FaceEngine(min_score=-0.2).detect(astronaut, with_descriptors=False)
    assert [f.box for f in confirmed] == [max(hog_only, key=lambda f: f.score).box]


def test_small_faces_found_next_to_big_ones(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    pair = cv2.resize(np.hstack([astronaut, hopper[44:556]]), (512, 256))  # faces 44 and 90 px
    faces = engine.detect(pair, with_descriptors=False)
    assert len(faces) == 2
    assert faces[0].box[2] < faces[1].box[2]


def test_large_images_are_detected_downscaled(engine: FaceEngine, astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    (face,) = engine.detect(big, with_descriptors=False)
    x, y, w, _ = face.box
    assert abs(x - 3 * 175) < 30 and abs(y - 3 * 76) < 30 and abs(w - 3 * 90) < 40
    assert np.all(np.abs(face.landmarks[4] - [3 * 224, 3 * 135]) < 20)


def test_descriptor_distances(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    (a,) = engine.detect(astronaut)
    (flipped,) = engine.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    (g,) = engine.detect(hopper)
    assert a.descriptor is not None and flipped.descriptor is not None
    assert g.descriptor is not None
    assert face_distance(a.descriptor, flipped.descriptor) < 0.35
    assert face_distance(a.descriptor, g.descriptor) > 0.6


def test_frontal_rule() -> None:
    straight = np.array([[60.0, 50], [45, 50], [15, 50], [30, 50], [37.5, 80]])
    assert is_frontal(straight)
    centre = straight.mean(axis=0)
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert not is_frontal((straight - centre) @ rotation.T + centre)  # rolled
    turned = straight.copy()
    turned[4, 0] += 20  # nose far to one side: a turned head
    assert not is_frontal(turned)


def test_engine_shared_between_threads(engine: FaceEngine, astronaut: np.ndarray) -> None:
    def boxes(_: Any) -> tuple[tuple[int, int, int, int], ...]:
        return tuple(f.box for f in engine.detect(astronaut, with_descriptors=False))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(boxes, range(2)))
    assert len(set(results)) == 1
    assert threading.active_count() >= 1
