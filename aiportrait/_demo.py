"""The offline demo: the whole flow against the local emulator, with the bundled photos.

Starts the emulator (a local stand-in that does real face detection and compositing, not
diffusion), builds two training sets from the bundled public-domain photos, checks them, trains
two models, watches the jobs, creates a solo portrait each way, a two-face group portrait, a
reference-only portrait and a text-prompt portrait, and writes them with a contact sheet.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import attrs

from ._session import Session
from ._watch import PollPolicy
from .models import Portrait, TrainJob, TrainResult

__all__ = ["DemoResult", "run_demo"]

Echo = Callable[[str], None]


@attrs.frozen
class DemoResult:
    """What the demo wrote: each portrait's file and the contact sheet."""

    portraits: dict[str, Path]
    contact_sheet: Path
    seconds: float


def _bundled(name: str) -> bytes:
    return (resources.files("aiportrait.emulator") / "data" / name).read_bytes()


def _photos(folder: Path) -> dict[str, list[str]]:
    """Write training sets, templates and a reference; return their file names by role."""
    from PIL import Image, ImageEnhance

    def load(name: str) -> Image.Image:
        return Image.open(io.BytesIO(_bundled(name))).convert("RGB")

    def save(img: Image.Image, name: str) -> str:
        img.save(folder / name, quality=92)
        return name

    def variants(img: Image.Image, stem: str) -> list[str]:
        big = img.resize((img.width * 3 // 2, img.height * 3 // 2), Image.Resampling.LANCZOS)
        w, h = big.size
        shots = [
            big,
            big.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            big.crop((w // 16, h // 16, w - w // 16, h - h // 16)).resize((w, h)),
            ImageEnhance.Brightness(big).enhance(1.2),
            big.rotate(8, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)),
        ]
        return [save(s, f"{stem}_{i}.jpg") for i, s in enumerate(shots)]

    astronaut, hopper = load("astronaut.png"), load("grace_hopper.jpg")
    group = Image.new("RGB", (1200, 700), (235, 235, 235))
    group.paste(astronaut.resize((600, 600)), (0, 50))
    group.paste(hopper.resize((600, 700)), (600, 0))
    return {
        "astronaut": variants(astronaut, "astronaut"),
        "hopper": variants(hopper, "hopper"),
        "templates": [
            save(hopper.resize((768, 900), Image.Resampling.LANCZOS), "template_hopper.jpg"),
            save(astronaut.resize((768, 768), Image.Resampling.LANCZOS), "template_astronaut.jpg"),
            save(group, "template_group.jpg"),
        ],
    }


async def _wait(session: Session, job: TrainJob, label: str, echo: Echo) -> TrainResult:
    async for update in session.watch(job):
        echo(f"  {label}: job {job.job_id} {update.state.name.lower()} ({update.elapsed:.1f}s)")
    return await session.wait(job)  # the job has ended: one poll returns its result


def _contact_sheet(rows: list[tuple[str, list[bytes]]], path: Path, thumb: int = 220) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    try:
        font: Any = ImageFont.load_default(size=18)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    width = max(len(images) for _, images in rows) * (thumb + 10) + 230
    sheet = Image.new("RGB", (width, len(rows) * (thumb + 10) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (caption, images) in enumerate(rows):
        y = 10 + r * (thumb + 10)
        draw.text((10, y + thumb // 2 - 10), caption, fill="black", font=font)
        for c, data in enumerate(images):
            img = Image.open(io.BytesIO(data)).convert("RGB")
            img.thumbnail((thumb, thumb))
            sheet.paste(img, (230 + c * (thumb + 10), y))
    sheet.save(path)
    return path


async def run_demo(
    out_dir: str | Path = "portraits",
    *,
    train_seconds: float = 2.0,
    echo: Echo = print,
    emulator_options: dict[str, Any] | None = None,
) -> DemoResult:
    """Run the whole flow offline and write the portraits and a contact sheet to ``out_dir``."""
    from .emulator import Emulator

    started = time.monotonic()
    out = Path(out_dir)
    await anyio.to_thread.run_sync(lambda: out.mkdir(parents=True, exist_ok=True))
    with tempfile.TemporaryDirectory(prefix="aiportrait-demo-") as tmp:
        media = Path(tmp)
        names = _photos(media)
        options = {"train_seconds": train_seconds, "serve_dir": media, **(emulator_options or {})}
        async with Emulator(**options) as emu:
            echo(f"emulator: {emu.url} (local stand-in: real face detection and compositing, "
                 "no diffusion)")  # fmt: skip
            poll = PollPolicy(first=0.25, cap=1.0, timeout=120)
            async with emu.session(poll=poll) as session:
                return await _flow(session, emu.media_url, names, media, out, echo, started)


async def _flow(
    session: Session,
    url: Callable[[str], str],
    names: dict[str, list[str]],
    media: Path,
    out: Path,
    echo: Echo,
    started: float,
) -> DemoResult:
    astronaut = [url(n) for n in names["astronaut"]]
    hopper = [url(n) for n in names["hopper"]]
    tpl_hopper, tpl_astronaut, tpl_group = (url(n) for n in names["templates"])

    echo("1. check the photos")
    for label, urls in (("astronaut", astronaut), ("hopper", hopper)):
        report = await session.check_images(urls)
        echo(f"  {label}: {len(report.passed)}/{len(urls)} usable")
    mixed = await session.check_images([*astronaut[:4], hopper[0]])
    odd = [f"{r.url.rsplit('/', 1)[-1]}: {r.message}" for r in mixed.failed]
    echo(f"  a stranger among four astronaut photos is caught: {odd}")

    echo("2. train two models and watch the jobs")
    jobs = await asyncio.gather(session.train(astronaut), session.train(hopper))
    results = await asyncio.gather(
        _wait(session, jobs[0], "astronaut", echo), _wait(session, jobs[1], "hopper", echo)
    )
    a_id, h_id = (r.model_id for r in results)

    echo("3. create portraits")
    made: dict[str, Portrait] = {}
    made["astronaut_on_hopper"] = await session.create(a_id, tpl_hopper)
    made["hopper_on_astronaut"] = await session.create(h_id, tpl_astronaut)
    made["group_swapped"] = await session.create_group([h_id, a_id], tpl_group)
    made["reference_only"] = await session.create_from_reference(url(names["hopper"][0]),
                                                                 tpl_astronaut)  # fmt: skip
    made["prompt_garden"] = await session.create_from_prompt(
        "a portrait in a flower garden at sunset", model_id=a_id
    )
    written = {}
    for name, portrait in made.items():
        written[name] = portrait.save(out / name)
        echo(f"  {written[name]}: {portrait.width}x{portrait.height} {portrait.format}")

    def read(name: str) -> bytes:
        return (media / name).read_bytes()

    rows = [
        ("inputs", [read(names["astronaut"][0]), read(names["hopper"][0])]),
        ("templates", [read(n) for n in names["templates"]]),
        ("portraits", [p.image for p in made.values()]),
    ]
    sheet = _contact_sheet(rows, out / "contact_sheet.png")
    seconds = time.monotonic() - started
    echo(f"4. contact sheet: {sheet}  (done in {seconds:.1f}s)")
    return DemoResult(portraits=written, contact_sheet=sheet, seconds=seconds)
