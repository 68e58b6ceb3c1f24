"""``uploads delete JOURNAL``: delete the photos a batch journal remembers uploading.

A batch run with ``--delete-uploads`` deletes them itself when it ends cleanly; this is for the
rest: a run that stopped, trainings started with ``--no-wait``, or a batch run without the flag.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from ._exit import EXIT_OK, UsageError
from ._options import Common, shared

__all__ = ["uploads"]


@click.group()
def uploads() -> None:
    """The photos uploaded for you (to OSS, or the local emulator's bucket)."""


@uploads.command()
@click.argument("journal", type=click.Path(path_type=Path, dir_okay=False))
@shared("host", "app_id", "token", "json", "debug")
@click.pass_obj
def delete(common: Common, journal: Path) -> int:
    """Delete every photo the batch journal JOURNAL remembers uploading.

    Run it once the batch's trainings have ended: a training still running downloads its
    photos. The bucket is the one a batch run would upload to (OSS_BUCKET and the OSS_* keys,
    else the local emulator's)."""

    async def run() -> int:
        if not await asyncio.to_thread(journal.is_file):
            raise UsageError(f"no journal at {journal}")
        uploader = common.uploader()
        if uploader is None:
            raise UsageError(
                "no bucket to delete from: set OSS_BUCKET (and the OSS_* keys), or run against "
                "the local emulator"
            )
        async with uploader:
            deleted = await uploader.delete_remembered(journal)
        text = f"deleted {deleted} uploaded photo(s) remembered by {journal}"
        common.out.result({"deleted": deleted, "journal": str(journal)}, [text])
        return EXIT_OK

    return common.run("uploads delete", run)
