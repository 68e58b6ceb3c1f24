"""An uploaded photo presigned again by the worker, just before the call that sends it.

Temporal carries an uploaded photo as its object's URL without a query, marked
:data:`~._unsigned.UPLOADED` (:mod:`._unsigned`), which reads nothing: the activity that sends
a request (check, train, create) asks the worker's uploader for a fresh presigned URL of each
such object first. A worker without an uploader, or whose uploader presigns another place (a
bucket or endpoint other than the starters'), refuses the request before it is sent: a URL that
reads nothing would be a training charged for photos it cannot download. Any other URL (one
the user gave) is sent as it is.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from .._requests import Place, Request
from .._wire.signing import PresignedURL
from ..errors import InvalidArgument
from ._unsigned import UPLOADED

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


async def _again(url: str, presigner: Presigner | None) -> PresignedURL | None:
    if not url.endswith(UPLOADED):
        return None  # a URL the user gave: sent as given
    address = url[: -len(UPLOADED)]
    if presigner is None:
        raise InvalidArgument(
            f"{address} is a photo the starter uploaded, and this worker has no uploader to "
            "presign it (give the worker the starters' OSS settings: OSS_BUCKET, OSS_REGION or "
            "OSS_ENDPOINT, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET); nothing was sent"
        )
    marker = "/" + presigner.prefix
    path = unquote(urlsplit(address).path)
    fresh = None
    if marker in path:
        fresh = PresignedURL(await presigner.presign(path.rpartition(marker)[2]))
    if fresh is None or fresh.public != address:
        where = "another prefix" if fresh is None else fresh.public
        raise InvalidArgument(
            f"{address} was uploaded to another bucket or endpoint than this worker's uploader "
            f"presigns ({where}): give the worker the starters' OSS settings; nothing was sent"
        )
    return fresh


async def presigned_again(request: R, presigner: Presigner | None) -> R:
    """``request`` with each uploaded photo in it (see the module) as a fresh presigned URL;
    ``request`` itself when there is none. :class:`~aiportrait.errors.InvalidArgument` when one
    cannot be presigned here."""
    urls = {}
    for place, value in _images(request).items():
        if isinstance(value, str) and (fresh := await _again(value, presigner)) is not None:
            urls[place] = fresh
    return request.with_urls(urls) if urls else request
