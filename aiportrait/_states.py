"""The service's vocabulary of states: a photo's check verdict and a job's state.

Below everything else (the errors name job states too); :mod:`aiportrait.models` is where
callers find them. Both tolerate values the documentation does not list (a future service
version may add them): they become pseudo-members named ``UNKNOWN_<n>`` instead of raising.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

__all__ = ["CallKind", "CheckVerdict", "JobState"]


CallKind = Literal["read", "train", "create"]
"""What a call costs and how it may be retried: ``read`` (free, retried freely), ``train`` or
``create`` (charged: retried only when it provably did not run)."""


class _TolerantIntEnum(enum.IntEnum):
    """An IntEnum that turns an unlisted integer into a pseudo-member instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None

    @property
    def known(self) -> bool:
        """Whether the documentation lists this value."""
        return self._name_ in type(self).__members__


class CheckVerdict(_TolerantIntEnum):
    """The per-photo verdict of an image check (documented codes 1 to 6)."""

    SUCCESS = 1
    """The photo meets the requirements."""
    DECODE_ERROR = 2
    """The photo cannot be downloaded or decoded (or is too small)."""
    FACE_COUNT = 3
    """The photo does not show exactly one face."""
    DETECT_ERROR = 4
    """Face detection failed."""
    ENCODING_ERROR = 5
    """The face could not be encoded into a feature vector (usually: no face)."""
    NOT_SAME_PERSON = 6
    """The face does not match the faces in the other photos."""


class JobState(_TolerantIntEnum):
    """State of an asynchronous job. ``INIT`` and ``RUNNING`` are pending."""

    INIT = 0
    RUNNING = 1
    SUCCESS = 2
    FAILED = 3

    @property
    def terminal(self) -> bool:
        """True for ``SUCCESS`` and ``FAILED``: the job will not change any more."""
        return self in (JobState.SUCCESS, JobState.FAILED)
