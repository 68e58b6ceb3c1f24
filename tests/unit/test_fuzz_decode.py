"""Hypothesis feeds the decoder arbitrary answers: only errors from the tree may escape."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiportrait
from aiportrait import RetryPolicy, Session
from aiportrait._wire.codec import (
    decode_batch,
    decode_check,
    decode_job,
    decode_portrait,
    decode_train,
    parse_train_result,
)
from aiportrait._wire.transport import Transport
from tests._mock import Fake

TRANSPORT = Transport("h.example", "a", "t")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    ["job", "jobs", "state", "Result", "result", "image", "check_results", "images", "code",
     "url", "message", "frontal", "job_id", "model_id", "cost_time", "id", "states"]
)  # fmt: skip
SHAPED = st.recursive(
    JSON,
    lambda inner: st.dictionaries(FIELDS, inner, max_size=6) | st.lists(inner, max_size=3),
    max_leaves=25,
)
DECODERS = [
    lambda d: decode_check(d, "r"),
    decode_train,
    lambda d: decode_job(d, 1, "r"),
    lambda d: decode_batch(d, "r"),
    lambda d: decode_portrait(d, "r"),
]


def _decode_all(status: int, body: bytes, lift: str | None = None) -> None:
    try:
        answer = TRANSPORT._answer(status, bytearray(body), "POST", "/p", None, lift)
    except aiportrait.AIPortraitError:
        return
    for decode in DECODERS:
        with contextlib.suppress(aiportrait.AIPortraitError):
            decode(answer.data)
    with contextlib.suppress(aiportrait.AIPortraitError):
        decode_portrait(answer.data, "r", answer.lifted)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.sampled_from([200, 201, 400, 429, 462, 500, 503]), body=st.binary(max_size=300))
def test_arbitrary_bytes(status: int, body: bytes) -> None:
    _decode_all(status, body)
    _decode_all(status, body, lift="image")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 462, 500]),
    code=st.one_of(st.just("OK"), JSON),
    data=SHAPED,
    truncate=st.integers(min_value=0, max_value=40),
)
def test_envelopes_with_wrong_types_missing_fields_and_truncation(
    status: int, code: Any, data: Any, truncate: int
) -> None:
    body = json.dumps({"request_id": "r", "code": code, "message": "m", "data": data}).encode()
    _decode_all(status, body)
    _decode_all(status, body, lift="image")
    if truncate:
        _decode_all(status, body[:-truncate], lift="image")


@settings(max_examples=50)
@given(size=st.integers(min_value=0, max_value=200_000), char=st.sampled_from('A/=\\x"'))
def test_huge_fields(size: int, char: str) -> None:
    image = char * size
    body = json.dumps({"code": "OK", "data": {"image": image, "check_results": [image]}})
    _decode_all(200, body.encode(), lift="image")


def test_lifted_image_equals_parsed_image() -> None:
    body = b'{"code":"OK","data":{"cost_time":1.5,"image":"aGVsbG8="}}'
    answer = TRANSPORT._answer(200, bytearray(body), "POST", "/p", None, "image")
    assert answer.lifted is not None
    assert bytes(answer.lifted) == b"aGVsbG8="
    assert decode_portrait(answer.data, "r", answer.lifted).image == b"hello"
    # Escapes inside the value (a PHP-style "\/") fall back to the full parse, same result.
    body = b'{"code":"OK","data":{"image":"aGVs\\/bG8="}}'
    answer = TRANSPORT._answer(200, bytearray(body), "POST", "/p", None, "image")
    assert answer.lifted is None
    assert (
        decode_portrait(answer.data, "r").image
        == decode_portrait({"image": "aGVs/bG8="}, "r").image
    )


async def test_deep_json_and_odd_states_stay_in_the_tree() -> None:
    deep = b"[" * 100_000
    with Fake([(200, {}, deep)] * 4) as fake:
        async with Session(fake.url, "a", "t", retry=RetryPolicy.NEVER) as session:
            with pytest.raises(aiportrait.errors.MalformedResponse):
                await session.get_job(1)
    assert parse_train_result('{"model_id": "m", "states": 5}') == aiportrait.TrainResult("m")
