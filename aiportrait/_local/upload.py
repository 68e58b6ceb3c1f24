"""Uploading local photos: the :class:`Uploader` protocol and the upload step.

Photos already read (:mod:`aiportrait._local.resolve`) are, for a training not forced, checked
for faces on this machine (refused with :class:`~aiportrait.errors.PreflightFailed`, naming each
bad photo, before anything is uploaded), then cleaned of their metadata and uploaded under their
content hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar, runtime_checkable

from .._wire.signing import PresignedURL
from ..errors import AIPortraitError, InvalidArgument, PreflightFailed, UploadError

if TYPE_CHECKING:
    from .photos import CleanPhoto

__all__ = [
    "UploadFunc",
    "Uploader",
    "as_presigned",
    "as_upload",
    "check_photos",
    "needs_uploader",
    "upload_photos",
]

K = TypeVar("K")

UploadFunc: TypeAlias = Callable[[bytes, str, str], Awaitable[str]]
"""``async def upload(data, content_type, key) -> url``."""


@runtime_checkable
class Uploader(Protocol):
    """Puts a photo where AI Portrait's servers can download it, and returns that URL.

    ``key`` is a content-derived object name (``<sha256>.jpg``); the same photo always gets the
    same key, so an uploader can skip what it already stored. The URL must stay valid until the
    service has downloaded the photo (for a training: until the job ended).
    """

    async def upload(self, data: bytes, content_type: str, key: str) -> str:
        """Store ``data`` under ``key`` and return a URL the service can GET it from."""
        ...


def as_upload(uploader: Uploader | UploadFunc | None) -> UploadFunc | None:
    """The upload coroutine function of an :class:`Uploader` or an async callable."""
    if uploader is None:
        return None
    method = getattr(uploader, "upload", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(uploader):
        return uploader
    raise InvalidArgument(
        f"uploader must have an async upload(data, content_type, key) method or be such an "
        f"async callable, not {type(uploader).__name__}"
    )


def needs_uploader(what: str, name: str) -> InvalidArgument:
    return InvalidArgument(
        f"{what}: {name} is a local photo, and this Session has no uploader to put it where the "
        "service can download it; pass uploader= to the Session (aiportrait.uploads.OSSUploader, "
        "or any async callable) or give a URL"
    )


async def _upload(upload: UploadFunc, photo: CleanPhoto, source: str | None) -> PresignedURL:
    """``photo`` uploaded: its URL as a :class:`PresignedURL` named ``source`` (the user's name
    of the photo: its path as given), whatever the uploader returned."""
    key = f"{photo.sha256}.{photo.extension}"
    try:
        url = as_presigned(await upload(photo.data, photo.content_type, key), source)
    except AIPortraitError:
        raise
    except Exception as exc:
        raise UploadError(f"upload of {photo.name} failed ({type(exc).__name__})") from None
    if url is None or not url.startswith(("http://", "https://")):
        raise UploadError(f"the uploader returned no http(s) URL for {photo.name}")
    return url


def as_presigned(url: object, source: str | None) -> PresignedURL | None:
    """What an uploader returned as a :class:`PresignedURL` named ``source`` (``None`` when it
    is not a string): shown and pickled without its query from here on."""
    if isinstance(url, PresignedURL):
        return PresignedURL(url.reveal(), source)
    return PresignedURL(url, source) if isinstance(url, str) else None


async def check_photos(photos: Iterable[tuple[bytes, str, str]]) -> None:
    """The check on this machine of photos already read (``data, content_type, name``):
    :class:`PreflightFailed` names each bad photo."""
    from .preflight import preflight, refusal, renamed

    photos = list(photos)
    report = await preflight([data for data, _, _ in photos])
    if not report.ok:
        report = renamed(report, [name for _, _, name in photos])
        raise PreflightFailed(refusal(report), report)


async def upload_photos(
    upload: UploadFunc,
    photos: Mapping[K, tuple[bytes, str, str]],
    sources: Mapping[K, str | None] | None = None,
) -> dict[K, PresignedURL]:
    """Photos already read (``data, content_type, name`` by key), cleaned of their metadata
    and uploaded; their URLs by key, each a :class:`PresignedURL` named by its ``sources``
    entry (the path as given; ``None``, the default, for bytes)."""
    from .photos import clean_photo  # loaded with the first local photo, not by a Session

    urls = {}
    for key, (data, content_type, name) in photos.items():
        photo = await asyncio.to_thread(clean_photo, data, content_type, name)
        urls[key] = await _upload(upload, photo, None if sources is None else sources.get(key))
    return urls
