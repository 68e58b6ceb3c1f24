"""The pieces that keep presigned URLs out of Temporal: the converter's cut (uploaded and
echoed URLs without their query, a URL the user gave as given), the worker's presign of its
own objects only, failure details without a request, and the encrypting codec."""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
from typing import Any

import aiohttp
import pytest

pytest.importorskip("temporalio")

from temporalio.api.common.v1 import Payload

from aiportrait import TrainRequest
from aiportrait import temporal as at
from aiportrait._wire.signing import PresignedURL
from aiportrait.errors import InvalidArgument, JobFailed, SubmitOutcomeUnknown
from aiportrait.models import CheckReport, CheckVerdict, ImageCheck
from aiportrait.temporal._presign import presigned_again
from aiportrait.temporal._wire import from_data, to_data
from aiportrait.uploads import OSSUploader

SIGNED = "x-oss-signature"
KEY = base64.b64encode(bytes(range(32))).decode()


def test_failure_details_hold_no_request() -> None:
    url = PresignedURL(_SIGNED_URL)
    unknown = SubmitOutcomeUnknown(f"train of {url.reveal()} may have run", action="train",
                                   request={"images": [url]})  # fmt: skip
    info = at.ErrorInfo.of(unknown)
    assert info.attributes == {"action": "train", "request": None, "request_id": ""}
    assert SIGNED not in info.message and _URL in info.message
    back = info.exception()
    assert isinstance(back, SubmitOutcomeUnknown) and back.request is None
    # a job's raw_result keeps what the service said, its URLs without their query (a Go
    # service writes "&" as "\u0026" in JSON)
    raw = json.dumps({"states": [{"url": _SIGNED_URL, "code": 3}]})
    for text in (raw, raw.replace("&", "\\u0026")):
        failed = at.ErrorInfo.of(JobFailed(7, "bad photos", text))
        data = json.dumps(to_data(failed))
        assert SIGNED not in data and "x-oss-credential" not in data
        assert _URL in from_data(json.loads(data), at.ErrorInfo).attributes["raw_result"]


def test_the_codec_round_trips_and_refuses_another_key_by_name() -> None:
    codec = at.EncryptionCodec(KEY)
    assert KEY not in repr(codec) and codec.key_id in repr(codec)
    with pytest.raises(TypeError):
        pickle.dumps(codec)
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"url": "https://x/y"}')
    (sealed,) = asyncio.run(codec.encode([payload]))
    assert b"https" not in sealed.SerializeToString()
    assert asyncio.run(codec.decode([sealed])) == [payload]
    assert asyncio.run(codec.decode([payload])) == [payload]  # from before: as it is
    other = at.EncryptionCodec(bytes(32))
    with pytest.raises(ValueError, match=codec.key_id):
        asyncio.run(other.decode([sealed]))
    for bad in ("short", base64.b64encode(bytes(16)).decode(), b"x" * 31):
        with pytest.raises(InvalidArgument, match="32 bytes"):
            at.EncryptionCodec(bad)
    url_safe = base64.urlsafe_b64encode(bytes(range(200, 232))).decode().rstrip("=")
    assert at.EncryptionCodec(url_safe).key_id == at.EncryptionCodec(bytes(range(200, 232))).key_id


_URL = "https://b.oss-cn-hangzhou.aliyuncs.com/aiportrait/ab.jpg"
_SIGNED_URL = f"{_URL}?x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=k&{SIGNED}=abc"


def test_uploaded_urls_cross_without_their_query_and_given_ones_as_they_are() -> None:
    given = "https://mine.example/p.jpg?x-oss-signature=user-given"
    request = TrainRequest([PresignedURL(_SIGNED_URL), given])
    data = to_data(at.BatchItem("k", request))
    # the user's own URL is sent as given; an uploaded one is marked: presigned again
    assert data["request"]["images"] == [f"{_URL}#aiportrait-uploaded", given]
    check = ImageCheck(_SIGNED_URL, CheckVerdict.FACE_COUNT, f"no face in {_SIGNED_URL}.")
    report = CheckReport((check,), images=(_SIGNED_URL,), request_id="r1")
    back = from_data(to_data(report), CheckReport)
    assert back.results[0].url == _URL
    assert back.results[0].message == f"no face in {_URL}."
    assert back.images == (_URL,)


async def test_the_worker_presigns_only_its_own_objects(temporal_emu: Any) -> None:
    async with OSSUploader.for_emulator(temporal_emu) as uploader:
        uploaded = PresignedURL(await uploader.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg"))
        other = temporal_emu.media_url("astronaut_0.jpg")
        marked = f"{uploaded.public}#aiportrait-uploaded"
        request = TrainRequest([marked, other, f"{uploaded.public}?x=1"])
        sent = await presigned_again(request, uploader)
        given = TrainRequest([uploaded.public, other])  # not marked: the user's, as given
        assert await presigned_again(given, uploader) is given
        assert await presigned_again(given, None) is given
    fresh, kept, query = sent.images
    assert isinstance(fresh, PresignedURL) and SIGNED in fresh.reveal()
    assert fresh.public == uploaded.public
    assert (kept, query) == (other, f"{uploaded.public}?x=1")
    async with aiohttp.ClientSession() as http, http.get(fresh.reveal()) as answer:
        assert answer.status == 200 and await answer.read() == b"\xff\xd8photo"


async def test_a_worker_that_cannot_presign_an_uploaded_photo_refuses_before_sending(
    temporal_emu: Any,
) -> None:
    # A query-less URL reads nothing: sent, it is a training charged for photos it cannot
    # download. A worker without the starters' uploader (or with another bucket) says so.
    async with OSSUploader.for_emulator(temporal_emu) as uploader:
        uploaded = PresignedURL(await uploader.upload(b"\xff\xd8photo", "image/jpeg", "a.jpg"))
        request = TrainRequest([f"{uploaded.public}#aiportrait-uploaded"])
        with pytest.raises(InvalidArgument, match=r"no uploader to presign it.*nothing was sent"):
            await presigned_again(request, None)
    async with OSSUploader.for_emulator(temporal_emu, prefix="elsewhere/") as other:
        with pytest.raises(InvalidArgument, match="another bucket or endpoint"):
            await presigned_again(request, other)
