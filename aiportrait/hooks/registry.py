"""The hooks added for every Session, and how an event reaches its hooks.

A hook that raises is logged once (a warning on the ``aiportrait`` logger) and its error
ignored: a hook can never break a call.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .events import Event, Hook

__all__ = [
    "add_hook",
    "emit",
    "emit_now",
    "header_sources",
    "installed",
    "next_id",
    "origin",
    "remove_hook",
]

log = logging.getLogger("aiportrait")

_GLOBAL: list[Hook] = []
_LOGGED: set[int] = set()  # hooks whose failure was logged already

_ids = itertools.count(1)


def next_id() -> int:
    """A new watch or batch id (unique in the process)."""
    return next(_ids)


def add_hook(hook: Hook) -> None:
    """Call ``hook`` with the events of every Session built after this (a Session takes the
    hooks added so far when it is built, as it takes its other settings)."""
    if not callable(hook):
        raise TypeError(f"a hook must be callable, not {type(hook).__name__}")
    _GLOBAL.append(hook)


def remove_hook(hook: Hook) -> None:
    """Stop calling ``hook`` (added with :func:`add_hook`); nothing happens if it was not."""
    if hook in _GLOBAL:
        _GLOBAL.remove(hook)


def installed() -> tuple[Hook, ...]:
    """The hooks added with :func:`add_hook`, in order (what a new Session takes)."""
    return tuple(_GLOBAL)


def header_sources(hooks: Sequence[Hook]) -> tuple[Callable[[], Mapping[str, str]], ...]:
    """The ``headers`` methods of the hooks that have one (a tracing hook's ``traceparent``):
    the transport calls them for each request and adds what they give outside the signature.
    One that raises is logged (once) and adds nothing, as for events."""
    sources: list[Callable[[], Mapping[str, str]]] = []
    for hook in hooks:
        headers = getattr(hook, "headers", None)
        if callable(headers):
            sources.append(_guarded(hook, headers))
    return tuple(sources)


def _guarded(
    hook: Hook, headers: Callable[[], Mapping[str, str]]
) -> Callable[[], Mapping[str, str]]:
    def guarded() -> Mapping[str, str]:
        try:
            return headers()
        except Exception:
            _failed(hook)
            return {}

    return guarded


async def emit(hooks: Sequence[Hook], event: Event) -> None:
    """Give ``event`` to each hook; a hook that raises is logged (once) and the call goes on."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            _failed(hook)


def emit_now(hooks: Sequence[Hook], event: Event) -> None:
    """Give ``event`` to each hook without awaiting: for a watch dropped unfinished, where no
    event loop may run. An ``async`` hook's coroutine is closed unrun."""
    for hook in hooks:
        try:
            outcome = hook(event)
            if inspect.iscoroutine(outcome):
                outcome.close()
        except Exception:
            _failed(hook)


def _failed(hook: Hook) -> None:
    if id(hook) not in _LOGGED:
        _LOGGED.add(id(hook))
        log.warning("hook %r raised; its errors are ignored", hook, exc_info=True)


def origin(base_url: str, app_id: str) -> tuple[str, int | None, str]:
    """What :class:`CallStarted` says of the service: host name, port and AppId."""
    parts = urlsplit(base_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.hostname or "", port, app_id
