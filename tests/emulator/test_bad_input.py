"""Malformed headers, paths and image URLs get a 4xx or the documented per-image verdict, never a
500; and each malformed body gets the message for its own cause."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiportrait._vision.verdicts import CHECK_MESSAGES
from aiportrait.emulator import Emulator
from aiportrait.emulator._errors import BAD_BODY, BROKEN_BODY, ENCODED_BODY, ApiError
from aiportrait.emulator._service import MAX_IMAGES, TOO_MANY_IMAGES
from aiportrait.emulator._wire import (
    CHECK_PATH,
    CREATE_PATH,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
    NOT_FOUND_APPID,
    SIGN_ERROR,
)

from .conftest import APP_ID, TOKEN, ThreadedEmulator, send, sign

QUOTA = 10_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    media = tmp_path_factory.mktemp("media")
    (media / "notes.txt").write_text("not a photo")
    with ThreadedEmulator(
        app_id=APP_ID, token=TOKEN, train_seconds=0.01, serve_dir=media, quota=QUOTA
    ) as emu:
        yield emu


def request(
    emu: Emulator,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str | bytes] | None = None,
    *,
    signed: bool = False,
) -> tuple[int, bytes]:
    """Send exactly these bytes (header values may be any bytes); returns status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        all_headers: dict[str, str | bytes] = {"Content-Length": str(len(body))}
        if signed:
            all_headers["Authorization"] = f"{APP_ID}:{sign(TOKEN, method, path, body)}"
        all_headers.update(headers or {})
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def triple(status: int, raw: bytes) -> tuple[int, str, str]:
    envelope = json.loads(raw)
    return status, envelope["code"], envelope["message"]


# -- the cases found in review -------------------------------------------------------------------


def test_authorization_that_is_not_utf8(served: Emulator) -> None:
    for value in (b"local-app:\xff\xfe", f"{APP_ID}:".encode() + b"\xff\xfe" * 32, b"\xff:\xfe"):
        status, raw = request(served, "POST", CHECK_PATH, b"{}", {"Authorization": value})
        assert triple(status, raw) in (SIGN_ERROR, NOT_FOUND_APPID), value


def test_media_names_that_no_file_can_have(served: Emulator) -> None:
    for path in ("/media/a%00b.jpg", "/media/" + "x" * 5000 + ".jpg", "/media/a%0Ab", "/media/%ff"):
        status, raw = request(served, "GET", path)
        assert triple(status, raw) == (404, "NOT_FOUND", "not found"), path


def test_image_urls_with_nul_bytes_get_verdicts_and_cost_no_failed_call(served: Emulator) -> None:
    app = served.apps[APP_ID]
    used = app.used
    media = f"{served.url}/media/a%00b.jpg"
    urls = [media, "file:///etc/pass%00wd", f"{served.url}/media/%00", "http://127.0.0.1:1/%00"]
    status, raw = request(
        served, "POST", CHECK_PATH, json.dumps({"images": urls}).encode(), signed=True
    )
    assert status == 200, raw
    results = json.loads(raw)["data"]["check_results"]
    assert [(r["code"], r["message"]) for r in results] == [(2, CHECK_MESSAGES[2])] * 4
    assert all(r["emulator_detail"] for r in results)
    for configure, message in (
        ({}, E462_TEMPLATE_DECODE),
        ({"ipa_control_only": True, "ipa_image_path": media}, E462_ROOP_DECODE),
    ):
        body = {"model_id": "", "template_image": media, "configure": configure}
        if not configure:
            body["model_id"] = "no-such-model"
        status, raw = request(served, "POST", CREATE_PATH, json.dumps(body).encode(), signed=True)
        assert status == 462, raw
        if configure:
            assert json.loads(raw)["message"] == message
    assert app.used == used + 3  # answered calls count; none of them was an emulator failure


# -- every malformed input, generated ------------------------------------------------------------

_header_bytes = st.binary(max_size=90).filter(lambda b: not set(b) & set(b"\r\n\x00"))
authorizations = st.one_of(
    _header_bytes,
    _header_bytes.map(lambda b: APP_ID.encode() + b":" + b),
    st.text(max_size=70).map(lambda t: f"{APP_ID}:{t}".encode("utf-8", "surrogatepass")),
).filter(lambda b: not set(b) & set(b"\r\n\x00"))
names = st.text(max_size=300) | st.sampled_from(["", ".", "..", "\x00", "%00", "a\x00b", "x" * 600])
paths = st.one_of(
    names.map(lambda n: "/media/" + quote(n, safe="", errors="surrogatepass")),
    names.map(lambda n: "/api/v1/async_jobs/" + quote(n, safe="", errors="surrogatepass")),
    names.map(lambda n: "/api/v1/batch_jobs/" + quote(n, safe="", errors="surrogatepass")),
    names.map(lambda n: "/" + quote(n, safe="/%", errors="surrogatepass")),
)
url_prefixes = st.sampled_from(
    [
        "",
        "data:",
        "data:image/png;base64,",
        "file://",
        "file:///",
        "http://127.0.0.1:1/",
        "http://[::1",
        "http://localhost:99999/",
        "https://",
        "ftp://x/",
        "MEDIA",
    ]
)
url_tails = st.text(max_size=60) | st.sampled_from(["%00", "\x00", "\ud800", "%ff%fe", "?a=%00"])


def _url(emu: Emulator, prefix: str, tail: str) -> str:
    return (f"{emu.url}/media/" if prefix == "MEDIA" else prefix) + tail


def _no_500(status: int, raw: bytes) -> dict[str, Any]:
    assert status < 500, (status, raw[:300])
    if status == 400 and not raw.startswith(b"{"):
        return {}  # a header aiohttp's parser refuses (a control character): its plain 400
    envelope: dict[str, Any] = json.loads(raw)
    assert set(envelope) == {"request_id", "code", "message", "data"}
    return envelope


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(authorization=authorizations, request_time=st.none() | _header_bytes)
def test_any_authorization_header_gets_a_4xx(
    served: Emulator, authorization: bytes, request_time: bytes | None
) -> None:
    headers: dict[str, str | bytes] = {"Authorization": authorization}
    if request_time is not None:
        headers["X-Request-Time"] = request_time
    status, raw = request(served, "POST", CHECK_PATH, b'{"images": []}', headers)
    _no_500(status, raw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=paths, method=st.sampled_from(["GET", "POST"]))
def test_any_path_gets_an_answer_below_500(served: Emulator, path: str, method: str) -> None:
    status, raw = request(served, method, path, signed=True)
    assert status < 500, (status, raw[:300])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls=st.lists(st.tuples(url_prefixes, url_tails), min_size=1, max_size=3))
def test_any_image_url_gets_a_verdict_or_a_create_error(
    served: Emulator, urls: list[tuple[str, str]]
) -> None:
    images = [_url(served, prefix, tail) for prefix, tail in urls]
    body = json.dumps({"images": images}).encode()
    envelope = _no_500(*request(served, "POST", CHECK_PATH, body, signed=True))
    for result in envelope["data"]["check_results"]:
        assert result["message"] == CHECK_MESSAGES[result["code"]]
        assert isinstance(result["emulator_detail"], str)
    configure = {"ipa_control_only": True, "ipa_image_path": images[0]}
    body = json.dumps({"template_image": images[-1], "configure": configure}).encode()
    _no_500(*request(served, "POST", CREATE_PATH, body, signed=True))


# -- 16: each malformed body gets its own message ------------------------------------------------


def test_each_body_problem_has_its_own_message(served: Emulator) -> None:
    status, raw = request(served, "POST", CHECK_PATH, b"{not json", signed=True)
    assert triple(status, raw) == BAD_BODY
    assert BAD_BODY[2] == "Invalid input data. Please check the input dict."
    status, raw = request(
        served, "POST", CHECK_PATH, b"{}", {"Content-Encoding": "gzip"}, signed=True
    )
    assert triple(status, raw) == ENCODED_BODY
    too_many = json.dumps({"images": ["data:,x"] * (MAX_IMAGES + 1)}).encode()
    status, raw = request(served, "POST", CHECK_PATH, too_many, signed=True)
    assert triple(status, raw) == TOO_MANY_IMAGES
    assert len({BAD_BODY[2], ENCODED_BODY[2], BROKEN_BODY[2], TOO_MANY_IMAGES[2]}) == 4


async def test_a_body_that_is_not_what_its_content_encoding_says_is_refused(
    emu: Emulator,
) -> None:
    reply = await send(emu, CHECK_PATH, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert reply.status == 400
    assert reply.json["code"] == "PARAMETER_ERROR"


async def test_a_body_broken_in_transfer_is_refused() -> None:
    """aiohttp's parser drops a chunked body whose chunk size is garbage without telling the
    handler, which then waits for the rest: the read timeout answers 408 and closes."""
    async with Emulator(app_id=APP_ID, token=TOKEN, read_timeout=0.3) as emu:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        try:
            auth = f"{APP_ID}:{sign(TOKEN, 'POST', CHECK_PATH, b'{}')}"
            head = f"POST {CHECK_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
            writer.write(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"zz\r\n")  # "zz" is no chunk size
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.split()[1] in (b"400", b"408")
            assert await asyncio.wait_for(reader.read(), 10)  # the rest of the answer, then EOF
        finally:
            writer.close()


async def test_a_payload_error_is_its_own_400() -> None:
    from aiohttp import web

    from aiportrait.emulator._app import Settings, _read_body

    class Content:
        async def readany(self) -> bytes:
            raise web.RequestPayloadError("cut off")

    class Broken:  # the parts of a request _read_body uses
        def __init__(self) -> None:
            self.content_length = None
            self.headers = {"Content-Type": "application/json"}
            self.content = Content()

    settings = Settings(time_skew=None, serve_dir=None, max_body=100, read_timeout=5)
    with pytest.raises(ApiError) as info:
        await _read_body(Broken(), settings)  # type: ignore[arg-type]
    assert (info.value.status, info.value.code, info.value.message) == BROKEN_BODY


def test_still_serving(served: Emulator, tmp_path: Path) -> None:
    status, raw = request(served, "POST", CHECK_PATH, b'{"images": []}', signed=True)
    assert (status, json.loads(raw)["code"]) == (200, "OK")
