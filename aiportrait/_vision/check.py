"""The photo check: each photo examined alone, then the set judged together.

Verdicts follow the documented table (:mod:`.verdicts`)::

    2  the photo gave no bytes, did not decode, or a side is under 512 pixels
    3  the number of faces is not 1
    4  the detector raised
    5  the descriptor could not be computed
    6  the face is farther than ``same_person_threshold`` from the mean of the other photos

A photo is examined alone (:func:`examine_photo`: decoding within the request's pixel budget,
then :func:`examine`: size, face count, descriptor), its pixels dropped, and the photos that got
that far are then judged together (:func:`judge`: the same-person test). Everything here is
synchronous and meant to run in a thread pool (:mod:`.threads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .face_engine import Face, FaceEngine, face_distance
from .images import BudgetError, ImageDecodeError, NotAnImageError, RGBImage, decode_image
from .limits import CHECK_FORMATS, PHOTO_MIN_SIDE, PHOTO_SIDE, PixelBudget
from .sources import Fetched, Unfetched
from .verdicts import (
    CHECK_DECODE_ERROR,
    CHECK_DETECT_ERROR,
    CHECK_ENCODING_ERROR,
    CHECK_FACE_COUNT,
    CHECK_NOT_SAME_PERSON,
    CHECK_SUCCESS,
    Verdict,
)

__all__ = ["Examined", "decode_photo", "examine", "examine_photo", "judge"]


@dataclass(frozen=True)
class Examined:
    """What the check keeps of one photo once its pixels are gone.

    Either a final ``verdict`` (the photo failed before the same-person test), or the one
    ``face`` found, with its descriptor, waiting for :func:`judge`.
    """

    verdict: Verdict | None = None
    face: Face | None = None

    @classmethod
    def failed(cls, code: int, detail: str, frontal: bool = False) -> Examined:
        """A photo that failed with ``code`` for the reason ``detail``."""
        return cls(verdict=Verdict.of(code, frontal, detail))


def examine(engine: FaceEngine, img: RGBImage, *, min_side: int = PHOTO_MIN_SIDE) -> Examined:
    """Everything the check asks of one photo except the same-person test.

    A side under ``min_side`` is code 2 (pass 0 when the decoder already checked the original
    size); not exactly one face, code 3; the detector failing, code 4; the descriptor failing,
    code 5.
    """
    height, width = img.shape[:2]
    if img.ndim != 3 or min(height, width) < min_side:
        return Examined.failed(
            CHECK_DECODE_ERROR,
            f"image is {width}x{height}, smaller than {min_side}x{min_side}",
        )
    try:
        faces = engine.detect(img, with_descriptors=False)
    except Exception as exc:
        return Examined.failed(CHECK_DETECT_ERROR, f"the face detector failed ({exc})")
    if len(faces) != 1:
        found = "no face" if not faces else f"{len(faces)} faces"
        return Examined.failed(CHECK_FACE_COUNT, f"found {found}; a photo needs exactly one")
    try:
        face = engine.with_descriptor(img, faces[0])
    except Exception as exc:
        return Examined.failed(
            CHECK_ENCODING_ERROR, f"the face descriptor failed ({exc})", faces[0].frontal
        )
    return Examined(face=face)


def decode_photo(
    source: Fetched | Unfetched, budget: PixelBudget, *, max_pixels: int
) -> tuple[RGBImage | None, str]:
    """A check or training photo at analysis size, or None and the reason it has none.

    Only JPEG and PNG are accepted; the sides are checked on the header (the original size),
    then the photo is decoded at most :data:`~.limits.PHOTO_SIDE` on a side, if ``budget``
    still allows its pixels.
    """
    if isinstance(source, Unfetched):
        return None, source.detail
    try:
        image = decode_image(
            source.data,
            max_pixels=max_pixels,
            formats=CHECK_FORMATS,
            max_side=PHOTO_SIDE,
            min_side=PHOTO_MIN_SIDE,
            allow=budget.take,
        )
    except NotAnImageError:
        kind = source.content_type or "unrecognised bytes"
        return None, f"not an image ({kind})"
    except BudgetError:
        return None, (
            "not decoded: the photos before it used up the pixels one request may decode "
            f"({budget.total}, see --max-request-pixels)"
        )
    except ImageDecodeError as exc:
        return None, str(exc)
    return image, ""


def examine_photo(
    engine: FaceEngine, source: Fetched | Unfetched, budget: PixelBudget, *, max_pixels: int
) -> tuple[Examined, RGBImage | None]:
    """Check one photo as far as it can go alone: decode it (:func:`decode_photo`), then
    :func:`examine` it. Returns what the check keeps and the decoded image (None if it did not
    decode), for a caller that keeps more of a usable face (the emulator's training)."""
    image, why = decode_photo(source, budget, max_pixels=max_pixels)
    if image is None:
        return Examined.failed(CHECK_DECODE_ERROR, why), None
    return examine(engine, image, min_side=0), image  # the size was checked on the header


def judge(examined: Sequence[Examined], *, same_person_threshold: float = 0.6) -> list[Verdict]:
    """The final verdicts: the same-person test over the photos that got that far.

    Each photo's descriptor is compared with the mean descriptor of the *other* photos that got
    this far, so an outlier cannot pull the reference towards itself; a lone usable photo has
    nothing to be compared with and passes.
    """
    faces = {i: e.face for i, e in enumerate(examined) if e.verdict is None and e.face is not None}
    verdicts: list[Verdict] = []
    for index, exam in enumerate(examined):
        face = faces.get(index)
        if face is None or face.descriptor is None:
            verdicts.append(exam.verdict or Verdict.of(CHECK_ENCODING_ERROR))
            continue
        others = [f.descriptor for i, f in faces.items() if i != index and f.descriptor is not None]
        pose = "frontal" if face.frontal else "turned or tilted (not frontal)"
        if not others:
            verdicts.append(Verdict.of(CHECK_SUCCESS, face.frontal, f"one face, {pose}"))
            continue
        distance = face_distance(face.descriptor, np.mean(others, axis=0))
        if distance > same_person_threshold:
            detail = (
                f"the face is {distance:.2f} from the other photos' faces "
                f"(the same person is within {same_person_threshold:.2f})"
            )
            verdicts.append(Verdict.of(CHECK_NOT_SAME_PERSON, face.frontal, detail))
        else:
            detail = f"one face, {pose}, {distance:.2f} from the other photos' faces"
            verdicts.append(Verdict.of(CHECK_SUCCESS, face.frontal, detail))
    return verdicts
