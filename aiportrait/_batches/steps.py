"""What a batch does with an item, given its journal row: the one decision that the runner acts
on and a dry run (:mod:`aiportrait._batches.plan`) counts."""

from __future__ import annotations

from typing import Literal

import attrs

from .journal_format import Record

__all__ = ["Resume", "Step", "next_step"]

Step = Literal["charge", "done", "watch", "unknown", "failed", "missing"]
"""``charge``: the item's charged call is sent (paid); ``done``: its end is in the journal (a
portrait on disk, a training's result); ``watch``: a training submitted before is watched again
(not paid again); ``unknown``: it was on its way to the service when an earlier run stopped
(:class:`~aiportrait.errors.SubmitOutcomeUnknown`); ``failed``: it failed in an earlier run
(:class:`~aiportrait.errors.PreviousFailure`); ``missing``: its portrait was made before but the
file is gone (:class:`~aiportrait.errors.PortraitMissing`)."""


@attrs.frozen
class Resume:
    """What a re-run may pay for again (the batch options of the same names)."""

    resubmit_unknown: bool = False
    retry_failed: bool = False
    recreate_missing: bool = False


def next_step(kind: str, record: Record | None, has_file: bool, resume: Resume) -> Step:
    """What happens to an item of ``kind`` (``train``, ``create``) whose journal row is
    ``record`` (``None``: none); ``has_file``: its portrait file is in the output folder (looked
    for only when the row says ``done`` or ``submitting``)."""
    if record is None:
        return "charge"
    if kind == "create":
        if record.status in ("done", "submitting") and has_file:
            return "done"  # written atomically before the row, so it is complete
        if record.status == "done":
            return "charge" if resume.recreate_missing else "missing"
    elif record.job_id is not None and record.model_id is not None:
        if record.status == "done" and record.data is not None:
            return "done"
        if record.status != "failed":
            return "watch"  # the job id was recorded before any polling
    if record.status == "failed":
        return "charge" if resume.retry_failed else "failed"
    if record.status == "submitting":
        return "charge" if resume.resubmit_unknown else "unknown"
    return "charge"
