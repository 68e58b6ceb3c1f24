"""The one place the emulator meets a client: a session factory the client package registers.

The emulator is a server and never imports the client (``tests/emulator/test_cli.py`` checks
every import of every emulator module). :meth:`Emulator.session` is a convenience that still
hands back a ready client: it calls the factory registered here with the emulator's URL, AppId
and token. ``aiportrait/__init__.py`` registers :class:`aiportrait.Session` when it is imported,
which is always before any emulator code runs (``aiportrait.emulator`` is a subpackage, so
importing it imports ``aiportrait`` first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SessionFactory", "make_session", "register_session_factory"]

#: Builds a client from ``(url, app_id, token, **options)``.
SessionFactory = Callable[..., Any]

_factory: SessionFactory | None = None


def register_session_factory(factory: SessionFactory) -> None:
    """Make ``factory`` what :meth:`Emulator.session` calls (the last registration wins)."""
    global _factory
    _factory = factory


def make_session(url: str, app_id: str, token: str, **options: Any) -> Any:
    """A client bound to ``url`` with these credentials, from the registered factory."""
    if _factory is None:
        raise RuntimeError(
            "no client is registered for Emulator.session(); import aiportrait first, "
            "or build a client from emu.url, emu.app_id and emu.token"
        )
    return _factory(url, app_id, token, **options)
