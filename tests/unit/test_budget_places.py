"""A budget's places, step by step: held from the start of a call, spent when it is about to be
written, held again after a try that provably did not run, given back when it never left; the
journal's claim inside it decides first."""

from __future__ import annotations

import asyncio

import pytest

from aiportrait import Budget
from aiportrait._retrying.budget import reserve
from aiportrait.errors import BudgetExhausted


class Claim:
    """A journal's claim stand-in: records what it was told; ``refuse`` makes it raise."""

    def __init__(self, refuse: bool = False) -> None:
        self.told: list[str] = []
        self.refuse = refuse

    async def before_send(self) -> None:
        self.told.append("before_send")
        if self.refuse:
            raise RuntimeError("claimed by another run")

    async def not_sent(self) -> None:
        self.told.append("not_sent")


async def test_a_place_is_held_spent_held_again_and_kept_once_sent() -> None:
    budget = Budget(creations=1)
    inner = Claim()
    with reserve((budget,), "create") as held:
        claim = held.claim(inner)
        assert claim is held
        assert (budget.spent("create"), budget.left("create")) == (0, 0)  # held, not spent
        with pytest.raises(BudgetExhausted):
            reserve((budget,), "create")
        await held.before_send()
        assert budget.spent("create") == 1
        await held.not_sent()  # a 429: it did not run, and will be tried again
        assert (budget.spent("create"), budget.left("create")) == (0, 0)
        await held.before_send()
        await held.before_send()  # hooks tell it before each try: spent once
    assert inner.told == ["before_send", "not_sent", "before_send", "before_send"]
    assert (budget.spent("create"), budget.left("create")) == (1, 0)


async def test_a_call_that_never_left_gives_its_place_back_even_when_cancelled() -> None:
    budget = Budget(trainings=1)
    with reserve((budget,), "train"):
        pass  # a bad photo, an upload that failed: nothing sent
    assert budget.left("train") == 1

    async def cancelled_before_the_wire() -> None:
        with reserve((budget,), "train"):
            await asyncio.sleep(3600)

    task = asyncio.create_task(cancelled_before_the_wire())
    await asyncio.sleep(0)
    assert budget.left("train") == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (budget.spent("train"), budget.left("train")) == (0, 1)


async def test_the_journals_refusal_comes_first_and_spends_nothing() -> None:
    budget = Budget(creations=2)
    with reserve((budget,), "create") as held:
        claim = held.claim(Claim(refuse=True))
        assert claim is not None
        with pytest.raises(RuntimeError):
            await claim.before_send()
    assert (budget.spent("create"), budget.left("create")) == (0, 2)


def test_several_budgets_are_held_all_or_none_and_reads_hold_nothing() -> None:
    session, batch = Budget(creations=5), Budget(creations=0)
    with pytest.raises(BudgetExhausted) as refused:
        reserve((session, batch, None), "create")
    assert refused.value.limit == 0
    assert session.left("create") == 5  # the place it had taken is given back
    with reserve((session, session), "create"):  # the same budget twice holds one place
        assert session.left("create") == 4
    unbounded = Budget(trainings=1)
    with reserve((unbounded,), "create") as held:  # no bound on creations: nothing held
        assert held.claim(None) is None
    with reserve((Budget(creations=0),), "read") as held:
        assert held.claim(None) is None
