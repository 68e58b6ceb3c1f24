"""The photo check of the local emulator: per-photo verdicts with the documented codes.

Check verdicts follow the documented table (``_wire.CHECK_MESSAGES``)::

    2  the photo did not decode, or a side is under ``min_side`` pixels
    3  the number of faces is not 1
    4  the detector raised
    5  the descriptor could not be computed
    6  the face is farther than ``same_person_threshold`` from the mean of the other photos

Each :class:`Verdict` also carries a ``detail``: the emulator's own sentence for the cause (the
documented code 2 alone covers a missing file, a text file and a photo that is too small).

A photo is examined alone (:func:`examine`: size, face count, descriptor), its pixels dropped,
and the photos that got that far are then judged together (:func:`judge`: the same-person test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..emulator import _wire
from .face_engine import Face, FaceEngine, face_distance
from .images import RGBImage

__all__ = ["Examined", "Verdict", "examine", "judge"]


@dataclass(frozen=True)
class Verdict:
    """One photo's check result, as the wire's ``check_results`` entry wants it.

    ``detail`` is the emulator's own short explanation (the cause behind the documented code and
    message); it does not take part in comparisons.
    """

    code: int
    message: str
    frontal: bool
    detail: str = field(default="", compare=False)

    @classmethod
    def of(cls, code: int, frontal: bool = False, detail: str = "") -> Verdict:
        """The verdict for ``code`` with its documented message."""
        return cls(code, _wire.CHECK_MESSAGES[code], frontal, detail)

    @property
    def ok(self) -> bool:
        """Whether the photo passed."""
        return self.code == _wire.CHECK_SUCCESS


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


def examine(engine: FaceEngine, img: RGBImage, *, min_side: int = 512) -> Examined:
    """Everything the check asks of one photo except the same-person test.

    A side under ``min_side`` is code 2 (pass 0 when the decoder already checked the original
    size); not exactly one face, code 3; the detector failing, code 4; the descriptor failing,
    code 5.
    """
    height, width = img.shape[:2]
    if img.ndim != 3 or min(height, width) < min_side:
        return Examined.failed(
            _wire.CHECK_DECODE_ERROR,
            f"image is {width}x{height}, smaller than {min_side}x{min_side}",
        )
    try:
        faces = engine.detect(img, with_descriptors=False)
    except Exception as exc:
        return Examined.failed(_wire.CHECK_DETECT_ERROR, f"the face detector failed ({exc})")
    if len(faces) != 1:
        found = "no face" if not faces else f"{len(faces)} faces"
        return Examined.failed(_wire.CHECK_FACE_COUNT, f"found {found}; a photo needs exactly one")
    try:
        face = engine.with_descriptor(img, faces[0])
    except Exception as exc:
        return Examined.failed(
            _wire.CHECK_ENCODING_ERROR, f"the face descriptor failed ({exc})", faces[0].frontal
        )
    return Examined(face=face)


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
            verdicts.append(exam.verdict or Verdict.of(_wire.CHECK_ENCODING_ERROR))
            continue
        others = [f.descriptor for i, f in faces.items() if i != index and f.descriptor is not None]
        pose = "frontal" if face.frontal else "turned or tilted (not frontal)"
        if not others:
            verdicts.append(Verdict.of(_wire.CHECK_SUCCESS, face.frontal, f"one face, {pose}"))
            continue
        distance = face_distance(face.descriptor, np.mean(others, axis=0))
        if distance > same_person_threshold:
            detail = (
                f"the face is {distance:.2f} from the other photos' faces "
                f"(the same person is within {same_person_threshold:.2f})"
            )
            verdicts.append(Verdict.of(_wire.CHECK_NOT_SAME_PERSON, face.frontal, detail))
        else:
            detail = f"one face, {pose}, {distance:.2f} from the other photos' faces"
            verdicts.append(Verdict.of(_wire.CHECK_SUCCESS, face.frontal, detail))
    return verdicts
