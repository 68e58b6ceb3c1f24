"""Local inputs to URLs: what the Session's endpoint methods call before building a request.

A ``str`` is a URL and passes through untouched; an ``os.PathLike`` is a file and ``bytes`` are
image data. Every local input is read and checked first (all of them, before anything leaves
the machine), then, for a training, checked for faces on this machine (refused with
:class:`~aiportrait.errors.PreflightFailed` unless forced), then cleaned of its metadata and
uploaded under its content hash. Only then is the request built, holding plain URLs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

from ..errors import AIPortraitError, InvalidArgument, PreflightFailed, UploadError
from .photos import CleanPhoto, clean_photo, photo_name, read_photo

__all__ = [
    "ImageInput",
    "UploadFunc",
    "Uploader",
    "as_upload",
    "is_local",
    "resolve_image",
    "resolve_images",
    "upload_photos",
]

K = TypeVar("K")

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes"
"""A photo or template: a URL (``str``), a local file (``os.PathLike``) or image bytes."""

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


def is_local(value: object) -> bool:
    """Whether ``value`` is a local input (a path or bytes) rather than a URL string."""
    return isinstance(value, (bytes, bytearray, memoryview, os.PathLike))


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


def _needs_uploader(what: str, name: str) -> InvalidArgument:
    return InvalidArgument(
        f"{what}: {name} is a local photo, and this Session has no uploader to put it where the "
        "service can download it; pass uploader= to the Session (aiportrait.uploads.OSSUploader, "
        "or any async callable) or give a URL"
    )


async def _upload(upload: UploadFunc, photo: CleanPhoto) -> str:
    key = f"{photo.sha256}.{photo.extension}"
    try:
        url = await upload(photo.data, photo.content_type, key)
    except AIPortraitError:
        raise
    except Exception as exc:
        raise UploadError(f"upload of {photo.name} failed ({type(exc).__name__})") from None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UploadError(f"the uploader returned no http(s) URL for {photo.name}")
    return url


async def upload_photos(
    upload: UploadFunc, photos: Mapping[K, tuple[bytes, str, str]], *, check: bool
) -> dict[K, str]:
    """Photos already read (``data, content_type, name`` by key): checked on this machine when
    ``check`` (a training not forced; :class:`PreflightFailed` names each bad photo, before
    anything is uploaded), cleaned of their metadata, uploaded; their URLs by key."""
    if check:
        from .preflight import preflight, refusal, renamed

        report = await preflight([data for data, _, _ in photos.values()])
        if not report.ok:
            report = renamed(report, [name for _, _, name in photos.values()])
            raise PreflightFailed(refusal(report), report)
    urls = {}
    for key, (data, content_type, name) in photos.items():
        photo = await asyncio.to_thread(clean_photo, data, content_type, name)
        urls[key] = await _upload(upload, photo)
    return urls


def _read_all(local: Mapping[int, tuple[Any, str]]) -> dict[int, tuple[bytes, str, str]]:
    """Every local photo read (blocking: run in a thread); the first bad one raises."""
    out = {}
    for i, (value, name) in local.items():
        data, content_type = read_photo(value, name)
        out[i] = (data, content_type, name)
    return out


async def resolve_images(
    uploader: UploadFunc | None,
    images: Sequence[Any],
    *,
    what: str = "images",
    training: bool = False,
    force: bool = False,
) -> Sequence[Any]:
    """``images`` with every local input replaced by the URL of its upload (see the module).

    Without a local input, ``images`` is returned as it is (validated later by the request).
    """
    if isinstance(images, (str, bytes, os.PathLike)) or not any(is_local(v) for v in images):
        return images
    local = {i: (v, photo_name(v, i)) for i, v in enumerate(images) if is_local(v)}
    if uploader is None:
        raise _needs_uploader(what, next(iter(local.values()))[1])
    read = await asyncio.to_thread(_read_all, local)  # every refusal before any upload
    urls = await upload_photos(uploader, read, check=training and not force)
    return [urls.get(i, v) for i, v in enumerate(images)]


async def resolve_image(uploader: UploadFunc | None, value: Any, what: str) -> Any:
    """One template or reference photo: its upload's URL when local, else ``value`` as it is."""
    if not is_local(value):
        return value
    name = photo_name(value, 0) if not isinstance(value, (bytes, bytearray)) else what
    if uploader is None:
        raise _needs_uploader(what, name)
    read = await asyncio.to_thread(_read_all, {0: (value, name)})
    return (await upload_photos(uploader, read, check=False))[0]
