"""Image fields of a request: a URL, a local file or image bytes, checked when it is built.

A ``str`` is a URL and is checked as one (:func:`aiportrait._args.url`). An ``os.PathLike`` is
a local file and ``bytes`` (or a ``bytearray`` / ``memoryview``, copied) are image data: both
are *local inputs*, read, checked, cleaned and uploaded when the request is sent
(:mod:`aiportrait._local.resolve`). Nothing is read here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Final, TypeAlias

from .. import _args
from .._wire.signing import public_url
from ..errors import InvalidArgument

__all__ = [
    "T2I_TEMPLATE",
    "all_strings",
    "ImageInput",
    "LocalInput",
    "Place",
    "image",
    "image_list",
    "is_local",
    "placeholder",
    "shown",
    "template_input",
]

ImageInput: TypeAlias = str | os.PathLike[str] | bytes
"""A photo or template: a URL (``str``), a local file (``os.PathLike``) or image bytes."""

LocalInput: TypeAlias = os.PathLike[str] | bytes
"""A local input: a file or image bytes."""

Place: TypeAlias = tuple[str, int]
"""Where a local input sits in a request: its field and its index (0 for a single image)."""

T2I_TEMPLATE: Final = "t2i_generate"
"""The template that asks the service to generate the scene from the prompt."""

_PLACEHOLDER: Final = "https://local.invalid/{}/{}"


def is_local(value: object) -> bool:
    """Whether ``value`` is a local input (a path or bytes) rather than a URL string."""
    return type(value) is not str and isinstance(value, (bytes, bytearray, memoryview, os.PathLike))


def placeholder(place: Place) -> str:
    """A URL that stands for a local input in the body built before its upload (never sent)."""
    return _PLACEHOLDER.format(*place)


def image(name: str, value: object) -> ImageInput:
    """One image argument: a URL checked, a path as it is, bytes as ``bytes``."""
    if isinstance(value, str):
        return _args.url(name, value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise InvalidArgument(f"{name} is empty bytes: give image data, a path or a URL")
        return data
    if isinstance(value, os.PathLike):
        return value
    raise InvalidArgument(
        f"{name} is not a URL: not a string but {type(value).__name__} (a local photo is an "
        "os.PathLike file or image bytes)"
    )


def template_input(value: ImageInput) -> ImageInput:
    """The ``template`` argument: ``"t2i_generate"``, or an image."""
    return value if value == T2I_TEMPLATE else image("template", value)


def image_list(name: str, values: object) -> tuple[ImageInput, ...]:
    """A non-empty list of images (a lone one is refused, not split into characters)."""
    if (type(values) is list or type(values) is tuple) and values and _args.plain_urls(values):
        return tuple(values)  # the usual case: usual URLs only
    if isinstance(values, (bytes, bytearray, memoryview, os.PathLike)):
        raise InvalidArgument(f"{name} must be a list of photos, not a single one")
    if isinstance(values, str) or not isinstance(values, Iterable):
        return tuple(_args.url_list(name, values))  # its message: a list of URLs, not ...
    items = list(values)
    if all_strings(items):
        return tuple(_args.url_list(name, items))
    return tuple(image(f"{name}[{i}]", v) for i, v in enumerate(items))


def all_strings(values: list[object] | tuple[object, ...]) -> bool:
    """Whether every item is a string (a URL, no local input), checked without a Python loop:
    ``str.join`` refuses anything else."""
    try:
        "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def shown(value: object) -> str:
    """An image as a repr shows it: bytes by their size, never their content; a presigned
    URL without its query (its signature), as output shows it (what is sent is unchanged)."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, tuple):
        return "(" + ", ".join(shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if type(value) is str:
        return repr(public_url(value))
    return repr(value)
