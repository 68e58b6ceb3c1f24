"""``benchmarks/web_load.py`` at its smallest: every part runs and reports what the README shows.

Only what holds whatever the machine's speed is asserted (the figures themselves are the
benchmark's): the keys, every follower's stream ending with the result, the answers adding up.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests._benchmarks import load_benchmark


@pytest.fixture(scope="module")
def web_load() -> ModuleType:
    return load_benchmark("web_load")


async def test_the_smallest_run_reports_every_part(web_load: ModuleType, tmp_path: Path) -> None:
    sizes = web_load.Sizes(
        followers=(1, 10), job_seconds=1.0, leavers=3, after_leave=1.0, clients=8,
        client_timeout=0.2, concurrency=(2,), window=0.5, load_timeout=10.0,
        create_seconds=0.5, fetch_for=3.0, settle=15.0,
    )  # fmt: skip
    results = await web_load.run(sizes, tmp_path)

    followed = results["followers"]
    assert set(followed) == {"1", "10", "left"}
    for n in ("1", "10"):
        assert followed[n]["ended_with_result"] == int(n)
    # One poll schedule per training, however many follow it (it was 10 times as many): the
    # two trainings' schedules are spread by the policy's jitter each, which may put one poll
    # on either side of the end.
    assert followed["1"]["polls"] >= 1
    assert followed["10"]["polls"] <= followed["1"]["polls"] + 1
    assert followed["left"]["followers"] == 3
    assert followed["left"]["polls_while_followed"] >= 1

    left = results["left"]
    # Every client timed out (a create takes 0.5 s at the service, they wait 0.2 s).
    assert (left["clients"], left["timed_out"], left["delivered"]) == (8, 8, 0)
    assert left["charged_undelivered"] == left["charged"]
    assert left["sent_before_leave"] >= 1
    assert sum(left["fetch_answers"].values()) == 8  # each asked for its portrait later

    assert set(results["load"]) == {"default bound", "tight bound", "no bound"}
    for levels in results["load"].values():
        row = levels["2"]
        assert row["requests"] == row["ok"] + sum(row["errors"].values()) >= 2
        assert row["p50_s"] is not None
