"""Argument checks shared by the endpoint methods: fail before any request, saying what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from .errors import ConflictingArguments, InvalidArgument

__all__ = [
    "merge_explicit",
    "model_id_list",
    "positive_int",
    "positive_number",
    "string_tuple",
    "text",
    "url_list",
    "url_problem",
]

_SCHEMES = frozenset({"http", "https", "data", "file", "oss"})

_SCHEME_AND_HOST: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?://([^/?#]*))?")
"""What ``urlsplit`` reads as the scheme and the netloc of a printable ASCII URL without
brackets: letters, digits, ``+-.`` up to the first colon; after ``//``, up to ``/?#``."""


_PLAIN_URL: Final = re.compile(
    r"(?:[hH][tT][tT][pP][sS]?|[oO][sS][sS])://[!-\"$-.0->@-Z\\^-~]+(?:[/?#][!-Z\\^-~]*)?"
)
"""The usual image URL, known good at a glance: http(s) or oss, a host, then printable ASCII
without spaces or brackets. Whatever it matches, :func:`url_problem` finds nothing wrong with."""


def _scheme_and_host(value: str) -> tuple[str, str]:
    if value.isascii() and value.isprintable() and "[" not in value and "]" not in value:
        # The usual URL: read it as urlsplit would, without its cache and its copies.
        match = _SCHEME_AND_HOST.match(value)
        if match is None:
            return "", ""
        return match[1].lower(), match[2] or ""
    parts = urlsplit(value)  # tabs, newlines, control characters, IPv6 brackets, non-ASCII
    return parts.scheme.lower(), parts.netloc


def url_problem(value: object) -> str:
    """Return why ``value`` is not a usable image URL, or ``""`` when it is one."""
    if not isinstance(value, str):
        return f"not a string but {type(value).__name__}"
    stripped = value.strip()
    if not stripped:
        return "empty"
    if value != stripped:
        return "leading or trailing white space"
    if value.startswith("data:"):
        return "" if "," in value else "a data: URL without ','"
    scheme, netloc = _scheme_and_host(value)
    if scheme not in _SCHEMES:
        return "no http(s), oss, file or data scheme"
    if scheme != "file" and not netloc:
        return "no host"
    return ""


def url(name: str, value: object) -> str:
    """Check one URL argument and return it."""
    problem = url_problem(value)
    if problem:
        raise InvalidArgument(f"{name}={_short(value)} is not a URL: {problem}")
    assert isinstance(value, str)
    return value


def url_list(name: str, values: object) -> list[str]:
    """Check a non-empty list of URLs (a lone string is refused, not split into characters)."""
    out = _listed(name, values, "URLs", "give at least one URL")
    plain = _PLAIN_URL.fullmatch
    for i, value in enumerate(out):
        if (type(value) is not str or plain(value) is None) and url_problem(value):
            url(f"{name}[{i}]", value)  # raises, naming the element
    return out


def text(name: str, value: object) -> str:
    """Check a non-empty string argument."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty string, not {_short(value)}")
    return value


def model_id_list(name: str, values: object) -> list[str]:
    """Check a non-empty list of model ids."""
    return _non_empty(name, values, "model ids", "give one model id per template face", text)


def _listed(name: str, values: object, what: str, hint: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidArgument(f"{name} must be a list of {what}, not {type(values).__name__}")
    out = list(values)
    if not out:
        raise InvalidArgument(f"{name} is empty: {hint}")
    return out


def _non_empty(
    name: str, values: object, what: str, hint: str, check: Callable[[str, object], str]
) -> list[str]:
    out = _listed(name, values, what, hint)
    return [check(f"{name}[{i}]", value) for i, value in enumerate(out)]


def positive_int(name: str, value: object) -> int:
    """Check a whole number >= 1 (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a whole number >= 1, not {value!r}")
    return value


def positive_number(_inst: Any, attr: Any, value: object) -> None:
    """attrs validator: ``None`` or a finite number > 0 (a bool is not a number here)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e300:
        raise InvalidArgument(
            f"{type(_inst).__name__}.{attr.name} must be a positive number, not {value!r}"
        )


def string_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """A tuple of the strings given (a lone string is refused, not split into characters)."""
    if isinstance(values, (str, bytes)):
        raise InvalidArgument("expected a list of strings, not a single string")
    return tuple(values)


def merge_explicit(configure: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Add explicit arguments to a configure mapping; a key set both ways must agree."""
    out = dict(configure)
    for key, value in explicit.items():
        if key in out and out[key] != value:
            raise ConflictingArguments(
                f"config sets {key}={_short(out[key])} but the call implies {key}={_short(value)}"
            )
        out[key] = value
    return out


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
