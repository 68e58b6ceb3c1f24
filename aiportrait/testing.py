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

- ``aiportrait_instant_waits``: every wait of the library (retry backoff, 429 cool-down, poll
  intervals) returns at once and moves a virtual clock instead, so tests of retries, deadlines
  and poll schedules run in no time and never depend on the machine's speed. The fixture
  yields the :class:`VirtualClock` (``.time``: virtual seconds passed; ``.slept``: the waits
  asked for). Outside pytest, :func:`set_testing` does the same.

Override ``aiportrait_emulator_options`` (a plain fixture returning a dict of
:class:`~aiportrait.emulator.Emulator` keyword arguments) to change the emulator, e.g. to add
fault injection or a ``serve_dir``. The emulator needs the ``emulator`` extra
(``pip install 'aiportrait[emulator]'``) for real image work; synthetic jobs work without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._clock import VirtualClock, set_testing
from ._watch import PollPolicy

if TYPE_CHECKING:
    from ._session import Session
    from .emulator import Emulator

__all__ = [
    "VirtualClock",
    "aiportrait_emulator",
    "aiportrait_emulator_options",
    "aiportrait_instant_waits",
    "aiportrait_session",
    "set_testing",
]

FAST_TRAIN_SECONDS = 0.05

FAST_POLL = PollPolicy(first=0.02, growth=0.5, cap=0.1, timeout=60.0)
"""The fixture Session's poll policy: the default one waits 2 s before its second look."""


@pytest.fixture
def aiportrait_instant_waits() -> Iterator[VirtualClock]:
    """Make the library's waits instant on a virtual clock for one test; yields the clock."""
    clock = set_testing(True)
    assert clock is not None
    try:
        yield clock
    finally:
        set_testing(False)


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
