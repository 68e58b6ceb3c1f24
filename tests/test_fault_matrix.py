"""The fault matrix: 200 trainings and 200 creations through injected faults.

About 10 % of the train and create requests meet each fault kind: a 5xx, a 429 with
Retry-After, the connection dropped before processing, dropped after processing, an answer
slower than the read timeout, and a malformed body. Every item must end in a result or a clear
error from the tree, no charged call may run twice on the emulator, and every finished portrait
must be on disk. The counts are printed (run with ``-s``).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import aiohttp
import pytest

import aiportrait
from aiportrait import CreateRequest, PollPolicy, RetryPolicy, TrainRequest
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import PhotoCountWarning
from aiportrait.samples import sample_photos

N = 200
CHARGED = frozenset({"/api/v1/aigc_images/train", "/api/v1/aigc_images/create"})
FAULTS = Faults(
    seed=11,
    rate_5xx=0.1,
    rate_429=0.1,
    retry_after=0.0,
    drop_before=0.1,
    drop_after=0.1,
    malformed=0.1,
    latency=3.5,
    latency_rate=0.1,
    paths=CHARGED,
)


def _tally(outcomes: list[aiportrait.Outcome[object, object]]) -> collections.Counter[str]:
    tally: collections.Counter[str] = collections.Counter()
    for o in outcomes:
        if o.ok:
            tally["ok"] += 1
        else:
            assert isinstance(o.error, aiportrait.AIPortraitError), repr(o.error)
            cause = o.error.__cause__
            name = type(o.error).__name__
            tally[f"{name} ({type(cause).__name__})" if cause else name] += 1
    return tally


@pytest.mark.slow
async def test_fault_matrix(tmp_path: Path) -> None:
    names = sample_photos(tmp_path)
    from PIL import Image

    with Image.open(tmp_path / names.templates[0]) as img:  # a small template: fast creates
        img.resize((384, 450)).save(tmp_path / "small_template.jpg", quality=90)
    out = tmp_path / "portraits"
    poll = PollPolicy(first=0.02, cap=0.1, jitter=0.0, timeout=60)
    # A create does real image work (a few tenths of a second, more when queued): the read
    # timeout sits between that and the injected latency.
    timeout = aiohttp.ClientTimeout(total=3.0)
    # A 429 proves a charged call did not run, so it is sent again, up to charged_attempts
    # tries in all. With 3 (the default) an item meets three 429s in a row about one time in
    # a thousand (10 % each), so a run of 400 items can end one RateLimited (seen in one loaded
    # run): right, but not what this test checks. With 10 it is one in 10**10.
    retry = RetryPolicy(base=0.01, cap=0.05, charged_attempts=10)
    async with Emulator(train_seconds=0.05, serve_dir=tmp_path) as emu:
        photos = [emu.media_url(n) for n in names.astronaut[:2]]
        template = emu.media_url("small_template.jpg")
        async with emu.session(poll=poll, timeout=timeout, retry=retry) as session:
            # One clean model for the creations, before the faults start. Two photos a
            # training, here and below, keep the emulator's work small.
            with pytest.warns(PhotoCountWarning):
                job = await session.train(photos)
            base = await session.wait(job)
            emu.faults = FAULTS
            sets = {f"t{i}": TrainRequest([f"{u}?set={i}" for u in photos]) for i in range(N)}
            with pytest.warns(PhotoCountWarning):
                trainings = await session.train_many(sets, limit=8).collect()
            creates = {f"c{i}": CreateRequest(base.model_id, f"{template}?v={i}") for i in range(N)}
            creations = await session.create_many(creates, limit=8, out_dir=out).collect()
        counters = emu.counters
    train_tally, create_tally = _tally(trainings), _tally(creations)
    print("\nfaults injected:", dict(counters.faults))
    print("trainings:", json.dumps(train_tally, sort_keys=True))
    print("creations:", json.dumps(create_tally, sort_keys=True))
    assert len(trainings) == len(creations) == N
    assert not counters.charged_duplicates()  # no charged call ran twice
    for outcome in creations:
        if outcome.ok:
            assert outcome.path is not None
            assert outcome.path.read_bytes() == outcome.unwrap().image
    assert len(list(out.iterdir())) == create_tally["ok"]
    for tally in (train_tally, create_tally):
        # About half the items meet an outcome fault (seeded, but which item meets which
        # depends on the order of concurrent requests); the rest must succeed.
        assert tally["ok"] > N // 4
        assert tally["ServerError"] > 0  # a 5xx without Retry-After is not retried
        assert sum(n for k, n in tally.items() if k.startswith("SubmitOutcomeUnknown")) > 0
    # 429s were retried: as many requests met one as there are extra tries, and none failed.
    assert not any("RateLimited" in k for k in (*train_tally, *create_tally))
    assert counters.faults["429"] > 0
