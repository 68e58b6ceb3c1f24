"""A hook awaited right before a charged request is written on the wire.

The batch runner sets :data:`before_send` in an item's task so that its journal says
``submitting`` only when the request is about to leave this machine: an item that was still
waiting for a limiter slot or the 429 cool-down when the batch stopped provably never ran.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable

__all__ = ["before_send", "not_sent"]

before_send: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "aiportrait_before_send", default=None
)
"""Awaited (when set) after the slot and cool-down, once per try of a train or create call."""

not_sent: contextvars.ContextVar[Callable[[], Awaitable[None]] | None] = contextvars.ContextVar(
    "aiportrait_not_sent", default=None
)
"""Awaited (when set) after a try of a train or create call that provably did not run (a 429,
no connection, a 503 with ``Retry-After``) and will be tried again: the claim is given back."""
