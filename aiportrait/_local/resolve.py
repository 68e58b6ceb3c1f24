"""Local inputs to URLs: the one step of sending that turns a request's files into URLs.

A request's image fields hold URLs, local files (``os.PathLike``) or image bytes
(:mod:`aiportrait._requests.images`). Before a request with local inputs is sent:

1. every local input is read and checked (:func:`read_inputs`: a missing or unreadable file,
   not a JPEG or PNG, too large: :class:`~aiportrait.errors.LocalPhotoError`, before anything
   leaves the machine). The read also gives the request as it is *known*: each local input as a
   placeholder URL naming its SHA-256, so that a batch's journal binds an item to its files'
   content, never to URLs (a URL presigned again leaves the item the same item);
2. for a training not forced, the photos are checked for faces on this machine, then cleaned of
   their metadata and uploaded (:func:`upload_inputs`); the request with their URLs is sent.

:meth:`Session.send` runs both (:func:`resolve`); a batch and the command line run step 1
when an item starts (:func:`read_local`) and step 2 only when its charged call is to be made
(:func:`resolve` given what was read), a batch remembering uploads in its journal
(:func:`remembering`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import attrs

from .._requests import Place, Request
from .photos import photo_name, read_photo
from .upload import UploadFunc, check_photos, needs_uploader, upload_photos

__all__ = [
    "ReadInputs",
    "check_inputs",
    "read_inputs",
    "read_local",
    "remembering",
    "resolve",
    "upload_inputs",
]

R = TypeVar("R", bound=Request)

_CONTENT: Final = "https://local.invalid/sha256/{}"
"""Stands for a local input in the request the fingerprint is taken over (never sent)."""


@attrs.frozen
class ReadInputs:
    """The local inputs of one request, read: per place its bytes, media type, name, SHA-256."""

    photos: Mapping[Place, tuple[bytes, str, str, str]] = attrs.field(repr=False)
    known: Any
    """The request with each local input as a placeholder URL naming its SHA-256."""


def _name(place: Place, value: object) -> str:
    """How a local input is named in messages: its path, else its field and index."""
    field, index = place
    if not isinstance(value, bytes):
        return photo_name(value, index)
    return f"{field} bytes #{index + 1}" if field == "images" else f"{field} (bytes)"


def read_inputs(request: R) -> ReadInputs:
    """Read every local input of ``request`` (blocking: run it in a thread).

    The first bad input raises :class:`~aiportrait.errors.LocalPhotoError`.
    """
    photos = {}
    for place, value in request.local_inputs().items():
        name = _name(place, value)
        data, content_type = read_photo(value, name)
        photos[place] = (data, content_type, name, hashlib.sha256(data).hexdigest())
    known = request.with_urls({p: _CONTENT.format(v[3]) for p, v in photos.items()})
    return ReadInputs(photos, known)


def _force(request: Request) -> bool:
    return bool(getattr(request, "force", False))


async def check_inputs(request: Request, read: ReadInputs) -> None:
    """The check on this machine of a training's photos ``read`` (unless it is forced):
    :class:`~aiportrait.errors.PreflightFailed` names each bad photo; nothing is sent."""
    if read.photos and request.kind == "train" and not _force(request):
        await check_photos((data, kind, name) for data, kind, name, _ in read.photos.values())


async def upload_inputs(request: R, read: ReadInputs, upload: UploadFunc | None) -> R:
    """``request`` with the photos ``read`` checked (:func:`check_inputs`), cleaned and
    uploaded with ``upload``: their URLs in their places."""
    if not read.photos:
        return request
    if upload is None:
        first = next(iter(read.photos.values()))[2]
        raise needs_uploader(type(request).__name__, first)
    await check_inputs(request, read)
    photos = {place: (data, kind, name) for place, (data, kind, name, _) in read.photos.items()}
    # A file's URL shows as the path the user gave (bytes have none: their URL shows query-less).
    files = request.local_inputs()
    sources = {
        place: None if isinstance(files.get(place), bytes) else v[2] for place, v in photos.items()
    }
    return request.with_urls(await upload_photos(upload, photos, sources))


async def read_local(request: Request) -> ReadInputs | None:
    """:func:`read_inputs` off the event loop; ``None`` for a request of URLs."""
    if not request.local:
        return None
    return await asyncio.to_thread(read_inputs, request)


async def resolve(request: R, upload: UploadFunc | None, read: ReadInputs | None = None) -> R:
    """``request`` with its local inputs read (unless ``read`` already), checked, cleaned and
    uploaded (see the module); a request of URLs as it is.

    With no uploader, a request with local inputs is refused before anything is read.
    """
    if not request.local:
        return request
    if read is None:
        if upload is None:
            place, value = next(iter(request.local_inputs().items()))
            raise needs_uploader(type(request).__name__, _name(place, value))
        read = await asyncio.to_thread(read_inputs, request)
    return await upload_inputs(request, read, upload)


def remembering(upload: UploadFunc | None, memo: Any) -> UploadFunc | None:
    """``upload``, remembering uploads in ``memo`` (a batch's journal) when its uploader can.

    An uploader can when it has a ``remembering(memo)`` method returning an upload function
    (:class:`~aiportrait.uploads.OSSUploader` has); ``upload`` is its bound ``upload`` method.
    Any other uploader is used as it is.
    """
    owner = getattr(upload, "__self__", None)
    method = getattr(owner, "remembering", None)
    if upload is None or not callable(method):
        return upload
    return method(memo)  # type: ignore[no-any-return]
