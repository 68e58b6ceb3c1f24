"""The metadata cleaning of a local photo keeps what is about the pixels: a PNG's transparency."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from aiportrait._local.photos import clean_photo


@pytest.mark.parametrize("mode", ["P", "L", "RGB"])
def test_a_png_keeps_its_transparency(mode: str) -> None:
    image = Image.new(mode, (4, 4))  # a transparent colour: 0 (tRNS), the pixel at (1, 1)
    image.putpixel((0, 0), 1 if mode == "P" else (9 if mode == "L" else (9, 9, 9)))
    source = io.BytesIO()
    image.save(source, "PNG", transparency=0 if mode != "RGB" else (0, 0, 0))
    clean = clean_photo(source.getvalue(), "image/png", "t.png")
    with Image.open(io.BytesIO(clean.data)) as out:
        alpha = out.convert("RGBA").getpixel((1, 1))
    assert isinstance(alpha, tuple)
    assert alpha[3] == 0
