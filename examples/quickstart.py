"""Quick start: check photos, train a model on them, watch the training, create a portrait.

Run it offline, against the local emulator and the bundled photos::

    python examples/quickstart.py

or against the service, with your own photos (5 to 20 of one person) and a template::

    export AIPORTRAIT_HOST=... AIPORTRAIT_APP_ID=... AIPORTRAIT_TOKEN=...
    python examples/quickstart.py --photos URL1 URL2 ... --template URL --out me

It prints each state change of the training and writes the portrait (``quickstart.jpg`` by
default; the extension follows the image format).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from _local import connect

import aiportrait


async def quickstart(
    session: aiportrait.Session, photos: Sequence[str], template: str, out: Path
) -> Path:
    """Check, train, wait, create; returns the portrait's file."""
    report = await session.check_images(photos)
    print(f"check: {len(report.passed)} of {len(report.results)} photos usable")
    for check in report.failed:
        print(f"  rejected {check.url}: {check.code.name} ({check.message})")
    if not report.passed:
        raise SystemExit("no usable photo: nothing to train on")

    job = await session.train(report.passed)
    print(f"training: job {job.job_id}, model {job.model_id}")
    async for update in session.watch(job):  # one update per state change
        print(f"  {update.state.name} after {update.elapsed:.1f}s ({update.polls} polls)")
    trained = await session.wait(job)  # the job has ended: returns at once (or raises JobFailed)

    config = aiportrait.CreateConfig(lora_weights=0.8, skin_retouching_bool=True)
    portrait = await session.create(trained.model_id, template, config=config)
    path = portrait.save(out)  # atomic; the extension follows the format
    size = f"{portrait.width}x{portrait.height}"
    print(f"portrait: {path} ({size} {portrait.format}, {portrait.cost_time:.1f}s on the server)")
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", metavar="URL", help="photos of one person")
    parser.add_argument("--template", metavar="URL", help="a template image with one face")
    parser.add_argument("--out", type=Path, default=Path("quickstart"), help="output file")
    parser.add_argument(
        "--train-seconds", type=float, default=2.0, help="local emulator: training time"
    )
    return parser


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit code."""
    args = _parser().parse_args(argv)
    templates = [args.template] if args.template else None
    local = {"train_seconds": args.train_seconds}
    async with connect(photos=args.photos, templates=templates, **local) as target:
        if target.local:
            print(f"local emulator at {target.emulator.url} (a stand-in: no diffusion)")
        async with target.session() as session:
            try:
                await quickstart(session, target.photos, target.templates[0], args.out)
            except aiportrait.AIPortraitError as exc:
                print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
