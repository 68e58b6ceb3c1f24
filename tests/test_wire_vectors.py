"""Each call, given a Go vector's inputs, sends a body with the same meaning, signed over it."""

from __future__ import annotations

import contextlib
import json
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import aiportrait
from aiportrait.emulator import Emulator
from tests._mock import mocked, sent

HOST = "http://127.0.0.1:18080"
Call = Callable[[aiportrait.Session, dict[str, Any]], Awaitable[object]]


def _body(v: dict[str, Any]) -> dict[str, Any]:
    return json.loads(v["body_text"])  # type: ignore[no-any-return]


def _cfg(v: dict[str, Any]) -> dict[str, Any]:
    return dict(_body(v).get("configure") or {})


def _images(v: dict[str, Any]) -> list[str]:
    return list(_body(v)["images"])


async def _create_with_config(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b = _body(v)
    known = {k: val for k, val in _cfg(v).items() if k in attrs_names()}
    extra = {k: val for k, val in _cfg(v).items() if k not in attrs_names()}
    config = aiportrait.CreateConfig(**known, extra=extra or None) if _cfg(v) else None
    return await s.create(
        b["model_id"], b["template_image"], sdxl=b.get("model_name") == "create_xl", config=config
    )


def attrs_names() -> set[str]:
    import attrs

    return {a.name for a in attrs.fields(aiportrait.CreateConfig)} - {"extra"}


async def _t2i_xl(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b, c = _body(v), _cfg(v)
    return await s.create_from_prompt(
        c["t2i_prompt"],
        model_id=b["model_id"],
        scene_id=c["scene_id"],
        sdxl=True,
        config=aiportrait.CreateConfig(
            first_diffusion_steps=c["first_diffusion_steps"],
            second_diffusion_steps=c["second_diffusion_steps"],
            more_like_me=c["more_like_me"],
        ),
    )


async def _reference(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b, c = _body(v), _cfg(v)
    return await s.create_from_reference(
        c["ipa_image_path"], b["template_image"], ipa_weight=c["ipa_weight"]
    )


async def _reference_prompt(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b, c = _body(v), _cfg(v)
    return await s.create_from_prompt(
        c["t2i_prompt"],
        reference=c["ipa_image_path"],
        template=b["template_image"],
        config=aiportrait.CreateConfig(ipa_weight=c["ipa_weight"]),
    )


async def _prompt_special(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b, c = _body(v), _cfg(v)
    return await s.create_from_prompt(
        c["t2i_prompt"],
        model_id=b["model_id"],
        template=b["template_image"],
        config=aiportrait.CreateConfig(lora_weights=c["lora_weights"]),
    )


async def _group(s: aiportrait.Session, v: dict[str, Any]) -> object:
    b = _body(v)
    config = aiportrait.CreateConfig(**_cfg(v)) if _cfg(v) else None
    return await s.create_group(b["model_ids"], b["template_image"], config=config)


CALLS: dict[str, Call] = {
    "check_basic": lambda s, v: s.check_images(_images(v)),
    "train_sd15_default": lambda s, v: s.train(_images(v)),
    "train_xl_scene_lora": lambda s, v: s.train(
        _images(v), sdxl=True, scene_lora=True, scene_prompts=_cfg(v)["scene_lora_prompts"]
    ),
    "create_sd15_nil_config": _create_with_config,
    "create_sd15_doc_config": _create_with_config,
    "create_sd15_all_params": _create_with_config,
    "create_xl_empty_config": _create_with_config,
    "create_xl_params": _t2i_xl,
    "create_ipa_control_only": _reference,
    "create_ipa_t2i_doc_prompt": _reference_prompt,
    "create_t2i_prompt_special_chars": _prompt_special,
    "create_float_formatting": _create_with_config,
    "create_multi_doc_config": _group,
    "create_multi_nil_config": _group,
    "get_async_job_12345": lambda s, v: s.get_job(12345),
}
# The vectors whose inputs the library warns about, sending them all the same.
WARNS: dict[str, type[Warning]] = {
    "create_float_formatting": aiportrait.errors.ConfigWarning,  # undocumented configure keys
    "train_sd15_default": aiportrait.errors.PhotoCountWarning,  # 4 photos
}
# Inputs our API refuses before sending, on purpose (see each test below).
REFUSED = {"check_nil_images", "check_empty_images_empty_config", "train_xl_doc_example"}


def _meaning(body: dict[str, Any]) -> dict[str, Any]:
    """Drop the differences the issue allows: model_ids null/absent/[] and model_name ""/absent;
    an empty configure is the same as none."""
    out = dict(body)
    if not out.get("model_ids"):
        out.pop("model_ids", None)
    if not out.get("model_name"):
        out.pop("model_name", None)
    if not out.get("configure"):
        out.pop("configure", None)
    return out


def test_every_vector_is_covered(vectors: list[dict[str, Any]]) -> None:
    assert {v["name"] for v in vectors} == set(CALLS) | REFUSED


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_call_sends_vector_meaning(vectors: list[dict[str, Any]], name: str) -> None:
    v = next(v for v in vectors if v["name"] == name)
    with mocked() as mock:
        mock.post(
            HOST + v["path"],
            body=v["server_response_text"],
            content_type="application/json",
        )
        warns = pytest.warns(WARNS[name]) if name in WARNS else contextlib.nullcontext()
        async with aiportrait.Session(HOST, v["app_id"], v["token"]) as session:
            with warns:
                await CALLS[name](session, v)
        (request,) = sent(mock)
    body: bytes = request["data"] or b""  # no body at all for the job query
    headers = request["headers"]
    # the server's check (the emulator's), which gives the vector's own header for its body
    server = Emulator(app_id=v["app_id"], token=v["token"])
    assert (
        server.authorization(v["method"], v["path"], b64decode(v["body_b64"]))
        == (v["authorization"])
    )
    assert headers["Authorization"] == server.authorization("POST", v["path"], body)
    assert headers["Accept"] == v["headers"]["Accept"]
    assert int(headers["X-Request-Time"]) > 1_700_000_000
    assert "aiportrait/" in headers["User-Agent"]
    if not v["body_text"]:
        assert body == b""
        assert "Content-Type" not in headers
        return
    assert headers["Content-Type"] == "application/json"
    assert _meaning(json.loads(body)) == _meaning(_body(v))


async def test_compact_encoding_is_signed_as_sent() -> None:
    with mocked() as mock:
        mock.post(HOST + "/api/v1/aigc_images/check", payload={"code": "OK", "data": {}})
        async with aiportrait.Session(HOST, "a", "t") as session:
            await session.check_images(["https://x/é.jpg?a=<1>&b=2"])
        (request,) = sent(mock)
    assert (
        request["data"]
        == '{"action":"AIGCImageCheck","images":["https://x/é.jpg?a=<1>&b=2"]}'.encode()
    )


async def test_refused_vector_inputs(vectors: list[dict[str, Any]]) -> None:
    doc = next(v for v in vectors if v["name"] == "train_xl_doc_example")
    cfg = _cfg(doc)
    async with aiportrait.Session(HOST, "a", "t") as session:
        # The documentation's own SDXL example sends 5 prompts for 4 images.
        with pytest.raises(aiportrait.InvalidArgument, match="5 prompts for 4 images"):
            await session.train(
                _images(doc), sdxl=True, scene_lora=True, scene_prompts=cfg["scene_lora_prompts"]
            )
        with pytest.raises(aiportrait.InvalidArgument, match="empty"):
            await session.check_images([])
