"""Fixtures for the emulator tests: photos made from the bundled ones, a running emulator, and a
raw HTTP helper that signs exact bytes the way the official SDKs do."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from aiportrait.emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from aiportrait._vision.face_engine import FaceEngine
    from aiportrait.emulator._faces import FaceModel
    from aiportrait.emulator._options import ComposeOptions

APP_ID = "app-emu"
TOKEN = "token-emu"


def bundled(name: str) -> bytes:
    return resources.files("aiportrait.emulator").joinpath("data", name).read_bytes()


def _variant(name: str, *, size: int, flip: bool, brightness: float, fmt: str) -> bytes:
    from PIL import Image, ImageEnhance, ImageOps

    with Image.open(io.BytesIO(bundled(name))) as im:
        img = im.convert("RGB")
    w, h = img.size
    img = img.resize((size, round(h * size / w)), Image.Resampling.LANCZOS)
    if flip:
        img = ImageOps.mirror(img)
    if brightness != 1.0:
        img = ImageEnhance.Brightness(img).enhance(brightness)
    out = io.BytesIO()
    img.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@dataclass(frozen=True)
class Photos:
    """Encoded test photos (bytes)."""

    astronaut: list[bytes]  # same person, > 512 px, varied
    grace: list[bytes]
    group: bytes  # astronaut and grace side by side (two faces)
    small: bytes  # 256 px: too small for the check
    no_face: bytes  # a flat colour


@pytest.fixture(scope="session")
def photos() -> Photos:
    from PIL import Image

    astronaut = [
        _variant("astronaut.png", size=640, flip=False, brightness=1.0, fmt="PNG"),
        _variant("astronaut.png", size=700, flip=True, brightness=1.0, fmt="JPEG"),
        _variant("astronaut.png", size=660, flip=False, brightness=1.15, fmt="JPEG"),
    ]
    grace = [
        _variant("grace_hopper.jpg", size=640, flip=False, brightness=1.0, fmt="JPEG"),
        _variant("grace_hopper.jpg", size=600, flip=True, brightness=0.95, fmt="PNG"),
    ]
    left = Image.open(io.BytesIO(astronaut[0])).convert("RGB")
    right = Image.open(io.BytesIO(grace[0])).convert("RGB").resize((640, 750))
    canvas = Image.new("RGB", (1280, 750), (200, 200, 200))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (640, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    small = _variant("astronaut.png", size=256, flip=False, brightness=1.0, fmt="PNG")
    flat = io.BytesIO()
    Image.new("RGB", (640, 640), (90, 140, 200)).save(flat, "PNG")
    return Photos(astronaut, grace, buf.getvalue(), small, flat.getvalue())


def data_url(data: bytes) -> str:
    mime = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def sign(token: str, method: str, path: str, body: bytes) -> str:
    msg = f"{method}\n{hashlib.md5(body).hexdigest()}\n{path}".encode()
    return hmac.new(token.encode(), msg, hashlib.sha256).hexdigest()


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def data(self) -> Any:
        return self.json["data"]


async def send(
    emu: Emulator,
    path: str,
    body: bytes | str | Mapping[str, Any] = b"",
    *,
    method: str = "POST",
    app_id: str = APP_ID,
    token: str = TOKEN,
    headers: Mapping[str, str] | None = None,
    authorization: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Reply:
    """Send exact bytes, signed like the official SDKs (dict bodies: Python SDK style)."""
    if isinstance(body, Mapping):
        body = json.dumps(body)
    raw = body.encode() if isinstance(body, str) else body
    hdrs = {"Content-Type": "application/json"}
    hdrs["Authorization"] = authorization or f"{app_id}:{sign(token, method, path, raw)}"
    hdrs.update(headers or {})
    own = session is None
    s = session or aiohttp.ClientSession()
    try:
        async with s.request(method, emu.url + path, data=raw, headers=hdrs) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())
    finally:
        if own:
            await s.close()


class ThreadedEmulator:
    """An emulator on its own event loop in a thread, for synchronous (hypothesis) tests."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.emu = Emulator(**options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Emulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.emu.start(), self.loop).result(10)
        return self.emu

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.emu.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    """A loopback image host: ``/img?n=N`` is N bytes, ``/redirect`` redirects there, anything
    else is 404."""

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query.get("n", "10")))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/img")

    app = web.Application()
    app.router.add_get("/img", image)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(
        app_id=APP_ID,
        token=TOKEN,
        data_dir=tmp_path / "data",
        train_seconds=0.05,
        serve_dir=tmp_path / "media",
        file_root=tmp_path / "files",
    ) as emulator:
        (tmp_path / "media").mkdir(exist_ok=True)
        (tmp_path / "files").mkdir(exist_ok=True)
        yield emulator


async def wait_job(emu: Emulator, job_id: int, *, timeout: float = 30.0) -> dict[str, Any]:
    """Poll until the job is terminal; returns the job object."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await send(emu, f"/api/v1/async_jobs/{job_id}")
        assert reply.status == 200, reply.raw
        job: dict[str, Any] = reply.data["job"]
        if job["state"] in (2, 3):
            return job
        assert loop.time() < deadline, job
        await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def model_dirs(photos: Photos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Face models of the astronaut and of Grace Hopper, built once (as training would)."""
    from aiportrait._vision.face_engine import FaceEngine
    from aiportrait._vision.images import decode_image

    engine = FaceEngine()
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, blobs in (("astronaut", photos.astronaut), ("grace", photos.grace)):
        model = build_model(engine, name, [decode_image(b) for b in blobs])
        model.save(root / name)
        out[name] = root / name
    return out


def install_model(emu: Emulator, source: Path) -> str:
    """Copy a built model into the emulator's store; returns its new model id."""
    import shutil
    import uuid

    assert emu.data_dir is not None
    model_id = str(uuid.uuid4())
    shutil.copytree(source, emu.data_dir / "models" / model_id)
    return model_id


# -- the image-work fixtures (the heavy modules load only when a test asks for them) -----------


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    """A face engine shared by the tests of one module."""
    from aiportrait._vision.face_engine import FaceEngine

    return FaceEngine()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """The bundled astronaut photo, decoded."""
    from aiportrait._vision.images import decode_image

    return decode_image(bundled("astronaut.png"))


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """The bundled Grace Hopper photo, decoded."""
    from aiportrait._vision.images import decode_image

    return decode_image(bundled("grace_hopper.jpg"))


def build_model(
    engine: FaceEngine, model_id: str, images: Sequence[np.ndarray], *, sdxl: bool = False
) -> FaceModel:
    """A face model from photos, as training builds one: each photo's highest-scoring face.

    Raises :class:`ValueError` when no photo has a face.
    """
    from aiportrait.emulator._faces import face_sample, model_from_samples

    samples = []
    for img in images:
        faces = engine.detect(img, with_descriptors=False)
        if faces:
            best = max(faces, key=lambda f: f.score)
            samples.append(face_sample(img, engine.with_descriptor(img, best)))
    return model_from_samples(model_id, samples, sdxl=sdxl)


@pytest.fixture(scope="module")
def astro_model(engine: FaceEngine, astronaut: np.ndarray) -> FaceModel:
    """The astronaut's face model (SD1.5), from two variants of the bundled photo."""
    import cv2
    import numpy as np

    photos = [cv2.resize(astronaut, (600, 600)), np.ascontiguousarray(astronaut[:, ::-1])]
    return build_model(engine, "astro", photos)


@pytest.fixture(scope="module")
def hopper_model(engine: FaceEngine, hopper: np.ndarray) -> FaceModel:
    """Grace Hopper's face model (SDXL), from the bundled photo."""
    return build_model(engine, "hopper", [hopper], sdxl=True)


@pytest.fixture(scope="module")
def pair(astronaut: np.ndarray, hopper: np.ndarray) -> np.ndarray:
    """A two-face group template: the astronaut on the left, Grace Hopper on the right."""
    import numpy as np

    return np.ascontiguousarray(np.hstack([astronaut, hopper[44:556]]))


@pytest.fixture(scope="module")
def defaults() -> ComposeOptions:
    """The create options of an empty ``configure`` on SD1.5."""
    from aiportrait.emulator._options import ComposeOptions

    return ComposeOptions.from_configure({}, sdxl=False)
