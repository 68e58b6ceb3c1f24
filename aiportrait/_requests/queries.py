"""The job queries (free): one asynchronous job, or the jobs of a batch."""

from __future__ import annotations

from typing import ClassVar

import attrs

from .._wire.codec import decode_batch, decode_job
from .._wire.transport import Answer
from ..errors import InvalidArgument
from ..models import Job, TrainJob
from .base import BATCH_PATH, JOB_PATH, CallKind, Request

__all__ = ["BatchQuery", "JobQuery"]


def _job_id(value: object) -> int:
    job = value.job_id if isinstance(value, TrainJob) else value
    if isinstance(job, bool) or not isinstance(job, int) or job < 0:
        raise InvalidArgument(f"job must be a TrainJob or a non-negative job id, not {value!r}")
    return job


@attrs.frozen
class JobQuery(Request):
    """Query an asynchronous job once (``POST /api/v1/async_jobs/{id}``); free."""

    job_id: int = attrs.field(converter=_job_id)

    kind: ClassVar[CallKind] = "read"
    accept: ClassVar[str] = "text/plain"
    type_name: ClassVar[str] = "job"

    @property
    def path(self) -> str:
        """The resource path."""
        return JOB_PATH.format(self.job_id)

    def _decode(self, answer: Answer) -> Job:
        """Read the service's answer."""
        return decode_job(answer.data, self.job_id, answer.request_id)


@attrs.frozen
class BatchQuery(Request):
    """Query the jobs of a batch (``GET /api/v1/batch_jobs/{id}``); free."""

    batch_id: int = attrs.field(converter=_job_id)

    kind: ClassVar[CallKind] = "read"
    method: ClassVar[str] = "GET"
    accept: ClassVar[str] = "text/plain"
    type_name: ClassVar[str] = "batch"

    @property
    def path(self) -> str:
        """The resource path."""
        return BATCH_PATH.format(self.batch_id)

    def _decode(self, answer: Answer) -> tuple[Job, ...]:
        """Read the service's answer."""
        return decode_batch(answer.data, answer.request_id)
