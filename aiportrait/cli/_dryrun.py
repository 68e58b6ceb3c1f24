"""``batch FILE --dry-run`` and the batch's budget flags: what a run would charge, and the line a
run prints when its budget stopped it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import click

from .._batches.plan import plan_batch
from .._retrying.budget import Budget
from ..models import BatchPlan
from ._batchfile import Plan
from ._exit import EXIT_BATCH_FAILED, EXIT_OK
from ._output import Output, outcome_line

__all__ = [
    "budget_from", "budget_line", "budget_options", "print_dry_run", "print_temporal_dry_run",
]  # fmt: skip

_FLAGS = {"train": "--max-trainings", "create": "--max-creations"}
_NOUNS = {"train": ("training", "trainings"), "create": ("creation", "creations")}


def budget_options(command: Any) -> Any:
    """``--max-trainings N`` and ``--max-creations N`` (the run's :class:`Budget`)."""
    for kind in ("create", "train"):
        command = click.option(
            _FLAGS[kind],
            f"max_{_NOUNS[kind][1]}",
            type=click.IntRange(min=0),
            metavar="N",
            help=f"submit at most N {_NOUNS[kind][1]} in this run (then stop submitting)",
        )(command)
    return command


def budget_from(max_trainings: int | None, max_creations: int | None) -> Budget | None:
    """The run's budget from the flags (``None``: no flag given)."""
    if max_trainings is None and max_creations is None:
        return None
    return Budget(trainings=max_trainings, creations=max_creations)


def _count(kind: str, n: int) -> str:
    singular, plural = _NOUNS[kind]
    return f"{n} {singular if n == 1 else plural}"


def budget_line(kind: str, limit: int, not_submitted: int) -> str:
    """What a run stopped by its budget says (once per kind)."""
    return (
        f"budget of {_count(kind, limit)} reached; {not_submitted} not submitted (not charged); "
        f"run again with a higher {_FLAGS[kind]} to go on"
    )


def _kind_line(
    kind: Literal["train", "create"],
    counts: Mapping[str, int],
    budget: Budget | None,
    journal: bool,
) -> str:
    parts = [f"{counts['done']} done in the journal"] if journal else []
    named = (
        ("watch", "being trained (watched, not charged again)"),
        ("unknown", "unknown (SubmitOutcomeUnknown: not sent again without --resubmit-unknown)"),
        ("failed", "failed before (not sent again without --retry-failed)"),
        ("missing", "portraits missing (not made again without --recreate-missing)"),
        ("refused", "refused before sending"),
    )
    parts += [f"{counts[step]} {words}" for step, words in named if counts[step]]
    charged = f"{counts['charge']} would be charged now"
    if counts["over_budget"] and budget is not None:
        charged += f" ({counts['over_budget']} more beyond {_FLAGS[kind]} {budget.limit(kind)})"
    return f"{_NOUNS[kind][1]}: {counts['items']} in the file; " + ", ".join([*parts, charged])


async def print_dry_run(
    out: Output,
    file: Path,
    plan: Plan,
    journal: Path,
    out_dir: Path,
    budget: Budget | None,
    options: Mapping[str, Any],
) -> int:
    """Print what ``batch`` would charge now: nothing is uploaded, sent or charged.

    Exit 0, or 5 when an item would be refused before anything is sent (each gets a line)."""
    found: BatchPlan = await plan_batch(
        plan.trainings(),
        plan.creations(),
        journal=journal,
        out_dir=out_dir,
        resubmit_unknown=bool(options.get("resubmit_unknown")),
        retry_failed=bool(options.get("retry_failed")),
        recreate_missing=bool(options.get("recreate_missing")),
        budgets=(budget,),
    )
    doc: dict[str, Any] = {"type": "dry_run", "file": str(file), "journal": str(journal)}
    head = f"dry run of {file}: nothing was uploaded, sent or charged"
    return _report(out, found, budget, doc, head, True)


async def print_temporal_dry_run(
    out: Output,
    file: Path,
    plan: Plan,
    budget: Budget | None,
    workflow_id: str,
    given: bool,
    state: Any,
    unasked: str | None,
) -> int:
    """Print what ``temporal batch`` would charge now: nothing is uploaded, started, sent or
    charged. ``state`` is what Temporal holds of the batch's workflow ``workflow_id`` (a
    :class:`~aiportrait.temporal.BatchState`, ``None``: none), ``given`` says it came from
    ``--id``, and ``unasked`` why Temporal could not be asked (then ``state`` is ``None``).
    A workflow that exists charges nothing: a run attaches to it (or refuses its ``--id``),
    unless it stopped and waits for a resume: a run resumes it, and charges what it held.

    Exit 0, or 5 when an item would be refused before anything is sent (each gets a line);
    Temporal not answering is a line, not an error: the file's check is the dry run's answer."""
    found: BatchPlan = await plan_batch(plan.trainings(), plan.creations(), budgets=(budget,))
    name = f"workflow {workflow_id}"
    workflow: dict[str, Any] = {"id": workflow_id, "exists": state is not None}
    if unasked is not None:
        workflow.update(exists=None, why=unasked)
        note = (
            f"could not ask Temporal ({unasked}); if {name} was started before, a run follows "
            "it and charges nothing, else it charges what follows"
        )
    elif state is None:
        note = f"{name} was not started before: a run starts it"
    else:
        workflow.update(status=state.status, total=state.total, ended=state.counts)
        workflow.update(held=state.held)
        run = "a run with this --id is refused" if given else "a run follows it"
        if state.held:
            run = f"it stopped with {state.held} items not started: a run resumes it"
        told = ", ".join(f"{n} {k}" for k, n in sorted((state.counts or {}).items()))
        ended = "its outcomes could not be read now (no worker answered)"
        if state.counts is not None:
            ended = f"{state.ended} of {state.total} items ended ({told or 'none yet'})"
        charges = "its held items are charged" if state.held else "nothing is charged"
        note = f"{name} was started before ({state.status}): {ended}; {run}: {charges}"
    doc: dict[str, Any] = {"type": "dry_run", "file": str(file), "workflow": workflow}
    head = f"dry run of {file}: nothing was uploaded, started or charged"
    attached = state is not None and not state.held  # resumed: at most the plan's charges
    return _report(out, found, budget, doc, head, False, [note], attached)


def _report(
    out: Output,
    found: BatchPlan,
    budget: Budget | None,
    doc: dict[str, Any],
    head: str,
    journal: bool,
    notes: Sequence[str] = (),
    attached: bool = False,
) -> int:
    """Print a dry run's plan (``attached``: a run would charge nothing); its exit code."""
    refused = [item for item in found.items if item.step == "refused"]
    if not out.json:
        for item in refused:
            out.line(outcome_line("refused", item.key, out.words(item.reason)))
    summary = found.summary()
    doc.update(summary, refused=[{"key": i.key, "reason": i.reason} for i in refused])
    kinds: tuple[Literal["train", "create"], ...] = ("train", "create")
    charged = {k: 0 if attached else found.charged(k) for k in kinds}
    doc["charged"] = charged
    lines = [
        head,
        *(_kind_line(k, summary[k], budget, journal) for k in kinds if summary[k]["items"]),
    ]
    lines += notes
    lines.append(
        f"would charge now: {_count('train', charged['train'])}, "
        f"{_count('create', charged['create'])}"
    )
    out.result(doc, lines)
    return EXIT_BATCH_FAILED if found.count("refused") else EXIT_OK
