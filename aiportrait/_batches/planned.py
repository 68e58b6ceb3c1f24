"""What a batch's dry run (:meth:`Session.plan_many`) returns: item by item, what a batch would
do now. Public as :mod:`aiportrait.models`' ``BatchPlan``, ``PlannedItem`` and ``PlanStep``,
loaded on first use (a single call needs none of them)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = ["BatchPlan", "PlanStep", "PlannedItem"]


PlanStep = Literal[
    "charge", "done", "watch", "unknown", "failed", "missing", "refused", "over_budget"
]  # fmt: skip
"""What a batch would do with an item now: ``charge`` (its call is sent, and paid); ``done`` (its
end is in the journal: a portrait on disk, a training's result); ``watch`` (a training submitted
before is watched again, not paid again); ``unknown`` (on its way to the service when an earlier
run stopped: :class:`~aiportrait.errors.SubmitOutcomeUnknown`); ``failed`` (in an earlier run:
:class:`~aiportrait.errors.PreviousFailure`); ``missing`` (its portrait was made, the file is
gone: :class:`~aiportrait.errors.PortraitMissing`); ``refused`` (it would fail before anything is
sent: a local file that cannot be used, photos that fail the check on this machine, a key used
twice, a journal row for another request); ``over_budget`` (it would be charged, but the budget
refuses it: :class:`~aiportrait.errors.BudgetExhausted`)."""


@attrs.frozen
class PlannedItem:
    """One item of a dry run: its ``kind`` (``train``, ``create``), ``key``, what a batch would
    do with it now (``step``) and, for ``refused``, why (``reason``)."""

    kind: Literal["train", "create"]
    key: Any
    step: PlanStep
    reason: str = ""


@attrs.frozen
class BatchPlan:
    """What a batch would do now (:meth:`Session.plan_many`), item by item, in the order given.

    Nothing was uploaded, sent or charged to find it.
    """

    items: tuple[PlannedItem, ...]

    def count(self, step: PlanStep | None = None, kind: str | None = None) -> int:
        """How many items a batch would handle so (any: no ``step``), of ``kind`` (any: none)."""
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
        """Calls a batch would send now, each charged: trainings and creations (or of ``kind``)."""
        return self.count("charge", kind)

    def summary(self) -> dict[str, dict[str, int]]:
        """The counts by kind and step, for JSON: ``{"create": {"items": 60, "charge": 30,
        "done": 25, ...}, "train": {...}}``, every step present."""
        steps: tuple[PlanStep, ...] = (
            "charge", "done", "watch", "unknown", "failed", "missing", "refused", "over_budget",
        )  # fmt: skip
        return {
            kind: {"items": self.count(kind=kind), **{s: self.count(s, kind) for s in steps}}
            for kind in ("train", "create")
        }
