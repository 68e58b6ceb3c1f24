"""A dry run of a batch: what it would charge now, found without uploading, sending or charging.

:func:`plan_batch` (``Session.plan_many``, ``aiportrait batch --dry-run``) takes a batch's
items as ``train_many`` and ``create_many`` do, reads each
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

from .._local.resolve import check_inputs
from .._requests import AnyCreateRequest, TrainRequest
from .._retrying.budget import Budget
from ..errors import AIPortraitError, InvalidArgument
from ..models import BatchPlan, PlannedItem, PlanStep
from .batch import CREATE_KINDS, TRAIN_KINDS, keyed, training
from .items import BatchItems
from .journal import Journal, key_text
from .keys import file_stem, find_portrait, portraits_dir, read_item
from .steps import Resume, Step, next_step

__all__ = ["plan_batch"]


async def plan_batch(
    trainings: BatchItems[TrainRequest | Sequence[Any]] = (),
    creations: BatchItems[AnyCreateRequest] = (),
    *,
    journal: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resubmit_unknown: bool = False,
    retry_failed: bool = False,
    recreate_missing: bool = False,
    budgets: Sequence[Budget | None] = (),
) -> BatchPlan:
    """A dry run: what ``train_many`` and ``create_many`` with these arguments would do now,
    found without uploading, sending or charging anything.

    Each item's local files are read; each training a run would send has its local photos
    checked on this machine (unless the item is ``force``\\ d; the check needs the ``emulator``
    extra); the journal is looked at, never written or locked (a missing journal is not
    created). With ``budgets`` (what each has ``left()`` now), the charged items beyond one are
    ``over_budget``.

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
    left = {k: _left(budgets, k) for k in ("train", "create")}
    seen: set[tuple[str, str]] = set()
    planned = []
    try:
        for kind, key, request in pairs:
            try:
                step: PlanStep = await _plan(kind, key, request, book, folder, resume, seen)
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


def _left(budgets: Sequence[Budget | None], kind: Literal["train", "create"]) -> int | None:
    """How many more calls of ``kind`` all ``budgets`` allow now (``None``: no bound)."""
    bounds = [b.left(kind) for b in budgets if b is not None]
    return min((n for n in bounds if n is not None), default=None)


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
    if step == "charge" and read is not None:
        await check_inputs(request, read)
    return step
