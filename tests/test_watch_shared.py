"""Shared watching: concurrent watches of one job in a Session share one poll schedule.

Every test runs on the library's virtual clock against a fake service whose jobs follow that
clock (``test_watch``'s ``Jobs``, and its ``jobs`` and ``session`` fixtures), so poll counts and
times are exact and never depend on the machine's speed. "alone" is what one watch of the same
kind of job costs: sharing means any number of followers cost that.
"""

from __future__ import annotations

import asyncio
import gc
import pickle
import traceback
from typing import Any

import attrs
import pytest

import aiportrait
from aiportrait import JobState, JobUpdate, JobWatch, PollPolicy, Session
from aiportrait.hooks import CallStarted, JobEnded, JobStateChanged, JobWatchStarted
from aiportrait.testing import VirtualClock
from tests._mock import HOST, PHOTOS, Arrival, hang
from tests.test_watch import Jobs, jobs_fixture, session_fixture  # noqa: F401 (fixtures)

POLICY = PollPolicy(first=1.0, growth=0.5, cap=5.0, jitter=0.0, timeout=600.0)
"""Polls at 0, 1, 2, 3, 4.5, 6.75, 10.125, 15.1875, then every 5 s (virtual seconds)."""
INIT, RUNNING, SUCCESS = JobState.INIT, JobState.RUNNING, JobState.SUCCESS
EVERY_CHANGE = [(None, INIT), (INIT, RUNNING), (RUNNING, SUCCESS)]
SIGN_ERROR = (401, {}, {"code": "PARAMETER_ERROR", "message": "sign error"})


@pytest.fixture
def poll() -> PollPolicy:
    """The Session's poll policy here (``session`` comes from ``test_watch``)."""
    return POLICY


async def follow(watch: JobWatch) -> list[JobUpdate]:
    return [u async for u in watch]


def changes(updates: list[JobUpdate]) -> list[tuple[JobState | None, JobState]]:
    return [(u.previous, u.state) for u in updates]


async def alone(jobs: Jobs, session: Session, duration: float = 60.0, **kw: Any) -> int:
    """The polls one watch of a job of ``duration`` costs (its own job: nothing shared)."""
    job_id = jobs.add(duration)
    updates = await follow(session.watch(job_id, **kw))
    assert changes(updates) == EVERY_CHANGE
    return jobs.polls[job_id]


@pytest.mark.parametrize("followers", [1, 10, 100, 1000])
async def test_polls_per_job_are_the_same_for_any_number_of_followers(
    jobs: Jobs, session: Session, followers: int
) -> None:
    one = await alone(jobs, session)
    job_id = jobs.add(60.0)
    watches = [session.watch(job_id) for _ in range(followers)]
    seen = await asyncio.gather(*(follow(w) for w in watches))
    assert jobs.polls[job_id] == one
    for updates, watch in zip(seen, watches, strict=True):
        assert changes(updates) == EVERY_CHANGE
        assert updates[-1].polls == watch.polls == one
        assert [u.elapsed for u in updates] == sorted(u.elapsed for u in updates)


@pytest.mark.parametrize("how", ["cancel mid-sleep", "cancel mid-poll", "break", "aclose"])
async def test_a_follower_that_leaves_does_not_disturb_the_others(
    jobs: Jobs, aiportrait_instant_waits: VirtualClock, how: str
) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        one = await alone(jobs, session)
        job_id = jobs.add(60.0)
        polls_before = sum(jobs.polls.values())
        hung = asyncio.Event()

        async def hang_now(arrival: Arrival) -> Any:
            hung.set()
            return await hang(arrival)

        if how == "cancel mid-poll":  # its third poll hangs until its task is cancelled
            jobs.on_poll[polls_before + 3] = hang_now
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
        assert jobs.polls[job_id] == one + 1  # the cut poll, made again at once
    else:
        assert jobs.polls[job_id] == one  # the schedule went on as it was
        assert [u.state for u in left[0]] == ([INIT, RUNNING] if "sleep" in how else [INIT])
    pollers = {e.within for e in events if isinstance(e, CallStarted)}
    if how.startswith("cancel"):
        assert leaver.id in pollers and len(pollers - {leaver.id}) >= 1  # handed over


async def test_when_the_last_follower_leaves_nothing_polls(
    jobs: Jobs, session: Session, aiportrait_instant_waits: VirtualClock
) -> None:
    job_id = jobs.add(1e6)
    tasks: list[asyncio.Task[list[JobUpdate]]] = []

    def cancel_all(arrival: Arrival) -> Any:  # at its fourth poll, every follower leaves
        for task in tasks:
            task.cancel()
        return jobs.state(arrival)

    jobs.on_poll[4] = cancel_all
    tasks.extend(asyncio.create_task(follow(session.watch(job_id))) for _ in range(5))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    polls = jobs.polls[job_id]
    assert polls == 4
    await aiportrait_instant_waits.sleep(3600.0)  # an hour later: no poll was made
    for _ in range(10):
        await asyncio.sleep(0)
    assert jobs.polls[job_id] == polls
    # The schedule is gone with its followers: a new watch looks at once.
    began = aiportrait_instant_waits.time
    first = await session.watch(job_id).__anext__()
    assert (first.previous, first.state, first.polls) == (None, INIT, 1)
    assert aiportrait_instant_waits.time == began and jobs.polls[job_id] == polls + 1


async def test_a_watch_resumed_after_its_schedule_was_forgotten_follows_the_new_one(
    jobs: Jobs, session: Session
) -> None:
    job_id = jobs.add(60.0)
    first = session.watch(job_id)
    assert (await first.__anext__()).state is INIT
    waiting = asyncio.create_task(first.__anext__())
    await asyncio.sleep(0)  # it waits for its next poll
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)  # nobody follows: it is forgotten
    polls = jobs.polls[job_id]
    second = session.watch(job_id)  # a new schedule for the job
    assert (await second.__anext__()).state is INIT
    rest, other = await asyncio.gather(follow(first), follow(second))
    assert changes(rest) == [(INIT, RUNNING), (RUNNING, SUCCESS)]  # no state told twice
    assert changes(other) == [(INIT, RUNNING), (RUNNING, SUCCESS)]
    assert first.polls == second.polls == jobs.polls[job_id] - polls  # one schedule polled


async def test_a_late_joiner_gets_the_state_now_then_each_later_change(
    jobs: Jobs, session: Session
) -> None:
    one = await alone(jobs, session)
    job_id = jobs.add(60.0)
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
    assert jobs.polls[job_id] == one


async def test_a_slow_follower_still_gets_every_change(jobs: Jobs, session: Session) -> None:
    one = await alone(jobs, session)
    job_id = jobs.add(60.0)
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
    assert jobs.polls[job_id] == one  # it read what the feed kept: no poll of its own


async def test_a_slow_follower_gets_the_changes_kept_before_a_refusal(
    jobs: Jobs, session: Session
) -> None:
    job_id = jobs.add(60.0)
    release = asyncio.Event()

    async def slow(seen: list[JobUpdate]) -> None:  # busy elsewhere after its first update
        async for update in session.watch(job_id):
            seen.append(update)
            if len(seen) == 1:
                await release.wait()

    late: list[JobUpdate] = []
    slow_task = asyncio.create_task(slow(late))
    async for update in session.watch(job_id):
        if update.state is RUNNING:  # the next poll is refused: the schedule ends
            jobs.on_poll[sum(jobs.polls.values()) + 1] = SIGN_ERROR
            break
    with pytest.raises(aiportrait.errors.SignatureMismatch):
        await follow(session.watch(job_id))
    release.set()
    with pytest.raises(aiportrait.errors.SignatureMismatch):
        await slow_task
    assert changes(late) == [(None, INIT), (INIT, RUNNING)]  # what was kept, then the refusal


async def test_each_follower_has_its_own_deadline(
    jobs: Jobs, session: Session, aiportrait_instant_waits: VirtualClock
) -> None:
    one = await alone(jobs, session)
    job_id = jobs.add(60.0)
    began = aiportrait_instant_waits.time
    # The 10-s one polls first (it leads the schedule) and its deadline comes before the poll
    # due at 10.125 s: the others take over the schedule without a poll more or less.
    watches = [session.watch(job_id, timeout=t) for t in (10.0, 8.0, None, 30.0)]
    results = await asyncio.gather(*(follow(w) for w in watches), return_exceptions=True)
    ten, eight, untimed, thirty = results
    assert isinstance(ten, aiportrait.JobTimeout) and ten.elapsed == 10.0
    # Each reports its own deadline, though the virtual clock jumped past it to a poll's time.
    assert isinstance(eight, aiportrait.JobTimeout) and eight.elapsed == 8.0
    assert isinstance(thirty, aiportrait.JobTimeout) and thirty.elapsed == 30.0
    assert "within 8.0s" in str(eight) and "within 30.0s" in str(thirty)
    assert ten.last_state == eight.last_state == int(RUNNING)
    assert isinstance(untimed, list) and changes(untimed) == EVERY_CHANGE
    assert untimed[0].elapsed == 0.0  # its own clock, from its first step
    assert untimed[-1].elapsed <= aiportrait_instant_waits.time - began
    assert jobs.polls[job_id] == one


async def test_a_follower_that_times_out_tells_the_hooks_its_own_limit(jobs: Jobs) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        job_id = jobs.add(60.0)
        lead = asyncio.create_task(follow(session.watch(job_id)))
        await asyncio.sleep(0)  # it leads: the follower waits for its answers
        with pytest.raises(aiportrait.JobTimeout) as info:
            await follow(session.watch(job_id, timeout=8.0))
        await lead
    (ended,) = [e for e in events if isinstance(e, JobEnded) and e.outcome == "timeout"]
    assert ended.seconds == info.value.elapsed == 8.0


async def test_a_failure_polling_cannot_fix_reaches_every_follower(
    jobs: Jobs, session: Session
) -> None:
    job_id = jobs.add(60.0)
    jobs.on_poll[2] = SIGN_ERROR
    watches = [session.watch(job_id) for _ in range(5)]
    results = await asyncio.gather(*(w.result() for w in watches), return_exceptions=True)
    assert all(isinstance(r, aiportrait.errors.SignatureMismatch) for r in results)
    assert jobs.polls[job_id] == 2  # one answer, one refusal: none polled again
    assert all(w.polls == 2 for w in watches)
    # That schedule ended with its failure; a new watch starts one of its own.
    assert changes(await follow(session.watch(job_id))) == EVERY_CHANGE


async def test_each_follower_raises_its_own_copy_of_the_failure(
    jobs: Jobs, session: Session
) -> None:
    job_id = jobs.add(60.0)
    jobs.on_poll[2] = SIGN_ERROR
    results = await asyncio.gather(
        *(session.wait(job_id) for _ in range(5)), return_exceptions=True
    )
    assert len({id(r) for r in results}) == 5
    depths = {len(traceback.extract_tb(r.__traceback__)) for r in results}
    assert len(depths) == 1  # no traceback grows with each follower that raised it
    for error in results:
        assert isinstance(error, aiportrait.errors.SignatureMismatch)
        copied = pickle.loads(pickle.dumps(error))
        assert (type(copied), str(copied), copied.status) == (type(error), str(error), 401)


async def test_views_share_a_schedule_and_another_schedule_polls_on_its_own(
    jobs: Jobs, session: Session
) -> None:
    one = await alone(jobs, session)
    job_id = jobs.add(60.0)
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
    assert jobs.polls[job_id] == one + 1
    assert [w.polls for w in others] == [one, one]


async def test_each_follower_tells_the_hooks_its_own_watch_and_polls_name_one_of_them(
    jobs: Jobs,
) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        one = await alone(jobs, session)
        events.clear()
        job_id = jobs.add(60.0)
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


async def test_a_dropped_follower_tells_the_hooks_its_own_last_state(jobs: Jobs) -> None:
    events: list[Any] = []
    async with Session(HOST, "a", "t", poll=POLICY, hooks=[events.append]) as session:
        job_id = jobs.add(60.0)
        dropped = session.watch(job_id)
        async for _ in dropped:
            break  # dropped after its first update, INIT at the first poll
        await follow(session.watch(job_id))  # the job's schedule goes on to its end
        dropped_id = dropped.id
        del dropped
        gc.collect()
    (ended,) = [e for e in events if isinstance(e, JobEnded) and e.id == dropped_id]
    assert (ended.outcome, ended.state, ended.polls) == ("closed", INIT, 1)


@pytest.mark.parametrize("gated", [JobWatchStarted, JobStateChanged])
async def test_a_follower_cancelled_in_an_async_hook_leaves(jobs: Jobs, gated: type) -> None:
    gate, inside = asyncio.Event(), asyncio.Semaphore(0)

    async def hook(event: object) -> None:
        if isinstance(event, gated):
            inside.release()
            await gate.wait()

    async with Session(HOST, "a", "t", poll=POLICY, hooks=[hook]) as session:
        job_id = jobs.add(60.0)
        tasks = [asyncio.create_task(session.wait(job_id)) for _ in range(3)]
        for _ in tasks:  # each awaits the hook
            await inside.acquire()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert session._feeds == {}  # none is counted: the Session forgot the job's schedule
        polls = jobs.polls[job_id]
        gate.set()
        first = await session.watch(job_id).__anext__()  # a new schedule: it looks at once
        assert (first.state, jobs.polls[job_id]) == (INIT, polls + 1)


async def test_a_duration_is_learned_once_per_job_and_used_by_watches_started_before(
    jobs: Jobs, session: Session
) -> None:
    job = await session.train(PHOTOS)  # 58 s: the kind is known, its duration is learned
    other = session.watch(job, poll=attrs.evolve(POLICY, first=2.0))  # a schedule of its own
    await asyncio.gather(*(session.wait(job) for _ in range(5)), other.result())
    assert len(session._durations.seen()["sd15"]) == 1  # once, not once per follower or schedule

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
