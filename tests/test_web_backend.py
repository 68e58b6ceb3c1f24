"""The two web examples over real loopback HTTP, each test once per framework: aiohttp.web
(``examples/web_backend.py``) and FastAPI under uvicorn (``examples/fastapi_backend.py``),
in front of the emulator of the pytest plugin.

What a client that leaves costs (nothing for a create not yet sent; a create already sent is
kept under its ticket), admission errors (429/503 with ``Retry-After``), ``request_id`` in
every error, and event streams that stop polling when their client leaves. The examples as
scripts, and the aiohttp example's tracing, are in ``test_examples.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import pytest

import aiportrait
from aiportrait.emulator import Emulator, Faults
from aiportrait.samples import SamplePhotos, sample_photos
from tests._examples import FRAMEWORKS, example, image_size, serving
from tests._mock import until

_stores = example("_stores")

T = TypeVar("T")
CREATE_PATH = "/api/v1/aigc_images/create"
TRAIN_PATH = "/api/v1/aigc_images/train"
JOB_PATH = "/api/v1/async_jobs/"
FAST = aiportrait.PollPolicy(first=0.02, cap=0.1, jitter=0.0, timeout=60)
#: Steady polls for the event-stream test: a stream still watching would poll every 0.05 s.
STEADY = aiportrait.PollPolicy(first=0.05, cap=0.05, jitter=0.0, timeout=600)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, SamplePhotos]:
    folder = tmp_path / "media"
    return folder, sample_photos(folder)


@pytest.fixture
def aiportrait_emulator_options(media: tuple[Path, SamplePhotos]) -> dict[str, Any]:
    return {"train_seconds": 0.05, "serve_dir": media[0]}


@pytest.fixture
def urls(aiportrait_emulator: Emulator, media: tuple[Path, SamplePhotos]) -> dict[str, Any]:
    names = media[1]
    return {
        "photos": [aiportrait_emulator.media_url(n) for n in names.astronaut],
        "templates": [aiportrait_emulator.media_url(n) for n in names.templates[:2]],
    }


@pytest.fixture
async def model_id(aiportrait_emulator: Emulator, urls: dict[str, Any]) -> str:
    """A trained model (trained directly, not through a backend)."""
    async with aiportrait_emulator.session(poll=FAST) as session:
        job = await session.train(urls["photos"])
        await session.wait(job)
    return job.model_id


@pytest.fixture
def wanted(model_id: str, urls: dict[str, Any]) -> dict[str, Any]:
    """The body of a ``POST /portraits`` the service accepts."""
    return {"model_id": model_id, "template": urls["templates"][0]}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The events of a finished stream (comments left out)."""
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if lines:
            fields = dict(line.split(": ", 1) for line in lines)
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def _error(answer: aiohttp.ClientResponse) -> dict[str, Any]:
    """An error's body, checked: JSON, with the request id of its ``X-Request-Id``."""
    assert answer.content_type == "application/json"
    body: dict[str, Any] = await answer.json()
    assert body["request_id"] and body["request_id"] == answer.headers["X-Request-Id"]
    return body


async def test_trains_streams_and_creates_under_a_ticket(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    sessions: list[aiportrait.Session] = []

    def session_factory() -> aiportrait.Session:
        sessions.append(aiportrait_emulator.session(poll=FAST))
        return sessions[-1]

    async with serving(framework, session_factory, tmp_path / "trainings.json") as base:
        answer = await client.post(f"{base}/trainings", json={"photos": urls["photos"]})
        assert answer.status == 202
        job = await answer.json()
        assert job["events"] == f"/trainings/{job['job_id']}/events"
        stream = await client.get(base + job["events"])
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name, result = _events(await stream.text())[-1]
        assert (name, result["model_id"]) == ("result", job["model_id"])

        wanted = {"job_id": job["job_id"], "template": urls["templates"][0]}
        ticket = {"X-Ticket": "ticket-of-the-test"}
        portrait = await client.post(f"{base}/portraits", json=wanted, headers=ticket)
        assert portrait.status == 200
        assert portrait.headers["X-Ticket"] == "ticket-of-the-test"
        assert portrait.headers["Content-Type"] == "image/jpeg"
        image = await portrait.read()
        assert image_size(image) == (768, 900)
        # Kept under its ticket: a client whose answer was lost fetches it again.
        again = await client.get(f"{base}/portraits/ticket-of-the-test")
        assert (again.status, await again.read()) == (200, image)
        assert again.headers["X-Request-Id"] == portrait.headers["X-Request-Id"]
        # A ticket names one create: sending it again creates nothing.
        used = await client.post(f"{base}/portraits", json=wanted, headers=ticket)
        assert (used.status, (await _error(used))["error"]) == (409, "TicketInUse")
        # Without a ticket, the backend makes one.
        other = await client.post(f"{base}/portraits", json=wanted)
        assert other.status == 200 and len(other.headers["X-Ticket"]) == 32
        config = {"lora_weights": 0.7, "style_name": "Anime"}
        by_model = {"model_id": job["model_id"], "template": urls["templates"][1]}
        styled = await client.post(f"{base}/portraits", json={**by_model, "config": config})
        assert styled.status == 200 and styled.headers["Content-Type"] == "image/jpeg"
    assert sessions[0].closed  # one Session for the app's lifetime, closed with it
    counters = aiportrait_emulator.counters
    assert (counters.trainings, counters.creations) == (1, 3)

    # A restarted backend knows the job from its store and asks the service for its state.
    async with serving(framework, session_factory, tmp_path / "trainings.json") as base:
        listed = (await (await client.get(f"{base}/trainings")).json())["trainings"]
        assert [(t["job_id"], t["state"]) for t in listed] == [(job["job_id"], "SUCCESS")]
        again = _events(await (await client.get(base + job["events"])).text())
        assert [name for name, _ in again] == ["state", "result"]
        kept = await client.get(f"{base}/portraits/ticket-of-the-test")
        assert (kept.status, await kept.read()) == (200, image)  # tickets survive it too
    assert len(sessions) == 2 and counters.trainings == 1


async def test_streams_a_failed_training_and_a_deadline(
    framework: str, aiportrait_emulator: Emulator, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = _stores.JobStore(tmp_path / "trainings.json")
    failed = aiportrait_emulator.add_synthetic_job(0.05, succeed=False)
    slow = aiportrait_emulator.add_synthetic_job(60.0)
    for job_id in (failed, slow):
        await store.put(aiportrait.TrainJob(job_id, f"model-{job_id}"))
    # A deadline the 60-s job passes; generous enough that a loaded machine still sees the
    # failed job (already over) before it.
    deadline = aiportrait.PollPolicy(first=0.02, cap=0.05, timeout=3.0)
    factory = lambda: aiportrait_emulator.session(poll=deadline)  # noqa: E731
    async with serving(framework, factory, store.path) as base:
        events = _events(await (await client.get(f"{base}/trainings/{failed}/events")).text())
        assert events[-2][1]["state"] == "FAILED"
        assert events[-1][0] == "failed"
        assert "Failed to obtain preprocessed images" in events[-1][1]["message"]
        stream = await client.get(f"{base}/trainings/{slow}/events")
        events = _events(await stream.text())
        assert events[-1][0] == "error" and events[-1][1]["error"] == "JobTimeout"
        assert events[-1][1]["request_id"] == stream.headers["X-Request-Id"]
        listed = (await (await client.get(f"{base}/trainings")).json())["trainings"]
        states = {e["job_id"]: e["state"] for e in listed}
        assert states == {failed: "FAILED", slow: "INIT"}  # a tenth of its time in INIT
        await store.put(aiportrait.TrainJob(99999, "model-unknown-here"), state="INIT")
        answer = await client.get(f"{base}/trainings")
        (unknown,) = [e for e in (await answer.json())["trainings"] if e["job_id"] == 99999]
        assert unknown["error"] and unknown["message"] and unknown["request_id"]
    store.path.write_text("[]")  # not a mapping: read as empty
    assert store.entries() == {}


async def test_every_error_carries_a_request_id(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    factory = lambda: aiportrait_emulator.session(poll=FAST)  # noqa: E731
    template = urls["templates"][0]
    async with serving(framework, factory, tmp_path / "trainings.json") as base:
        not_json = await _error(await client.post(f"{base}/trainings", data=b"{"))
        assert not_json["error"] == "BadRequest"
        nowhere = await _error(await client.get(f"{base}/nowhere"))
        assert nowhere["error"] == "NotFound"
        wrong = await client.delete(f"{base}/trainings")
        assert (wrong.status, (await _error(wrong))["error"]) == (405, "MethodNotAllowed")
        unknown = await client.get(f"{base}/trainings/999/events")
        assert (unknown.status, (await _error(unknown))["error"]) == (404, "NotFound")
        bad_ticket = await client.post(
            f"{base}/portraits",
            json={"model_id": "m", "template": template},
            headers={"X-Ticket": "short"},
        )
        assert bad_ticket.status == 400
        assert "X-Ticket" in (await _error(bad_ticket))["message"]
        # The service refused: its request id, and the ticket, under which the answer is kept.
        refused = await client.post(
            f"{base}/portraits", json={"model_id": "no", "template": template}
        )
        body = await _error(refused)
        assert (refused.status, body["error"]) == (422, "ModelIdError")
        assert body["ticket"] == refused.headers["X-Ticket"]
        kept = await client.get(f"{base}/portraits/{body['ticket']}")
        assert (kept.status, (await _error(kept))["error"]) == (422, "ModelIdError")
        missing = await client.get(f"{base}/portraits/no-such-ticket")
        assert (missing.status, (await _error(missing))["error"]) == (404, "NotFound")
        # Refused here, before anything is sent.
        job_999 = await client.post(f"{base}/portraits", json={"job_id": 999, "template": "x"})
        assert (await _error(job_999))["message"] == "no training 999 was started here"
        text_id = await client.post(f"{base}/portraits", json={"job_id": "7", "template": "x"})
        assert (text_id.status, (await _error(text_id))["message"]) == (
            400,
            "job_id must be a number",
        )
        by_model = {"model_id": "m", "template": template}
        typo = await client.post(
            f"{base}/portraits", json={**by_model, "config": {"loraweights": 1}}
        )
        assert (await _error(typo))["message"] == (
            "config key 'loraweights' is not a documented key (did you mean 'lora_weights'?)"
        )
        listed = await client.post(f"{base}/portraits", json={**by_model, "config": [1]})
        assert (listed.status, (await _error(listed))["error"]) == (400, "BadRequest")
        invalid = await client.post(
            f"{base}/portraits", json={**by_model, "config": {"sharp_ratio": 3}}
        )
        assert (invalid.status, (await _error(invalid))["error"]) == (400, "InvalidArgument")
        one_photo = await client.post(f"{base}/trainings", json={"photos": "one"})
        assert (one_photo.status, (await _error(one_photo))["error"]) == (400, "BadRequest")
        assert (await client.get(f"{base}/trainings/x/events")).status == 400
    assert aiportrait_emulator.counters.creations == 0


async def test_a_bug_answers_500_as_json_and_logs_its_details(
    framework: str,
    aiportrait_emulator: Emulator,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_self: Any) -> dict[str, Any]:
        raise RuntimeError("a bug in the store")

    monkeypatch.setattr(_stores.JobStore, "entries", broken)
    with caplog.at_level("ERROR"):
        async with serving(framework, aiportrait_emulator.session, tmp_path / "t.json") as base:
            answer = await client.get(f"{base}/trainings")
            body = await _error(answer)
    assert (answer.status, body["error"]) == (500, "InternalServerError")
    assert "a bug in the store" not in body["message"]  # details go to the log
    (logged,) = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert body["request_id"] in logged.getMessage()  # once, with the request id


async def test_a_body_too_big_too_deep_or_with_too_many_photos_answers_4xx(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    async with serving(framework, aiportrait_emulator.session, tmp_path / "t.json") as base:
        deep = await client.post(f"{base}/trainings", data=b"[" * 100_000)
        assert (deep.status, (await _error(deep))["error"]) == (400, "BadRequest")
        deep = await client.post(f"{base}/portraits", data=b"[" * 100_000)
        assert deep.status == 400
        many = await client.post(f"{base}/trainings", json=urls["photos"][:1] * 21)
        assert "1 to 20 photo URLs, not 21" in (await _error(many))["message"]
        none = await client.post(f"{base}/trainings", json={"photos": []})
        assert (none.status, (await _error(none))["error"]) == (400, "BadRequest")
        big = json.dumps(urls["photos"][:1] * 30_000).encode()  # over 1 MiB
        for sent in (big, _chunks(big)):  # with a Content-Length, and streamed without
            too_big = await client.post(f"{base}/trainings", data=sent)
            assert too_big.status == 413
            await _error(too_big)
    assert aiportrait_emulator.counters.requests == 0


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


async def test_not_sent_answers_429_and_503_with_retry_after(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    wanted = {"model_id": "m", "template": urls["templates"][0]}
    # The service answers 429 (it ran nothing): 429, with the seconds it asked for.
    aiportrait_emulator.faults = Faults(rate_429=1.0, retry_after=3.0)
    limited = lambda: aiportrait_emulator.session(retry=aiportrait.RetryPolicy.NEVER)  # noqa: E731
    async with serving(framework, limited, tmp_path / "a.json") as base:
        answer = await client.post(f"{base}/portraits", json=wanted)
        body = await _error(answer)
        assert (answer.status, body["error"], answer.headers["Retry-After"]) == (
            429,
            "RateLimited",
            "3",
        )
        free = await client.get(f"{base}/portraits/{body['ticket']}")
        assert free.status == 404  # nothing ran: the ticket may be sent again
    # The service cannot be reached (nothing listens): 503, not sent, safe to retry.
    with socket.socket() as nobody:
        nobody.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"http://127.0.0.1:{nobody.getsockname()[1]}"
        unreachable = lambda: aiportrait.Session(  # noqa: E731
            url, "app", "token", retry=aiportrait.RetryPolicy.NEVER
        )
        async with serving(framework, unreachable, tmp_path / "b.json") as base:
            answer = await client.post(f"{base}/portraits", json=wanted)
            body = await _error(answer)
            assert (answer.status, body["error"]) == (503, "ConnectError")
            assert int(answer.headers["Retry-After"]) >= 1


async def test_a_service_error_on_a_create_answers_502_and_frees_its_ticket(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    aiportrait_emulator.faults = Faults(
        rate_5xx=1.0, status_5xx=503, paths=frozenset({CREATE_PATH})
    )
    never = lambda: aiportrait_emulator.session(retry=aiportrait.RetryPolicy.NEVER)  # noqa: E731
    async with serving(framework, never, tmp_path / "t.json") as base:
        answer = await client.post(f"{base}/portraits", json=wanted)
        body = await _error(answer)
        assert (answer.status, body["error"]) == (502, "ServerError")
        free = await client.get(f"{base}/portraits/{body['ticket']}")
        assert free.status == 404  # the service answered an error: it ran nothing
    assert aiportrait_emulator.counters.creations == 0


def test_quota_exceeded_answers_403_without_retry_after_and_frees_its_ticket() -> None:
    web = example("_web")
    quota = aiportrait.errors.QuotaExceeded(400, "error", "exceeded quota", "rid-of-the-service")
    answer = web.error_answer(quota, "rid-of-the-backend", ticket="ticket-of-the-test")
    assert (answer.status, answer.body["error"]) == (403, "QuotaExceeded")
    assert answer.body["request_id"] == "rid-of-the-service"
    assert "Retry-After" not in answer.headers and web.not_sent(quota)


async def test_a_create_that_may_have_run_answers_409_with_advice_and_is_kept(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    aiportrait_emulator.faults = Faults(drop_after=1.0, paths=frozenset({CREATE_PATH}))
    factory = aiportrait_emulator.session  # its answer is lost after the service ran it
    async with serving(framework, factory, tmp_path / "trainings.json") as base:
        answer = await client.post(f"{base}/portraits", json=wanted)
        body = await _error(answer)
        assert (answer.status, body["error"]) == (409, "SubmitOutcomeUnknown")
        assert "do not send it again blindly" in body["advice"]
        again = await client.get(f"{base}/portraits/{body['ticket']}")
        assert again.status == 409  # kept under its ticket: the same ticket is not sent again
        assert (await _error(again))["error"] == "SubmitOutcomeUnknown"
    assert aiportrait_emulator.counters.creations == 1  # sent once, never again


async def test_a_create_under_way_when_the_backend_stopped_may_have_run_after_a_restart(
    framework: str, aiportrait_emulator: Emulator, wanted: dict[str, Any], tmp_path: Path
) -> None:
    store_path = tmp_path / "trainings.json"
    # A backend took the ticket and stopped (or crashed) before its create ended.
    _stores.TicketStore(_stores.tickets_folder(store_path)).open("under-way-at-the-stop")
    async with serving(framework, aiportrait_emulator.session, store_path) as base:
        async with aiohttp.ClientSession() as client:  # the restarted backend
            kept = await client.get(f"{base}/portraits/under-way-at-the-stop")
            body = await _error(kept)
            assert (kept.status, body["error"]) == (409, "MayHaveRun")  # never "send it again"
            assert "check before sending again" in body["message"]
            ticket = {"X-Ticket": "under-way-at-the-stop"}
            again = await client.post(f"{base}/portraits", json=wanted, headers=ticket)
            assert (again.status, (await _error(again))["error"]) == (409, "TicketInUse")
    assert aiportrait_emulator.counters.creations == 0


async def test_a_ticket_whose_record_cannot_be_read_may_have_run(
    framework: str, aiportrait_emulator: Emulator, tmp_path: Path
) -> None:
    store_path = tmp_path / "trainings.json"
    folder = _stores.tickets_folder(store_path)
    folder.mkdir(parents=True)
    (folder / "empty-record.json").write_bytes(b"")  # a machine crashed while writing it
    (folder / "listed-record.json").write_text("[1, 2]")
    async with serving(framework, aiportrait_emulator.session, store_path) as base:
        async with aiohttp.ClientSession() as client:
            for ticket in ("empty-record", "listed-record"):
                answer = await client.get(f"{base}/portraits/{ticket}")
                body = await _error(answer)
                assert (answer.status, body["error"]) == (409, "MayHaveRun"), ticket


async def test_a_portrait_that_cannot_be_kept_is_still_answered_and_its_ticket_may_have_run(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_path = tmp_path / "trainings.json"
    folder = _stores.tickets_folder(store_path)
    folder.mkdir(parents=True)
    (folder / "disk-full-1.jpg").mkdir()  # the image cannot be written there
    async with serving(framework, aiportrait_emulator.session, store_path) as base:
        async with aiohttp.ClientSession() as client:
            ticket = {"X-Ticket": "disk-full-1"}
            answer = await client.post(f"{base}/portraits", json=wanted, headers=ticket)
            assert answer.status == 200  # paid for and in memory: the client gets it
            assert image_size(await answer.read())[0] > 0
            later = await client.get(f"{base}/portraits/disk-full-1")
            assert (later.status, (await _error(later))["error"]) == (409, "MayHaveRun")
    assert "disk-full-1: its portrait could not be kept" in caplog.text
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert aiportrait_emulator.counters.creations == 1


@asynccontextmanager
async def _one_create_held(
    framework: str, emulator: Emulator, tmp_path: Path, path: str = CREATE_PATH, **options: Any
) -> AsyncIterator[tuple[str, Any, list[aiportrait.Session]]]:
    """A backend whose Session sends one create (or, ``path`` ``TRAIN_PATH``, one training)
    at a time (``options`` go to it), the hold on them at the service, and the Session once
    made."""
    hold = emulator.hold(path)
    sessions: list[aiportrait.Session] = []
    one = {"max_trainings": 1} if path == TRAIN_PATH else {"max_creations": 1}

    def factory() -> aiportrait.Session:
        sessions.append(emulator.session(**one, **options))
        return sessions[-1]

    async with serving(framework, factory, tmp_path / "trainings.json") as base:
        yield base, hold, sessions


def _waiting(
    sessions: list[aiportrait.Session], count: int, kind: Literal["train", "create"] = "create"
) -> Callable[[], bool]:
    return lambda: sessions[0].limits.waiting(kind) == count


async def test_overloaded_answers_503_with_retry_after_and_sends_nothing(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    held = _one_create_held(framework, aiportrait_emulator, tmp_path, max_waiting=1)
    async with held as (base, hold, sessions):
        first = asyncio.ensure_future(client.post(f"{base}/portraits", json=wanted))
        await until(lambda: hold.held == 1, "the first create held at the service")
        second = asyncio.ensure_future(client.post(f"{base}/portraits", json=wanted))
        await until(_waiting(sessions, 1), "the second waits")
        third = await client.post(f"{base}/portraits", json=wanted)
        body = await _error(third)
        assert (third.status, body["error"]) == (503, "Overloaded")
        assert int(third.headers["Retry-After"]) >= 1
        hold.release()
        assert [(await first).status, (await second).status] == [200, 200]
    assert aiportrait_emulator.counters.creations == 2  # the third was never sent


async def _eventually(ask: Callable[[], Awaitable[T]], ready: Callable[[T], bool]) -> T:
    """Ask until the answer is ``ready`` (30 s at most: a guard against a hang only)."""
    for _ in range(1500):
        answer = await ask()
        if ready(answer):
            return answer
        await asyncio.sleep(0.02)
    raise AssertionError("never ready")


async def _leaving(
    base: str, wanted: dict[str, Any], ticket: str
) -> tuple[asyncio.Task[Any], aiohttp.ClientSession]:
    """A client of its own (its own connection) whose ``POST /portraits`` is under way."""
    own = aiohttp.ClientSession()
    post = own.post(f"{base}/portraits", json=wanted, headers={"X-Ticket": ticket})
    return asyncio.ensure_future(post), own


async def _leave(task: asyncio.Task[Any], own: aiohttp.ClientSession) -> None:
    task.cancel()
    await own.close()  # its connection closes: the backend sees its client leave


async def test_a_client_that_leaves_before_its_create_is_sent_pays_nothing(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    async with _one_create_held(framework, aiportrait_emulator, tmp_path) as (base, hold, sessions):
        first = asyncio.ensure_future(client.post(f"{base}/portraits", json=wanted))
        await until(lambda: hold.held == 1, "the first create held at the service")
        queued = await _leaving(base, wanted, "queued-when-leaving")
        await until(_waiting(sessions, 1), "the second waits")
        await _leave(*queued)
        await until(_waiting(sessions, 0), "it stopped waiting")
        hold.release()
        assert (await first).status == 200  # the slot it waited for is free now
        unsent = await client.get(f"{base}/portraits/queued-when-leaving")
        assert unsent.status == 404  # not sent, nothing charged: told at once, send it again
        assert "send it again" in (await unsent.json())["message"]
    assert hold.arrived == 1 and aiportrait_emulator.counters.creations == 1


async def test_a_create_sent_before_its_client_left_is_kept_under_its_ticket(
    framework: str,
    aiportrait_emulator: Emulator,
    wanted: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    async with _one_create_held(framework, aiportrait_emulator, tmp_path) as (base, hold, sessions):
        sent = await _leaving(base, wanted, "sent-before-leaving")
        await until(lambda: hold.held == 1, "the create held at the service: sent, charged")
        await _leave(*sent)
        pending = await client.get(f"{base}/portraits/sent-before-leaving")
        assert pending.status == 202 and int(pending.headers["Retry-After"]) >= 1
        hold.release()
        fetch = lambda: client.get(f"{base}/portraits/sent-before-leaving")  # noqa: E731
        kept = await _eventually(fetch, lambda answer: answer.status != 202)
        assert kept.status == 200 and kept.headers["X-Ticket"] == "sent-before-leaving"
        assert image_size(await kept.read()) == (768, 900)
    assert sessions[0].closed
    assert hold.arrived == 1 and aiportrait_emulator.counters.creations == 1  # charged once


async def test_a_training_sent_before_its_client_left_is_listed(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    hold = aiportrait_emulator.hold(TRAIN_PATH)
    factory = lambda: aiportrait_emulator.session(poll=FAST)  # noqa: E731
    async with serving(framework, factory, tmp_path / "trainings.json") as base:
        own = aiohttp.ClientSession()
        leaving = asyncio.ensure_future(own.post(f"{base}/trainings", json=urls["photos"]))
        await until(lambda: hold.held == 1, "the training held at the service: sent, charged")
        await _leave(leaving, own)
        hold.release()

        async def listed() -> list[dict[str, Any]]:
            answer = await client.get(f"{base}/trainings")
            trainings: list[dict[str, Any]] = (await answer.json())["trainings"]
            return trainings

        (training,) = await _eventually(listed, bool)  # its handle was kept: follow it
        events = _events(
            await (await client.get(f"{base}/trainings/{training['job_id']}/events")).text()
        )
        assert events[-1][0] == "result"
    assert aiportrait_emulator.counters.trainings == 1


async def test_a_client_that_leaves_before_its_training_is_sent_pays_nothing(
    framework: str,
    aiportrait_emulator: Emulator,
    urls: dict[str, Any],
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    held = _one_create_held(framework, aiportrait_emulator, tmp_path, TRAIN_PATH)
    async with held as (base, hold, sessions):
        first = asyncio.ensure_future(client.post(f"{base}/trainings", json=urls["photos"]))
        await until(lambda: hold.held == 1, "the first training held at the service")
        own = aiohttp.ClientSession()
        queued = asyncio.ensure_future(own.post(f"{base}/trainings", json=urls["photos"]))
        await until(_waiting(sessions, 1, "train"), "the second waits for a slot")
        await _leave(queued, own)
        await until(_waiting(sessions, 0, "train"), "it stopped waiting")  # never to be sent
        hold.release()
        assert (await first).status == 202
    assert hold.arrived == 1 and aiportrait_emulator.counters.trainings == 1


async def test_followers_of_a_training_write_the_store_once_per_state(
    framework: str,
    aiportrait_emulator: Emulator,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _stores.JobStore(tmp_path / "trainings.json")
    job_id = aiportrait_emulator.add_synthetic_job(0.2)
    await store.put(aiportrait.TrainJob(job_id, f"model-{job_id}"))
    writes: list[Path] = []

    def counted(path: Path, data: bytes) -> None:
        writes.append(path)
        write_atomic(path, data)

    write_atomic = _stores._write_atomic
    monkeypatch.setattr(_stores, "_write_atomic", counted)
    factory = lambda: aiportrait_emulator.session(poll=FAST)  # noqa: E731
    async with serving(framework, factory, store.path) as base:
        url = f"{base}/trainings/{job_id}/events"
        streams = await asyncio.gather(*(client.get(url) for _ in range(5)))
        followed = [_events(await stream.text()) for stream in streams]
    assert all(events[-1][0] == "result" for events in followed)
    states = {data["state"] for events in followed for name, data in events if name == "state"}
    assert writes == [store.path] * len(states)  # once per state, not once per follower
    assert store.entries()[str(job_id)]["state"] == "SUCCESS"


def _polls(emulator: Emulator, job_id: int) -> int:
    """The polls of one job the emulator received."""
    return sum(1 for _, path in emulator.counters.arrivals if path == f"{JOB_PATH}{job_id}")


async def test_an_event_stream_beats_and_stops_polling_when_its_client_leaves(
    framework: str, aiportrait_emulator: Emulator, tmp_path: Path
) -> None:
    store_path = tmp_path / "trainings.json"
    left, other = (aiportrait_emulator.add_synthetic_job(600.0) for _ in range(2))
    store = _stores.JobStore(store_path)
    for job_id in (left, other):
        await store.put(aiportrait.TrainJob(job_id, f"model-{job_id}"))
    factory = lambda: aiportrait_emulator.session(poll=STEADY)  # noqa: E731
    async with serving(framework, factory, store_path, heartbeat=0.05) as base:
        async with aiohttp.ClientSession() as leaving:
            stream = await leaving.get(f"{base}/trainings/{left}/events")
            seen: list[bytes] = []
            async for line in stream.content:
                seen.append(line.strip())
                if any(s.startswith(b":") for s in seen) and b"event: state" in seen:
                    break
            stream.close()  # the client leaves
        at_leaving = _polls(aiportrait_emulator, left)
        # A follower of another job polls on: 20 of its polls later, the first stream's
        # watch would have polled 20 times too had it not ended.
        async with aiohttp.ClientSession() as staying:
            stream = await staying.get(f"{base}/trainings/{other}/events")
            start = _polls(aiportrait_emulator, other)
            await until(lambda: _polls(aiportrait_emulator, other) >= start + 20, "20 polls")
            stream.close()
        assert _polls(aiportrait_emulator, left) <= at_leaving + 2
