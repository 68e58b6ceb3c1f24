"""A dry run of a batch: what it would charge now, found without uploading, sending or charging.

:func:`plan_batch` takes a batch's items as ``train_many`` and ``create_many`` do, reads each
item's local inputs (a bad file is found now), runs the photo check on this machine for the
trainings that would be sent, looks at the journal without taking its lock or writing to it, and
decides each item as a run would (:func:`~aiportrait._batches.steps.next_step`). Nothing leaves
the machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from .._local.resolve import check_inputs
from .._requests import AnyCreateRequest, TrainRequest
from .._retrying.budget import Budget
from ..errors import AIPortraitError, InvalidArgument
from .batch import CREATE_KINDS, TRAIN_KINDS, keyed, training
from .items import BatchItems
from .journal import Journal, key_text
from .keys import file_stem, find_portrait, portraits_dir, read_item
from .steps import Resume, Step, next_step

__all__ = ["BatchPlan", "PlannedItem", "Planned", "plan_batch"]

Planned = Step | Literal["refused", "over_budget"]
"""What a run would do with an item: a :data:`~aiportrait._batches.steps.Step` (``charge``,
``done``, ``watch``, ``unknown``, ``failed``, ``missing``); ``refused``: it would fail before
anything is sent (a local file that cannot be used, photos that fail the check on this machine,
a key used twice, a journal row for another request); ``over_budget``: it would be charged but
the budget would refuse it (:class:`~aiportrait.errors.BudgetExhausted`)."""


@attrs.frozen
class PlannedItem:
    """One item of a dry run: its ``kind`` (``train``, ``create``), ``key``, what a run would
    do with it (``step``) and, for ``refused``, why (``reason``)."""

    kind: Literal["train", "create"]
    key: Any
    step: Planned
    reason: str = ""


@attrs.frozen
class BatchPlan:
    """What a batch would do now (:func:`plan_batch`), item by item, in the order given."""

    items: tuple[PlannedItem, ...]

    def count(self, step: Planned | None = None, kind: str | None = None) -> int:
        """How many items a run would handle so (every item: no ``step``), of ``kind``."""
        return sum(
            1
            for item in self.items
            if (step is None or item.step == step) and (kind is None or item.kind == kind)
        )

    @property
    def trainings(self) -> int:
        """Trainings in the batch."""
        return self.count(kind="train")

    @property
    def creations(self) -> int:
        """Creations in the batch."""
        return self.count(kind="create")

    def charged(self, kind: str | None = None) -> int:
        """Calls a run would send now, each charged: trainings and creations (or of ``kind``)."""
        return self.count("charge", kind)

    def summary(self) -> dict[str, dict[str, int]]:
        """The counts by kind (``train``, ``create``) and step: ``{"create": {"items": 60,
        "done": 25, "charge": 30, ...}}`` with every step, for JSON."""
        steps: tuple[Planned, ...] = (
            "charge", "done", "watch", "unknown", "failed", "missing", "refused", "over_budget",
        )  # fmt: skip
        return {
            kind: {"items": self.count(kind=kind), **{s: self.count(s, kind) for s in steps}}
            for kind in ("train", "create")
        }


async def plan_batch(
    trainings: BatchItems[TrainRequest | Sequence[Any]] = (),
    creations: BatchItems[AnyCreateRequest] = (),
    *,
    journal: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resubmit_unknown: bool = False,
    retry_failed: bool = False,
    recreate_missing: bool = False,
    budget: Budget | None = None,
    check: bool = True,
) -> BatchPlan:
    """A dry run: what ``train_many`` and ``create_many`` with these arguments would do now,
    found without uploading, sending or charging anything.

    Each item's local files are read; each training a run would send has its local photos
    checked on this machine (unless the item is ``force``\\ d or ``check=False``; the check needs
    the ``emulator`` extra); the journal is looked at, never written or locked (a missing
    journal is not created). With a ``budget`` (what it has ``left()`` now), the charged items
    beyond it are ``over_budget``.

    Returns:
        A :class:`BatchPlan`: each item's :class:`PlannedItem`, and counts by step and kind.
    """
    resume = Resume(resubmit_unknown, retry_failed, recreate_missing)
    pairs: list[tuple[Literal["train", "create"], Any, Any]] = [
        *(("train", key, training(item)) for key, item in keyed(trainings, TRAIN_KINDS)),
        *(("create", key, item) for key, item in keyed(creations, CREATE_KINDS)),
    ]
    folder = portraits_dir(journal, out_dir)
    book = await anyio.to_thread.run_sync(_look, journal)
    left = {k: None if budget is None else budget.left(k) for k in ("train", "create")}
    seen: set[tuple[str, str]] = set()
    planned = []
    try:
        for kind, key, request in pairs:
            try:
                step: Planned = await _plan(kind, key, request, book, folder, resume, check, seen)
            except AIPortraitError as exc:
                planned.append(PlannedItem(kind, key, "refused", str(exc)))
                continue
            room = left[kind]
            if step == "charge" and room is not None:
                step = "charge" if room > 0 else "over_budget"
                left[kind] = room - 1
            planned.append(PlannedItem(kind, key, step))
    finally:
        if book is not None:
            book.close()
    return BatchPlan(tuple(planned))


def _look(journal: str | os.PathLike[str] | None) -> Journal | None:
    """The journal opened to look at only (``None`` when there is none yet)."""
    if journal is None or not Path(journal).is_file():
        return None
    return Journal(journal, lock=False)


async def _plan(
    kind: Literal["train", "create"],
    key: Any,
    request: Any,
    book: Journal | None,
    folder: Path | None,
    resume: Resume,
    check: bool,
    seen: set[tuple[str, str]],
) -> Step:
    """One item's step; an :class:`~aiportrait.errors.AIPortraitError` when it would fail
    before anything is sent."""
    skey = key_text(key)
    if (kind, skey) in seen:
        raise InvalidArgument(f"batch key {key!r} is used by more than one item")
    seen.add((kind, skey))
    fp, read = await read_item(request)
    record = None if book is None else await anyio.to_thread.run_sync(book.get, kind, skey, fp)
    has_file = False
    if kind == "create" and record is not None and record.status in ("done", "submitting"):
        has_file = await anyio.to_thread.run_sync(find_portrait, folder, file_stem(key)) is not None
    step = next_step(kind, record, has_file, resume)
    if step == "charge" and check and read is not None:
        await check_inputs(request, read)
    return step
