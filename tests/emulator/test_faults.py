"""Seeded fault injection and the counters that prove nothing charged ran twice."""

from __future__ import annotations

import json
import time
from collections import Counter

import aiohttp
import pytest

from aiportrait.emulator import Emulator, Faults
from aiportrait.emulator._faults import Fault, FaultInjector
from aiportrait.emulator._service import TRAIN_LORA_FAILED
from aiportrait.emulator._wire import CHECK_PATH, CREATE_PATH, JOB_FAILED, TRAIN_PATH

from .conftest import send, wait_job

CHECK = {"action": "AIGCImageCheck", "images": []}
TRAIN = {"action": "AIGCImageTrain", "images": []}


def test_same_seed_same_faults_and_rates_respected() -> None:
    faults = Faults(
        seed=42, rate_5xx=0.1, rate_429=0.1, drop_before=0.1, drop_after=0.1, malformed=0.1
    )
    first, second = FaultInjector(faults), FaultInjector(faults)
    a = [first.outcome("/x") for _ in range(5000)]
    b = [second.outcome("/x") for _ in range(5000)]
    assert a == b
    counts = Counter(a)
    for kind in (
        Fault.DROP_BEFORE,
        Fault.ERROR_5XX,
        Fault.TOO_MANY,
        Fault.DROP_AFTER,
        Fault.MALFORMED,
    ):
        assert 400 < counts[kind] < 600, counts
    assert 2300 < counts[Fault.NONE] < 2700


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_5xx": 1.5},
        {"rate_5xx": 0.6, "drop_after": 0.6},
        {"latency": -1},
        {"status_5xx": 404},
        {"seed": 2**53},
        {"seed": -(2**53)},
    ],
)
def test_invalid_faults_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|more than 1"):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_the_largest_seed_the_dashboard_holds_exactly_is_accepted() -> None:
    assert Faults(seed=2**53 - 1).seed == 2**53 - 1
    assert Faults(seed=-(2**53 - 1)).seed == -(2**53 - 1)


async def test_5xx_and_429_are_answered_before_any_work(emu: Emulator) -> None:
    emu.faults = Faults(rate_5xx=1.0, status_5xx=503)
    reply = await send(emu, TRAIN_PATH, TRAIN)
    assert reply.status == 503
    assert reply.json["code"] == "SERVICE_ERROR"
    emu.faults = Faults(rate_429=1.0, retry_after=2)
    reply = await send(emu, TRAIN_PATH, TRAIN)
    assert (reply.status, reply.headers["Retry-After"]) == (429, "2")
    emu.faults = Faults(rate_429=1.0, retry_after=0.25)
    assert (await send(emu, TRAIN_PATH, TRAIN)).headers["Retry-After"] == "0.25"
    assert emu.counters.trainings == 0
    assert not emu.counters.fingerprints
    assert emu.counters.faults == Counter({"5xx": 1, "429": 2})


async def test_drop_before_counts_nothing(emu: Emulator) -> None:
    emu.faults = Faults(drop_before=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(emu, TRAIN_PATH, TRAIN)
    assert emu.counters.trainings == 0
    assert not emu.counters.fingerprints


async def test_drop_after_does_the_work_then_hangs_up(emu: Emulator) -> None:
    emu.faults = Faults(drop_after=1.0, paths=[TRAIN_PATH])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(emu, TRAIN_PATH, TRAIN)
    assert emu.counters.trainings == 1
    assert sum(n for (p, _), n in emu.counters.fingerprints.items() if p == TRAIN_PATH) == 1
    job = await wait_job(emu, 1)  # the job exists and polls are not affected (paths)
    assert job["state"] == JOB_FAILED


async def test_malformed_body_after_processing(emu: Emulator) -> None:
    emu.faults = Faults(malformed=1.0)
    reply = await send(emu, CHECK_PATH, CHECK)
    assert reply.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.raw)
    assert emu.counters.checks == 1


async def test_latency_at_a_rate(emu: Emulator) -> None:
    emu.faults = Faults(latency=0.08, latency_rate=1.0)
    start = time.perf_counter()
    assert (await send(emu, CHECK_PATH, CHECK)).status == 200
    assert time.perf_counter() - start >= 0.08  # a lower bound: a slow machine only adds to it
    assert emu.counters.faults["latency"] == 1
    emu.faults = Faults(latency=0.08, latency_rate=0.0)
    assert (await send(emu, CHECK_PATH, CHECK)).status == 200
    assert emu.counters.faults["latency"] == 1  # not delayed: counted, not timed (no race)


async def test_forced_job_failure(emu: Emulator) -> None:
    emu.faults = Faults(job_failure=1.0)
    reply = await send(emu, TRAIN_PATH, TRAIN)
    job = await wait_job(emu, reply.data["job_id"])
    assert (job["state"], job["message"]) == (JOB_FAILED, TRAIN_LORA_FAILED)


async def test_paths_restrict_faults(emu: Emulator) -> None:
    emu.faults = Faults(rate_5xx=1.0, paths=frozenset({CREATE_PATH}))
    assert (await send(emu, CHECK_PATH, CHECK)).status == 200
    assert (await send(emu, CREATE_PATH, {"model_id": "x"})).status == 503
    assert (await send(emu, "/api/v1/async_jobs/999")).status == 404  # not faulted


async def test_faults_given_at_construction_and_duplicates_detected() -> None:
    async with Emulator(app_id="a", token="t", faults=Faults(seed=1, rate_5xx=0.5)) as emu:
        statuses = [
            (await send(emu, CHECK_PATH, CHECK, app_id="a", token="t")).status for _ in range(40)
        ]
        assert 5 < statuses.count(503) < 35
        emu.faults = None  # off
        for _ in range(2):
            await send(emu, TRAIN_PATH, TRAIN, app_id="a", token="t")
        assert list(emu.counters.charged_duplicates().values()) == [2]
        assert emu.counters.duplicates([CHECK_PATH])  # the same check body, many times


def test_arrivals_tell_the_most_requests_within_any_span() -> None:
    from aiportrait.emulator import Counters

    counters = Counters()
    for at, path in ((0.0, "/a"), (0.4, "/b"), (0.9, "/a"), (1.0, "/a"), (1.05, "/a"), (3.0, "/a")):
        counters.arrivals.append((at, path))
    assert counters.most_within(1.0) == 4  # 0.0 to 1.0: the span's both ends count
    assert counters.most_within(1.0, "/a") == 4 - 1  # 0.9, 1.0, 1.05 (or 0.0, 0.9, 1.0)
    assert counters.most_within(0.01) == 1
    assert Counters().most_within(1.0) == 0
    assert counters.arrivals.maxlen == 100_000  # the latest only: memory stays bounded


async def test_every_api_request_is_recorded_as_it_arrives(emu: Emulator) -> None:
    before = time.monotonic()
    await send(emu, CHECK_PATH, CHECK)
    emu.faults = Faults(rate_5xx=1.0)  # refused before anything: still an arrival
    await send(emu, CHECK_PATH, CHECK)
    assert [p for _, p in emu.counters.arrivals] == [CHECK_PATH, CHECK_PATH]
    assert all(before <= t <= time.monotonic() for t, _ in emu.counters.arrivals)
