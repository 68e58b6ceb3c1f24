"""Image decoding and encoding (Pillow), with limits checked first.

Decoding refuses decompression bombs from the header, before any pixel is read, and can shrink a
huge photo while decoding it (a JPEG at reduced scale), so no photo can make the check (on this
machine or in the emulator) hold an image larger than its limits allow. Everything here is
synchronous and thread-safe.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from .limits import MAX_PIXELS

__all__ = [
    "DECODE_FORMATS",
    "BudgetError",
    "ImageDecodeError",
    "NotAnImageError",
    "PixelAllowance",
    "PixelLimitError",
    "RGBImage",
    "TooSmallError",
    "decode_image",
    "encode_image",
]

#: An ``HxWx3`` RGB image.
RGBImage = NDArray[np.uint8]

DECODE_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
ENCODE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "JPG": "JPEG", "WEBP": "WEBP"}


class ImageDecodeError(Exception):
    """The bytes are not an image we accept: undecodable, unsupported format or too large.

    ``str(error)`` is a short human sentence saying why (it becomes the check's
    ``emulator_detail``).
    """


class NotAnImageError(ImageDecodeError):
    """Pillow recognises no image format in the bytes."""


class PixelLimitError(ImageDecodeError):
    """The header announces more pixels than allowed (a decompression bomb); nothing was decoded."""


class TooSmallError(ImageDecodeError):
    """The header announces a side under the photo minimum; nothing was decoded."""


class BudgetError(ImageDecodeError):
    """Decoding would pass the pixel budget of the request; nothing was decoded."""


#: Asked before any pixel is decoded: may this request decode that many more pixels?
PixelAllowance = Callable[[int], bool]


def decode_image(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    formats: Collection[str] = DECODE_FORMATS,
    max_side: int | None = None,
    min_side: int = 0,
    allow: PixelAllowance | None = None,
) -> RGBImage:
    """Decode JPEG, PNG or WebP bytes to an ``HxWx3`` ``uint8`` RGB array.

    The pixel count is checked from the header, before any pixel data is read, so a small file
    claiming a huge canvas costs nothing; Pillow's own global ``MAX_IMAGE_PIXELS`` is neither
    relied on nor changed (its ``DecompressionBombError`` is mapped too). EXIF orientation is
    applied; transparency is composited over white; palette, grey and CMYK become RGB.
    ``formats`` restricts the accepted Pillow format names (the check accepts only JPEG and PNG).
    ``min_side`` refuses, from the header, an image with a shorter side (:class:`TooSmallError`).
    ``max_side`` shrinks an image with either side longer than that so both fit (whatever its
    aspect ratio); a JPEG is then decoded at reduced scale directly, so a huge photo never exists
    at full size in memory. ``allow`` is asked, with the number of pixels about to be decoded
    (after that reduction), whether the request may spend them (:class:`BudgetError` if not).
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            _guard_header(im, max_pixels=max_pixels, formats=formats, min_side=min_side)
            target = _target_size(im.size, max_side)
            if target is not None:
                im.draft("RGB", target)  # JPEG only: decode at 1/2, 1/4 or 1/8 scale
            if allow is not None and not allow(im.width * im.height):
                raise BudgetError(
                    "not decoded: the photos before it used up this request's pixel budget"
                )
            im.load()
            if target is not None and (im.width > target[0] or im.height > target[1]):
                im.thumbnail(target, Image.Resampling.LANCZOS)
            return _to_rgb(ImageOps.exif_transpose(im))
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise PixelLimitError(f"image too large to decode ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError("not an image") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"image data is damaged or cut off ({exc})") from exc


def _target_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int] | None:
    width, height = size
    if max_side is None or max(width, height) <= max_side:
        return None
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _guard_header(
    im: Image.Image, *, max_pixels: int, formats: Collection[str], min_side: int = 0
) -> None:
    # Phone cameras write multi-picture JPEGs, which Pillow reports as "MPO".
    fmt = "JPEG" if im.format == "MPO" else im.format
    if fmt not in formats:
        accepted = ", ".join(sorted(formats))
        raise ImageDecodeError(f"a {im.format} image; accepted formats: {accepted}")
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError("image has no pixels")
    if width * height > max_pixels:
        raise PixelLimitError(
            f"image is {width}x{height}, more than the limit of {max_pixels} pixels"
        )
    if min(width, height) < min_side:
        raise TooSmallError(f"image is {width}x{height}, smaller than {min_side}x{min_side}")


def _to_rgb(im: Image.Image) -> RGBImage:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v / 256).convert("L")  # 16-bit grey down to 8 bits
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def encode_image(img: RGBImage, fmt: str = "PNG", *, quality: int = 92) -> bytes:
    """Encode an RGB ``uint8`` array as ``"PNG"``, ``"JPEG"`` (or ``"JPG"``) or ``"WEBP"`` bytes."""
    name = ENCODE_FORMATS.get(fmt.upper())
    if name is None:
        raise ValueError(f"unsupported output format: {fmt!r}")
    options: dict[str, Any] = {} if name == "PNG" else {"quality": quality}
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8), "RGB").save(buffer, name, **options)
    return buffer.getvalue()
