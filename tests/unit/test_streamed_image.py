"""A create answer decoded as it arrives reads exactly as the whole body read at once.

Hypothesis cuts bodies (canonical ones, odd ones, broken ones) at arbitrary chunk boundaries and
checks that the streamed path gives the same portrait, or the same error, as the whole-body path
(:func:`aiportrait._wire.streamed.lift_string` then the codec), and that a plain answer never falls
back to holding its text.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiportrait
from aiportrait._wire.codec import decode_portrait
from aiportrait._wire.streamed import StreamedString
from aiportrait._wire.transport import Transport
from tests._server import Server

TRANSPORT = Transport("h.example", "a", "t")
PNG = b"\x89PNG\r\n\x1a\n"


def _whole(body: bytes) -> tuple[str, Any]:
    try:
        answer = TRANSPORT._answer(200, bytearray(body), "POST", "/p", None, "image")
        portrait = decode_portrait(answer.data, answer.request_id, answer.lifted, answer.image)
    except aiportrait.AIPortraitError as exc:
        return type(exc).__name__, str(exc)
    return "ok", (portrait.image, portrait.cost_time, portrait.request_id, answer.data)


def _streamed(body: bytes, cuts: list[int], hint: bool) -> tuple[tuple[str, Any], bool]:
    reader = StreamedString("image", len(body) if hint else None)
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    for a, b in itertools.pairwise(edges):
        reader.feed(body[a:b])
    fell_back = reader.fell_back
    streamed = reader.finish()
    try:
        answer = TRANSPORT._answer(200, streamed[0], "POST", "/p", None, "image", streamed=streamed)
        portrait = decode_portrait(answer.data, answer.request_id, answer.lifted, answer.image)
    except aiportrait.AIPortraitError as exc:
        return (type(exc).__name__, str(exc)), fell_back or streamed[1] is None
    outcome = (portrait.image, portrait.cost_time, portrait.request_id, answer.data)
    return ("ok", outcome), fell_back or streamed[1] is None


def _envelope(text: bytes, *, before: bytes = b"", after: bytes = b"") -> bytes:
    return (
        b'{"request_id":"r","code":"OK","message":"success","data":{"cost_time":1.5,'
        + before
        + b'"image":"'
        + text
        + b'"'
        + after
        + b"}}"
    )


CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)
IMAGES = st.binary(min_size=0, max_size=600).map(lambda b: PNG + b)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(image=IMAGES, cuts=CUTS, hint=st.booleans(), pretty=st.booleans())
def test_a_plain_answer_is_decoded_on_the_way_in(
    image: bytes, cuts: list[int], hint: bool, pretty: bool
) -> None:
    text = base64.b64encode(image)
    body = _envelope(text)
    if pretty:
        body = body.replace(b'"image":"', b'"image" :\n "')
    got, fell_back = _streamed(body, cuts, hint)
    assert got == _whole(body)
    assert got[0] == "ok" and got[1][0] == image
    assert not fell_back


ODD = st.sampled_from(
    [b"\\/", b"\\n", b"\\\\", b"\\u0041", b"=", b"==", b"===", b" ", b"\n", b"\r\n", b"-", b"_",
     b"*", b"data:image/png;base64,", b"data:", b",", b"A", b"AB", b"ABC", b"\xc3\xa9", b"\x00"]
)  # fmt: skip


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=IMAGES,
    cuts=CUTS,
    hint=st.booleans(),
    insert=st.lists(st.tuples(st.integers(min_value=0), ODD), max_size=3),
    before=st.sampled_from([b"", b'"x":"\\"image\\"",', b'"image2":1,', b'"note":"image",']),
    after=st.sampled_from([b"", b',"image":"QUJD"', b',"cost_time":2']),
)
def test_an_odd_answer_reads_as_the_whole_body_would(
    image: bytes,
    cuts: list[int],
    hint: bool,
    insert: list[tuple[int, bytes]],
    before: bytes,
    after: bytes,
) -> None:
    text = bytearray(base64.b64encode(image))
    for at, odd in insert:
        at %= len(text) + 1
        text[at:at] = odd
    body = _envelope(bytes(text), before=before, after=after)
    assert _streamed(body, cuts, hint)[0] == _whole(body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300), cuts=CUTS, hint=st.booleans())
def test_arbitrary_bytes_read_as_the_whole_body_would(
    body: bytes, cuts: list[int], hint: bool
) -> None:
    assert _streamed(body, cuts, hint)[0] == _whole(body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(image=IMAGES, cut=st.integers(min_value=0), cuts=CUTS)
def test_a_truncated_answer_reads_as_the_whole_body_would(
    image: bytes, cut: int, cuts: list[int]
) -> None:
    body = _envelope(base64.b64encode(image))
    body = body[: cut % len(body)]
    assert _streamed(body, cuts, True)[0] == _whole(body)


def test_first_bytes_of_an_unreadable_answer_are_quoted_as_sent() -> None:
    body = _envelope(base64.b64encode(PNG * 40))[:-1]  # the last brace is missing
    got = _streamed(body, [7, 300], True)[0]
    assert got == _whole(body)
    assert got[0] == "MalformedResponse" and "iVBOR" in got[1]


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("escaped", [True, False])
async def test_gzip_and_chunked_answers_and_escapes_over_http(
    compress: bool, escaped: bool
) -> None:
    image = PNG + bytes(range(256)) * 300
    text = base64.b64encode(image)
    if escaped:
        text = text.replace(b"/", b"\\/")  # as some JSON encoders write it
    body = _envelope(text, after=b',"request_id":"inner"')
    if compress:
        answer = (200, {"Content-Encoding": "gzip"}, gzip.compress(body))
    else:
        answer = (200, {"Transfer-Encoding": "chunked"}, body)  # no Content-Length
    async with Server(ok=answer) as server:
        async with aiportrait.Session(server.url, "a", "t") as session:
            portrait = await session.create("m", "https://t/x.jpg")
            assert portrait.image == image
            assert portrait.cost_time == 1.5
            assert portrait.request_id == "r"
            small = session.with_options(retry=aiportrait.RetryPolicy.NEVER)
            small._transport.max_response_bytes = 4096
            with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await small.create("m", "https://t/x.jpg")
            assert isinstance(info.value.__cause__, aiportrait.errors.ResponseTooLarge)


def test_the_decoded_image_is_the_buffer_itself() -> None:
    image = PNG + bytes(range(256)) * 4000
    body = _envelope(base64.b64encode(image))
    reader = StreamedString("image", len(body))
    for at in range(0, len(body), 65536):
        reader.feed(body[at : at + 65536])
    envelope, decoded, _ = reader.finish()
    assert decoded == image and type(decoded) is bytes
    assert json.loads(envelope)["data"]["image"] == ""
