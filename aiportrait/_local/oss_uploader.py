"""``OSSUploader``: local photos to an Alibaba Cloud OSS bucket, on the asyncio OSS client.

The object key is the photo's SHA-256 under a prefix, so a photo is stored once: a HEAD asks
whether it is there before any PUT. The URL handed to AI Portrait is a presigned GET (OSS V4)
valid for ``expires`` (default 24 hours, at most 7 days): longer than the training deadline.
URLs are remembered in memory only (key -> URL -> expiry); one close to its expiry is presigned
again, never uploaded again. A journal remembers the object key, content hash and expiry, never
the URL: a URL is presigned again (on this machine, after a HEAD) whenever it is needed.
``alibabacloud_oss_v2`` (``pip install 'aiportrait[oss]'``) is imported when the first photo is
uploaded, so ``import aiportrait`` stays light.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .._wire.signing import PresignedURL, PrivateMapping, redacted
from ..errors import CredentialsError, InvalidArgument, UploadError

__all__ = ["DEFAULT_EXPIRES", "MAX_EXPIRES", "OSSUploader", "UploadMemo"]

#: How long a presigned URL stays valid by default (seconds): a day.
DEFAULT_EXPIRES = 24 * 3600.0
#: The longest a V4 presigned URL may be valid (seconds): seven days.
MAX_EXPIRES = 7 * 24 * 3600.0
#: A remembered URL with less than this left (seconds) is presigned again (at most half of
#: ``expires``, so a short-lived URL is not presigned on every use).
_RENEW_BEFORE = 3600.0
#: The bucket name of the local emulator.
EMULATOR_BUCKET = "aiportrait-local"


class UploadMemo(Protocol):
    """Where uploads are remembered across runs (a batch's
    :class:`~aiportrait._batches.journal.Journal`): object key -> content hash -> until when
    its last URL lasts; never the URL itself. Blocking calls, run in a worker thread."""

    def remember_upload(self, key: str, sha256: str | None, expires: float) -> None:
        """Remember ``key``, the SHA-256 of what it holds and until when its URL lasts."""
        ...

    def forget_upload(self, key: str) -> None:
        """Forget ``key`` (its object was deleted)."""
        ...


class OSSUploader:
    """Uploads local photos to an OSS bucket and hands AI Portrait presigned GET URLs.

    Photos of people are personal data: they are stripped of their metadata (EXIF with GPS
    position, XMP, IPTC) before upload, stored under a content hash (no file name), reachable
    only through presigned URLs, and can be deleted once the job has ended (``delete_after=True``
    deletes every object this uploader handed out a URL for when it is closed: uploaded now,
    found already there, or remembered by a journal; :meth:`delete` deletes given URLs,
    :meth:`delete_remembered` what a journal remembers). Mind your bucket's region and
    retention rules. The URLs it returns are :class:`~aiportrait._wire.signing.PresignedURL`:
    shown and pickled without their signature.

    Args:
        bucket: the bucket (else ``OSS_BUCKET``).
        region: its region, e.g. ``cn-hangzhou`` (else ``OSS_REGION``).
        endpoint: an endpoint to use instead of the region's (else ``OSS_ENDPOINT``); the local
            emulator's URL for offline use.
        access_key_id: else ``OSS_ACCESS_KEY_ID``.
        access_key_secret: else ``OSS_ACCESS_KEY_SECRET`` (never logged or shown).
        security_token: an STS token (else ``OSS_SESSION_TOKEN``, optional).
        prefix: the folder of the objects (default ``aiportrait/``).
        expires: seconds a presigned URL is valid (default 24 h, at most 7 days); make it
            longer than your training deadline.
        delete_after: when closed, delete every object this uploader handed out a URL for
            (:attr:`handed_out`) and forget it in the journals that remembered it.
        path_style: path-style addressing (``endpoint/bucket/key``); default: only for an IP
            endpoint (as the SDK does).
        journal: a batch journal (SQLite file) that remembers the uploads across runs (object
            key, content hash, until when its last URL lasts; never the URL): a re-run asks
            the bucket whether each photo is still there (a HEAD: another run with the same
            photo may have deleted it) and uploads only what is not, and a batch item stays
            bound to its photos' content, not to a URL. (A batch run with ``journal=`` on a
            Session with this uploader remembers its uploads in that journal without it: see
            :meth:`remembering`.)
        shared_files: create the journal as any new file (by the umask) instead of ``0600``.
        environ: the environment to read (default ``os.environ``).
        clock: the wall clock (epoch seconds) that says whether a remembered URL expired
            (default ``time.time``; a test may move it forward).

    Missing credentials, bucket or region/endpoint raise
    :class:`~aiportrait.errors.CredentialsError` here, before any upload. Use it as ``async with
    OSSUploader() as uploader:`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        bucket: str | None = None,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        security_token: str | None = None,
        prefix: str = "aiportrait/",
        expires: float = DEFAULT_EXPIRES,
        delete_after: bool = False,
        path_style: bool | None = None,
        journal: str | os.PathLike[str] | None = None,
        shared_files: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        env = PrivateMapping(os.environ if environ is None else environ)
        self.bucket = bucket or env.get("OSS_BUCKET", "")
        self.region = region or env.get("OSS_REGION", "")
        self.endpoint = endpoint or env.get("OSS_ENDPOINT", "") or None
        key_id = access_key_id or env.get("OSS_ACCESS_KEY_ID", "")
        secret = access_key_secret or env.get("OSS_ACCESS_KEY_SECRET", "")
        token = security_token or env.get("OSS_SESSION_TOKEN", "") or None
        missing = [
            name
            for name, value in (
                ("OSS_ACCESS_KEY_ID", key_id),
                ("OSS_ACCESS_KEY_SECRET", secret),
                ("OSS_BUCKET", self.bucket),
                ("OSS_REGION", self.region or self.endpoint),
            )
            if not value
        ]
        if missing:
            raise CredentialsError(
                f"OSS upload settings missing: {', '.join(missing)} (arguments or environment)"
            )
        if not 60 <= expires <= MAX_EXPIRES:
            raise InvalidArgument(f"expires must be 60 s to 7 days, not {expires!r}")
        self._key_id = key_id
        self._secret = redacted(secret)
        self._token = redacted(token) if token else None
        self.prefix = prefix
        self.expires = float(expires)
        self.delete_after = delete_after
        self._path_style = path_style
        self._client: Any = None
        self._journal_path = journal
        self._shared_files = shared_files
        self._journal: Any = None
        self._memos: list[UploadMemo] = []  # every memo an upload was remembered in
        self._clock = clock
        self._busy: dict[str, asyncio.Lock] = {}  # one upload of a key at a time
        self._urls: dict[str, tuple[PresignedURL, float]] = {}  # in memory only
        self.stored: list[str] = []
        """Object keys this uploader PUT (not the ones it found already there)."""
        self.handed_out: dict[str, None] = {}
        """Object keys this uploader handed out a URL for (uploaded now, found already there,
        or remembered by a journal), in order: what ``delete_after`` deletes."""
        self.puts = 0
        self.presigns = 0

    @classmethod
    def for_emulator(cls, emulator: Any, **kwargs: Any) -> OSSUploader:
        """An uploader to the bucket of a local emulator (``aiportrait.emulator.Emulator``):
        its URL as endpoint, its AppId and token as access key."""
        return cls.emulated(emulator.url, emulator.app_id, emulator.token, **kwargs)

    @classmethod
    def emulated(cls, url: str, app_id: str, token: str, **kwargs: Any) -> OSSUploader:
        """An uploader to the bucket of the emulator at ``url``, with that app's credentials."""
        kwargs.setdefault("bucket", EMULATOR_BUCKET)
        kwargs.setdefault("region", "local")
        return cls(endpoint=url, access_key_id=app_id, access_key_secret=token, **kwargs)

    def __repr__(self) -> str:
        where = self.endpoint or self.region
        return f"<aiportrait.uploads.OSSUploader bucket={self.bucket!r} at {where!r}>"

    def __reduce__(self) -> Any:
        raise TypeError("an OSSUploader holds credentials; it cannot be pickled")

    async def __aenter__(self) -> OSSUploader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the Uploader protocol ---------------------------------------------------------------

    async def upload(self, data: bytes, content_type: str, key: str) -> str:
        """Store ``data`` at ``prefix + key`` unless it is there, and return a presigned GET URL
        (a :class:`~aiportrait._wire.signing.PresignedURL`).

        Raises :class:`~aiportrait.errors.UploadError` when the bucket refuses or cannot be
        reached.
        """
        memo = self._journalled() if self._journal_path is not None else None
        return await self._upload(data, content_type, key, memo)

    def remembering(self, memo: UploadMemo) -> Callable[[bytes, str, str], Awaitable[str]]:
        """:meth:`upload`, remembering the uploads in ``memo`` (a batch's journal) as well.

        A batch run with ``journal=`` calls this on its Session's uploader (any uploader with a
        ``remembering`` method): a re-run finds each photo there (key, content hash); a HEAD
        says whether it is still there (another run with the same photo may have deleted it:
        then it is uploaded again), and its URL is presigned again on this machine.
        """
        self._memos.append(memo)

        async def upload(data: bytes, content_type: str, key: str) -> str:
            return await self._upload(data, content_type, key, memo)

        return upload

    async def _upload(
        self, data: bytes, content_type: str, key: str, memo: UploadMemo | None
    ) -> str:
        name = self.prefix + key
        # The same photo in two items at once: stored and presigned once (one small lock per
        # photo this uploader has seen, like its URLs).
        async with self._busy.setdefault(name, asyncio.Lock()):
            return await self._upload_one(data, content_type, name, memo)

    async def _upload_one(
        self, data: bytes, content_type: str, name: str, memo: UploadMemo | None
    ) -> PresignedURL:
        digest = hashlib.sha256(data).hexdigest()
        sdk, client = self._sdk()
        # Asked every time, even when a journal remembers it: keys are content hashes, so
        # another run with the same photo may have deleted it since (--delete-uploads), and a
        # URL to nothing would be a training charged for photos it cannot read.
        try:
            if not await client.is_object_exist(self.bucket, name):  # deleted since: again
                await client.put_object(
                    sdk.PutObjectRequest(
                        bucket=self.bucket, key=name, body=data, content_type=content_type
                    )
                )
                self.puts += 1
                self.stored.append(name)
            remembered = self._urls.get(name)
            if remembered is not None and remembered[1] - self._clock() > min(
                _RENEW_BEFORE, self.expires / 2
            ):
                if memo is not None:  # known here, perhaps not yet in the memo
                    await asyncio.to_thread(memo.remember_upload, name, digest, remembered[1])
                return remembered[0]
            return await self._presign(name, memo, digest)
        except sdk.exceptions.BaseError as exc:
            raise UploadError(f"OSS refused {name}: {_reason(exc)}") from None

    async def presign(self, key: str) -> str:
        """A fresh presigned GET URL for the object ``prefix + key``."""
        return await self._presign(self.prefix + key)

    async def delete(self, urls: Iterable[str]) -> int:
        """Delete the objects behind these URLs (ones of this bucket and prefix); returns how
        many were deleted."""
        names = [name for name in map(self._object_of, urls) if name is not None]
        return await self._delete(names, self._open_memos())

    async def delete_remembered(self, journal: str | os.PathLike[str]) -> int:
        """Delete every object a batch journal remembers (of this prefix), forgetting each
        there once deleted; returns how many were deleted. The journal may be owned by a run
        meanwhile (it is opened only to look at and to forget uploads)."""
        from .._batches.journal import Journal

        memo = await asyncio.to_thread(functools.partial(Journal, journal, lock=False, memo=True))
        try:
            names = await asyncio.to_thread(memo.uploads)
            mine = [name for name in names if name.startswith(self.prefix)]
            return await self._delete(mine, [memo])
        finally:
            await asyncio.to_thread(memo.close)

    async def aclose(self) -> None:
        """Close the OSS client; with ``delete_after``, delete every object this uploader
        handed out (:attr:`handed_out`) and forget it in the journals that remembered it."""
        try:
            if self.delete_after and self.handed_out:
                await self._delete_handed_out()
        finally:
            client, self._client = self._client, None
            journal, self._journal = self._journal, None
            if journal is not None:
                journal.close()
            if client is not None:
                await client.close()

    # -- internals -----------------------------------------------------------------------------

    def _object_of(self, url: str) -> str | None:
        path = unquote(urlsplit(url).path).lstrip("/")
        if path.startswith(self.bucket + "/"):  # path-style
            path = path[len(self.bucket) + 1 :]
        return path if path.startswith(self.prefix) else None

    async def _delete_handed_out(self) -> None:
        """Delete :attr:`handed_out`, forgetting each object in every memo it was remembered
        in: a batch's journal closed at the batch's end is opened again for that."""
        from .._batches.journal import Journal

        closed = [getattr(m, "path", None) for m in self._memos if getattr(m, "closed", False)]
        again = [functools.partial(Journal, p, lock=False, memo=True) for p in closed if p]
        reopened = [await asyncio.to_thread(open_journal) for open_journal in again]
        try:
            await self._delete(list(self.handed_out), [*self._open_memos(), *reopened])
        finally:
            for journal in reopened:
                await asyncio.to_thread(journal.close)

    def _open_memos(self) -> list[UploadMemo]:
        """The memos uploads were remembered in that are still open, this one's journal too."""
        memos = [m for m in self._memos if not getattr(m, "closed", False)]
        if self._journal_path is not None:
            memos.append(self._journalled())
        return memos

    async def _delete(self, names: list[str], memos: Iterable[UploadMemo]) -> int:
        """Delete these objects (one that is gone already counts: OSS says so too), forgetting
        each in ``memos`` and in this uploader."""
        sdk, client = self._sdk()
        for name in names:
            try:
                await client.delete_object(sdk.DeleteObjectRequest(bucket=self.bucket, key=name))
            except sdk.exceptions.BaseError as exc:
                raise UploadError(f"OSS refused to delete {name}: {_reason(exc)}") from None
            self._urls.pop(name, None)
            self.handed_out.pop(name, None)
            for memo in memos:
                await asyncio.to_thread(memo.forget_upload, name)
        return len(names)

    async def _presign(
        self, name: str, memo: UploadMemo | None = None, digest: str | None = None
    ) -> PresignedURL:
        sdk, client = self._sdk()
        result = await client.presign(
            sdk.GetObjectRequest(bucket=self.bucket, key=name),
            expires=datetime.timedelta(seconds=self.expires),
        )
        self.presigns += 1
        self.handed_out[name] = None
        url = PresignedURL(str(result.url))
        expires = self._clock() + self.expires
        self._urls[name] = (url, expires)
        if memo is None and self._journal_path is not None:
            memo = self._journalled()
        if memo is not None:
            await asyncio.to_thread(memo.remember_upload, name, digest, expires)
        return url

    def _journalled(self) -> Any:
        if self._journal is None:
            from .._batches.journal import Journal

            assert self._journal_path is not None
            self._journal = Journal(  # a batch may own it
                self._journal_path, lock=False, shared=self._shared_files, memo=True
            )
        return self._journal

    def _sdk(self) -> tuple[Any, Any]:
        try:
            import alibabacloud_oss_v2 as sdk  # type: ignore[import-untyped]
            import alibabacloud_oss_v2.aio as sdk_aio  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InvalidArgument(
                "OSSUploader needs the OSS client: pip install 'aiportrait[oss]'"
            ) from exc
        if self._client is None:
            cfg = sdk.config.load_default()
            cfg.credentials_provider = sdk.credentials.StaticCredentialsProvider(
                self._key_id, str(self._secret), self._token and str(self._token)
            )
            cfg.region = self.region or "local"
            if self.endpoint:
                cfg.endpoint = self.endpoint
            if self._path_style is not None:
                cfg.use_path_style = self._path_style
            self._client = sdk_aio.AsyncClient(cfg)
        return sdk, self._client


def _reason(exc: Exception) -> str:
    """Code and message of an OSS error, without request details (no signed URL, no key)."""
    unwrap = getattr(exc, "unwrap", None)
    inner = unwrap() if callable(unwrap) else exc
    code = getattr(inner, "code", None)
    status = getattr(inner, "status_code", None)
    if code:
        message = getattr(inner, "message", "") or ""
        return f"{status} {code} {message}".strip()
    return type(inner).__name__
