"""The calls' deadlines share one event-loop timer: each call's cancel scope is still cancelled
when its own deadline passes, and only then (outcomes, not durations, are asserted)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import anyio

from aiportrait import _retry


async def test_a_scope_is_cancelled_when_its_deadline_passes() -> None:
    with anyio.CancelScope() as scope:
        entry = _retry._deadlines().add(0.05, scope)
        await asyncio.sleep(30)  # cut by the deadline, long before
    assert scope.cancelled_caught
    _retry._deadlines().discard(entry)  # after the fact: nothing happens


async def test_a_call_that_ended_is_not_cancelled() -> None:
    deadlines = _retry._deadlines()
    with anyio.CancelScope() as first:
        entry = deadlines.add(0.02, first)
        await asyncio.sleep(0)  # the call
        deadlines.discard(entry)
    with anyio.CancelScope() as second:
        await asyncio.sleep(0.1)  # the first deadline passes meanwhile
    assert not first.cancel_called and not second.cancel_called


async def test_an_earlier_deadline_than_the_armed_one_is_kept() -> None:
    deadlines = _retry._deadlines()
    with anyio.CancelScope() as late:
        late_entry = deadlines.add(3600, late)
        with anyio.CancelScope() as early:
            deadlines.add(0.05, early)
            await asyncio.sleep(30)
        deadlines.discard(late_entry)
    assert early.cancelled_caught
    assert not late.cancel_called


async def test_ended_calls_do_not_pile_up() -> None:
    deadlines = _retry._deadlines()
    for _ in range(5000):
        with anyio.CancelScope() as scope:
            entry = deadlines.add(600, scope)
            await asyncio.sleep(0)
            deadlines.discard(entry)
    assert len(deadlines._heap) < 200


def test_a_finished_event_loop_is_not_kept_alive() -> None:
    seen: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def call() -> None:
        seen.append(weakref.ref(asyncio.get_running_loop()))
        with anyio.CancelScope() as scope:
            entry = _retry._deadlines().add(600, scope)
            await asyncio.sleep(0)
            _retry._deadlines().discard(entry)

    asyncio.run(call())
    gc.collect()
    assert seen[0]() is None


async def test_a_timer_run_early_is_armed_again() -> None:
    deadlines = _retry._deadlines()
    with anyio.CancelScope() as scope:
        entry = deadlines.add(0.05, scope)
        deadlines._fire(deadlines._when)  # as if the loop ran it a hair before its time
        assert not scope.cancel_called
        deadlines._fire(deadlines._when - 1)  # a superseded timer: ignored
        await asyncio.sleep(30)
    assert scope.cancelled_caught
    deadlines.discard(entry)
