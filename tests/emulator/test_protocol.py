"""Protocol fidelity over real loopback HTTP: every official SDK's bytes, the Go vectors replayed
as captured, the envelope, and the documented gateway errors."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiportrait._vision.verdicts import CHECK_DECODE_ERROR, CHECK_SUCCESS
from aiportrait.emulator import Emulator
from aiportrait.emulator._errors import BAD_BODY, JOB_NOT_FOUND
from aiportrait.emulator._service import SCENE_PROMPTS_MISMATCH, TRAIN_PREPROCESS_FAILED
from aiportrait.emulator._wire import (
    CHECK_PATH,
    CREATE_ERROR_STATUS,
    CREATE_PATH,
    E462_INVALID_INPUT,
    E462_PROMPTS,
    E462_ROOP_DECODE,
    EXCEEDED_QUOTA,
    JOB_FAILED,
    MODEL_NOT_FOUND,
    NOT_FOUND_APPID,
    SIGN_ERROR,
    TRAIN_PATH,
)

from .conftest import APP_ID, TOKEN, Photos, data_url, send, sign

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "go_sdk_requests.json").read_text()
)


async def _raw(
    emu: Emulator, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=True) as s,
        s.request(method, emu.url + path, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.read()


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
async def test_go_vectors_replayed_as_captured(emu: Emulator, vector: dict[str, Any]) -> None:
    emu.add_app(vector["app_id"], vector["token"])
    body = base64.b64decode(vector["body_b64"])
    headers = {k: v for k, v in vector["headers"].items() if k not in ("Host", "Content-Length")}
    headers["User-Agent"] = vector["user_agent"]
    headers["X-Request-Time"] = str(int(time.time()))  # volatile; the captured one is stale
    assert headers["Authorization"] == vector["authorization"]

    status, raw = await _raw(emu, vector["method"], vector["path"], body, headers)
    envelope = json.loads(raw)
    assert status != 401, envelope
    assert list(envelope) == ["request_id", "code", "message", "data"]
    assert raw == json.dumps(envelope).encode()  # Python json.dumps defaults, like the service

    path, name = vector["path"], vector["name"]
    if path == CHECK_PATH:
        sent = json.loads(body)["images"] or []
        assert status == 200
        results = envelope["data"]["check_results"]
        assert [r["url"] for r in results] == sent
        assert all(r["code"] == CHECK_DECODE_ERROR for r in results)  # fake hosts: not fetched
        assert envelope["data"]["images"] == []
        assert list(envelope["data"]) == ["request_id", "images", "cost_time", "check_results"]
    elif path == TRAIN_PATH:
        assert status == 200, envelope
        data = envelope["data"]
        assert isinstance(data["job_id"], int)
        assert uuid.UUID(data["model_id"]).version == 4
        job = await _poll_as(emu, vector["app_id"], vector["token"], data["job_id"])
        assert job["state"] == JOB_FAILED
        assert job["message"] == TRAIN_PREPROCESS_FAILED
        assert json.loads(job["Result"])["model_id"] == data["model_id"]
    elif path == CREATE_PATH:
        assert envelope["code"] == "error"
        assert CREATE_ERROR_STATUS[envelope["message"]] == status
        expected = E462_ROOP_DECODE if name.startswith("create_ipa") else E462_PROMPTS
        assert envelope["message"] == expected
    else:
        assert name == "get_async_job_12345"
        assert (status, envelope["code"], envelope["message"]) == JOB_NOT_FOUND


async def _poll_as(emu: Emulator, app_id: str, token: str, job_id: int) -> dict[str, Any]:
    for _ in range(500):
        reply = await send(emu, f"/api/v1/async_jobs/{job_id}", app_id=app_id, token=token)
        job: dict[str, Any] = reply.data["job"]
        if job["state"] in (2, 3):
            return job
        await asyncio.sleep(0.02)
    raise AssertionError("job never finished")


# -- the four SDKs' encodings -------------------------------------------------------------------


def go_json(obj: Any) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(ch, esc)
    return (text + "\n").encode()


def java_json(obj: dict[str, Any]) -> bytes:
    shuffled = dict(random.Random(7).sample(list(obj.items()), len(obj)))  # HashMap order
    text = json.dumps(shuffled, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (
        ("=", "\\u003d"),
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("'", "\\u0027"),
    ):
        text = text.replace(ch, esc)
    return text.encode()


def php_json(obj: Any) -> bytes:
    return json.dumps(obj, indent=4).replace("/", "\\/").encode()


def python_json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


DIALECTS = {
    "go": (go_json, b"", {"X-Request-Time": "now"}),
    "java": (
        java_json,
        b"",
        {"X-Request-Time": "now", "Content-Type": "application/json; charset=utf-8"},
    ),
    "php": (php_json, b"", {"X-Request-Time": "now"}),
    "python": (python_json, b"{}", {}),
}


@pytest.mark.parametrize("dialect", list(DIALECTS))
async def test_every_official_sdk_encoding_passes(
    emu: Emulator, photos: Photos, dialect: str
) -> None:
    encode, job_body, extra = DIALECTS[dialect]
    headers = {k: (str(int(time.time())) if v == "now" else v) for k, v in extra.items()}
    # A data URL with "=" padding, "/" and "+" exercises every escape of every encoder.
    url = data_url(photos.astronaut[0])
    assert "=" in url
    assert "/" in url
    check = {"action": "AIGCImageCheck", "images": [url], "model_name": "", "configure": {}}
    if dialect == "go":
        del check["model_name"], check["configure"]  # omitempty
    body = encode(check)
    reply = await send(emu, CHECK_PATH, body, headers=headers)
    assert reply.status == 200, reply.raw[:300]
    assert [r["code"] for r in reply.data["check_results"]] == [CHECK_SUCCESS]
    assert reply.data["images"] == [url]

    create = {
        "action": "AIGCImageCreate",
        "model_id": "not-a-model",
        "template_image": "https://example.com/t.jpg?a=1&b=<2>",
        "configure": {"lora_weights": 1.0, "more_like_me": 1, "t2i_prompt": "café & <b> 'x'"},
    }
    if dialect == "go":
        create["model_ids"] = None
    reply = await send(emu, CREATE_PATH, encode(create), headers=headers)
    assert (reply.status, reply.json["message"]) == (462, E462_PROMPTS)

    job_id = emu.add_synthetic_job(0.0)
    reply = await send(emu, f"/api/v1/async_jobs/{job_id}", job_body, headers=headers)
    assert reply.status == 200
    assert reply.data["job"]["id"] == job_id


async def test_go_job_post_without_content_type(emu: Emulator) -> None:
    job_id = emu.add_synthetic_job(0.0)
    path = f"/api/v1/async_jobs/{job_id}"
    status, raw = await _raw(
        emu, "POST", path, b"", {"Authorization": f"{APP_ID}:{sign(TOKEN, 'POST', path, b'')}"}
    )
    assert status == 200
    job = json.loads(raw)["data"]["job"]
    assert list(job) == ["id", "app_id", "state", "message", "Result", "request_id"]
    assert isinstance(job["Result"], str)
    assert json.loads(job["Result"])["states"] == []


async def test_job_answers_get_and_batch_lists_jobs(emu: Emulator) -> None:
    a = emu.add_synthetic_job(0.0, batch_id=7)
    b = emu.add_synthetic_job(0.0, succeed=False, batch_id=7)
    emu.add_synthetic_job(0.0)
    reply = await send(emu, f"/api/v1/async_jobs/{a}", method="GET")
    assert reply.data["job"]["state"] == 2
    reply = await send(emu, "/api/v1/batch_jobs/7", method="GET")
    assert reply.status == 200
    jobs = reply.data["jobs"]
    assert [(j["id"], j["state"], j["batch_id"]) for j in jobs] == [(a, 2, 7), (b, 3, 7)]
    reply = await send(emu, "/api/v1/batch_jobs/8", method="GET")
    assert reply.data == {"jobs": []}
    assert emu.counters.batch_polls == 2


async def test_jobs_of_another_app_are_not_found(emu: Emulator) -> None:
    emu.add_app("other", "other-token")
    job_id = emu.add_synthetic_job(0.0)
    reply = await send(emu, f"/api/v1/async_jobs/{job_id}", app_id="other", token="other-token")
    assert (reply.status, reply.json["message"]) == (404, JOB_NOT_FOUND[2])
    for bad in ("abc", "0", "-1", "99999999999999999999"):
        reply = await send(emu, f"/api/v1/async_jobs/{bad}")
        assert reply.status == 404


# -- gateway errors -----------------------------------------------------------------------------


def _triple(reply: Any) -> tuple[int, str, str]:
    return reply.status, reply.json["code"], reply.json["message"]


async def test_unknown_app_bad_signature_and_missing_authorization(emu: Emulator) -> None:
    body = {"action": "AIGCImageCheck", "images": []}
    assert _triple(await send(emu, CHECK_PATH, body, app_id="nobody")) == NOT_FOUND_APPID
    assert _triple(await send(emu, CHECK_PATH, body, token="wrong")) == SIGN_ERROR
    reply = await send(emu, CHECK_PATH, body, authorization=f"{APP_ID}")
    assert _triple(reply) == NOT_FOUND_APPID
    # Signed for other bytes than those sent (e.g. re-serialised by a proxy).
    auth = f"{APP_ID}:{sign(TOKEN, 'POST', CHECK_PATH, json.dumps(body).encode())}"
    reply = await send(emu, CHECK_PATH, json.dumps(body, indent=1), authorization=auth)
    assert _triple(reply) == SIGN_ERROR
    # Signed for another path.
    auth = f"{APP_ID}:{sign(TOKEN, 'POST', TRAIN_PATH, json.dumps(body).encode())}"
    assert _triple(await send(emu, CHECK_PATH, body, authorization=auth)) == SIGN_ERROR
    assert emu.counters.checks == 0
    assert emu.counters.gateway_errors == 5
    assert not emu.counters.fingerprints


async def test_stale_request_time_is_refused(emu: Emulator) -> None:
    body = {"action": "AIGCImageCheck", "images": []}
    reply = await send(
        emu, CHECK_PATH, body, headers={"X-Request-Time": str(int(time.time()) - 3600)}
    )
    assert (reply.status, reply.json["message"]) == (401, "request time expired")
    reply = await send(emu, CHECK_PATH, body, headers={"X-Request-Time": str(int(time.time()))})
    assert reply.status == 200


async def test_sdxl_not_enabled_is_model_not_found(emu: Emulator) -> None:
    emu.add_app("plain", "plain-token", sdxl=False)
    train = {"action": "AIGCImageTrain", "images": [], "model_name": "train_xl"}
    create = {
        "action": "AIGCImageCreate",
        "model_id": "x",
        "model_name": "create_xl",
        "template_image": "t",
    }
    for path, body in ((TRAIN_PATH, train), (CREATE_PATH, create)):
        reply = await send(emu, path, body, app_id="plain", token="plain-token")
        assert _triple(reply) == MODEL_NOT_FOUND
    # Unknown model names, and names of the other call, are not deployed either.
    for path, name in ((TRAIN_PATH, "create_xl"), (TRAIN_PATH, "sd3"), (CREATE_PATH, "train_xl")):
        reply = await send(emu, path, {**train, **create, "model_name": name})
        assert _triple(reply) == MODEL_NOT_FOUND
    assert emu.counters.trainings == 0


async def test_quota_counts_aigc_calls_only(emu: Emulator) -> None:
    app = emu.add_app("metered", "m-token", quota=2)
    body = {"action": "AIGCImageCheck", "images": []}
    job_id = emu.add_synthetic_job(0.0, app_id="metered")
    for _ in range(2):
        assert (await send(emu, CHECK_PATH, body, app_id="metered", token="m-token")).status == 200
        reply = await send(emu, f"/api/v1/async_jobs/{job_id}", app_id="metered", token="m-token")
        assert reply.status == 200
    reply = await send(emu, CHECK_PATH, body, app_id="metered", token="m-token")
    assert _triple(reply) == EXCEEDED_QUOTA
    reply = await send(emu, f"/api/v1/async_jobs/{job_id}", app_id="metered", token="m-token")
    assert reply.status == 200
    assert app.used == 2
    assert emu.counters.checks == 2


# -- malformed requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"images": "https://x/a.jpg"}',
        b'{"images": [1, 2]}',
        b'{"images": [], "configure": []}',
        b'{"images": [], "model_name": 3}',
        b"\xff\xfe{}",
    ],
)
async def test_malformed_check_and_train_bodies_are_400(emu: Emulator, body: bytes) -> None:
    for path in (CHECK_PATH, TRAIN_PATH):
        assert _triple(await send(emu, path, body)) == BAD_BODY
    assert emu.counters.trainings == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", E462_INVALID_INPUT),
        (b'{"model_id": 5, "template_image": "x"}', E462_INVALID_INPUT),
        (b'{"model_ids": "a", "template_image": "x"}', E462_INVALID_INPUT),
        (
            b'{"model_id": "m", "template_image": "x", "configure": {"lora_weights": "high"}}',
            E462_INVALID_INPUT,
        ),
        (
            b'{"model_id": "m", "template_image": "x", "configure": {"ipa_control_only": true}}',
            E462_INVALID_INPUT,
        ),
        (b'{"model_id": "m"}', "Image not provided. Please check the template_image."),
        (b'{"model_id": "", "model_ids": null, "template_image": "x"}', E462_PROMPTS),
        (b'{"model_ids": [], "template_image": "x"}', E462_PROMPTS),
        (b'{"model_id": "../../etc", "template_image": "x"}', E462_PROMPTS),
    ],
)
async def test_malformed_create_is_documented_462(emu: Emulator, body: bytes, message: str) -> None:
    reply = await send(emu, CREATE_PATH, body)
    assert _triple(reply) == (462, "error", message)
    assert emu.counters.creations == 0


async def test_scene_prompts_must_match_images(emu: Emulator) -> None:
    body = {
        "action": "AIGCImageTrain",
        "images": ["https://x/1.jpg", "https://x/2.jpg"],
        "model_name": "train_xl",
        "configure": {"train_scene_lora_bool": True, "scene_lora_prompts": ["only one"]},
    }
    assert _triple(await send(emu, TRAIN_PATH, body)) == SCENE_PROMPTS_MISMATCH
    body["configure"]["train_scene_lora_bool"] = False  # prompts are then ignored
    assert (await send(emu, TRAIN_PATH, body)).status == 200


async def test_body_size_limit(tmp_path: Path) -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, max_body_bytes=1000) as emu:
        body = json.dumps({"images": ["data:," + "x" * 2000]})
        reply = await send(emu, CHECK_PATH, body)
        assert (reply.status, reply.json["code"]) == (413, "PARAMETER_ERROR")
        assert (await send(emu, CHECK_PATH, {"images": []})).status == 200


async def test_unknown_routes_and_methods_answer_an_envelope(emu: Emulator) -> None:
    reply = await send(emu, "/api/v1/aigc_images/sd", {"action": "AIGCImageSD"})
    assert reply.status == 404
    assert reply.json["code"] == "NOT_FOUND"
    reply = await send(emu, CHECK_PATH, method="GET")
    assert reply.status == 405
    assert reply.json["code"] == "METHOD_NOT_ALLOWED"
    async with aiohttp.ClientSession() as s, s.get(emu.url + "/healthz") as resp:
        assert (await resp.json())["status"] == "ok"


async def test_request_ids_are_unique_and_echoed_in_check_data(emu: Emulator) -> None:
    ids = set()
    for _ in range(3):
        reply = await send(emu, CHECK_PATH, {"images": []})
        assert reply.json["request_id"] == reply.data["request_id"]
        ids.add(reply.json["request_id"])
    assert len(ids) == 3
