"""Regression tests for emulator defects found in review."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiportrait.emulator import Emulator
from aiportrait.emulator._vision import decode_image
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH

from .conftest import APP_ID, TOKEN, Photos, data_url, send


async def test_malformed_bodies_get_4xx_envelopes_not_500(emu: Emulator, photos: Photos) -> None:
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


async def test_compressed_request_bodies_are_refused(emu: Emulator) -> None:
    reply = await send(emu, CHECK_PATH, b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert reply.status == 400
    assert reply.json["code"] == "PARAMETER_ERROR"


def test_photos_are_analysed_at_a_bounded_size() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (5000, 3000), (120, 120, 120)).save(buf, "JPEG")
    img = decode_image(buf.getvalue(), max_side=2048)
    assert max(img.shape[:2]) <= 2048
    # Either side over the bound shrinks, whatever the aspect ratio (a 2 x 20000 strip too).
    for size in ((600, 4000), (2, 20_000), (20_000, 2)):
        strip = io.BytesIO()
        Image.new("RGB", size, (120, 120, 120)).save(strip, "PNG")
        img = decode_image(strip.getvalue(), max_side=2048)
        assert max(img.shape[:2]) <= 2048, size
    # The check's minimum side is judged on the photo's own size, not the analysed one.
    assert min(decode_image(strip.getvalue(), max_side=2048, min_side=2).shape[:2]) == 1


async def test_a_symlink_out_of_serve_dir_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    media = tmp_path / "media"
    media.mkdir()
    os.symlink(secret, media / "link.jpg")
    async with Emulator(app_id=APP_ID, token=TOKEN, serve_dir=media) as emu:
        assert emu._local_media(emu.media_url("link.jpg")) is None


@pytest.mark.parametrize("args", [["--workers", "0"], ["--port", "99999"], ["--log-level", "x"]])
def test_bad_emulator_arguments_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiportrait.emulator", *args], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
