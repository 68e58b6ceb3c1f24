"""Every request class: the unions that name them, and each by its ``type`` (see
:meth:`~.base.Request.to_dict`).

Loaded on first use (through :mod:`aiportrait._requests`' ``__getattr__``), with the create
requests: a check, a training or a job query needs neither.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from .creates import CreateRequest, GroupCreateRequest, PromptCreateRequest, ReferenceCreateRequest
from .photos import CheckRequest, TrainRequest
from .queries import BatchQuery, JobQuery

__all__ = ["BY_TYPE", "AnyCreateRequest", "AnyRequest"]

AnyCreateRequest: TypeAlias = (
    CreateRequest | GroupCreateRequest | ReferenceCreateRequest | PromptCreateRequest
)
AnyRequest: TypeAlias = CheckRequest | TrainRequest | AnyCreateRequest | JobQuery | BatchQuery

BY_TYPE: Final[dict[str, type[Any]]] = {
    cls.type_name: cls
    for cls in (
        CheckRequest,
        TrainRequest,
        CreateRequest,
        GroupCreateRequest,
        ReferenceCreateRequest,
        PromptCreateRequest,
        JobQuery,
        BatchQuery,
    )
}
