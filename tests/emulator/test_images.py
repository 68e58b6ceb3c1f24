"""Decoding and encoding: every accepted format, limits checked from the header before any pixel
is read, and photos shrunk to a bounded size while they are decoded."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")
ImageFile = pytest.importorskip("PIL.ImageFile")
pytest.importorskip("cv2")

from aiportrait._vision.images import (  # noqa: E402
    ImageDecodeError,
    PixelLimitError,
    decode_image,
    encode_image,
)

from .conftest import bundled  # noqa: E402


def test_bundled_photos_are_a_png_and_a_jpeg() -> None:
    assert bundled("astronaut.png")[:4] == b"\x89PNG"
    assert bundled("grace_hopper.jpg")[:2] == b"\xff\xd8"


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
    # Even with Pillow's own global guard switched off, our limit holds, and no pixel is read.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    loaded: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loaded.append(self))
    bomb = _png_claiming(50_000, 50_000)
    assert len(bomb) < 200
    with pytest.raises(PixelLimitError):
        decode_image(bomb)
    assert loaded == []  # refused from the header: 7.5 GB of pixels were never decoded


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


def test_photos_are_decoded_at_a_bounded_size() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (5000, 3000), (120, 120, 120)).save(buf, "JPEG")
    img = decode_image(buf.getvalue(), max_side=2048)
    assert max(img.shape[:2]) <= 2048
    # Either side over the bound shrinks, whatever the aspect ratio (a 2 x 20000 strip too).
    for size in ((600, 4000), (2, 20_000), (20_000, 2)):
        strip = io.BytesIO()
        Image.new("RGB", size, (120, 120, 120)).save(strip, "PNG")
        img = decode_image(strip.getvalue(), max_side=2048)
        assert max(img.shape[:2]) <= 2048, size
    # The check's minimum side is judged on the photo's own size, not the analysed one.
    assert min(decode_image(strip.getvalue(), max_side=2048, min_side=2).shape[:2]) == 1
