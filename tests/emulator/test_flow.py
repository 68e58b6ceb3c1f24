"""Real image work end to end: check verdicts, training jobs and stored models, every create
mode, and the documented create errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from aiportrait.emulator import Emulator, _work
from aiportrait.emulator._service import TRAIN_PREPROCESS_FAILED
from aiportrait.emulator._wire import (
    CHECK_PATH,
    CREATE_PATH,
    E462_NO_FACE,
    E462_PROMPTS,
    E462_ROOP_DECODE,
    E462_TEMPLATE_DECODE,
    E469_FACE_COUNT,
    JOB_FAILED,
    JOB_SUCCESS,
    TRAIN_PATH,
)

from .conftest import APP_ID, TOKEN, Photos, data_url, install_model, send, wait_job


def _image(b64: str) -> Image.Image:
    raw = base64.b64decode(b64, validate=True)
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


async def test_check_gives_the_documented_verdicts(emu: Emulator, photos: Photos) -> None:
    blobs = [*photos.astronaut, photos.grace[0], photos.small, photos.no_face]
    urls = [data_url(b) for b in blobs]
    reply = await send(emu, CHECK_PATH, {"action": "AIGCImageCheck", "images": urls})
    assert reply.status == 200
    results = reply.data["check_results"]
    assert [r["code"] for r in results] == [1, 1, 1, 6, 2, 3]
    assert [r["message"] for r in results][3:] == [
        "This photo is not the same person in photos.",
        "Image decode error.",
        "Number of face is not 1.",
    ]
    assert all(isinstance(r["frontal"], bool) for r in results)
    assert results[0]["frontal"] is True
    assert reply.data["images"] == urls[:3]
    assert isinstance(reply.data["cost_time"], float)
    assert emu.counters.checks == 1


async def test_train_poll_create_and_restart(
    tmp_path: Path, photos: Photos, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The training's work waits until a poll has seen it running: every state is seen, however
    # slow the machine or the polls (nothing here is timed).
    seen_running = threading.Event()
    train_face = _work.Worker.train_face

    def held(self: _work.Worker, *args: Any, **kwargs: Any) -> Any:
        assert seen_running.wait(120), "no poll saw the training running"
        return train_face(self, *args, **kwargs)

    monkeypatch.setattr(_work.Worker, "train_face", held)
    data_dir = tmp_path / "data"
    urls = [data_url(b) for b in photos.astronaut[:2]]
    async with Emulator(app_id=APP_ID, token=TOKEN, data_dir=data_dir, train_seconds=0.3) as emu:
        reply = await send(emu, TRAIN_PATH, {"action": "AIGCImageTrain", "images": urls})
        assert reply.status == 200
        job_id, model_id = reply.data["job_id"], reply.data["model_id"]
        states = []
        while not states or states[-1] not in (2, 3):
            job = (await send(emu, f"/api/v1/async_jobs/{job_id}")).data["job"]
            states.append(job["state"])
            if job["state"] == 1:
                seen_running.set()
            await asyncio.sleep(0.01)
        assert states[0] in (0, 1)
        assert 1 in states
        assert states[-1] == JOB_SUCCESS
        assert states == sorted(states)
        assert job["message"] == "success"
        result = json.loads(job["Result"])
        assert result["model_id"] == model_id
        assert result["cost_time"] >= 0.3
        assert [s["code"] for s in result["states"]] == [1, 1]
        assert [s["url"] for s in result["states"]] == urls
        assert (data_dir / "models" / model_id).is_dir()
        assert emu.counters.trainings == emu.counters.trainings_succeeded == 1

    # A new emulator on the same directory knows the job and the model.
    async with Emulator(app_id=APP_ID, token=TOKEN, data_dir=data_dir) as emu:
        job = (await send(emu, f"/api/v1/async_jobs/{job_id}")).data["job"]
        assert (job["state"], json.loads(job["Result"])["model_id"]) == (JOB_SUCCESS, model_id)
        assert emu.add_synthetic_job(0) == job_id + 1
        body = {"model_id": model_id, "template_image": data_url(photos.grace[0])}
        reply = await send(emu, CREATE_PATH, body)
        assert reply.status == 200, reply.json["message"]
        out = _image(reply.data["image"])
        assert out.format == "JPEG"
        assert out.size == _size(photos.grace[0])
        assert emu.counters.creations == 1


async def test_training_without_usable_photo_fails(emu: Emulator, photos: Photos) -> None:
    urls = [data_url(photos.no_face), data_url(photos.small), "https://elsewhere.example/a.jpg"]
    reply = await send(emu, TRAIN_PATH, {"images": urls})
    job = await wait_job(emu, reply.data["job_id"])
    assert (job["state"], job["message"]) == (JOB_FAILED, TRAIN_PREPROCESS_FAILED)
    result = json.loads(job["Result"])
    assert [s["code"] for s in result["states"]] == [3, 2, 2]
    assert result["model_id"] == reply.data["model_id"]
    # The model of a failed training cannot be used.
    body = {"model_id": reply.data["model_id"], "template_image": data_url(photos.grace[0])}
    reply = await send(emu, CREATE_PATH, body)
    assert (reply.status, reply.json["message"]) == (462, E462_ROOP_DECODE)
    assert emu.counters.trainings_failed == 1


async def test_training_without_photos_fails(emu: Emulator) -> None:
    reply = await send(emu, TRAIN_PATH, {"images": None})
    job = await wait_job(emu, reply.data["job_id"])
    assert (job["state"], job["message"]) == (JOB_FAILED, "Please upload training photos.")


async def test_model_in_training_is_not_ready(tmp_path: Path, photos: Photos) -> None:
    async with Emulator(app_id=APP_ID, token=TOKEN, train_seconds=30) as emu:
        reply = await send(emu, TRAIN_PATH, {"images": [data_url(photos.astronaut[0])]})
        body = {"model_id": reply.data["model_id"], "template_image": data_url(photos.grace[0])}
        reply = await send(emu, CREATE_PATH, body)
        assert (reply.status, reply.json["message"]) == (462, E462_ROOP_DECODE)


async def test_create_solo_png_template(
    emu: Emulator, photos: Photos, model_dirs: dict[str, Path]
) -> None:
    model_id = install_model(emu, model_dirs["grace"])
    template = photos.astronaut[0]
    body = {
        "model_id": model_id,
        "template_image": data_url(template),
        "configure": {"more_like_me": 1, "skin_retouching_bool": True, "sharp_ratio": 0.3},
    }
    reply = await send(emu, CREATE_PATH, body)
    assert reply.status == 200, reply.json
    assert list(reply.data) == ["image", "cost_time"]
    out = _image(reply.data["image"])
    assert (out.format, out.size) == ("PNG", _size(template))


async def test_create_group_and_face_count_mismatch(
    emu: Emulator, photos: Photos, model_dirs: dict[str, Path]
) -> None:
    a = install_model(emu, model_dirs["astronaut"])
    g = install_model(emu, model_dirs["grace"])
    template = data_url(photos.group)
    reply = await send(
        emu, CREATE_PATH, {"model_id": "", "model_ids": [g, a], "template_image": template}
    )
    assert reply.status == 200, reply.json
    assert _image(reply.data["image"]).size == _size(photos.group)
    reply = await send(emu, CREATE_PATH, {"model_ids": [g, a, g], "template_image": template})
    assert (reply.status, reply.json["code"], reply.json["message"]) == (
        469,
        "error",
        E469_FACE_COUNT,
    )
    assert emu.counters.creations == 1
    assert emu.counters.create_errors == 1


async def test_create_errors(emu: Emulator, photos: Photos, model_dirs: dict[str, Path]) -> None:
    model_id = install_model(emu, model_dirs["astronaut"])
    cases = [
        ({"model_id": model_id, "template_image": data_url(photos.no_face)}, 462, E462_NO_FACE),
        (
            {"model_id": model_id, "template_image": "data:image/png;base64,AAAA"},
            462,
            E462_TEMPLATE_DECODE,
        ),
        (
            {"model_id": model_id, "template_image": "https://example.com/t.jpg"},
            462,
            E462_TEMPLATE_DECODE,
        ),
        ({"model_id": model_id, "template_image": "ftp://x/t.jpg"}, 462, E462_TEMPLATE_DECODE),
        (
            {"model_id": "7d1b0000-0000-4000-8000-000000000000", "template_image": "x"},
            462,
            E462_PROMPTS,
        ),
    ]
    for body, status, message in cases:
        reply = await send(emu, CREATE_PATH, body)
        assert (reply.status, reply.json["message"]) == (status, message), body
    # A corrupt stored model: the documented 500.
    assert emu.data_dir is not None
    broken = emu.data_dir / "models" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "model.npz").write_bytes(b"garbage")
    reply = await send(
        emu, CREATE_PATH, {"model_id": "broken-model", "template_image": data_url(photos.grace[0])}
    )
    assert reply.status == 500
    assert reply.json["message"].startswith("Face id image decode error.")


async def test_models_belong_to_their_app(emu: Emulator, photos: Photos) -> None:
    emu.add_app("other", "other-token")
    reply = await send(emu, TRAIN_PATH, {"images": [data_url(photos.astronaut[0])]})
    await wait_job(emu, reply.data["job_id"])
    body = {"model_id": reply.data["model_id"], "template_image": data_url(photos.grace[0])}
    reply = await send(emu, CREATE_PATH, body, app_id="other", token="other-token")
    assert (reply.status, reply.json["message"]) == (462, E462_PROMPTS)
    assert (await send(emu, CREATE_PATH, body)).status == 200


async def test_reference_only_create(emu: Emulator, photos: Photos) -> None:
    body = {
        "model_id": "",
        "model_ids": None,
        "template_image": data_url(photos.grace[0]),
        "configure": {
            "ipa_control_only": True,
            "ipa_weight": 0.6,
            "ipa_image_path": data_url(photos.astronaut[0]),
        },
    }
    reply = await send(emu, CREATE_PATH, body)
    assert reply.status == 200, reply.json
    assert _image(reply.data["image"]).size == _size(photos.grace[0])
    body["configure"]["ipa_image_path"] = data_url(photos.no_face)  # type: ignore[index]
    reply = await send(emu, CREATE_PATH, body)
    assert (reply.status, reply.json["message"]) == (462, E462_ROOP_DECODE)
    body["configure"]["ipa_image_path"] = "https://example.com/ref.jpg"  # type: ignore[index]
    reply = await send(emu, CREATE_PATH, body)
    assert (reply.status, reply.json["message"]) == (462, E462_ROOP_DECODE)


async def test_text_to_image_create(
    emu: Emulator, photos: Photos, model_dirs: dict[str, Path]
) -> None:
    model_id = install_model(emu, model_dirs["astronaut"])
    body = {"model_id": model_id, "template_image": "t2i_generate", "model_name": "create_xl"}
    reply = await send(emu, CREATE_PATH, body)
    assert reply.status == 200, reply.json
    first = _image(reply.data["image"])
    assert first.format == "PNG"
    body = {
        "model_id": model_id,
        "template_image": "https://ignored",
        "configure": {"t2i_prompt": "a woman at the beach, sunset"},
    }
    reply = await send(emu, CREATE_PATH, body)
    assert reply.status == 200, reply.json
    again = await send(emu, CREATE_PATH, body)
    assert again.data["image"] == reply.data["image"]  # deterministic from the prompt


async def test_scene_training_and_scene_create(
    emu: Emulator, photos: Photos, model_dirs: dict[str, Path]
) -> None:
    urls = [data_url(photos.no_face), data_url(photos.grace[1])]
    body = {
        "images": urls,
        "model_name": "train_xl",
        "configure": {
            "train_scene_lora_bool": True,
            "scene_lora_prompts": ["blue wall", "portrait"],
        },
    }
    reply = await send(emu, TRAIN_PATH, body)
    scene_id = reply.data["model_id"]
    job = await wait_job(emu, reply.data["job_id"])
    assert job["state"] == JOB_SUCCESS, job
    assert emu.data_dir is not None
    assert (emu.data_dir / "scenes" / scene_id).is_dir()
    model_id = install_model(emu, model_dirs["astronaut"])
    create = {
        "model_id": model_id,
        "model_name": "create_xl",
        "template_image": "t2i_generate",
        "configure": {"scene_id": scene_id, "t2i_prompt": "in a garden"},
    }
    reply = await send(emu, CREATE_PATH, create)
    assert reply.status == 200, reply.json
    # A scene is not a face model, and an unknown scene is refused.
    reply = await send(emu, CREATE_PATH, {**create, "model_id": scene_id})
    assert (reply.status, reply.json["message"]) == (462, E462_PROMPTS)
    reply = await send(emu, CREATE_PATH, {**create, "configure": {"scene_id": "nope"}})
    assert (reply.status, reply.json["message"]) == (462, E462_PROMPTS)
