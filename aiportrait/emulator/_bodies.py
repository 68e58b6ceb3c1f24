"""Reading a call's JSON body: the object itself and its typed fields, or the given error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._errors import ApiError

__all__ = ["Error", "field_of", "parse_body", "str_list"]

#: An error answer: (HTTP status, code, message).
Error = tuple[int, str, str]


def parse_body(raw: bytes, error: Error) -> dict[str, Any]:
    """Parse a JSON object body, or raise :class:`ApiError` ``error``.

    The error is raised outside the ``except`` block, so it does not chain the decoder's
    exception (whose frames hold the body).
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ApiError.of(error)
    return body


def field_of(body: Mapping[str, Any], key: str, kind: type, default: Any, error: Error) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ApiError.of(error)
    return value


def str_list(value: Any, error: Error) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError.of(error)
    return value
