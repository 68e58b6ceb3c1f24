"""An uploaded photo presigned again by the worker, just before the call that sends it.

Temporal carries an uploaded photo as its object's URL without a query (:mod:`._unsigned`),
which reads nothing: the activity that sends a request (check, train, create) asks the
worker's uploader for a fresh presigned URL of each such object first. An image URL is one of
the uploader's objects when it has no query and the uploader, asked to presign the object its
path names (after the uploader's ``prefix``), gives a URL of that very place; any other URL
(one the user gave, or a signed one from a run begun before) is sent as it is.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from .._requests import Place, Request
from .._wire.signing import PresignedURL

__all__ = ["Presigner", "presigned_again"]

R = TypeVar("R", bound=Request)


class Presigner(Protocol):
    """What a worker presigns uploaded photos with:
    :class:`~aiportrait.uploads.OSSUploader` (the bucket, endpoint and prefix the starters
    upload to)."""

    prefix: str

    async def presign(self, key: str) -> str:
        """A fresh presigned GET URL of the object ``prefix + key``."""
        ...


def _images(request: Request) -> dict[Place, Any]:
    """Every image of ``request`` by its place (field, index; 0 for a single image)."""
    out: dict[Place, Any] = {}
    for name in request.image_fields:
        value = getattr(request, name)
        values = value if type(value) is tuple else (value,)
        out.update(((name, i), v) for i, v in enumerate(values))
    return out


async def _again(url: str, presigner: Presigner) -> PresignedURL | None:
    parts = urlsplit(url)
    marker = "/" + presigner.prefix
    if parts.query or parts.fragment or parts.scheme not in ("http", "https"):
        return None
    path = unquote(parts.path)
    if marker not in path:
        return None
    fresh = PresignedURL(await presigner.presign(path.rpartition(marker)[2]))
    return fresh if fresh.public == url else None


async def presigned_again(request: R, presigner: Presigner | None) -> R:
    """``request`` with each image that is one of ``presigner``'s objects (see the module) as
    a fresh presigned URL; ``request`` itself when there is none (or no ``presigner``)."""
    if presigner is None:
        return request
    urls = {}
    for place, value in _images(request).items():
        if isinstance(value, str) and (fresh := await _again(value, presigner)) is not None:
            urls[place] = fresh
    return request.with_urls(urls) if urls else request
