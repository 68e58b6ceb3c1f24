"""The emulator's OSS-compatible bucket, driven by the real alibabacloud_oss_v2 asyncio client."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aiportrait.emulator import Emulator

oss = pytest.importorskip("alibabacloud_oss_v2")
oss_aio = pytest.importorskip("alibabacloud_oss_v2.aio")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token="secret-token") as emulator:
        yield emulator


def _client(emu: Emulator, secret: str = "secret-token") -> Any:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider("app", secret)
    cfg.region = "cn-local"
    cfg.endpoint = emu.url
    cfg.use_path_style = True
    cfg.retry_max_attempts = 1
    return oss_aio.AsyncClient(cfg)


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read()


async def test_put_head_presigned_get_and_delete(emu: Emulator) -> None:
    client = _client(emu)
    try:
        put = await client.put_object(
            oss.PutObjectRequest(
                bucket=emu.oss_bucket, key="p/a b.jpg", body=b"photo", content_type="image/jpeg"
            )
        )
        assert put.status_code == 200
        assert await client.is_object_exist(emu.oss_bucket, "p/a b.jpg")
        assert not await client.is_object_exist(emu.oss_bucket, "p/missing.jpg")
        signed = await client.presign(
            oss.GetObjectRequest(bucket=emu.oss_bucket, key="p/a b.jpg"),
            expires=datetime.timedelta(hours=24),
        )
        assert await _get(signed.url) == (200, b"photo")
        got = await client.get_object(oss.GetObjectRequest(bucket=emu.oss_bucket, key="p/a b.jpg"))
        assert got.body.content == b"photo"
        await client.delete_object(oss.DeleteObjectRequest(bucket=emu.oss_bucket, key="p/a b.jpg"))
        assert emu.bucket.objects == {}
        status, body = await _get(signed.url)
        assert status == 404
        assert b"<Code>NoSuchKey</Code>" in body
    finally:
        await client.close()


async def test_a_wrong_secret_is_refused_with_signature_does_not_match(emu: Emulator) -> None:
    client = _client(emu, secret="not-the-token")
    try:
        with pytest.raises(oss.exceptions.OperationError) as info:
            await client.put_object(
                oss.PutObjectRequest(bucket=emu.oss_bucket, key="k.jpg", body=b"x")
            )
        error = info.value.unwrap()
        assert (error.status_code, error.code) == (403, "SignatureDoesNotMatch")
        assert "not-the-token" not in str(info.value)
        assert emu.bucket.objects == {}
    finally:
        await client.close()


async def test_an_expired_or_tampered_presigned_url_is_refused(emu: Emulator) -> None:
    client = _client(emu)
    try:
        await client.put_object(oss.PutObjectRequest(bucket=emu.oss_bucket, key="k", body=b"x"))
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30)
        expired = await client.presign(
            oss.GetObjectRequest(bucket=emu.oss_bucket, key="k"), expiration=past
        )
        status, body = await _get(expired.url)
        assert status == 403
        assert b"<Code>AccessDenied</Code>" in body
        assert b"Request has expired." in body
        good = await client.presign(oss.GetObjectRequest(bucket=emu.oss_bucket, key="k"))
        status, body = await _get(good.url.replace("/k?", "/other?"))
        assert status == 403
        assert b"SignatureDoesNotMatch" in body
        status, body = await _get(f"{emu.url}/{emu.oss_bucket}/k")  # unsigned
        assert status == 403
    finally:
        await client.close()


async def test_a_bucket_told_to_refuse_puts_answers_access_denied(emu: Emulator) -> None:
    emu.bucket.refuse_puts = True
    client = _client(emu)
    try:
        with pytest.raises(oss.exceptions.OperationError) as info:
            await client.put_object(oss.PutObjectRequest(bucket=emu.oss_bucket, key="k", body=b"x"))
        assert info.value.unwrap().code == "AccessDenied"
        assert emu.bucket.refused == 1
    finally:
        await client.close()


async def test_other_paths_keep_the_api_envelope(emu: Emulator) -> None:
    async with aiohttp.ClientSession() as http, http.put(f"{emu.url}/other/k") as resp:
        assert resp.status in (404, 405)
        assert "code" in await resp.json()
