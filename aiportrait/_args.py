"""Argument checks shared by the endpoint methods: fail before any request, saying what is wrong."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from .errors import ConflictingArguments, InvalidArgument

T = TypeVar("T")

__all__ = [
    "choice",
    "flag",
    "invalid",
    "merge_explicit",
    "model_id_list",
    "of_type",
    "nonempty_text",
    "number",
    "plain_urls",
    "positive_int",
    "positive_number",
    "positive_real",
    "short",
    "string_tuple",
    "text",
    "url_list",
    "url_problem",
    "url_value",
    "whole",
]

_SCHEMES = frozenset({"http", "https", "data", "file", "oss"})

_SCHEME_AND_HOST: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?://([^/?#]*))?")
"""What ``urlsplit`` reads as the scheme and the netloc of a printable ASCII URL without
brackets: letters, digits, ``+-.`` up to the first colon; after ``//``, up to ``/?#``."""


_URL: Final = r"(?:[hH][tT][tT][pP][sS]?|[oO][sS][sS])://[!-\"$-.0->@-Z\\^-~]+(?:[/?#][!-Z\\^-~]*)?"
_PLAIN_URLS: Final = re.compile(f"{_URL}(?:\n{_URL})*")
"""Usual image URLs, known good at a glance, joined by line breaks: http(s) or oss, a host,
then printable ASCII without spaces or brackets. Whatever it matches, :func:`url_problem`
finds nothing wrong with: one URL, or a list of them checked with one match (which costs less
than one match per URL). No usual URL holds a line break, so the pieces are the list's items;
an item that holds one inside matches only as usual URLs joined by it, which
:func:`url_problem` accepts too (``urlsplit`` drops line breaks). A test checks the verdicts."""


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
    try:
        scheme, netloc = _scheme_and_host(value)
    except ValueError as exc:  # urlsplit: "Invalid IPv6 URL"
        return str(exc)
    if scheme not in _SCHEMES:
        return "no http(s), oss, file or data scheme"
    if scheme != "file" and not netloc:
        return "no host"
    return ""


def url(name: str, value: object) -> str:
    """Check one URL argument and return it."""
    problem = url_problem(value)
    if problem:
        raise InvalidArgument(f"{name}={short(value)} is not a URL: {problem}")
    assert isinstance(value, str)
    return value


def plain_urls(values: list[Any] | tuple[Any, ...]) -> bool:
    """Whether every item of ``values`` is a usual URL (:data:`_PLAIN_URLS`), which
    :func:`url_problem` finds nothing wrong with: the shortcut of a list of URLs."""
    try:
        return _PLAIN_URLS.fullmatch("\n".join(values)) is not None
    except TypeError:  # an item is not a string
        return False


def url_list(name: str, values: object) -> list[str]:
    """Check a non-empty list of URLs (a lone string is refused, not split into characters)."""
    out = _listed(name, values, "URLs", "give at least one URL")
    if plain_urls(out):
        return out
    plain = _PLAIN_URLS.fullmatch
    for i, value in enumerate(out):
        if (type(value) is not str or plain(value) is None) and url_problem(value):
            url(f"{name}[{i}]", value)  # raises, naming the element
    return out


def text(name: str, value: object) -> str:
    """Check a non-empty string argument."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be a non-empty string, not {short(value)}")
    return value


def model_id_list(name: str, values: object) -> list[str]:
    """Check a non-empty list of model ids."""
    return _non_empty(name, values, "model ids", "give one model id per template face", text)


def _listed(name: str, values: object, what: str, hint: str) -> list[Any]:
    if (type(values) is list or type(values) is tuple) and values:
        return list(values)  # the usual case: no trip through the Iterable ABC
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


def of_type(value: T, kind: type[T], name: str) -> T:
    """``value``, when it is a ``kind`` (an argument given as an object: a policy, a budget)."""
    if not isinstance(value, kind):
        raise InvalidArgument(f"{name} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def positive_int(name: str, value: object) -> int:
    """Check a whole number >= 1 (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{name} must be a whole number >= 1, not {short(value)}")
    return value


def positive_real(name: str, value: object) -> float:
    """Check a finite number > 0 (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidArgument(f"{name} must be a number > 0, not {value!r}")
    return float(value)


# -- attrs validators: one family for every settings class (CreateConfig, RetryPolicy,
# PollPolicy). ``None`` passes unless said otherwise (it means "not set"); a bool is never a
# number. The message names the class, the field, the value and what is allowed.

Check = Callable[[Any, Any, Any], None]
"""An attrs validator: ``(instance, attribute, value)``, raising :class:`InvalidArgument`."""


def invalid(inst: object, name: str, value: object, allowed: str) -> InvalidArgument:
    """``CreateConfig.sharp_ratio=3 is invalid: expected a number from 0.0 to 1.0``."""
    return InvalidArgument(
        f"{type(inst).__name__}.{name}={short(value)} is invalid: expected {allowed}"
    )


def number(
    low: float = 0.0, high: float = math.inf, *, above: bool = False, below: bool = False
) -> Check:
    """A finite number from ``low`` to ``high`` (``above``/``below``: the bound excluded)."""
    start = f"above {low}" if above else f"from {low}"
    if high == math.inf:
        allowed = f"a number {start}"
    else:
        allowed = f"a number {start} {'up to but not including' if below else 'to'} {high}"

    def check(inst: Any, attr: Any, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(inst, attr.name, value, allowed)
        ok_low = value > low if above else value >= low
        ok_high = value < high if below else value <= high
        if not (math.isfinite(value) and ok_low and ok_high):
            raise invalid(inst, attr.name, value, allowed)

    return check


def whole(low: int, high: int | None = None) -> Check:
    """A whole number from ``low`` (to ``high``)."""
    allowed = f"a whole number from {low}" + ("" if high is None else f" to {high}")

    def check(inst: Any, attr: Any, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(inst, attr.name, value, allowed)
        if value < low or (high is not None and value > high):
            raise invalid(inst, attr.name, value, allowed)

    return check


def flag(*, optional: bool = True) -> Check:
    """``True`` or ``False`` (or ``None`` when ``optional``)."""

    def check(inst: Any, attr: Any, value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, bool):
            raise invalid(inst, attr.name, value, "True or False")

    return check


def choice(*choices: str) -> Check:
    """One of ``choices``."""
    allowed = "one of " + ", ".join(repr(c) for c in choices)

    def check(inst: Any, attr: Any, value: Any) -> None:
        if value is not None and value not in choices:
            raise invalid(inst, attr.name, value, allowed)

    return check


def nonempty_text(inst: Any, attr: Any, value: Any) -> None:
    """A string with something besides blanks."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise invalid(inst, attr.name, value, "a non-empty string")


def url_value(inst: Any, attr: Any, value: Any) -> None:
    """A URL the service can download."""
    if value is None:
        return
    problem = url_problem(value)
    if problem:
        raise invalid(inst, attr.name, value, f"a downloadable URL ({problem})")


positive_number: Final[Check] = number(0.0, above=True)
"""A finite number above 0 (or ``None``)."""


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
                f"config sets {key}={short(out[key])} but the call implies {key}={short(value)}"
            )
        out[key] = value
    return out


def short(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a message quotes a value, not a file)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
