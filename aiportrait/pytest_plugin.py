"""The ``aiportrait`` pytest plugin (registered through the ``pytest11`` entry point).

The fixtures are described in :mod:`aiportrait.testing`: ``aiportrait_instant_waits``,
``aiportrait_emulator_options``, ``aiportrait_emulator`` and ``aiportrait_session``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from ._session import Session
from .emulator import Emulator
from .testing import FAST_POLL, FAST_TRAIN_SECONDS, VirtualClock, set_testing

__all__ = [
    "aiportrait_emulator",
    "aiportrait_emulator_options",
    "aiportrait_instant_waits",
    "aiportrait_session",
]


@pytest.fixture
def aiportrait_instant_waits() -> Iterator[VirtualClock]:
    """Make the library's waits instant on a virtual clock for one test; yields the clock."""
    with set_testing() as clock:
        assert clock is not None
        yield clock


@pytest.fixture
def aiportrait_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the emulator fixture; override it to change them."""
    return {"train_seconds": FAST_TRAIN_SECONDS}


@pytest_asyncio.fixture
async def aiportrait_emulator(
    aiportrait_emulator_options: dict[str, Any],
) -> AsyncIterator[Emulator]:
    """A running emulator with fast jobs, closed after the test."""
    async with Emulator(**aiportrait_emulator_options) as emu:
        yield emu


@pytest_asyncio.fixture
async def aiportrait_session(aiportrait_emulator: Emulator) -> AsyncIterator[Session]:
    """A Session bound to the ``aiportrait_emulator`` fixture."""
    async with aiportrait_emulator.session(poll=FAST_POLL) as session:
        yield session
