"""The strict cattrs converter: scalars of exactly their JSON type, the service's states.

The models' ``to_dict`` / ``from_dict`` use :func:`converter`; the wire codec
(:mod:`aiportrait._wire.codec`) builds its own from :func:`strict_converter` and adds what only it
needs. cattrs is imported on first use.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._states import CheckVerdict, JobState
from .signing import PresignedURL

if TYPE_CHECKING:
    import cattrs

__all__ = ["converter", "strict_converter"]


def strict_converter() -> cattrs.Converter:
    """A new converter: ints, floats, strings and booleans must arrive as exactly that JSON
    type (``"1"`` is not an int, ``True`` is not a number); verdicts and job states from ints;
    unknown keys ignored. A :class:`PresignedURL` unstructures query-less (what ``to_dict``
    gives is kept: files, journals), as it pickles."""
    import cattrs

    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(bool, _bool)
    conv.register_structure_hook(CheckVerdict, lambda v, _t: CheckVerdict(_int(v, int)))
    conv.register_structure_hook(JobState, lambda v, _t: JobState(_int(v, int)))
    conv.register_unstructure_hook(str, _public)
    return conv


@functools.cache
def converter() -> cattrs.Converter:
    """The shared strict converter (built on first use)."""
    return strict_converter()


def _int(value: Any, _type: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _public(value: str) -> str:
    return value.public if isinstance(value, PresignedURL) else value


def _bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value
