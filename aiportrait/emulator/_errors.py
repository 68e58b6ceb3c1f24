"""The one exception the request handlers raise to answer with an error envelope."""

from __future__ import annotations

import traceback

from ._wire import CREATE_ERROR_CODE, CREATE_ERROR_STATUS, E462_INVALID_INPUT

__all__ = [
    "BAD_BODY",
    "BODY_TIMEOUT",
    "BODY_TOO_LARGE",
    "BROKEN_BODY",
    "ENCODED_BODY",
    "INTERNAL_ERROR",
    "INVALID_CREATE",
    "JOB_NOT_FOUND",
    "ApiError",
    "forget_traceback",
]

# Emulator choices where the documentation is silent (status, code, message), one per cause.
# A check or train body that is not the documented JSON: the create table's "invalid input" text,
# with the gateway's 400 and PARAMETER_ERROR (create itself answers the documented 462).
BAD_BODY = (400, "PARAMETER_ERROR", E462_INVALID_INPUT)
#: A body sent with a ``Content-Encoding`` (no official SDK compresses request bodies).
ENCODED_BODY = (
    400,
    "PARAMETER_ERROR",
    "request body cannot be read (no Content-Encoding is accepted)",
)
#: A body cut off or garbled in transfer (a broken chunked encoding, a short body).
BROKEN_BODY = (400, "PARAMETER_ERROR", "request body was cut off or garbled in transfer")
BODY_TOO_LARGE = (413, "PARAMETER_ERROR", "request body too large")
#: A body that did not arrive within the read timeout; the connection is closed after it.
BODY_TIMEOUT = (408, "PARAMETER_ERROR", "request body not received in time")
JOB_NOT_FOUND = (404, "PARAMETER_ERROR", "job not found")
INTERNAL_ERROR = (500, "INTERNAL_ERROR", "internal emulator error")
#: The documented create answer to a body that is not the documented JSON.
INVALID_CREATE = (CREATE_ERROR_STATUS[E462_INVALID_INPUT], CREATE_ERROR_CODE, E462_INVALID_INPUT)


class ApiError(Exception):
    """An error answered as ``{"request_id", "code", "message", "data": {}}`` with ``status``.

    Raise a new one where the error happens (``raise ApiError.of(BAD_BODY)``) rather than keeping
    one in a variable: an exception held by a frame of its own traceback is a reference cycle that
    keeps the request's body alive until the garbage collector runs.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def of(cls, error: tuple[int, str, str]) -> ApiError:
        """Build from a ``(status, code, message)`` triple."""
        return cls(*error)

    @classmethod
    def create(cls, message: str) -> ApiError:
        """Build a documented create error: its table status, code ``"error"``, the message."""
        return cls(CREATE_ERROR_STATUS.get(message, 500), CREATE_ERROR_CODE, message)


def forget_traceback(exc: BaseException) -> None:
    """Drop what ``exc`` (and the exceptions chained to it) keep of the frames it went through.

    A traceback keeps every frame it passed, and so the request body, the decoded images and
    whatever else those frames held, for as long as the exception lives; cleared here, nothing of
    a finished request can outlive it through an exception someone still holds.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
            current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
