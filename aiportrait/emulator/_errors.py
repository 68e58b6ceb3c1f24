"""The one exception the request handlers raise to answer with an error envelope."""

from __future__ import annotations

from ._wire import CREATE_ERROR_CODE, CREATE_ERROR_STATUS, E462_INVALID_INPUT

__all__ = [
    "BAD_BODY",
    "BODY_TOO_LARGE",
    "INTERNAL_ERROR",
    "JOB_NOT_FOUND",
    "ApiError",
]

# Emulator choices where the documentation is silent (status, code, message).
# A check or train body that is not the documented JSON: the create table's "invalid input" text,
# with the gateway's 400 and PARAMETER_ERROR (create itself answers the documented 462).
BAD_BODY = (400, "PARAMETER_ERROR", E462_INVALID_INPUT)
BODY_TOO_LARGE = (413, "PARAMETER_ERROR", "request body too large")
BAD_BODY = (400, "PARAMETER_ERROR", "request body cannot be read (no Content-Encoding is accepted)")
JOB_NOT_FOUND = (404, "PARAMETER_ERROR", "job not found")
INTERNAL_ERROR = (500, "INTERNAL_ERROR", "internal emulator error")


class ApiError(Exception):
    """An error answered as ``{"request_id", "code", "message", "data": {}}`` with ``status``."""

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
