"""The words hooks and events share with the rest of the library.

Light on purpose: the event classes (:mod:`.events`) are built only when something asks for
them, a hook being registered or an event being made; ``import aiportrait`` needs only these.
"""

from __future__ import annotations

from typing import Literal

from .._states import CallKind

__all__ = ["BatchKind", "CallKind", "CallOutcome", "JobOutcome", "OutcomeStatus"]

CallOutcome = Literal["ok", "failed", "unknown", "cancelled"]
"""How a call ended (:attr:`CallEnded.outcome`)."""
JobOutcome = Literal["succeeded", "failed", "timeout", "error", "closed"]
"""How a watch of a job ended (:attr:`JobEnded.outcome`)."""
OutcomeStatus = Literal["succeeded", "failed", "unknown"]
"""How a batch item ended, in every place that tells it (:attr:`aiportrait.Outcome.status`,
:attr:`BatchItemEnded.status`, :attr:`aiportrait.temporal.OutcomeRecord.status`):
``succeeded``; ``failed`` (the service or the library said why); ``unknown`` (a charged call
that may have run: :class:`~aiportrait.errors.SubmitOutcomeUnknown`; never sent again without
you)."""
BatchKind = Literal["create", "train"]
"""What a batch runs: ``create_many`` or ``train_many``."""
