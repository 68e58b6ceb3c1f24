"""The photo check, run on this machine: the service's verdicts before anything is uploaded.

The same checks as the service's ``check`` call, with its codes and messages
(:class:`~aiportrait.models.CheckVerdict`): a JPEG or PNG image larger than 512x512 (EXIF
orientation applied), exactly one face, a face descriptor, and the same person across the set.
The check is :mod:`aiportrait._vision`'s, the one the emulator runs too; its face work (dlib and
OpenCV, the ``emulator`` extra) is imported on first use. Nothing is sent anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from .._requests import LocalInput
from .._vision.limits import MAX_PIXELS, PixelBudget
from .._vision.sources import Fetched, Unfetched
from .._vision.threads import run_in, shared_engine, shared_pool
from ..errors import InvalidArgument, LocalPhotoError
from ..models import CheckReport, CheckVerdict, ImageCheck
from .photos import photo_name, read_photo

__all__ = ["LocalInput", "preflight", "refusal", "renamed"]


async def preflight(photos: Sequence[LocalInput]) -> CheckReport:
    """Check local photos on this machine, as the service's check would; nothing is sent.

    Args:
        photos: paths (``pathlib.Path`` or any ``os.PathLike``) or image bytes.

    Returns:
        A :class:`CheckReport` with one :class:`ImageCheck` per photo, in order; its ``url`` is
            the path as given (``bytes #N`` for bytes). A missing, unreadable or non-image file is
            a ``DECODE_ERROR`` verdict here, not an exception.

    Needs the ``emulator`` extra (Pillow, OpenCV, dlib).
    """
    if isinstance(photos, (str, bytes, os.PathLike)):
        raise InvalidArgument("photos must be a list of paths or bytes, not a single one")
    try:
        from .._vision.check import examine_photo, judge
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidArgument(
            "checking photos on this machine needs the image stack: "
            "pip install 'aiportrait[emulator]' (or pass force=True to skip the check)"
        ) from exc
    pool, engine = shared_pool(), shared_engine()
    names = [photo_name(p, i) for i, p in enumerate(photos)]
    budget = PixelBudget()
    examined = []
    for value, name in zip(photos, names, strict=True):
        if isinstance(value, str):
            raise InvalidArgument(f"{name!r} is a string: a local photo is a Path or bytes")
        try:
            data, content_type = read_photo(value, name)
            source: Fetched | Unfetched = Fetched(data, content_type)
        except LocalPhotoError as exc:
            source = Unfetched(str(exc).removeprefix(f"{name}: "))
        examination = run_in(pool, examine_photo, engine, source, budget, max_pixels=MAX_PIXELS)
        examined.append((await examination)[0])  # its pixels are dropped before the next photo
    verdicts = await run_in(pool, judge, examined)
    results = tuple(
        ImageCheck(name, CheckVerdict(v.code), v.message, v.frontal, v.detail)
        for name, v in zip(names, verdicts, strict=True)
    )
    return CheckReport(results, tuple(r.url for r in results if r.ok))


def refusal(report: CheckReport) -> str:
    """The message of a training refused by the local check: every bad photo and its verdict."""
    bad = report.failed
    lines = [
        f"{len(bad)} of {len(report.results)} local photos failed the check on this machine; "
        "nothing was uploaded or charged (train with force=True to use them anyway):"
    ]
    for check in bad:
        detail = f" ({check.detail})" if check.detail else ""
        lines.append(f"  {check.url}: {check.code.name} {check.message}{detail}")
    return "\n".join(lines)


def renamed(report: CheckReport, names: Sequence[str]) -> CheckReport:
    """``report`` with each photo named as the caller gave it (a path, not ``bytes #N``)."""
    results = tuple(
        attrs.evolve(check, url=name) for check, name in zip(report.results, names, strict=True)
    )
    return attrs.evolve(report, results=results, images=tuple(r.url for r in results if r.ok))
