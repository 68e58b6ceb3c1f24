"""A photo as the check receives it, and the limits it is read and decoded within.

A photo reaches the check as :class:`Fetched` (its bytes) or :class:`Unfetched` (why there are
none: the emulator could not download it, the client could not read the file); an unfetched
photo gets code 2 with that reason. The photos of one check or training share one
:class:`PixelBudget`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHECK_FORMATS",
    "MAX_PHOTO_BYTES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "PHOTO_MIN_SIDE",
    "PHOTO_SIDE",
    "Fetched",
    "PixelBudget",
    "Unfetched",
]

#: Largest photo accepted, in bytes.
MAX_PHOTO_BYTES = 20 * 1024 * 1024
#: Largest image decoded, in pixels, from its header (a decompression bomb is refused unread).
MAX_PIXELS = 16_000_000
#: Most pixels the photos of one check or training may decode together.
MAX_REQUEST_PIXELS = 400_000_000
#: Formats the check and the training accept (the documentation: .jpg, .jpeg and .png).
CHECK_FORMATS = frozenset({"JPEG", "PNG"})
#: Photos for check and training are analysed at most this large (each side, pixels): a face
#: descriptor needs no more, and a huge photo must not take hundreds of megabytes.
PHOTO_SIDE = 2048
#: The check's smallest accepted side, taken from the photo's header (its original size).
PHOTO_MIN_SIDE = 512


@dataclass(frozen=True)
class Fetched:
    """A photo's bytes, with the media type its source declared (if any)."""

    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class Unfetched:
    """A photo that gave no bytes, and why (a short sentence for people)."""

    detail: str


class PixelBudget:
    """How many more pixels the photos of one request may decode.

    The photos of a request are decoded one after another, so no lock is needed; a photo that
    would pass the budget is not decoded at all and gets code 2 with its own detail.
    """

    def __init__(self, pixels: int = MAX_REQUEST_PIXELS) -> None:
        self.total = pixels
        self.left = pixels

    def take(self, pixels: int) -> bool:
        """Spend ``pixels`` if that many are left; returns whether they were."""
        if pixels > self.left:
            return False
        self.left -= pixels
        return True
