"""What one request may cost the emulator: refused before its body when no app sent it, nothing of
it kept afterwards, a bounded amount of image work, and a bounded time to arrive."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiportrait.emulator import Emulator
from aiportrait.emulator._errors import BODY_TIMEOUT, BODY_TOO_LARGE
from aiportrait.emulator._service import FETCH_CONCURRENCY
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH, NOT_FOUND_APPID, SIGN_ERROR

from .conftest import APP_ID, TOKEN, data_url, send, sign

# -- a raw HTTP/1.1 client: headers now, the body perhaps never ---------------------------------


async def _open(emu: Emulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", emu.port)


def _head(path: str, length: int, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """One response (status and JSON body), read within a generous bound."""

    async def read() -> tuple[int, dict[str, Any]]:
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, json.loads(await reader.readexactly(length))

    return await asyncio.wait_for(read(), 10)


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (within a generous bound)."""
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return True
    return rest == b""


def _triple(envelope: dict[str, Any], status: int) -> tuple[int, str, str]:
    return status, envelope["code"], envelope["message"]


# -- 14: refused before the body is read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, NOT_FOUND_APPID),
        ("nobody:" + "0" * 64, NOT_FOUND_APPID),
        (f"{APP_ID}:not-a-signature", SIGN_ERROR),
    ],
)
async def test_requests_no_app_signed_are_refused_before_their_body(
    emu: Emulator, authorization: str | None, expected: tuple[int, str, str]
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reader, writer = await _open(emu)
    try:
        # 50 MB announced, none sent: the answer can only come before the body.
        writer.write(_head(CHECK_PATH, 50_000_000, **headers))
        await writer.drain()
        status, envelope = await _response(reader)
        assert _triple(envelope, status) == expected
    finally:
        writer.close()
    assert emu.counters.gateway_errors == 1
    assert not emu.counters.fingerprints


async def test_a_body_announced_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, max_body_bytes=1000) as emu:
        reader, writer = await _open(emu)
        try:
            auth = f"{APP_ID}:{sign(TOKEN, 'POST', CHECK_PATH, b'x' * 5000)}"
            writer.write(_head(CHECK_PATH, 5000, Authorization=auth))
            await writer.drain()
            status, envelope = await _response(reader)
            assert _triple(envelope, status) == BODY_TOO_LARGE
        finally:
            writer.close()


async def test_nothing_of_a_request_outlives_it(emu: Emulator) -> None:
    """With the garbage collector off, a body kept by a reference cycle (an exception holding the
    frames that hold the body) would stay: memory must come back to where it was, whatever the
    answer was."""
    padding = "x" * 2_000_000
    bodies: list[tuple[str, bytes, str | None]] = [
        (CHECK_PATH, json.dumps({"images": [], "pad": padding}).encode(), None),  # 200
        (CHECK_PATH, b"{" + padding.encode(), None),  # not JSON: 400
        (CHECK_PATH, json.dumps({"images": "x", "pad": padding}).encode(), None),  # 400
        (CHECK_PATH, json.dumps({"images": [], "pad": padding}).encode(), "wrong"),  # 401
        (CHECK_PATH, json.dumps({"images": [], "pad": padding}).encode(), ""),  # 400 no app
        (CREATE_PATH, json.dumps({"model_id": 5, "pad": padding}).encode(), None),  # 462
        (CREATE_PATH, json.dumps({"model_id": "nope", "template_image": "x"}).encode(), None),
    ]

    async def run_all() -> list[int]:
        statuses = []
        for path, body, token in bodies:
            if token == "":
                reply = await send(emu, path, body, authorization="nobody:x")
            else:
                reply = await send(emu, path, body, token=token or TOKEN)
            statuses.append(reply.status)
        return statuses

    assert await run_all() == [200, 400, 400, 401, 400, 462, 462]  # warm every path up once
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            await run_all()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    # 21 requests of about 2 MB went through; a single kept body would be 2 MB more.
    assert grown < 1_500_000, grown


# -- 17: bounded image work per request ----------------------------------------------------------


def _png(width: int, height: int, colour: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
async def counting_origin() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A loopback image host that counts the requests for each file."""
    hits: dict[str, int] = {}
    files = {"a.png": _png(600, 600), "b.png": _png(640, 600), "c.png": _png(600, 640)}

    async def image(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        if name not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[name], content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    await runner.cleanup()


async def test_a_url_named_many_times_is_fetched_and_analysed_once(
    emu: Emulator, counting_origin: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiportrait._vision import check

    analysed = []
    real = check.examine

    def counting(*args: Any, **kwargs: Any) -> Any:
        analysed.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(check, "examine", counting)
    base, hits = counting_origin
    urls = [f"{base}/a.png"] * 60 + [f"{base}/b.png"]
    reply = await send(emu, CHECK_PATH, {"images": urls})
    assert reply.status == 200
    assert hits == {"a.png": 1, "b.png": 1}
    assert len(analysed) == 2
    results = reply.data["check_results"]
    assert [r["url"] for r in results] == urls
    assert len({json.dumps({**r, "url": ""}) for r in results[:60]}) == 1  # all the same verdict


async def test_photos_past_the_pixel_budget_are_not_decoded(
    tmp_path: Path, counting_origin: tuple[str, dict[str, int]]
) -> None:
    base, _ = counting_origin
    budget = 600 * 600 + 640 * 600  # a.png and b.png, not c.png
    async with Emulator(app_id=APP_ID, token=TOKEN, max_request_pixels=budget) as emu:
        urls = [f"{base}/a.png", f"{base}/b.png", f"{base}/c.png", f"{base}/a.png"]
        reply = await send(emu, CHECK_PATH, {"images": urls})
    results = reply.data["check_results"]
    assert [r["code"] for r in results] == [3, 3, 2, 3]  # flat pictures: no face
    assert results[2]["message"] == "Image decode error."
    assert "--max-request-pixels" in results[2]["emulator_detail"]


async def test_an_extreme_aspect_ratio_is_analysed_shrunk(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiportrait._vision import check
    from aiportrait._vision.limits import PHOTO_SIDE
    from aiportrait._vision.sources import Fetched
    from aiportrait.emulator._work import Worker

    shapes: list[tuple[int, ...]] = []
    monkeypatch.setattr(
        check, "examine", lambda engine, img, **kw: shapes.append(img.shape) or check.Examined()
    )
    worker = Worker(workers=1)
    try:
        budget = worker.budget()
        worker.examine(Fetched(_png(600, 20_000)), budget)  # 12 MP, under max_pixels
        exam, _ = worker.examine(Fetched(_png(2, 30_000)), budget)
    finally:
        worker.close()
    assert len(shapes) == 1
    assert max(shapes[0][:2]) <= PHOTO_SIDE
    assert exam.verdict is not None
    assert exam.verdict.code == 2
    assert exam.verdict.detail == "image is 2x30000, smaller than 512x512"  # from its header


async def test_photos_are_analysed_one_at_a_time_with_few_downloads_held(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = emu._running
    held = 0
    most = 0
    real_fetch, real_examine = service._fetch, service.worker.examine

    async def fetch(url: str) -> Any:
        nonlocal held, most
        source = await real_fetch(url)
        held += 1
        most = max(most, held)
        return source

    def examine(*args: Any, **kwargs: Any) -> Any:
        nonlocal held
        held -= 1
        return real_examine(*args, **kwargs)

    monkeypatch.setattr(service, "_fetch", fetch)
    monkeypatch.setattr(service.worker, "examine", examine)
    urls = [data_url(_png(520 + i, 520)) for i in range(12)]
    reply = await send(emu, CHECK_PATH, {"images": urls})
    assert reply.status == 200
    assert len(reply.data["check_results"]) == 12
    assert held == 0
    assert most <= FETCH_CONCURRENCY


# -- 18: a request that does not arrive in time --------------------------------------------------


async def test_a_half_written_body_times_out_and_closes_the_connection() -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, read_timeout=0.3) as emu:
        reader, writer = await _open(emu)
        try:
            auth = f"{APP_ID}:{sign(TOKEN, 'POST', CHECK_PATH, b'{}' * 50)}"
            writer.write(_head(CHECK_PATH, 100, Authorization=auth) + b'{"images": [')
            await writer.drain()
            status, envelope = await _response(reader)  # then nothing more is sent
            assert _triple(envelope, status) == BODY_TIMEOUT
            assert await _closed(reader)
        finally:
            writer.close()
        assert emu.counters.read_timeouts == 1


async def test_half_written_headers_and_idle_connections_are_closed() -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, read_timeout=0.3) as emu:
        reader, writer = await _open(emu)
        try:
            writer.write(b"POST /api/v1/aigc_images/check HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await writer.drain()
            assert await _closed(reader)
        finally:
            writer.close()
        reader, writer = await _open(emu)  # sends nothing at all
        try:
            assert await _closed(reader)
        finally:
            writer.close()


async def test_a_body_sent_in_time_is_read_whatever_its_pace() -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, read_timeout=5.0) as emu:
        body = json.dumps({"images": [data_url(base64.b64decode(b"AAAA"))]}).encode()
        reader, writer = await _open(emu)
        try:
            auth = f"{APP_ID}:{sign(TOKEN, 'POST', CHECK_PATH, body)}"
            writer.write(_head(CHECK_PATH, len(body), Authorization=auth) + body[:10])
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(body[10:])
            status, envelope = await _response(reader)
        finally:
            writer.close()
    assert (status, envelope["code"]) == (200, "OK")
    assert envelope["data"]["check_results"][0]["code"] == 2
