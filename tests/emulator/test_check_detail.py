"""The check keeps the documented verdicts word for word and says the cause in its own field,
``emulator_detail``, for each photo (and in a training's ``states``); the cause is logged too."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from aiportrait._vision.verdicts import CHECK_MESSAGES
from aiportrait.emulator import Emulator
from aiportrait.emulator._wire import CHECK_PATH, TRAIN_PATH

from .conftest import Photos, data_url, send, wait_job


async def test_each_cause_has_its_own_detail(
    emu: Emulator,
    photos: Photos,
    origin: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "media" / "notes.txt").write_text("not a photo")
    (tmp_path / "media" / "me.png").write_bytes(photos.astronaut[0])
    urls = [
        f"{origin}/missing.jpg?Signature=secret",
        data_url(photos.small),
        emu.media_url("notes.txt"),
        "data:text/plain,hello",
        "https://example.com/a.jpg",
        data_url(photos.no_face),
        emu.media_url("me.png"),
    ]
    with caplog.at_level(logging.DEBUG, logger="aiportrait.emulator"):
        reply = await send(emu, CHECK_PATH, {"images": urls})
    results = reply.data["check_results"]
    assert [(r["code"], r["message"]) for r in results] == [
        (2, "Image decode error."),
        (2, "Image decode error."),
        (2, "Image decode error."),
        (2, "Image decode error."),
        (2, "Image decode error."),
        (3, "Number of face is not 1."),
        (1, "success"),
    ]
    details = [r["emulator_detail"] for r in results]
    assert details[:6] == [
        f"HTTP 404 from {origin}/missing.jpg",
        "image is 256x256, smaller than 512x512",
        "not an image (text/plain)",
        "not an image (text/plain)",
        "remote URLs are refused; start the emulator with --allow-remote to fetch them",
        "found no face; a photo needs exactly one",
    ]
    assert details[6].startswith("one face, frontal")
    assert set(results[0]) == {"code", "frontal", "message", "url", "emulator_detail"}
    logged = caplog.text
    for detail in details:
        assert detail in logged
    assert "secret" not in logged  # a signed URL's query is never shown


async def test_training_states_carry_the_detail_too(emu: Emulator, photos: Photos) -> None:
    urls = [data_url(b) for b in photos.astronaut] + ["data:text/plain,hello"]
    reply = await send(emu, TRAIN_PATH, {"images": urls})
    job = await wait_job(emu, reply.data["job_id"])
    states = json.loads(job["Result"])["states"]
    assert [s["code"] for s in states] == [1, 1, 1, 2]
    assert states[-1]["message"] == CHECK_MESSAGES[2]
    assert states[-1]["emulator_detail"] == "not an image (text/plain)"
    assert all(s["emulator_detail"] for s in states)


async def test_the_detail_of_the_same_person_test(emu: Emulator, photos: Photos) -> None:
    urls = [data_url(b) for b in [*photos.astronaut, photos.grace[0]]]
    results = (await send(emu, CHECK_PATH, {"images": urls})).data["check_results"]
    assert [r["code"] for r in results] == [1, 1, 1, 6]
    assert results[-1]["message"] == "This photo is not the same person in photos."
    assert "from the other photos' faces" in results[-1]["emulator_detail"]
