"""What a call's answer becomes: the result its request decodes, or, for a charged call whose
OK answer cannot be read, :class:`~aiportrait.errors.SubmitOutcomeUnknown`; and its log line."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._wire.transport import Answer
from ..errors import MalformedResponse, SubmitOutcomeUnknown
from ..models import Portrait, TrainJob

if TYPE_CHECKING:
    from .._requests import AnyRequest

__all__ = ["decoded", "log_result"]

log = logging.getLogger("aiportrait")


def decoded(request: AnyRequest, answer: Answer) -> Any:
    """What the answer holds; for a charged call, an OK answer that cannot be read is
    :class:`SubmitOutcomeUnknown` (it ran; its result is lost)."""
    if request.kind == "read":
        return request._decode(answer)
    with _charged_answer(request.kind, request.payload(), answer.request_id):
        return request._decode(answer)


@contextlib.contextmanager
def _charged_answer(
    action: str, payload: Mapping[str, Any] | None, request_id: str
) -> Iterator[None]:
    """A 2xx answer to a charged call that cannot be read: the work ran, its result is lost."""
    try:
        yield
    except MalformedResponse as exc:
        raise SubmitOutcomeUnknown(
            f"{action}: the service answered OK but the answer cannot be read ({exc}); it ran, "
            "so it was not sent again",
            action=action,
            request=payload,
            request_id=request_id,
        ) from exc


def log_result(result: object, answer: Answer) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    if isinstance(result, TrainJob):
        log.info(
            "training accepted: job_id=%s model_id=%s request_id=%s",
            result.job_id,
            result.model_id,
            answer.request_id,
            extra={
                "request_id": answer.request_id,
                "job_id": result.job_id,
                "aiportrait.request_id": answer.request_id,
                "aiportrait.job_id": result.job_id,
                "aiportrait.model_id": result.model_id,
            },
        )
    elif isinstance(result, Portrait):
        log.info(
            "portrait created: %s %sx%s in %.2fs request_id=%s",
            result.format,
            result.width,
            result.height,
            result.cost_time,
            answer.request_id,
            extra={
                "request_id": answer.request_id,
                "aiportrait.request_id": answer.request_id,
                "aiportrait.cost_time": result.cost_time,
            },
        )
