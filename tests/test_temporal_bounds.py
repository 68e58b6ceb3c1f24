"""How big a Temporal batch's items and outcomes may be: an item over the bound is refused
before anything starts, and outcomes too large for one of Temporal's payloads are written and
answered in several (a real local Temporal server, the emulator over loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from aiportrait import CreateRequest, InvalidArgument, ReferenceCreateRequest
from aiportrait import temporal as at
from aiportrait.emulator import Emulator

QUICK = at.Timeouts(heartbeat=10.0, charged=120.0, read=30.0, retry_first=0.2, retry_cap=2.0)


async def test_start_batch_refuses_an_item_over_the_bound_before_anything_starts(
    tmp_path: Path,
) -> None:
    store = at.LocalPortraitStore(tmp_path)
    nowhere: Any = object()  # no client is reached: the refusal comes first
    small = CreateRequest("m", "https://x/t.jpg")
    big = CreateRequest("m", "https://x/t.jpg", config={"notes": "n" * at.ITEM_BYTES})
    with pytest.raises(InvalidArgument) as caught:
        await at.start_batch(nowhere, [("a", small), ("big", big)], store=store)
    message = str(caught.value)
    assert message.startswith("item 'big' takes 26")
    assert message.endswith(
        "bytes as Temporal carries it, over the 256 KiB an item may take (Temporal refuses a"
        " payload over 2 MiB)"
    )
    with pytest.raises(InvalidArgument, match=r"^item 'kkkk[k]*\.\.\. takes 5000"):  # a 5 MB key
        await at.start_batch(nowhere, [("k" * 5_000_000, small)], store=store)
    assert not (tmp_path / "batches").exists()  # no item page was written
    at.check_item("a", small)  # one under the bound passes
    with pytest.raises(InvalidArgument, match=r"^item 'big' takes"):
        at.check_item("big", big)


async def test_outcomes_too_large_for_one_payload_are_paged_by_bytes(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    # 12 items, each with a 200 KB key its outcome repeats: 2.4 MB of outcomes, over
    # Temporal's 2 MiB payload limit for one outcome page and one progress reply.
    reference = temporal_emu.media_url(sample_media.astronaut[0])
    template = temporal_emu.media_url(sample_media.astronaut_template)
    keys = [f"{i:02d}" + "k" * 200_000 for i in range(12)]
    items = [(k, ReferenceCreateRequest(reference, f"{template}?v={k[:2]}")) for k in keys]
    handle = await at.start_batch(
        cluster.client, items, store=cluster.store, task_queue=cluster.queue, timeouts=QUICK
    )
    followed = [o async for o in at.follow_batch(handle, cluster.store, every=0.1)]
    assert sorted(o.key for o in followed) == keys  # each once
    assert {o.status for o in followed} == {"succeeded"}
    summary = await at.result(handle)
    assert summary.counts == {"succeeded": 12}
    assert len(summary.outcome_pages) == 3  # 5, 5 and 2 outcomes of some 200 KB
    for page in summary.outcome_pages:
        assert len(await cluster.store.get(page)) <= at.OUTCOME_BYTES
    stored = await at.read_outcomes(cluster.store, summary.outcome_pages)
    assert sorted(o.seq for o in stored) == list(range(1, 13))
    assert sorted(o.key for o in stored) == keys
    # the progress query answers within the bound too: asked again after its last, the rest
    seen: list[int] = []
    while len(seen) < 12:
        progress = await handle.query(at.PortraitBatchWorkflow.progress, max(seen, default=0))
        assert 0 < len(progress.outcomes) <= 5
        seen += [o.seq for o in progress.outcomes]
    assert seen == list(range(1, 13))
    assert temporal_emu.counters.creations == 12
    assert temporal_emu.counters.charged_duplicates() == {}
