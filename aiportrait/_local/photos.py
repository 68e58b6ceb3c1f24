"""Local photos: read them with clear refusals, and clean them before they leave the machine.

:func:`read_photo` reads a path or takes bytes, refusing (with
:class:`~aiportrait.errors.LocalPhotoError`) a missing path, a directory, an unreadable file, a
file over the check's :data:`~aiportrait._vision.limits.MAX_PHOTO_BYTES` (from its size,
before reading it) and anything that is not a JPEG or PNG image (from its first bytes).
:func:`clean_photo` applies the EXIF orientation and re-encodes the pixels without any metadata
(EXIF with its GPS position, XMP, IPTC, comments): photos of people are personal data, and only
the pixels are needed. Cleaning needs Pillow (the ``emulator`` extra, which brings the image
stack); it is imported on first use.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import attrs

from .._vision.limits import MAX_PHOTO_BYTES
from .._wire.imageinfo import sniff
from ..errors import InvalidArgument, LocalPhotoError

__all__ = ["CleanPhoto", "clean_photo", "photo_name", "read_photo"]

#: Largest pixel count decoded when cleaning (a decompression bomb is refused from the header).
MAX_PIXELS = 60_000_000

_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
_OTHER_FORMATS = {
    b"ftypheic": "HEIC",
    b"ftypheix": "HEIC",
    b"ftypmif1": "HEIF",
    b"ftypavif": "AVIF",
}


@attrs.frozen
class CleanPhoto:
    """A photo ready to upload: metadata-free bytes, their type and their SHA-256."""

    name: str
    data: bytes = attrs.field(repr=False)
    content_type: str
    sha256: str

    @property
    def extension(self) -> str:
        """``jpg`` or ``png``."""
        return "png" if self.content_type == "image/png" else "jpg"


def photo_name(value: object, index: int) -> str:
    """How a local photo is named in messages: its path, or ``bytes #N``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"bytes #{index + 1}"
    return os.fspath(value)  # type: ignore[call-overload,no-any-return]


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _kind(data: bytes) -> str:
    sniffed = sniff(data).format
    if sniffed in _TYPES:
        return sniffed
    other = _OTHER_FORMATS.get(data[4:12])
    if other is not None:
        return f"a {other} image; accepted: JPEG or PNG (convert it first)"
    if sniffed == "webp":
        return "a WebP image; accepted: JPEG or PNG (convert it first)"
    return "not a JPEG or PNG image"


def read_photo(value: os.PathLike[str] | bytes, name: str) -> tuple[bytes, str]:
    """The bytes of a local photo and their media type, or :class:`LocalPhotoError`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) > MAX_PHOTO_BYTES:
            raise LocalPhotoError(
                name, f"is {_size(len(data))}, larger than the {_size(MAX_PHOTO_BYTES)} limit"
            )
    else:
        path = Path(value)
        try:
            if path.is_dir():
                raise LocalPhotoError(name, "is a directory, not a photo")
            size = path.stat().st_size
            if size > MAX_PHOTO_BYTES:
                raise LocalPhotoError(
                    name, f"is {_size(size)}, larger than the {_size(MAX_PHOTO_BYTES)} limit"
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise LocalPhotoError(name, "no such file") from None
        except PermissionError:
            raise LocalPhotoError(name, "cannot be read (permission denied)") from None
        except OSError as exc:
            raise LocalPhotoError(name, f"cannot be read ({exc.strerror or exc})") from None
    kind = _kind(data)
    if kind not in _TYPES:
        raise LocalPhotoError(name, kind)
    return data, _TYPES[kind]


def clean_photo(data: bytes, content_type: str, name: str) -> CleanPhoto:
    """The photo upright (EXIF orientation applied) and re-encoded with no metadata.

    A PNG stays lossless; a JPEG is re-encoded at quality 95. The colour profile (ICC) is kept:
    it says how to show the colours and nothing about the person. Needs Pillow.
    """
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidArgument(
            "local photos are cleaned of their metadata before upload, which needs Pillow: "
            "pip install 'aiportrait[emulator]'"
        ) from exc
    png = content_type == "image/png"
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise LocalPhotoError(name, f"is {im.width}x{im.height}, too many pixels")
            icc = im.info.get("icc_profile")
            upright = ImageOps.exif_transpose(im)
            # What the encoders would write back from here (a JPEG's own comment...): only a
            # PNG's transparency stays, a pixel value, nothing about the person.
            upright.info = {k: v for k, v in upright.info.items() if k == "transparency"}
            if not png and upright.mode not in ("RGB", "L"):
                upright = upright.convert("RGB")
            buffer = io.BytesIO()
            options: dict[str, object] = {} if png else {"quality": 95}
            if icc:
                options["icc_profile"] = icc
            upright.save(buffer, "PNG" if png else "JPEG", **options)
    except LocalPhotoError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise LocalPhotoError(name, f"the image is damaged or cut off ({exc})") from None
    clean = buffer.getvalue()
    return CleanPhoto(name, clean, content_type, hashlib.sha256(clean).hexdigest())
