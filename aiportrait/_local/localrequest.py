"""``LocalRequest``, deprecated: every request class takes local files and bytes itself.

Before, requests took URLs only and a batch item with local photos was a ``LocalRequest``.
Now ``TrainRequest([Path("a.jpg"), ...], force=True)`` or ``CreateRequest(model_id,
Path("t.jpg"))`` is that item, and :meth:`Session.send` takes it too. The constructors here
warn and return the request itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .._requests import (
    CreateRequest,
    GroupCreateRequest,
    PromptCreateRequest,
    ReferenceCreateRequest,
    Request,
    TrainRequest,
)

__all__ = ["LocalRequest"]


def _warn(made: str) -> None:
    warnings.warn(
        f"LocalRequest is deprecated: request classes take local files and bytes themselves; "
        f"use {made}",
        DeprecationWarning,
        stacklevel=3,
    )


def _deprecated(cls: type[Request], positional: tuple[str, ...] = ()) -> Callable[..., Any]:
    def build(*args: Any, **kwargs: Any) -> Any:
        _warn(f"{cls.__name__}(...)")
        kwargs.update(zip(positional, args, strict=False))
        return cls(*args[len(positional) :], **kwargs)

    build.__doc__ = f"Deprecated: returns ``{cls.__name__}(...)`` with the same arguments."
    return build


class LocalRequest:
    """Deprecated: the request classes take local inputs themselves (see the module).

    ``LocalRequest.train(...)``, ``.create(...)``, ``.create_group(...)``,
    ``.create_from_reference(...)``, ``.create_from_prompt(...)`` and ``LocalRequest(cls,
    fields, force=...)`` still work: they warn and return the request (``TrainRequest``,
    ``CreateRequest``...), which is not a ``LocalRequest`` instance.
    """

    def __new__(
        cls, request_type: type[Request], fields: Mapping[str, Any], force: bool = False
    ) -> Any:
        _warn(f"{request_type.__name__}(...)")
        extra = {"force": force} if force else {}
        return request_type(**fields, **extra)

    train = staticmethod(_deprecated(TrainRequest))
    create = staticmethod(_deprecated(CreateRequest))
    create_group = staticmethod(_deprecated(GroupCreateRequest))
    create_from_reference = staticmethod(_deprecated(ReferenceCreateRequest))
    create_from_prompt = staticmethod(_deprecated(PromptCreateRequest, ("prompt",)))
