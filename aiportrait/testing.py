"""Testing with aiportrait: instant waits on a virtual clock, and the pytest fixtures.

:func:`set_testing` makes every wait of the library (retry backoff, 429 cool-down, poll
intervals) return at once and move a :class:`VirtualClock` instead, and every deadline pass
when that clock passes it, so tests of retries, deadlines and poll schedules run in no time and
never depend on the machine's speed. It needs no pytest::

    from aiportrait.testing import set_testing

    with set_testing() as clock:
        result = await session.wait(job)
    print(clock.time, clock.slept)   # virtual seconds passed, the waits asked for

With pytest (and pytest-asyncio) installed, the ``aiportrait`` plugin
(:mod:`aiportrait.pytest_plugin`, registered through the ``pytest11`` entry point) gives any
test:

- ``aiportrait_instant_waits``: :func:`set_testing` for one test; yields the clock;
- ``aiportrait_emulator``: a running :class:`aiportrait.emulator.Emulator` on loopback with fast
  jobs (training takes :data:`FAST_TRAIN_SECONDS`), in a temporary data directory;
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

from ._jobs.schedule import PollPolicy
from ._retrying.clock import VirtualClock, set_testing

__all__ = ["FAST_POLL", "FAST_TRAIN_SECONDS", "VirtualClock", "set_testing"]

FAST_TRAIN_SECONDS = 0.05
"""How long the fixture emulator's trainings take, seconds."""

FAST_POLL = PollPolicy(first=0.02, growth=0.5, cap=0.1, timeout=60.0)
"""The fixture Session's poll policy: the default one waits 2 s before its second look."""
