"""A photo as the check receives it: its bytes, or why there are none.

A photo reaches the check as :class:`Fetched` (its bytes) or :class:`Unfetched` (why there are
none: the emulator could not download it, the client could not read the file); an unfetched
photo gets code 2 with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Fetched", "Unfetched"]


@dataclass(frozen=True)
class Fetched:
    """A photo's bytes, with the media type its source declared (if any)."""

    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class Unfetched:
    """A photo that gave no bytes, and why (a short sentence for people)."""

    detail: str
