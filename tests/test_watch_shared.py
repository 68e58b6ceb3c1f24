"""Shared watching: concurrent watches of one job in a Session share one poll schedule.

Every test runs on the library's virtual clock against a fake service whose jobs follow that
clock, so poll counts and times are exact and never depend on the machine's speed. "alone" is
what one watch of the same kind of job costs: sharing means any number of followers cost that.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

import aiportrait
from aiportrait import JobState, JobUpdate, JobWatch, PollPolicy, Session
from aiportrait.hooks import CallStarted, JobEnded, JobStateChanged, JobWatchStarted
from aiportrait.testing import VirtualClock
from tests._mock import HOST, PHOTOS, Arrival, Fake, hang
from tests.test_watch import Jobs

POLICY = PollPolicy(first=1.0, growth=0.5, cap=5.0, jitter=0.0, timeout=600.0)
"""Polls at 0, 1, 2, 3, 4.5, 6.75, 10.125, 15.1875, then every 5 s (virtual seconds)."""
INIT, RUNNING, SUCCESS = JobState.INIT, JobState.RUNNING, JobState.SUCCESS
EVERY_CHANGE = [(None, INIT), (INIT, RUNNING), (RUNNING, SUCCESS)]
SIGN_ERROR = (401, {}, {"code": "PARAMETER_ERROR", "message": "sign error"})


class Service(Jobs):
    """The jobs of ``test_watch`` (init for a tenth of their duration, then running, then
    success), and trainings of 58 s; counts the polls of each job, and a poll can be given
    another action (hang, refuse)."""

    def __init__(self, clock: VirtualClock, fake: Fake) -> None:
        super().__init__(clock, fake)
        self.polls: Counter[int] = Counter()
        self.on_poll: dict[int, Any] = {}  # poll number (of any job) -> action instead
        fake.routes["/api/v1/aigc_images/train"] = self.train

    def train(self, arrival: Arrival) -> Any:
        job_id = self.add(58.0)
        return (200, {}, {"code": "OK", "data": {"job_id": job_id, "model_id": f"m{job_id}"}})

    def answer(self, arrival: Arrival) -> Any:
        self.polls[int(arrival.path.rsplit("/", 1)[1])] += 1
        action = self.on_poll.pop(sum(self.polls.values()), None)
        if action is not None:
            return action(arrival) if callable(action) else action
        return super().answer(arrival)


@pytest.fixture
def service(aiportrait_instant_waits: VirtualClock) -> Iterator[Service]:
    with Fake() as fake:
        yield Service(aiportrait_instant_waits, fake)


@pytest.fixture
async def session(service: Service) -> AsyncIterator[Session]:
    async with Session(HOST, "a", "t", poll=POLICY) as s:
        yield s


async def follow(watch: JobWatch) -> list[JobUpdate]:
    return [u async for u in watch]


def changes(updates: list[JobUpdate]) -> list[tuple[JobState | None, JobState]]:
    return [(u.previous, u.state) for u in updates]


async def alone(service: Service, session: Session, duration: float = 60.0, **kw: Any) -> int:
    """The polls one watch of a job of ``duration`` costs (its own job: nothing shared)."""
    job_id = service.add(duration)
    updates = await follow(session.watch(job_id, **kw))
    assert changes(updates) == EVERY_CHANGE
    return service.polls[job_id]


@pytest.mark.parametrize("followers", [1, 10, 100, 1000])
async def test_polls_per_job_are_the_same_for_any_number_of_followers(
    service: Service, session: Session, followers: int
) -> None:
    one = await alone(service, session)
    job_id = service.add(60.0)
    watches = [session.watch(job_id) for _ in range(followers)]
    seen = await asyncio.gather(*(follow(w) for w in watches))
    assert service.polls[job_id] == one
    for updates, watch in zip(seen, watches, strict=True):
        assert changes(updates) == EVERY_CHANGE
        assert updates[-1].polls == watch.polls == one
        assert [u.elapsed for u in updates] == sorted(u.elapsed for u in updates)


@pytest.mark.parametrize("how", ["cancel mid-sleep", "cancel mid-poll", "break", "aclose"])
async def test_a_follower_that_leaves_does_not_disturb_the_others(
    service: Service, aiportrait_instant_waits: VirtualClock, how: str
) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        one = await alone(service, session)
        job_id = service.add(60.0)
        polls_before = sum(service.polls.values())
        hung = asyncio.Event()

        async def hang_now(arrival: Arrival) -> Any:
            hung.set()
            return await hang(arrival)

        if how == "cancel mid-poll":  # its third poll hangs until its task is cancelled
            service.on_poll[polls_before + 3] = hang_now
        leaver = session.watch(job_id)  # started first: it polls first

        async def leave() -> list[JobUpdate]:
            seen: list[JobUpdate] = []
            if how == "cancel mid-sleep":  # cancelled as virtual time passes 7 s: its sleep
                with aiportrait_instant_waits.deadline(7.0):
                    async for update in leaver:
                        seen.append(update)
            elif how == "aclose":
                seen.append(await leaver.__anext__())
                await leaver.aclose()
            else:
                async for update in leaver:
                    seen.append(update)
                    if how == "break":
                        break
            return seen

        leaving = asyncio.create_task(leave())
        others = [session.watch(job_id) for _ in range(3)]
        staying = [asyncio.create_task(follow(w)) for w in others]
        if how == "cancel mid-poll":
            await hung.wait()
            (in_flight,) = [e for e in events if isinstance(e, CallStarted)][-1:]
            assert in_flight.within == leaver.id  # the leaver's task was polling for all
            leaving.cancel()
        stayed = await asyncio.gather(*staying)
        left = await asyncio.gather(leaving, return_exceptions=True)
    for updates in stayed:
        assert changes(updates) == EVERY_CHANGE  # each follower still got every change
    if how == "cancel mid-poll":
        assert isinstance(left[0], asyncio.CancelledError)
        assert service.polls[job_id] == one + 1  # the cut poll, made again at once
    else:
        assert service.polls[job_id] == one  # the schedule went on as it was
        assert [u.state for u in left[0]] == ([INIT, RUNNING] if "sleep" in how else [INIT])
    pollers = {e.within for e in events if isinstance(e, CallStarted)}
    if how.startswith("cancel"):
        assert leaver.id in pollers and len(pollers - {leaver.id}) >= 1  # handed over


async def test_when_the_last_follower_leaves_nothing_polls(
    service: Service, session: Session, aiportrait_instant_waits: VirtualClock
) -> None:
    job_id = service.add(1e6)
    tasks: list[asyncio.Task[list[JobUpdate]]] = []

    def cancel_all(arrival: Arrival) -> Any:  # at its fourth poll, every follower leaves
        for task in tasks:
            task.cancel()
        return Jobs.answer(service, arrival)

    service.on_poll[4] = cancel_all
    tasks.extend(asyncio.create_task(follow(session.watch(job_id))) for _ in range(5))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    polls = service.polls[job_id]
    assert polls == 4
    await aiportrait_instant_waits.sleep(3600.0)  # an hour later: no poll was made
    for _ in range(10):
        await asyncio.sleep(0)
    assert service.polls[job_id] == polls
    # The schedule is gone with its followers: a new watch looks at once.
    began = aiportrait_instant_waits.time
    first = await session.watch(job_id).__anext__()
    assert (first.previous, first.state, first.polls) == (None, INIT, 1)
    assert aiportrait_instant_waits.time == began and service.polls[job_id] == polls + 1


async def test_a_late_joiner_gets_the_state_now_then_each_later_change(
    service: Service, session: Session
) -> None:
    one = await alone(service, session)
    job_id = service.add(60.0)
    joined: list[asyncio.Task[list[JobUpdate]]] = []
    first: list[JobUpdate] = []
    async for update in session.watch(job_id):
        first.append(update)
        if update.state is RUNNING:
            joined.append(asyncio.create_task(follow(session.watch(job_id))))
    late = await joined[0]
    assert changes(first) == EVERY_CHANGE
    assert changes(late) == [(None, RUNNING), (RUNNING, SUCCESS)]
    assert late[0].polls == first[1].polls  # it started from what was seen: no poll of its own
    assert late[-1].job == first[-1].job
    assert late[-1].elapsed < first[-1].elapsed  # its own clock, from when it joined
    assert service.polls[job_id] == one


async def test_a_slow_follower_still_gets_every_change(service: Service, session: Session) -> None:
    one = await alone(service, session)
    job_id = service.add(60.0)
    release = asyncio.Event()

    async def slow() -> list[JobUpdate]:  # busy elsewhere after its first update
        seen: list[JobUpdate] = []
        async for update in session.watch(job_id):
            seen.append(update)
            if len(seen) == 1:
                await release.wait()
        return seen

    slow_task = asyncio.create_task(slow())
    fast = await follow(session.watch(job_id))  # polls on to the end meanwhile
    release.set()
    late = await slow_task
    assert changes(fast) == changes(late) == EVERY_CHANGE
    assert late[-1].job == fast[-1].job
    assert service.polls[job_id] == one  # it read what the feed kept: no poll of its own


async def test_each_follower_has_its_own_deadline(
    service: Service, session: Session, aiportrait_instant_waits: VirtualClock
) -> None:
    one = await alone(service, session)
    job_id = service.add(60.0)
    began = aiportrait_instant_waits.time
    # The 10-s one polls first (it leads the schedule) and its deadline comes before the poll
    # due at 10.125 s: the others take over the schedule without a poll more or less.
    watches = [session.watch(job_id, timeout=t) for t in (10.0, 8.0, None, 30.0)]
    results = await asyncio.gather(*(follow(w) for w in watches), return_exceptions=True)
    ten, eight, untimed, thirty = results
    assert isinstance(ten, aiportrait.JobTimeout) and ten.elapsed == 10.0
    assert isinstance(eight, aiportrait.JobTimeout) and eight.elapsed >= 8.0
    assert isinstance(thirty, aiportrait.JobTimeout) and thirty.elapsed >= 30.0
    assert ten.last_state == eight.last_state == int(RUNNING)
    assert isinstance(untimed, list) and changes(untimed) == EVERY_CHANGE
    assert untimed[0].elapsed == 0.0  # its own clock, from its first step
    assert untimed[-1].elapsed <= aiportrait_instant_waits.time - began
    assert service.polls[job_id] == one


async def test_a_failure_polling_cannot_fix_reaches_every_follower(
    service: Service, session: Session
) -> None:
    job_id = service.add(60.0)
    service.on_poll[2] = SIGN_ERROR
    watches = [session.watch(job_id) for _ in range(5)]
    results = await asyncio.gather(*(w.result() for w in watches), return_exceptions=True)
    assert all(isinstance(r, aiportrait.errors.SignatureMismatch) for r in results)
    assert service.polls[job_id] == 2  # one answer, one refusal: none polled again
    assert all(w.polls == 2 for w in watches)
    # That schedule ended with its failure; a new watch starts one of its own.
    assert changes(await follow(session.watch(job_id))) == EVERY_CHANGE


async def test_views_share_a_schedule_and_another_schedule_polls_on_its_own(
    service: Service, session: Session
) -> None:
    one = await alone(service, session)
    job_id = service.add(60.0)
    view = session.with_options(timeout=30.0)  # another per-try timeout: the same schedule
    others = [view.watch(job_id), session.watch(job_id, timeout=900.0)]  # another deadline
    tasks = [asyncio.create_task(follow(w)) for w in others]
    first: list[JobUpdate] = []
    async for update in session.watch(job_id):
        first.append(update)
        if update.state is RUNNING:  # another schedule is another feed: it looks at once
            own = session.watch(job_id, poll=attrs.evolve(POLICY, first=2.0))
            mine = await own.__anext__()
            await own.aclose()
            assert (mine.previous, mine.state, mine.polls) == (None, RUNNING, 1)
    rest = await asyncio.gather(*tasks)
    assert all(changes(updates) == EVERY_CHANGE for updates in [first, *rest])
    assert service.polls[job_id] == one + 1
    assert [w.polls for w in others] == [one, one]


async def test_each_follower_tells_the_hooks_its_own_watch_and_polls_name_one_of_them(
    service: Service,
) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        one = await alone(service, session)
        events.clear()
        job_id = service.add(60.0)
        await asyncio.gather(*(session.wait(job_id) for _ in range(3)))
    started = [e for e in events if isinstance(e, JobWatchStarted)]
    ids = {e.id for e in started}
    assert len(ids) == 3 and all(e.job_id == job_id for e in started)
    for watch_id in ids:
        told = [e for e in events if isinstance(e, JobStateChanged) and e.id == watch_id]
        assert [(e.previous, e.state) for e in told] == EVERY_CHANGE
        (ended,) = [e for e in events if isinstance(e, JobEnded) and e.id == watch_id]
        assert (ended.outcome, ended.state, ended.polls) == ("succeeded", SUCCESS, one)
    polls = [e for e in events if isinstance(e, CallStarted)]
    assert len(polls) == one and {p.within for p in polls} <= ids


async def test_a_duration_is_learned_once_per_job_and_used_by_watches_started_before(
    service: Service, session: Session
) -> None:
    job = await session.train(PHOTOS)  # 58 s: the kind is known, its duration is learned
    await asyncio.gather(*(session.wait(job) for _ in range(5)))
    assert len(session._durations.seen()["sd15"]) == 1  # once, not once per follower

    unlearned = await session.train(PHOTOS)
    plain = await follow(session.watch(unlearned, poll=attrs.evolve(POLICY, learn=False)))
    late = plain[-1].elapsed - 58.0
    assert late > 2.0  # polls at 55.19 and 60.19

    job = await session.train(PHOTOS)
    watch = session.watch(job)
    first = await watch.__anext__()  # started before anything more was learned
    assert first.remaining is None and watch.policy.expected is None
    for _ in range(3):
        session._durations.record("sd15", 58.0)  # enough seen now: the estimate is used
    assert watch.policy.expected is not None and watch.policy.timeout == POLICY.timeout
    rest = [u async for u in watch]
    assert rest[-1].state is SUCCESS
    assert rest[-1].elapsed - 58.0 < late  # the learned end was polled densely
