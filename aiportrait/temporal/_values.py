"""The values of the Temporal layer: workflow and activity inputs, progress, outcomes, and
errors as data (:class:`ErrorInfo`). :mod:`aiportrait.temporal._wire` carries them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import attrs

from .. import errors as _errors
from .._jobs.schedule import PollPolicy
from .._requests import (
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
)
from .._retrying.policy import OutagePolicy
from .._wire.signing import public_text
from ..errors import AIPortraitError
from ..hooks import OutcomeStatus
from ..models import TrainJob, TrainResult

__all__ = [
    "RESUME_WITHIN",
    "BatchInput",
    "BatchItem",
    "BatchProgress",
    "BatchSummary",
    "CreateInput",
    "ErrorInfo",
    "ItemPage",
    "OutcomePage",
    "OutcomeRecord",
    "PortraitRef",
    "Timeouts",
    "TrainInput",
    "TrainProgress",
]


RESUME_WITHIN = 7 * 24 * 3600.0
"""How long a stopped batch waits for its resume by default, seconds (a week)."""

_PATH = "$path"  # a pathlib path among an error's attributes: it comes back as a Path


def _restored(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and _PATH in value:
        return Path(value[_PATH])
    return value


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data (requests by their dict; anything else unusual by str)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, PurePath):
        return {_PATH: str(value)}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _json_safe(to_dict())
    return str(value)


@attrs.frozen
class ErrorInfo:
    """A library error as data: its class, its message and its attributes.

    It holds no request: a :class:`~aiportrait.errors.SubmitOutcomeUnknown`'s ``request`` is
    ``None`` here (the request is the workflow's input, or the batch item its key names; its
    ``action`` and message say what may have run), and its texts carry no presigned URL's
    query (see :mod:`aiportrait.temporal._unsigned`).

    Attributes:
        type: the class name in :mod:`aiportrait.errors` (``"QuotaExceeded"``).
        message: ``str()`` of the error.
        args: the error's ``args``, as JSON data.
        attributes: its attributes (``status``, ``code``, ``request_id``, ``action``, ...).
    """

    type: str
    message: str
    args: tuple[Any, ...] = ()
    attributes: dict[str, Any] = attrs.Factory(dict)

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """The data of ``exc`` (any exception; a foreign one keeps only its name and message)."""
        attributes = {
            k: None if k == "request" else _json_safe(v)
            for k, v in vars(exc).items()
            if not k.startswith("_")
        }
        args = tuple(_json_safe(a) for a in exc.args)
        return cls(type(exc).__name__, public_text(str(exc)), args, attributes)

    def exception(self) -> AIPortraitError:
        """The error rebuilt: the same class from :mod:`aiportrait.errors` with its attributes
        (an :class:`~aiportrait.errors.AIPortraitError` when the class is not one of ours)."""
        cls = getattr(_errors, self.type, None)
        if not (isinstance(cls, type) and issubclass(cls, AIPortraitError)):
            return AIPortraitError(f"{self.type}: {self.message}")
        exc = cls.__new__(cls)
        exc.args = self.args
        exc.__dict__.update({k: _restored(v) for k, v in self.attributes.items()})
        return exc


@attrs.frozen
class PortraitRef:
    """Where a created portrait was stored (Temporal carries this, never the image).

    Attributes:
        uri: the store's address of the image (``file:///...`` for a local store).
        format: ``"png"`` or ``"jpeg"``.
        size: bytes.
        cost_time: the service's ``cost_time``, seconds.
        request_id: the create call's request id.
    """

    uri: str
    format: str
    size: int
    cost_time: float = 0.0
    request_id: str = ""


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long activities may take, and how often they are tried.

    Attributes:
        charged: start-to-close timeout of a train or create activity, seconds: longer than
            the Session's per-try timeout (300 s by default) and a 429 cool-down together.
        heartbeat: heartbeat timeout of a train or create activity, seconds: a worker that
            dies during the call is noticed after this long, and the item ends ``unknown``.
        read: start-to-close timeout of a free activity (check, job query, store), seconds
            (longer than the Session's per-try timeout, 300 s by default).
        read_attempts: tries in all of a free activity (Temporal retries it).
        charged_tries: sends in all of a charged call, counting only failures that prove it
            did not run (429, no connection, 503 with ``Retry-After``).
        retry_first: the first backoff, seconds (a ``Retry-After`` overrides it).
        retry_cap: the longest backoff, seconds.
    """

    charged: float = 600.0
    heartbeat: float = 30.0
    read: float = 360.0
    read_attempts: int = 8
    charged_tries: int = 5
    retry_first: float = 1.0
    retry_cap: float = 60.0


@attrs.frozen
class CreateInput:
    """One portrait to create: the request, the name to store it under, the timeouts."""

    request: CreateRequest | GroupCreateRequest | ReferenceCreateRequest | PromptCreateRequest
    name: str
    timeouts: Timeouts = Timeouts()


@attrs.frozen
class TrainInput:
    """A training to run: optionally check the photos, train, then wait for the job.

    Attributes:
        request: the training.
        check: check the photos first (free); a photo that fails stops the training before
            it is charged, unless ``force``.
        force: train even when the check fails.
        poll: when to poll (its ``timeout`` bounds the wait).
        timeouts: the activities' timeouts and tries.
    """

    request: TrainRequest
    check: bool = False
    force: bool = False
    poll: PollPolicy = PollPolicy.TRAINING
    timeouts: Timeouts = Timeouts()


@attrs.frozen
class TrainProgress:
    """What a training workflow's ``progress`` query answers.

    Attributes:
        stage: ``"checking"``, ``"submitting"``, ``"training"``, ``"succeeded"``,
            ``"failed"`` or ``"unknown"``.
        job: the job handle once the service gave one.
        state: the job's last seen state name (``INIT``, ``RUNNING``, ...), or ``""``.
        elapsed: seconds since the training was submitted (0 before).
        expected_remaining: seconds still expected (from the poll policy's ``expected``), or
            ``None``.
        polls: job queries so far.
        message: the service's last message.
    """

    stage: str
    job: TrainJob | None = None
    state: str = ""
    elapsed: float = 0.0
    expected_remaining: float | None = None
    polls: int = 0
    message: str = ""


@attrs.frozen
class BatchItem:
    """One item of a batch: a key and a training or create request."""

    key: str
    request: (
        TrainRequest
        | CreateRequest
        | GroupCreateRequest
        | ReferenceCreateRequest
        | PromptCreateRequest
    )


@attrs.frozen
class OutcomeRecord:
    """How one batch item ended, as data: what a Temporal batch records for each item (the
    durable twin of :class:`aiportrait.Outcome`, which an embedded batch yields).

    Attributes:
        seq: its place in completion order, from 1.
        key: the item's key.
        kind: ``"train"`` or ``"create"``.
        status: ``"succeeded"``; ``"failed"`` (the service or the library said why:
            ``error``); or ``"unknown"``: a charged call that may have run (its answer was
            lost, or the worker running it died). Never retried without you. The words of
            :data:`aiportrait.OutcomeStatus`, as :attr:`aiportrait.Outcome.status`.
        portrait: for a create that succeeded, where the image is.
        result: for a training that succeeded, its result.
        error: the error, as data (``error.exception()`` rebuilds it).
    """

    seq: int
    key: str
    kind: str
    status: OutcomeStatus
    portrait: PortraitRef | None = None
    result: TrainResult | None = None
    error: ErrorInfo | None = None


@attrs.frozen
class ItemPage:
    """The items of one page file of a batch (what :meth:`PortraitActivities.read_items`
    returns)."""

    items: tuple[BatchItem, ...]


@attrs.frozen
class OutcomePage:
    """Outcomes to write to the store under ``name`` (what
    :meth:`PortraitActivities.save_outcomes` takes)."""

    name: str
    outcomes: tuple[OutcomeRecord, ...]


@attrs.frozen
class BatchInput:
    """A batch to run: the items (inline, or pages of items in the store) and the limit.

    The fields after ``timeouts`` not described below carry a run's state into the next after
    ``continue_as_new``; leave them at their defaults.

    Attributes:
        items: the items, inline (a small batch: Temporal refuses inputs over about 2 MB).
        item_pages: store addresses of JSON Lines files of items (``BatchItem`` dicts), one
            page each, run in order: a batch of any size (:func:`start_batch` writes them).
        limit: items in flight at most (trainings and creations together).
        page: inline items read at a time.
        per_run: items started in one workflow run; then it lets them end and continues as
            new (earlier when Temporal suggests it). A run waits for its slowest item there.
        check: check training photos first (see :class:`TrainInput`).
        poll: the poll policy of the trainings.
        timeouts: the activities' timeouts and tries.
        total: how many items the batch has (``0``: not said; :func:`start_batch` says it).
        max_trainings: the most trainings it starts (``None``: no bound) until it is resumed
            (``resume`` resets the counts); at the budget it stops as on ``stop``. An item
            counts when it starts (a training its photo check then stops counts too).
        max_creations: the same for creations.
        resume_within: how long, in seconds, a stopped batch waits for ``resume`` before it
            ends with its summary (the items it did not start are then never started).
        outage: when the batch stops starting trainings and creates because the service seems
            down, and how it probes (:class:`~aiportrait.OutagePolicy`; the waits are Temporal
            timers). A run continues as new once its items ended: a doubt its last failures
            left is not carried over.
    """

    items: tuple[BatchItem, ...] = ()
    item_pages: tuple[str, ...] = ()
    limit: int = 8
    page: int = 500
    per_run: int = 2000
    check: bool = False
    poll: PollPolicy = PollPolicy.TRAINING
    timeouts: Timeouts = Timeouts()
    offset: int = 0
    next_page: int = 0
    counts: dict[str, int] = attrs.Factory(dict)
    outcome_pages: tuple[str, ...] = ()
    seq: int = 0
    total: int = 0
    max_trainings: int | None = None
    max_creations: int | None = None
    resume_within: float = RESUME_WITHIN
    skip: int = 0
    spent: dict[str, int] = attrs.Factory(dict)
    outage: OutagePolicy = attrs.Factory(OutagePolicy)
    redo: tuple[tuple[int, int], ...] = ()


@attrs.frozen
class BatchProgress:
    """What a batch workflow's ``progress`` query answers.

    Attributes:
        counts: finished items by status (``succeeded``, ``failed``, ``unknown``).
        in_flight: items running now.
        read: items read so far (the total once ``finished_reading``).
        finished_reading: all items have been read.
        outcomes: the outcomes after the ``after`` of the query still held by this run
            (older ones are in ``outcome_pages``).
        outcome_pages: store addresses of the outcomes already written out.
        stopped: why it stops starting items: ``""`` (it does not), ``"request"`` (told to
            stop: :func:`stop_batch`), or ``"train"`` / ``"create"`` (that budget was reached).
        budget: the budget that stopped it (when ``stopped`` names a kind).
        waiting: stopped, with nothing in flight and every outcome written: it waits for
            :func:`resume_batch` (``read`` items were started; the rest were not).
        total: how many items the batch has (``0``: not said).
        paused: while no training or create is started because the service seems down, why
            (the failure's reason, as :func:`~aiportrait._retrying.policy.outage_reason` says
            it); ``""`` otherwise.
        pauses: pauses so far in this run.
        held: of ``in_flight``, the items waiting in the outage pause, not sent (a stop
            releases them: they are not charged, and the resume starts them).
    """

    counts: dict[str, int]
    in_flight: int
    read: int
    finished_reading: bool
    outcomes: tuple[OutcomeRecord, ...] = ()
    outcome_pages: tuple[str, ...] = ()
    stopped: str = ""
    budget: int = 0
    waiting: bool = False
    total: int = 0
    paused: str = ""
    pauses: int = 0
    held: int = 0

    def summary(self) -> BatchSummary:
        """The summary of the batch as it is now: of one that waits, how many items it did not
        start (``not_submitted``) and why (``stopped``, ``budget``)."""
        total = max(self.total, self.read)
        return BatchSummary(
            dict(self.counts),
            total,
            self.outcome_pages,
            stopped=self.stopped,
            budget=self.budget,
            not_submitted=total - self.read,
            waiting=self.waiting,
        )


@attrs.frozen
class BatchSummary:
    """What a finished batch workflow returns: the counts and where all outcomes are.

    A batch that stopped before its end (:func:`batch_summary` of one that waits for
    :func:`resume_batch`, or one that waited longer than its ``resume_within``) says why in
    ``stopped`` (as :attr:`BatchProgress.stopped`, with its ``budget``) and how many items it
    did not start in ``not_submitted`` (none of them was sent or charged); ``waiting``: it
    waits for :func:`resume_batch` (else it ended: they are never started)."""

    counts: dict[str, int]
    total: int
    outcome_pages: tuple[str, ...] = ()
    stopped: str = ""
    budget: int = 0
    not_submitted: int = 0
    waiting: bool = False
