"""Requests as data: one immutable, validated value per AI Portrait call.

A request knows its kind (``read``, ``train`` or ``create``: what it costs and how it may be
retried), its HTTP method and path, the JSON payload it sends (built and checked once, when the
request is built) and how to read the answer. Its image fields take a URL, a local file or image
bytes; local inputs are uploaded when it is sent (:mod:`aiportrait._local.resolve`). It knows
nothing of a Session: ``await session.send(request)`` runs it, and the endpoint methods
(``session.create(...)``) only build a request and send it. A request of URLs goes to JSON and
back without loss (:meth:`~.base.Request.to_dict`, :func:`request_from_dict`), so it can be
stored in a journal or shipped to another machine.

The modules: :mod:`.images` (an image field's values), :mod:`.base` (what every request
shares), :mod:`.photos` (check, train), :mod:`.creates` (the four portrait calls),
:mod:`.queries` (job and batch queries), :mod:`.catalog` (every request class: the unions,
each by its type). The create requests and the catalog are loaded on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import InvalidArgument
from .base import CallKind, Request, config_from
from .images import T2I_TEMPLATE, ImageInput, LocalInput, Place, is_local
from .photos import CheckRequest, TrainRequest
from .queries import BatchQuery, JobQuery

if TYPE_CHECKING:
    from .catalog import AnyCreateRequest, AnyRequest
    from .creates import (
        CreateRequest,
        GroupCreateRequest,
        PromptCreateRequest,
        ReferenceCreateRequest,
    )

    _TYPES: dict[str, type[Any]]  # catalog.BY_TYPE, by the name aiportrait.temporal reads

__all__ = [
    "T2I_TEMPLATE",
    "AnyCreateRequest",
    "AnyRequest",
    "BatchQuery",
    "CallKind",
    "CheckRequest",
    "CreateRequest",
    "GroupCreateRequest",
    "ImageInput",
    "JobQuery",
    "LocalInput",
    "Place",
    "PromptCreateRequest",
    "ReferenceCreateRequest",
    "Request",
    "TrainRequest",
    "is_local",
    "request_from_dict",
]

_LAZY = {
    "AnyCreateRequest": ("catalog", "AnyCreateRequest"),
    "AnyRequest": ("catalog", "AnyRequest"),
    "CreateRequest": ("creates", "CreateRequest"),
    "GroupCreateRequest": ("creates", "GroupCreateRequest"),
    "PromptCreateRequest": ("creates", "PromptCreateRequest"),
    "ReferenceCreateRequest": ("creates", "ReferenceCreateRequest"),
    "_TYPES": ("catalog", "BY_TYPE"),  # the name aiportrait.temporal reads
}
"""Loaded on first use: a check, a training or a job query needs no create request, so
``import aiportrait`` builds neither their classes nor :class:`~aiportrait.CreateConfig`."""


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attribute = found
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def request_from_dict(data: Mapping[str, Any]) -> AnyRequest:
    """The request that :meth:`to_dict` gave ``data`` for (validated as when built).

    Image fields in ``data`` are URLs (a ``str`` is a URL here, never a path).
    """
    from .catalog import BY_TYPE

    if not isinstance(data, Mapping) or data.get("type") not in BY_TYPE:
        names = ", ".join(sorted(BY_TYPE))
        raise InvalidArgument(f"a request dict needs a 'type' of {names}: {data!r:.120}")
    cls = BY_TYPE[data["type"]]
    fields = {a.name: a for a in attrs.fields(cls) if a.init}
    unknown = set(data) - set(fields) - {"type"}
    if unknown:
        raise InvalidArgument(f"unknown fields for a {data['type']} request: {sorted(unknown)}")
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if "config" in kwargs:
        kwargs["config"] = config_from(kwargs["config"])
    for name in ("images", "model_ids", "scene_prompts"):
        value = kwargs.get(name)
        if isinstance(value, list):
            if name == "images" and not all(type(v) is str for v in value):
                raise InvalidArgument(f"a {data['type']} request dict: images must be URLs")
            kwargs[name] = tuple(value)
    for name in ("template", "reference"):
        if kwargs.get(name) is not None and type(kwargs[name]) is not str:
            raise InvalidArgument(f"a {data['type']} request dict: {name} must be a URL")
    try:
        request: AnyRequest = cls(**kwargs)
    except TypeError as exc:
        raise InvalidArgument(f"a {data['type']} request: {exc}") from None
    return request
