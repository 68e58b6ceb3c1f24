"""Malformed requests of every shape get a clear 4xx envelope; the server never answers 500 for
them and keeps serving."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiportrait.emulator import Emulator
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH, TRAIN_PATH

from .conftest import Photos, ThreadedEmulator, data_url, send

APP, TOKEN = "fuzz-app", "fuzz-token"
PATHS = [CHECK_PATH, TRAIN_PATH, CREATE_PATH, "/api/v1/async_jobs/1", "/api/v1/batch_jobs/1"]
ALLOWED = {200, 400, 401, 404, 405, 413, 462, 469}


@pytest.fixture(scope="module")
def served() -> Iterator[Emulator]:
    with ThreadedEmulator(
        app_id=APP, token=TOKEN, train_seconds=0.01, max_body_bytes=20_000
    ) as emu:
        yield emu


def post(emu: Emulator, path: str, body: bytes, method: str = "POST") -> tuple[int, Any]:
    msg = f"{method}\n{hashlib.md5(body).hexdigest()}\n{path}".encode()
    sig = hmac.new(TOKEN.encode(), msg, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        emu.url + path,
        data=body if method == "POST" else None,
        method=method,
        headers={"Authorization": f"{APP}:{sig}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "t2i_generate",
            "data:,x",
            "data:image/png;base64,AAAA",
            "create_xl",
            "train_xl",
            "http://127.0.0.1:1/a.png",
            "file:///etc/passwd",
            "../../x",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
configure = st.dictionaries(
    st.sampled_from(
        [
            "lora_weights",
            "more_like_me",
            "ipa_control_only",
            "ipa_image_path",
            "t2i_prompt",
            "scene_id",
            "style_name",
            "first_diffusion_steps",
            "train_scene_lora_bool",
            "scene_lora_prompts",
            "photo_enhancement_method",
            "unknown",
        ]
    ),
    json_values,
    max_size=5,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "action": json_values,
            "images": st.one_of(json_values, st.lists(st.text(max_size=30), max_size=3)),
            "model_name": json_values,
            "model_id": json_values,
            "model_ids": st.one_of(json_values, st.lists(st.text(max_size=10), max_size=3)),
            "template_image": json_values,
            "configure": st.one_of(json_values, configure),
        },
    ).map(lambda d: json.dumps(d, allow_nan=True).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), body=bodies)
def test_malformed_requests_get_clear_errors(served: Emulator, path: str, body: bytes) -> None:
    status, envelope = post(served, path, body)
    assert status in ALLOWED, (status, envelope)
    assert set(envelope) == {"request_id", "code", "message", "data"}
    if status != 200:
        assert envelope["message"]


async def test_deeply_nested_or_huge_bodies_get_4xx_envelopes_not_500(
    emu: Emulator, photos: Photos
) -> None:
    deep = b"[" * 200_000
    reply = await send(emu, CHECK_PATH, deep)
    assert reply.status == 400
    reply = await send(emu, CREATE_PATH, deep)
    assert reply.status == 462
    body = {"model_id": "m", "template_image": data_url(photos.grace[0]),
            "configure": {"lora_weights": 10**400}}  # fmt: skip
    reply = await send(emu, CREATE_PATH, json.dumps(body))
    assert reply.status == 462
    assert reply.json["message"].startswith("Invalid input data")


def test_still_serving_after_the_fuzzing(served: Emulator) -> None:
    status, envelope = post(served, CHECK_PATH, b'{"images": []}')
    assert (status, envelope["code"]) == (200, "OK")
    assert served.counters.requests > 0
