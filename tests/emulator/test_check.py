"""The photo check: the documented verdict codes for decoding, size, face count, detector and
descriptor failures, and the same-person test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")

from aiportrait._vision.check import Examined, examine, judge  # noqa: E402
from aiportrait._vision.face_engine import Face, FaceEngine  # noqa: E402
from aiportrait._vision.verdicts import (  # noqa: E402
    CHECK_DECODE_ERROR,
    CHECK_MESSAGES,
    CHECK_NOT_SAME_PERSON,
    Verdict,
)


def check_photos(engine: FaceEngine, images: Sequence[np.ndarray | None]) -> list[Verdict]:
    """The check as the emulator runs it: each photo examined alone (``None``: not decoded),
    then all judged together."""
    return judge(
        [
            Examined.failed(CHECK_DECODE_ERROR, "not decoded")
            if img is None
            else examine(engine, img, min_side=512)
            for img in images
        ]
    )


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REFLECT))


def astronaut_variants(img: np.ndarray) -> list[np.ndarray]:
    """Five same-person photos, all at least 512 px a side."""
    return [
        cv2.resize(img, (600, 600)),
        np.ascontiguousarray(cv2.resize(img, (560, 560))[:, ::-1]),
        cv2.resize(img[30:490, 50:510], (640, 640)),
        np.clip(img.astype(np.float32) * 1.25, 0, 255).astype(np.uint8),
        rotate(cv2.resize(img, (576, 576)), 8),
    ]


def test_check_same_person_set(engine: FaceEngine, astronaut: np.ndarray) -> None:
    verdicts = check_photos(engine, [*astronaut_variants(astronaut)[2:], astronaut])
    assert [v.code for v in verdicts] == [1] * 4
    assert all(v.message == "success" for v in verdicts)


def test_check_flags_the_other_person(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    verdicts = check_photos(engine, [*astronaut_variants(astronaut), hopper])
    assert [v.code for v in verdicts] == [1, 1, 1, 1, 1, CHECK_NOT_SAME_PERSON]
    assert verdicts[-1].message == CHECK_MESSAGES[6]
    assert verdicts[-1].frontal


def test_check_single_photo_passes(engine: FaceEngine, hopper: np.ndarray) -> None:
    assert check_photos(engine, [hopper]) == [Verdict.of(1, True)]


def test_check_decode_and_size(engine: FaceEngine, astronaut: np.ndarray) -> None:
    tiny = cv2.resize(astronaut, (300, 300))
    narrow = astronaut[:, :500]
    verdicts = check_photos(engine, [None, tiny, narrow, astronaut])
    assert [v.code for v in verdicts] == [2, 2, 2, 1]
    assert verdicts[0] == Verdict(2, "Image decode error.", False)


def test_check_face_count(engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray) -> None:
    flat = np.full((600, 600, 3), 128, np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    noise = cv2.resize(noise, (640, 640), interpolation=cv2.INTER_NEAREST)
    pair = np.hstack([astronaut, hopper[44:556]])
    verdicts = check_photos(engine, [flat, noise, pair])
    assert [v.code for v in verdicts] == [3, 3, 3]
    assert verdicts[0].message == "Number of face is not 1."


class _Broken(FaceEngine):
    def __init__(self, *, fail_detect: bool) -> None:
        super().__init__()
        self.fail_detect = fail_detect

    def detect(self, img: np.ndarray, *, with_descriptors: bool = True) -> list[Face]:
        if self.fail_detect:
            raise RuntimeError("detector exploded")
        landmarks = np.array([[60.0, 50], [45, 50], [15, 50], [30, 50], [37.5, 80]])
        return [Face((0, 0, 80, 80), 1.0, landmarks)]

    def describe(self, img: np.ndarray, face: Face) -> np.ndarray:
        raise RuntimeError("encoder exploded")


def test_check_detector_and_encoder_errors(astronaut: np.ndarray) -> None:
    assert check_photos(_Broken(fail_detect=True), [astronaut])[0].code == 4
    verdict = check_photos(_Broken(fail_detect=False), [astronaut])[0]
    assert verdict == Verdict(5, "Image encoding error.", True)
