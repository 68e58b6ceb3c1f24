"""The official synchronous Python SDK (``ai-service-python-sdk``) works against the emulator
unchanged: check -> train -> poll -> create, from a thread."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from aiportrait.emulator import Emulator

from .conftest import Photos

sdk = pytest.importorskip("ai_service_python_sdk")


def _official_flow(
    host: str, app_id: str, token: str, photos: list[str], template: str
) -> dict[str, Any]:
    from ai_service_python_sdk.client.api.ai_service_aigc_images_api import AIGCImagesApi
    from ai_service_python_sdk.client.api.ai_service_job_api import AiServiceJobApi
    from ai_service_python_sdk.client.api_client import ApiClient

    client = ApiClient(host, app_id, token)
    images, jobs = AIGCImagesApi(client), AiServiceJobApi(client)
    out: dict[str, Any] = {}
    check = images.aigc_images_check(photos, "", None)
    out["check_codes"] = [r["code"] for r in check.data["check_results"]]
    train = images.aigc_images_train(photos, "", None)
    job_id, model_id = train.data["job_id"], train.data["model_id"]
    deadline = time.monotonic() + 30
    while True:
        job = jobs.get_async_job_with_id(job_id).data["job"]
        if job["state"] in (2, 3) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    out["job"] = job
    created = images.aigc_images_create(model_id, template, "", {"lora_weights": 0.9})
    out["code"] = created.code
    out["image"] = base64.b64decode(created.data["image"])
    try:
        images.aigc_images_create("no-such-model", template, "", None)
    except Exception as exc:  # ApiException
        out["error"] = (exc.status, json.loads(exc.body)["message"])  # type: ignore[attr-defined]
    return out


async def test_official_python_sdk_unchanged(emu: Emulator, photos: Photos, tmp_path: Path) -> None:
    for i, blob in enumerate(photos.astronaut[:2]):
        (tmp_path / "media" / f"a{i}.png").write_bytes(blob)
    (tmp_path / "media" / "template.jpg").write_bytes(photos.grace[0])
    urls = [emu.media_url(f"a{i}.png") for i in range(2)]
    out = await asyncio.to_thread(
        _official_flow, emu.url, emu.app_id, emu.token, urls, emu.media_url("template.jpg")
    )
    assert out["check_codes"] == [1, 1]
    assert out["job"]["state"] == 2, out["job"]
    assert json.loads(out["job"]["Result"])["states"][0]["code"] == 1
    assert out["code"] == "OK"
    assert out["image"].startswith(b"\xff\xd8")
    assert out["error"] == (462, "Prompts get error. Please check the model_id.")
    # The SDK signs and sends "{}" on the job query: those requests were all accepted.
    assert emu.counters.gateway_errors == 0
    assert any(
        p.startswith("/api/v1/async_jobs/") and h == "99914b932bd37a50b983c5e7c90ae93b"
        for p, h in emu.counters.fingerprints
    )
