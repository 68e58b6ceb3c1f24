"""The journal's claim on one charged batch item, told by the send path about each try."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel

from ..errors import JournalError
from .journal import Journal, Record, key_text

__all__ = ["JournalClaim"]


class JournalClaim:
    """The journal's claim on one charged item, told by the send path about each try
    (:class:`~aiportrait._retrying.loop.Claim`)."""

    def __init__(self, journal: Journal, kind: str, key: Any, fp: str, seen: Record | None):
        self.journal = journal
        self.kind = kind
        self.key = key
        self.skey = key_text(key)
        self.fp = fp
        self.seen = seen
        self.claimed = False

    async def before_send(self) -> None:
        """Mark the item ``submitting`` (once per call): the request is about to leave."""
        if self.claimed:  # a later try of the same call
            return
        journal = self.journal
        with anyio.CancelScope(shield=True):
            won = await anyio.to_thread.run_sync(
                journal.claim, self.kind, self.skey, self.fp, self.seen
            )
        if not won:
            raise JournalError(
                f"journal {journal.path}: item {self.key!r} was claimed by another run or by "
                "another item with the same key; it was not submitted",
                path=journal.path,
                key=self.key,
            )
        self.claimed = True
        try:  # a cancel that came during the write lands here: nothing was sent
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            await self.release()
            raise

    async def not_sent(self) -> None:
        """That try did not run: the row goes back to what it was."""
        if self.claimed:
            await self.release()

    async def release(self) -> None:
        """Give the row back as it was before the claim."""
        self.claimed = False
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                self.journal.release, self.kind, self.skey, self.fp, self.seen
            )
