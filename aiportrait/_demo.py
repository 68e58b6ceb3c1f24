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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs

from ._jobs.schedule import PollPolicy
from ._session import Session
from .models import Portrait, TrainJob, TrainResult
from .samples import SamplePhotos, sample_photos

__all__ = ["DemoResult", "run_demo"]

Echo = Callable[[str], None]


@attrs.frozen
class DemoResult:
    """What the demo wrote: each portrait's file and the contact sheet."""

    portraits: dict[str, Path]
    contact_sheet: Path
    seconds: float


async def _wait(session: Session, job: TrainJob, label: str, echo: Echo) -> TrainResult:
    watch = session.watch(job)
    async for update in watch:
        echo(f"  {label}: job {job.job_id} {update.state.name.lower()} ({update.elapsed:.1f}s)")
    return await watch.result()  # the watch has seen the end: no further poll


#: Contact sheet layout: tile side, gap, row label column, caption band under each tile.
THUMB, GAP, LABEL_WIDTH, CAPTION_HEIGHT = 220, 10, 130, 44
Tile = tuple[str, bytes]  # caption (one or two lines), encoded image


def _tile_box(row: int, column: int) -> tuple[int, int, int, int]:
    """Where the tile at ``row``, ``column`` goes on the sheet: left, top, right, bottom of the
    picture; its caption band is the ``CAPTION_HEIGHT`` pixels below it."""
    left = LABEL_WIDTH + column * (THUMB + GAP)
    top = GAP + row * (THUMB + CAPTION_HEIGHT + GAP)
    return left, top, left + THUMB, top + THUMB


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _contact_sheet(rows: Sequence[tuple[str, Sequence[Tile]]], path: Path) -> Path:
    """A sheet of captioned tiles: one row per ``(label, tiles)``, each tile's caption (its mode,
    for the portraits) in a band under the picture."""
    from PIL import Image, ImageDraw

    label_font, caption_font = _font(18), _font(14)
    columns = max([len(tiles) for _, tiles in rows] + [1])
    width = _tile_box(0, columns)[0]
    height = _tile_box(len(rows), 0)[1]
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, tiles) in enumerate(rows):
        top = _tile_box(r, 0)[1]
        draw.text((GAP, top + THUMB // 2 - 10), label, fill="black", font=label_font)
        for c, (caption, data) in enumerate(tiles):
            left, top, right, bottom = _tile_box(r, c)
            with Image.open(io.BytesIO(data)) as opened:
                img = opened.convert("RGB")
            img.thumbnail((THUMB, THUMB))
            sheet.paste(img, (left + (THUMB - img.width) // 2, top + (THUMB - img.height) // 2))
            draw.rectangle((left, bottom, right - 1, bottom + CAPTION_HEIGHT - 1), fill=(238,) * 3)
            draw.multiline_text(
                (left + 6, bottom + 4), caption, fill=(20, 20, 20), font=caption_font, spacing=3
            )
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
        photos = await anyio.to_thread.run_sync(sample_photos, media)
        options = {"train_seconds": train_seconds, "serve_dir": media, **(emulator_options or {})}
        async with Emulator(**options) as emu:
            echo(f"emulator: {emu.url} (local stand-in: real face detection and compositing, "
                 "no diffusion)")  # fmt: skip
            poll = PollPolicy(first=0.25, cap=1.0, timeout=120)
            async with emu.session(poll=poll) as session:
                return await _flow(session, emu.media_url, photos, out, echo, started)


async def _flow(
    session: Session,
    url: Callable[[str], str],
    photos: SamplePhotos,
    out: Path,
    echo: Echo,
    started: float,
) -> DemoResult:
    astronaut = [url(n) for n in photos.astronaut]
    hopper = [url(n) for n in photos.hopper]
    tpl_hopper, tpl_astronaut, tpl_group = (url(n) for n in photos.templates)

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
    # name: (caption on the contact sheet: the mode, then what went where), portrait
    made: dict[str, tuple[str, Portrait]] = {}
    made["astronaut_on_hopper"] = (
        "trained model\nastronaut on Hopper",
        await session.create(a_id, tpl_hopper),
    )
    made["hopper_on_astronaut"] = (
        "trained model\nHopper on astronaut",
        await session.create(h_id, tpl_astronaut),
    )
    made["group_swapped"] = (
        "group, 2 trained models\nfaces swapped",
        await session.create_group([h_id, a_id], tpl_group),
    )
    made["reference_only"] = (
        "reference photo only\nHopper on astronaut",
        await session.create_from_reference(hopper[0], tpl_astronaut),
    )
    made["prompt_garden"] = (
        "text prompt + model\nastronaut in a garden",
        await session.create_from_prompt("a portrait in a flower garden at sunset", model_id=a_id),
    )
    written = {}
    for name, (_, portrait) in made.items():
        written[name] = portrait.save(out / name)
        echo(f"  {written[name]}: {portrait.width}x{portrait.height} {portrait.format}")

    def read(name: str) -> bytes:
        return photos.path(name).read_bytes()

    rows: list[tuple[str, list[Tile]]] = [
        (
            "inputs",
            [
                ("training photo\nastronaut", read(photos.astronaut[0])),
                ("training photo and\nreference: Hopper", read(photos.hopper[0])),
            ],
        ),
        (
            "templates",
            [
                (f"template\n{who}", read(n))
                for who, n in zip(("Hopper", "astronaut", "group"), photos.templates, strict=True)
            ],
        ),
        ("portraits", [(caption, p.image) for caption, p in made.values()]),
    ]
    sheet = _contact_sheet(rows, out / "contact_sheet.png")
    seconds = time.monotonic() - started
    echo(f"4. contact sheet: {sheet}  (done in {seconds:.1f}s)")
    return DemoResult(portraits=written, contact_sheet=sheet, seconds=seconds)
