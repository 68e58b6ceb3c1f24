"""Train and create from local photos: checked on this machine, cleaned, uploaded, then used.

Run it offline, against the local emulator and its OSS-compatible bucket, with sample photos
written into ``./local_photos/``::

    python examples/local_photos.py

or against the service, uploading to your OSS bucket (photos of people are personal data: they
are stripped of their metadata, stored under a content hash and deleted at the end)::

    export AIPORTRAIT_HOST=... AIPORTRAIT_APP_ID=... AIPORTRAIT_TOKEN=...
    export OSS_BUCKET=... OSS_REGION=cn-hangzhou OSS_ACCESS_KEY_ID=... OSS_ACCESS_KEY_SECRET=...
    python examples/local_photos.py --photos ./me/*.jpg --template ./template.jpg

First it checks the photos on this machine (no upload, no charge) and stops if one is bad;
then it trains on them (uploading each once), waits, and writes ``local_photos.<ext>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiportrait
from aiportrait.uploads import OSSUploader

POLL = aiportrait.PollPolicy(first=0.25, cap=1.0, timeout=120)


@contextlib.asynccontextmanager
async def _session(train_seconds: float) -> AsyncIterator[aiportrait.Session]:
    """The service and OSS named in the environment, else the emulator and its bucket."""
    if os.environ.get("AIPORTRAIT_HOST"):
        uploader = OSSUploader(delete_after=True)
        async with uploader, aiportrait.Session.from_env(uploader=uploader) as session:
            yield session
        return
    from aiportrait.emulator import Emulator

    async with Emulator(train_seconds=train_seconds) as emu:
        print(f"local emulator at {emu.url} (a stand-in: no diffusion)")
        async with OSSUploader.for_emulator(emu, delete_after=True) as uploader:
            session: aiportrait.Session = emu.session(uploader=uploader, poll=POLL)
            async with session:
                yield session
            print(f"bucket: {emu.bucket.puts} photos uploaded, each once")


async def local_photos(
    session: aiportrait.Session, photos: Sequence[Path], template: Path, out: Path
) -> None:
    """Check on this machine, train (uploading each photo once), create, save."""
    report = await aiportrait.preflight(photos)
    print(f"checked here: {len(report.passed)} of {len(report.results)} photos usable")
    for check in report.failed:
        print(f"  {check.url}: {check.code.name} {check.message} ({check.detail})")
    if not report.ok:
        raise SystemExit("fix or remove the photos above (or train with force=True)")
    job = await session.train(photos)  # uploads happen here, before the charged call
    result = await session.wait(job)
    print(f"trained model {result.model_id}")
    portrait = await session.create(result.model_id, template)  # a local template too
    print(f"wrote {portrait.save(out)}")


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", type=Path, help="photos of one person")
    parser.add_argument("--template", type=Path, help="a template image with one face")
    parser.add_argument("--out", type=Path, default=Path("local_photos"), help="output file")
    parser.add_argument("--train-seconds", type=float, default=2.0, help="emulator only")
    args = parser.parse_args(argv)
    photos, template = args.photos, args.template
    if not photos or template is None:
        if os.environ.get("AIPORTRAIT_HOST"):
            raise SystemExit("give your own --photos and --template")
        from aiportrait.samples import sample_photos

        samples = sample_photos("local_photos")
        photos = [samples.path(n) for n in samples.hopper]
        template = samples.path(samples.astronaut_template)
    async with _session(args.train_seconds) as session:
        try:
            await local_photos(session, photos, template, args.out)
        except aiportrait.AIPortraitError as exc:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
