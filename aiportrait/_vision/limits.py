"""The limits a photo is read and decoded within, and the pixel budget of one request.

Constants and one small class, with no import: the client's reading of local photos uses them
at import time.
"""

from __future__ import annotations

__all__ = [
    "CHECK_FORMATS",
    "MAX_PHOTO_BYTES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "PHOTO_MIN_SIDE",
    "PHOTO_SIDE",
    "PixelBudget",
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
