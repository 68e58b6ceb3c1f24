"""The synchronous facade, and the notebook displays."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import CheckReport, CheckVerdict, ImageCheck, PollPolicy, TrainResult, sync
from aiportrait.samples import sample_photos
from tests._mock import OK_IMAGE, Arrival, Fake, hang

FAST = PollPolicy(first=0.02, cap=0.05, jitter=0.0, timeout=30)


def test_sync_flow_against_the_emulator(tmp_path: Path) -> None:
    names = sample_photos(tmp_path)
    options = {"train_seconds": 0.05, "serve_dir": tmp_path}
    with sync.emulator(**options, session_options={"poll": FAST}) as session:
        url = session.emulator.media_url  # type: ignore[attr-defined]
        photos = [url(n) for n in names.astronaut[:2]]
        assert session.check_images(photos).ok
        with pytest.warns(
            aiportrait.errors.PhotoCountWarning
        ):  # two photos: the training stays quick
            job = session.train(photos)
        states = [u.state for u in session.watch(job)]
        assert states[-1] is aiportrait.JobState.SUCCESS
        result = session.wait(job)
        assert session.get_job(job).done
        portrait = session.create(result.model_id, url(names.templates[0]))
        assert portrait.format == "jpeg"
        request = aiportrait.CreateRequest(result.model_id, url(names.templates[1]))
        outcomes = list(session.create_many([request, request]))
        assert len(outcomes) == 2
        for outcome in session.create_many([request] * 6, limit=2):  # leave early
            assert outcome.ok
            break
        assert outcomes[0].ok
        with pytest.raises(aiportrait.errors.ModelIdError):
            session.create("missing", url(names.templates[0]))
        assert "aiportrait.sync.Session" in repr(session)
        assert isinstance(session.aio, aiportrait.Session)
    assert session.aio.closed


def test_sync_works_inside_a_running_loop() -> None:
    # As in Jupyter: the caller's thread already runs an event loop.
    async def inside() -> str:
        with sync.emulator(train_seconds=0.05) as session:
            job_id = session.emulator.add_synthetic_job(0.0)  # type: ignore[attr-defined]
            return session.get_job(job_id).state.name

    assert asyncio.run(inside()) == "SUCCESS"


def test_sync_from_env_and_close_twice() -> None:
    env = {"AIPORTRAIT_HOST": "127.0.0.1:9", "AIPORTRAIT_APP_ID": "a", "AIPORTRAIT_TOKEN": "t"}
    session = sync.Session.from_env(env, retry=aiportrait.RetryPolicy.NEVER)
    with pytest.raises(aiportrait.errors.ConnectError):
        session.get_job(1)
    session.close()
    session.close()


def test_leaving_a_sync_batch_stops_it() -> None:
    def create(arrival: Arrival) -> Any:
        # The first create is answered at once; the others, once sent, are never answered.
        return (200, {}, OK_IMAGE) if len(fake.requests) == 1 else hang

    with Fake(routes={"/api/v1/aigc_images/create": create}) as fake:
        with sync.Session(fake.url, "a", "t") as session:
            requests = [aiportrait.CreateRequest("m", f"https://t/{i}.jpg") for i in range(20)]
            for _ in session.create_many(requests, limit=2):
                break
            # Leaving the loop stops the batch and waits for it: by the time the loop is left,
            # its creates in flight are cut (never answered: a batch that went on would hold
            # them for ever).
            assert fake.active == 0
            sent = len(fake.requests)
            assert fake.cancelled == sent - 1
            assert session.get_job(1).state is aiportrait.JobState.RUNNING  # still usable
    assert sent <= 3  # 1 done + 2 in flight at most
    assert fake.paths().count("/api/v1/aigc_images/create") == sent  # none went after


def _wait_until(condition: Any, seconds: float = 30.0) -> None:
    """Poll ``condition()`` (no fixed sleep); fail if it does not hold within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_a_failed_sync_constructor_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    for _ in range(3):
        with pytest.raises(aiportrait.InvalidArgument):
            sync.Session("ftp://x", "a", "t")
    # A thread left running would stay for ever; one that is ending goes within moments.
    _wait_until(lambda: set(threading.enumerate()) <= before)


def test_notebook_tables_escape_and_summarise() -> None:
    checks = (
        ImageCheck("https://x/<a>.jpg", CheckVerdict.SUCCESS, "success", True),
        ImageCheck("https://x/b.jpg", CheckVerdict.FACE_COUNT, "Number of face is not 1."),
    )
    table = CheckReport(results=checks)._repr_html_()
    assert "1 of 2 photos usable" in table
    assert "&lt;a&gt;" in table
    assert "FACE_COUNT" in table
    assert "<table>" in TrainResult("m-1", 3.0, checks)._repr_html_()


def test_each_method_keeps_the_async_ones_signature_and_docstring() -> None:
    import inspect

    blocking = {
        "check_images", "train", "get_job", "get_batch_jobs", "wait", "create", "create_group",
        "create_from_reference", "create_from_prompt", "send",
    }  # fmt: skip
    iterating = {"watch": "JobUpdate", "create_many": "Outcome", "train_many": "Outcome"}
    for name in blocking | set(iterating):
        mine, theirs = getattr(sync.Session, name), getattr(aiportrait.Session, name)
        assert mine.__doc__ == theirs.__doc__, name
        expected = inspect.signature(theirs)
        if name in iterating:
            assert iterating[name] in str(inspect.signature(mine).return_annotation)
            expected = expected.replace(return_annotation=inspect.signature(mine).return_annotation)
        assert inspect.signature(mine) == expected, name
    with sync.emulator() as session:  # bound: the same, minus self
        bound = inspect.signature(session.create)
        assert bound == inspect.signature(session.aio.create)
