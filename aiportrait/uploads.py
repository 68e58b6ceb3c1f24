"""Local photos as inputs: where they are uploaded so that AI Portrait can download them.

AI Portrait takes image URLs that its servers download. A Session given an ``uploader=`` takes
local photos too, wherever it takes a URL: a ``pathlib.Path`` (any ``os.PathLike``) is a file,
``bytes`` are image data, a plain ``str`` stays a URL. Before anything is sent, each local photo
is read and checked (a missing file, a directory, an unreadable file, not a JPEG or PNG, more than
20 MiB: :class:`~aiportrait.errors.LocalPhotoError`); for a training, the photos are checked for
faces on this machine (:func:`aiportrait.preflight`, which takes :data:`LocalInput` photos: a
path or bytes; a failure is :class:`~aiportrait.errors.PreflightFailed` unless
``force=True``); each is turned upright and stripped of its metadata (EXIF with its GPS
position, XMP, IPTC), then uploaded under its SHA-256 (the same photo is stored once). Only
then is the request sent.

Photos of people are personal data: choose a bucket in a region and with retention rules that
fit your obligations, and delete the photos once the training has ended (``delete_after=True``:
every object the uploader handed out a URL for; :meth:`OSSUploader.delete`;
:meth:`OSSUploader.delete_remembered` for what a batch journal remembers). No file keeps a
usable URL: a journal remembers object key, content hash and expiry.

An uploader is an :class:`Uploader` (an object with ``async def upload(data, content_type,
key) -> url``) or any async callable of that shape, for your own storage::

    async def upload(data: bytes, content_type: str, key: str) -> str:
        await my_store.put(key, data, content_type)
        return my_store.signed_url(key, hours=24)

    session = aiportrait.Session.from_env(uploader=upload)
    job = await session.train(sorted(Path("me").glob("*.jpg")))

:class:`OSSUploader` uploads to Alibaba Cloud OSS (``pip install 'aiportrait[oss]'``) and hands
the service presigned GET URLs; ``OSSUploader.for_emulator(emu)`` uploads to the local
emulator's OSS-compatible bucket, offline.

Every request class takes them too (``TrainRequest([Path(...), ...], force=True)``,
``CreateRequest(model_id, Path("t.jpg"))``), for :meth:`Session.send` and for batches:
``session.train_many({"alice": [Path(...), ...]})``. Each batch item's photos are read when it
starts and uploaded right before its charged call; with ``journal=``, the item is bound to its
files' content and the uploads are remembered (an uploader with a ``remembering(memo)``
method, as :class:`OSSUploader`, is given the journal as an :class:`UploadMemo`): a re-run
neither uploads nor trains again, and an expired URL is presigned again, not uploaded again.

A presigned URL is a key to a person's photo for its lifetime, so whatever an uploader returns
becomes a :class:`PresignedURL`: a ``str`` sent whole (JSON and the wire see the usable URL),
named by the photo's path, whose ``repr``, ``str`` and pickle drop the query (where the
signature is); ``reveal()`` is the usable URL. The URLs the service echoes back (check results,
training states) are ``PresignedURL`` values too, equal to the URLs sent.
"""

from ._local.localrequest import LocalRequest  # noqa: F401  (deprecated; not in __all__)
from ._local.oss_uploader import DEFAULT_EXPIRES, MAX_EXPIRES, OSSUploader, UploadMemo
from ._local.upload import Uploader, UploadFunc
from ._requests import ImageInput, LocalInput
from ._wire.signing import PresignedURL
from .errors import LocalPhotoError, PreflightFailed, UploadError

__all__ = [
    "DEFAULT_EXPIRES",
    "MAX_EXPIRES",
    "ImageInput",
    "LocalInput",
    "LocalPhotoError",
    "OSSUploader",
    "PreflightFailed",
    "PresignedURL",
    "UploadError",
    "UploadFunc",
    "UploadMemo",
    "Uploader",
]
