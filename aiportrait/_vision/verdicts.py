"""The photo check's verdicts: the service's codes and messages, and one photo's result.

The codes and messages are the documentation's table "Summary of check_results messages", word
for word. The emulator answers with them and the client's check of local photos reports them;
the client reads answers with its own copy (``aiportrait._wire.codec``), so a mistake on either side
shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CHECK_DECODE_ERROR",
    "CHECK_DETECT_ERROR",
    "CHECK_ENCODING_ERROR",
    "CHECK_FACE_COUNT",
    "CHECK_MESSAGES",
    "CHECK_NOT_SAME_PERSON",
    "CHECK_SUCCESS",
    "Verdict",
]

CHECK_SUCCESS: Final = 1
CHECK_DECODE_ERROR: Final = 2
CHECK_FACE_COUNT: Final = 3
CHECK_DETECT_ERROR: Final = 4
CHECK_ENCODING_ERROR: Final = 5
CHECK_NOT_SAME_PERSON: Final = 6
CHECK_MESSAGES: Final[dict[int, str]] = {
    CHECK_SUCCESS: "success",
    CHECK_DECODE_ERROR: "Image decode error.",
    CHECK_FACE_COUNT: "Number of face is not 1.",
    CHECK_DETECT_ERROR: "Image detect error.",
    CHECK_ENCODING_ERROR: "Image encoding error.",
    CHECK_NOT_SAME_PERSON: "This photo is not the same person in photos.",
}


@dataclass(frozen=True)
class Verdict:
    """One photo's check result: the documented ``code`` and ``message``, and ``frontal``.

    ``detail`` is the check's own short explanation (the cause behind the documented code: code
    2 alone covers a missing file, a text file and a photo that is too small); the emulator
    sends it as ``emulator_detail``. It does not take part in comparisons.
    """

    code: int
    message: str
    frontal: bool
    detail: str = field(default="", compare=False)

    @classmethod
    def of(cls, code: int, frontal: bool = False, detail: str = "") -> Verdict:
        """The verdict for ``code`` with its documented message."""
        return cls(code, CHECK_MESSAGES[code], bool(frontal), detail)

    def to_wire(self, url: str) -> dict[str, Any]:
        """The ``check_results`` / ``states`` entry for ``url``."""
        return {
            "code": self.code,
            "frontal": self.frontal,
            "message": self.message,
            "url": url,
            "emulator_detail": self.detail,
        }
