"""Pytest fixtures for your own tests, registered through the ``pytest11`` entry point.

With aiportrait and pytest-asyncio installed, any test can ask for:

- ``aiportrait_emulator``: a running :class:`aiportrait.emulator.Emulator` on loopback with fast
  jobs (training takes ``0.05`` s), in a temporary data directory;
- ``aiportrait_session``: an :class:`aiportrait.Session` bound to that emulator, polling jobs
  every few hundredths of a second (:data:`FAST_POLL`) so that ``watch`` and ``wait`` end as
  quickly as the fast jobs do.

::

    async def test_my_flow(aiportrait_session):
        job = await aiportrait_session.train(photo_urls)
        ...

Override ``aiportrait_emulator_options`` (a plain fixture returning a dict of
:class:`~aiportrait.emulator.Emulator` keyword arguments) to change the emulator, e.g. to add
fault injection or a ``serve_dir``. The emulator needs the ``emulator`` extra
(``pip install 'aiportrait[emulator]'``) for real image work; synthetic jobs work without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from ._watch import PollPolicy

if TYPE_CHECKING:
    from ._session import Session
    from .emulator import Emulator

__all__ = ["aiportrait_emulator", "aiportrait_emulator_options", "aiportrait_session"]

FAST_TRAIN_SECONDS = 0.05

FAST_POLL = PollPolicy(first=0.02, growth=0.5, cap=0.1, timeout=60.0)
"""The fixture Session's poll policy: the default one waits 2 s before its second look."""


@pytest.fixture
def aiportrait_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the emulator fixture; override it to change them."""
    return {"train_seconds": FAST_TRAIN_SECONDS}


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is how the fixtures run
    pass
else:

    @pytest_asyncio.fixture
    async def aiportrait_emulator(
        aiportrait_emulator_options: dict[str, Any],
    ) -> AsyncIterator[Emulator]:
        """A running emulator with fast jobs, closed after the test."""
        from .emulator import Emulator

        async with Emulator(**aiportrait_emulator_options) as emu:
            yield emu

    @pytest_asyncio.fixture
    async def aiportrait_session(aiportrait_emulator: Emulator) -> AsyncIterator[Session]:
        """A Session bound to the ``aiportrait_emulator`` fixture."""
        async with aiportrait_emulator.session(poll=FAST_POLL) as session:
            yield session
