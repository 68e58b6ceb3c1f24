"""A hook awaited right before a charged request is written on the wire.

The batch runner sets :data:`before_send` in an item's task so that its journal says
``submitting`` only when the request is about to leave this machine: an item that was still
waiting for a limiter slot or the 429 cool-down when the batch stopped provably never ran.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

__all__ = ["before_send"]

before_send: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "aiportrait_before_send", default=None
)
"""Awaited (when set) after the slot and cool-down, once per try of a train or create call."""
