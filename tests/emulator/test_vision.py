"""The emulator's decoding, face engine and photo check (real dlib work on the bundled photos)."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("dlib")
Image = pytest.importorskip("PIL.Image")

from aiportrait.emulator import _wire  # noqa: E402
from aiportrait.emulator._vision import (  # noqa: E402
    DEFAULT_MIN_SCORE,
    Face,
    FaceEngine,
    ImageDecodeError,
    PixelLimitError,
    Verdict,
    check_photos,
    decode_image,
    encode_image,
    face_distance,
    is_frontal,
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


# -- decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_round_trip(fmt: str, astronaut: np.ndarray) -> None:
    decoded = decode_image(encode_image(astronaut, fmt))
    assert decoded.shape == astronaut.shape
    assert decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - astronaut).mean() < 8


def test_png_is_lossless(astronaut: np.ndarray) -> None:
    assert np.array_equal(decode_image(encode_image(astronaut)), astronaut)


def test_modes_become_rgb() -> None:
    rgba = Image.new("RGBA", (4, 3), (255, 0, 0, 0))
    grey = Image.new("L", (4, 3), 77)
    for im in (rgba, grey, grey.convert("P")):
        buffer = io.BytesIO()
        im.save(buffer, "PNG")
        out = decode_image(buffer.getvalue())
        assert out.shape == (3, 4, 3)
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    assert decode_image(buffer.getvalue())[0, 0].tolist() == [255, 255, 255]  # over white


def test_exif_orientation_applied() -> None:
    im = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", exif=exif.tobytes())
    assert decode_image(buffer.getvalue()).shape == (40, 20, 3)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(data)


def test_truncated_image_is_refused(astronaut: np.ndarray) -> None:
    data = encode_image(astronaut, "JPEG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 3])


def test_format_allow_list(astronaut: np.ndarray) -> None:
    webp = encode_image(astronaut, "WEBP")
    with pytest.raises(ImageDecodeError, match="WEBP"):
        decode_image(webp, formats={"JPEG", "PNG"})
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    with pytest.raises(ImageDecodeError, match="GIF"):
        decode_image(buffer.getvalue())


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched to claim ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8  # after the signature: length(4) "IHDR"(4) data(13) crc(4)
    body = struct.pack(">II", width, height) + bytes(data[ihdr + 16 : ihdr + 21])
    data[ihdr + 8 : ihdr + 21] = body
    crc = zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


def test_pixel_bomb_refused_from_header(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with Pillow's own global guard switched off, our limit holds.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    bomb = _png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    start = time.perf_counter()
    with pytest.raises(PixelLimitError):
        decode_image(bomb)
    assert time.perf_counter() - start < 0.5  # 7.5 GB would not be allocated that fast


def test_pixel_limit_is_a_decode_error(astronaut: np.ndarray) -> None:
    with pytest.raises(ImageDecodeError):
        decode_image(encode_image(astronaut), max_pixels=512 * 511)
    assert decode_image(encode_image(astronaut), max_pixels=512 * 512).shape == astronaut.shape


def test_encode_formats(astronaut: np.ndarray) -> None:
    assert encode_image(astronaut, "jpg")[:3] == b"\xff\xd8\xff"
    assert encode_image(astronaut, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert encode_image(astronaut, "WEBP")[8:12] == b"WEBP"
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(astronaut, "BMP")


# -- face engine ---------------------------------------------------------------------------------


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


# -- check ---------------------------------------------------------------------------------------


def test_check_same_person_set(engine: FaceEngine, astronaut: np.ndarray) -> None:
    verdicts = check_photos(engine, [*astronaut_variants(astronaut)[2:], astronaut])
    assert [v.code for v in verdicts] == [1] * 4
    assert all(v.message == "success" for v in verdicts)


def test_check_flags_the_other_person(
    engine: FaceEngine, astronaut: np.ndarray, hopper: np.ndarray
) -> None:
    verdicts = check_photos(engine, [*astronaut_variants(astronaut), hopper])
    assert [v.code for v in verdicts] == [1, 1, 1, 1, 1, _wire.CHECK_NOT_SAME_PERSON]
    assert verdicts[-1].message == _wire.CHECK_MESSAGES[6]
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
