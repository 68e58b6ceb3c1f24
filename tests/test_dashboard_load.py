"""``benchmarks/dashboard_load.py`` at its smallest: every part runs and reports what the README
shows. Only what holds whatever the machine's speed is asserted: the keys, answers in both
candidates, and the page receiving the request events."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests._benchmarks import load_benchmark


@pytest.fixture(scope="module")
def dashboard_load() -> ModuleType:
    return load_benchmark("dashboard_load")


async def test_the_smallest_run_reports_both_candidates(dashboard_load: ModuleType) -> None:
    sizes = dashboard_load.Sizes(rounds=1, window=0.3, concurrency=2)
    results = await dashboard_load.run(sizes, pin=False)  # the test run's CPUs stay as they are
    (row,) = results["rounds"]
    assert row["without_rps"] > 0 and row["with_rps"] > 0
    assert row["ratio"] == pytest.approx(row["with_rps"] / row["without_rps"], rel=1e-2)
    assert 1 <= row["events_received_by_page"] <= row["requests_with"]
    assert results["median_ratio"] == row["ratio"]
    assert row["cpu_ratio"] == pytest.approx(row["with_cpu_us"] / row["without_cpu_us"], rel=1e-2)
