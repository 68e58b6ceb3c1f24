"""The emulator's dashboard, server side, over real loopback HTTP: the JSON twin after a
training and creations through ``aiportrait.Session``, the event stream, fault control, the
charged duplicates, the page's escaping, and the credentials off loopback.

(The page in a browser is tested in ``test_dashboard_browser.py``.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from aiportrait import PollPolicy
from aiportrait.emulator import Emulator, Faults
from aiportrait.emulator import _activity as activity_module
from aiportrait.emulator import _dashboard as dashboard
from aiportrait.emulator._activity import REQUESTS_KEPT, Activity
from aiportrait.emulator._dashboard import needs_auth
from aiportrait.emulator._dashboard_events import Subscriber
from aiportrait.emulator._wire import BATCH_PATH_PREFIX, CREATE_PATH
from aiportrait.errors import ModelIdError, PhotoCountWarning
from aiportrait.samples import SamplePhotos, sample_photos
from aiportrait.uploads import OSSUploader, PresignedURL

from .._mock import until
from .._sse import sse_events as _events

FAST = PollPolicy(first=0.02, cap=0.05, jitter=0.0, timeout=60)
STATE = "/_dashboard/api/state"
FAULTS = "/_dashboard/api/faults"
EVENTS = "/_dashboard/events"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SamplePhotos]:
    folder = tmp_path_factory.mktemp("media")
    return folder, sample_photos(folder)


@pytest.fixture
async def emu(media: tuple[Path, SamplePhotos], tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=media[0], data_dir=tmp_path / "d") as e:
        yield e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _state(http: aiohttp.ClientSession, emu: Emulator, **kwargs: Any) -> Any:
    async with http.get(emu.url + STATE, **kwargs) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        return await resp.json()


def _basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def _signed(
    http: aiohttp.ClientSession, emu: Emulator, method: str, path: str, body: bytes = b""
) -> int:
    """Send one API request signed with the emulator's own credentials; its status."""
    headers = {
        "Authorization": emu.authorization(method, path, body),
        "Content-Type": "application/json",
    }
    async with http.request(method, emu.url + path, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def test_the_twin_and_the_events_follow_a_training_and_creations(
    emu: Emulator, http: aiohttp.ClientSession, media: tuple[Path, SamplePhotos]
) -> None:
    names = media[1]
    async with http.get(emu.url + EVENTS) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        events = _events(stream)
        assert (await anext(events))[0] == "hello"  # subscribed: nothing after this is missed
        async with (
            OSSUploader.for_emulator(emu) as uploader,
            emu.session(poll=FAST, uploader=uploader) as session,
        ):
            photos = [media[0] / n for n in names.astronaut[:2]]
            with pytest.warns(PhotoCountWarning):
                job = await session.train(photos)  # local files: uploaded to the bucket
            trained = await session.wait(job)
            template = emu.media_url(names.astronaut_template)
            portrait = await session.create(trained.model_id, template)
            with pytest.raises(ModelIdError):
                await session.create("no-such-model", template)

        states, kinds, streamed = [], set(), None  # everything that happened, in order
        async for name, data in events:
            kinds.add(name)
            if name == "job" and data["job_id"] == str(job.job_id):
                states.append(data["state"])
            if name == "portrait":
                streamed = data
                break
        assert states == ["queued", "running", "succeeded"]
        assert {"object", "request", "charges", "job"} <= kinds

    state = await _state(http, emu)
    assert state["stand_in"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", state["started_at"])
    counters = state["counters"]
    assert (counters["trainings"], counters["trainings_succeeded"]) == (1, 1)
    assert (counters["creations"], counters["create_errors"]) == (1, 1)
    assert state["charges"] == [
        {"app_id": emu.app_id, "trainings": 1, "creations": 2, "quota_left": None}
    ]
    assert state["duplicates"] == []

    failed, made, training = state["jobs"]  # newest first
    assert training["job_id"] == str(job.job_id)
    assert training["kind"] == "train"
    assert training["state"] == "succeeded"
    assert training["model_id"] == trained.model_id
    assert training["photo_count"] == 2
    assert len(training["photos"]) == 2  # the uploaded objects, as the dashboard serves them
    assert all(p.startswith("/_dashboard/objects/") for p in training["photos"])
    assert training["duration"] > 0 and training["ended_at"] >= training["created_at"]
    assert made["kind"] == "create" and made["state"] == "succeeded"
    assert made["template"] == f"/media/{names.astronaut_template}"
    assert made["mode"] == "template"
    assert failed["state"] == "failed"
    assert failed["error"] == "Prompts get error. Please check the model_id."
    assert failed["result"] is None

    (shown,) = state["portraits"]
    assert shown == streamed
    assert shown["job_id"] == made["job_id"] and shown["url"] == made["result"]
    assert shown["model_id"] == trained.model_id
    async with http.get(emu.url + shown["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == portrait.image  # the full image, as the client got it

    keys = {o["key"] for o in state["objects"]}
    assert len(keys) == 2
    for obj in state["objects"]:
        assert obj["size"] > 0
        async with http.get(emu.url + obj["url"]) as resp:
            assert resp.status == 200
            assert resp.content_type.startswith("image/")
    assert {p.split("/_dashboard/objects/")[1] for p in training["photos"]} == keys

    paths = [r["path"] for r in state["requests"]]
    assert paths[0] == CREATE_PATH and "/api/v1/aigc_images/train" in paths
    newest = state["requests"][0]
    assert (newest["method"], newest["status"], newest["fault"]) == ("POST", 462, None)
    assert newest["app_id"] == emu.app_id and newest["latency_ms"] >= 0

    text = json.dumps(state)
    assert emu.token not in text
    assert "x-oss-signature" not in text.lower() and "signature" not in text.lower()


async def test_a_fault_set_from_the_dashboard_answers_the_next_request(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    path = BATCH_PATH_PREFIX + "1"
    assert await _signed(http, emu, "GET", path) == 200
    async with http.get(emu.url + EVENTS) as stream:
        events = _events(stream)
        assert (await anext(events))[0] == "hello"
        async with http.put(emu.url + FAULTS, json={"rate_429": 1, "retry_after": 2}) as resp:
            assert resp.status == 200
            answered = await resp.json()
        assert (answered["rate_429"], answered["retry_after"]) == (1, 2)
        assert answered["paths"] is None and answered["status_5xx"] == 503
        assert emu.faults.rate_429 == 1.0
        assert await anext(events) == ("faults", answered)
    assert await _signed(http, emu, "GET", path) == 429
    newest = (await _state(http, emu))["requests"][0]
    assert (newest["status"], newest["fault"], newest["path"]) == (429, "429", path)

    async with http.put(emu.url + FAULTS, json={"rate_429": 0, "paths": ["/x"]}) as resp:
        assert (await resp.json())["paths"] == ["/x"]
    assert await _signed(http, emu, "GET", path) == 200
    state = await _state(http, emu)
    assert state["faults"]["paths"] == ["/x"]
    assert state["counters"]["faults"] == {"429": 1}


async def test_an_outage_from_the_dashboard_answers_every_request_503(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(emu.dashboard_url) as resp:
        assert '<input id="fault-outage" name="outage" type="checkbox">' in await resp.text()
    async with http.put(emu.url + FAULTS, json={"outage": True, "retry_after": 5}) as resp:
        assert (await resp.json())["outage"] is True
    path = BATCH_PATH_PREFIX + "1"
    headers = {"Authorization": emu.authorization("GET", path, b"")}
    for _ in range(3):
        async with http.get(emu.url + path, headers=headers) as resp:
            assert (resp.status, resp.headers["Retry-After"]) == (503, "5")
    state = await _state(http, emu)
    assert state["counters"]["faults"] == {"outage": 3}
    assert state["requests"][0]["fault"] == "outage"
    async with http.put(emu.url + FAULTS, json={"outage": False}) as resp:
        assert resp.status == 200
    assert await _signed(http, emu, "GET", path) == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"rate_429": 2}, "rate_429"),
        ({"rate_5xx": "0.5"}, "rate_5xx"),
        ({"latency": True}, "latency"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 2**53}, "seed"),  # beyond what the page's Number() holds exactly
        ({"seed": -(2**53)}, "seed"),
        ({"seed": 10**400}, "seed"),
        ({"status_5xx": 404}, "status_5xx"),
        ({"paths": "/api"}, "paths"),
        ({"paths": []}, "paths"),
        ({"rate_5xx": 10**400}, "rate_5xx"),
        ({"latency": 10**400}, "latency"),
        ({"latency": 601}, "latency"),
        ({"retry_after": 1e9}, "retry_after"),
        ({"outage": 1}, "outage"),
        ({"rate_429": 0.6, "rate_5xx": 0.6}, "add up to more than 1"),
        ([1, 2], "JSON object"),
    ],
)
async def test_a_bad_fault_setting_is_400_naming_it(
    emu: Emulator, http: aiohttp.ClientSession, body: Any, named: str
) -> None:
    async with http.put(emu.url + FAULTS, json=body) as resp:
        assert resp.status == 400
        assert named in (await resp.json())["error"]
    assert emu.faults == Faults()  # unchanged


async def test_the_fault_control_refuses_other_origins_and_forms(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    url = emu.url + FAULTS
    body = json.dumps({"rate_429": 1})
    async with http.put(url, data=body, headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415
    async with http.put(url, data=b"NaN", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    evil = {"Content-Type": "application/json", "Origin": "http://evil.example"}
    async with http.put(url, data=body, headers=evil) as resp:
        assert resp.status == 403
    assert emu.faults == Faults()
    same = {"Content-Type": "application/json", "Origin": emu.url}
    async with http.put(url, data=body, headers=same) as resp:
        assert resp.status == 200
    assert emu.faults.rate_429 == 1.0


async def test_on_loopback_the_dashboard_answers_only_to_loopback_names(
    emu: Emulator, http: aiohttp.ClientSession, media: tuple[Path, SamplePhotos]
) -> None:
    """A page of another site whose name points at 127.0.0.1 (DNS rebinding) sends its own
    name as the Host, and its own origin: refused, for the dashboard and the media files. A
    loopback name is enough, with any port (``ssh -L 9000:127.0.0.1:8089`` sends port 9000)."""
    port = emu.url.rsplit(":", 1)[1]
    photo = "/media/" + media[1].astronaut[0]
    paths = ("/", "/_dashboard/", STATE, EVENTS, "/_dashboard/static/dashboard.js", photo)
    for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}"):
        for path in paths:
            async with http.get(emu.url + path, headers={"Host": host}) as resp:
                assert resp.status == 421, (host, path)
                message = (await resp.json())["error"]
                assert "loopback name in Host" in message and "--dashboard-auth" in message
        async with http.put(emu.url + FAULTS, json={"rate_429": 1}, headers={"Host": host}) as r:
            assert r.status == 421
    for host in (f"localhost:{port}", f"127.0.0.2:{port}", "127.0.0.1:9000", "localhost", "[::1]"):
        for path in (STATE, photo):
            async with http.get(emu.url + path, headers={"Host": host}) as resp:
                assert resp.status == 200, (host, path)
    for origin in (f"http://evil.example:{port}", f"https://localhost:{port}"):
        headers = {"Origin": origin, "Host": f"localhost:{port}"}
        async with http.put(emu.url + FAULTS, json={"rate_429": 1}, headers=headers) as resp:
            assert resp.status == 403, origin
    assert emu.faults == Faults()
    headers = {"Origin": "http://localhost:9000", "Host": "localhost:9000"}  # a port forward
    async with http.put(emu.url + FAULTS, json={"rate_429": 1}, headers=headers) as resp:
        assert resp.status == 200
    assert await _signed(http, emu, "GET", BATCH_PATH_PREFIX + "1") == 429  # the API: any Host


async def test_a_charged_body_sent_twice_is_flagged(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    body = json.dumps({"model_id": "no-such-model", "template_image": "t2i_generate"}).encode()
    other = json.dumps({"model_id": "another", "template_image": "t2i_generate"}).encode()
    assert await _signed(http, emu, "POST", CREATE_PATH, body) == 462
    assert await _signed(http, emu, "POST", CREATE_PATH, other) == 462
    assert (await _state(http, emu))["duplicates"] == []
    async with http.get(emu.url + EVENTS) as stream:
        events = _events(stream)
        assert (await anext(events))[0] == "hello"
        assert await _signed(http, emu, "POST", CREATE_PATH, body) == 462
        async for name, data in events:
            if name == "charges" and data["duplicates"]:
                break
    assert await _signed(http, emu, "POST", CREATE_PATH, body) == 462
    (flagged,) = (await _state(http, emu))["duplicates"]
    assert flagged["path"] == CREATE_PATH and flagged["app_id"] == emu.app_id
    assert flagged["count"] == 3
    assert flagged["first_at"] <= flagged["last_at"]
    assert re.fullmatch(r"[0-9a-f]{12}", flagged["digest"])
    assert list(emu.counters.charged_duplicates().values()) == [3]  # the same count
    async with http.get(emu.dashboard_url) as resp:
        page = await resp.text()
    assert f'data-digest="{flagged["digest"]}"' in page


def test_the_first_arrivals_kept_are_bounded_and_a_duplicate_is_still_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(activity_module, "FIRSTS_KEPT", 2)
    activity = Activity({}, locate=lambda url: None)
    for body in (b"a", b"b", b"c", b"a"):  # a's first arrival is forgotten, not its count
        activity.counters.fingerprints[(CREATE_PATH, body.decode())] += 1
        activity.body_seen(CREATE_PATH, body.decode(), body, "app")
    assert len(activity._first) == 2
    (flagged,) = activity.charges()["duplicates"]
    assert (flagged["count"], flagged["first_at"]) == (2, None)
    assert flagged["digest"] == hashlib.sha256(b"a").hexdigest()[:12]


async def test_a_subscriber_that_falls_behind_is_told_to_resync(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(emu.url + EVENTS) as stream:
        events = _events(stream)
        assert (await anext(events))[0] == "hello"
        for _ in range(1001):  # without a pause: the stream cannot send any of them
            emu.faults = Faults()
        assert await anext(events) == ("resync", {})
        assert [e async for e in events] == []  # and the stream ends


async def _stream_status(http: aiohttp.ClientSession, emu: Emulator) -> int:
    async with http.get(emu.url + EVENTS) as stream:
        if stream.status == 200:
            assert (await anext(_events(stream)))[0] == "hello"
        else:
            assert "streams are open" in (await stream.json())["error"]
        return stream.status


async def test_a_stream_the_page_does_not_read_is_closed_and_streams_are_capped(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "WRITE_TIMEOUT", 0.2)
    monkeypatch.setattr(dashboard, "MAX_STREAMS", 1)
    loop = asyncio.get_running_loop()
    stalled = socket.socket()  # a page that never reads
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    try:
        host, port = emu.url.removeprefix("http://").rsplit(":", 1)
        await loop.sock_connect(stalled, (host, int(port)))
        request = f"GET {EVENTS} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        await loop.sock_sendall(stalled, request.encode())
        activity = emu._service.activity if emu._service else Activity({}, locate=str)
        await until(lambda: activity.streams == 1, "the stalled stream is open")
        assert await _stream_status(http, emu) == 503  # the one stream allowed
        for i in range(20):  # 20 MB of events it does not read
            emu.faults = Faults(paths=[f"/{i}" + "x" * 1_000_000])
        await until(lambda: activity.streams == 0, "the stalled stream is closed")
        emu.faults = Faults()  # (hello holds the faults: not a megabyte now)
        assert await _stream_status(http, emu) == 200
    finally:
        stalled.close()


async def test_streams_the_pages_closed_free_their_slots_at_once(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed stream's slot is free for the next page, not only at its next keepalive."""
    monkeypatch.setattr(dashboard, "KEEPALIVE", 3600.0)  # no write tells them the page left
    streams = [await http.get(emu.url + EVENTS) for _ in range(dashboard.MAX_STREAMS)]
    for stream in streams:
        assert (await anext(_events(stream)))[0] == "hello"
    assert await _stream_status(http, emu) == 503
    for stream in streams:
        stream.close()
    # (The emulator learns of each close when its loop reads the connection's end: asked until
    # it answers 200, for at most 10 s; before, the slots stayed taken for KEEPALIVE.)
    deadline = asyncio.get_running_loop().time() + 10
    while await _stream_status(http, emu) != 200:
        assert asyncio.get_running_loop().time() < deadline, "the closed streams' slots are taken"


async def test_hello_holds_the_state_and_no_event_after_it_repeats_it(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """A page that read the state after hello could read changes it then gets as events too
    (a request row twice, a job's older state over a newer one): hello holds the state instead."""
    for i in range(3):
        await _signed(http, emu, "GET", f"{BATCH_PATH_PREFIX}{i}")
    async with http.get(emu.url + EVENTS) as stream:
        events = _events(stream)
        name, hello = await anext(events)
        assert name == "hello" and hello["started_at"] == (await _state(http, emu))["started_at"]
        shown = [r["path"] for r in hello["state"]["requests"]]
        assert shown == [f"{BATCH_PATH_PREFIX}{i}" for i in (2, 1, 0)]
        assert hello["state"].keys() == (await _state(http, emu)).keys()
        await _signed(http, emu, "GET", BATCH_PATH_PREFIX + "9")
        sent = []
        async for name, data in events:
            if name == "request":
                sent.append(data["path"])
            if name == "charges":  # the end of a write
                break
    # Only what came after hello: the state reads (STATE is not an API path) and the last call.
    assert sent == [BATCH_PATH_PREFIX + "9"]


def test_a_subscriber_queue_is_bounded() -> None:
    subscriber = Subscriber(limit=2)
    subscriber.offer("a", "1")
    subscriber.offer("b", "2")
    assert not subscriber.behind
    subscriber.offer("c", "3")
    assert subscriber.behind
    subscriber.offer("d", "4")  # ignored from now on


async def test_a_request_only_marks_the_streams_which_build_the_newest_requests_once() -> None:
    activity = Activity({}, locate=lambda url: None)
    subscriber = activity.subscribe()
    for i in range(REQUESTS_KEPT + 5):
        activity.request("GET", f"/p{i}", 200, 0.001, None, None)
    assert await subscriber.next_events(0) == ([], {"request"})  # nothing encoded, one mark
    texts, seen = activity.requests_after(0)
    assert seen == REQUESTS_KEPT + 5
    paths = [json.loads(text)["path"] for text in texts]
    assert paths == [f"/p{i}" for i in range(5, REQUESTS_KEPT + 5)]  # the last kept, oldest first
    activity.request("GET", "/last", 200, 0.001, None, None)
    newer, seen = activity.requests_after(seen)
    assert [json.loads(text)["path"] for text in newer] == ["/last"]
    behind, _ = activity.requests_after(REQUESTS_KEPT)  # another stream, further behind
    assert behind == [*texts[-5:], *newer]  # the requests numbered 100 to 105
    assert all(a is b for a, b in zip(behind, [*texts[-5:], *newer], strict=True))  # built once


async def test_an_idle_stream_gets_keepalives(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "KEEPALIVE", 0.01)
    async with http.get(emu.url + EVENTS) as stream:
        events = _events(stream)
        assert (await anext(events))[0] == "hello"
        assert await anext(events) == ("comment", "keepalive")


async def test_the_page_escapes_what_it_shows(emu: Emulator, http: aiohttp.ClientSession) -> None:
    emu.add_app("<b>app</b>", "other-token", quota=3)
    async with http.get(emu.url + "/", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/_dashboard/"
    async with http.get(emu.dashboard_url) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        page = await resp.text()
    assert "<b>app</b>" not in page
    assert 'data-app-id="&lt;b&gt;app&lt;/b&gt;"' in page
    assert '<li class="none">no duplicates</li>' in page
    # The other app's charges row: its id as text, nothing charged, its quota left.
    assert (
        '<tr data-app-id="&lt;b&gt;app&lt;/b&gt;"><td>&lt;b&gt;app&lt;/b&gt;</td><td>0</td>'
        "<td>0</td><td>3</td></tr>"
    ) in page
    assert "other-token" not in page and emu.token not in page
    for name in ("index.html", "..%2Findex.html", "nothing.js"):
        async with http.get(emu.url + "/_dashboard/static/" + name) as resp:
            assert resp.status == 404


async def test_text_that_utf_8_cannot_encode_does_not_break_the_page(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    body = b'{"model_id": "lone \\ud800 surrogate", "template_image": "t2i_generate"}'
    assert await _signed(http, emu, "POST", CREATE_PATH, body) == 462
    assert (await _state(http, emu))["jobs"][0]["model_id"] == "lone \ud800 surrogate"
    async with http.get(emu.dashboard_url) as resp:
        assert resp.status == 200
        assert "model_id: lone ? surrogate" in await resp.text()


async def test_served_files_and_bucket_objects_cannot_act_as_the_dashboard(
    emu: Emulator, http: aiohttp.ClientSession, media: tuple[Path, SamplePhotos]
) -> None:
    """A served HTML or SVG file is of the dashboard's origin: it must run sandboxed."""
    async with OSSUploader.for_emulator(emu) as uploader:
        signed = await uploader.upload(b"<svg onload='alert(1)'/>", "image/svg+xml", "x.svg")
    assert isinstance(signed, PresignedURL)
    for url in (emu.media_url(media[1].astronaut_template), signed.reveal()):
        async with http.get(URL(url, encoded=True)) as resp:
            assert resp.status == 200
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"].split("; ")


def test_credentials_are_needed_off_loopback_only() -> None:
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert not needs_auth(loopback), loopback
    for elsewhere in ("0.0.0.0", "::", "", "192.168.1.20", "example.com"):
        assert needs_auth(elsewhere), elsewhere


async def test_with_credentials_the_dashboard_needs_an_app_and_its_token(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(train_seconds=0.05, dashboard_auth=True) as emu:
        assert emu.dashboard_auth
        emu.add_app("second", "second-token")
        for method, path in (
            ("GET", STATE),
            ("GET", EVENTS),
            ("PUT", FAULTS),
            ("GET", "/_dashboard/"),
        ):
            for auth in (None, _basic(emu.app_id, "wrong"), {"Authorization": "Basic !!"},
                         _basic("nobody", emu.token)):  # fmt: skip
                async with http.request(
                    method, emu.url + path, headers=auth, json={"rate_429": 1}
                ) as resp:
                    assert resp.status == 401, (path, auth)
                    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
                    assert emu.token not in await resp.text()
        assert emu.faults == Faults()
        state = await _state(http, emu, headers=_basic("second", "second-token"))
        assert state["stand_in"] is True
        async with http.put(
            emu.url + FAULTS, json={"rate_429": 1}, headers=_basic(emu.app_id, emu.token)
        ) as resp:
            assert resp.status == 200
        assert emu.faults.rate_429 == 1.0
        assert await _signed(http, emu, "GET", BATCH_PATH_PREFIX + "1") == 429  # the API as ever
    async with Emulator(train_seconds=0.05) as emu:
        assert not emu.dashboard_auth  # loopback: open
        assert (await _state(http, emu))["stand_in"] is True


async def test_a_call_the_emulator_fails_is_not_charged(
    emu: Emulator,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiportrait.emulator import _service

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the emulator")

    monkeypatch.setattr(_service.Service, "create", broken)
    body = json.dumps({"model_id": "m", "template_image": "t2i_generate"}).encode()
    assert await _signed(http, emu, "POST", CREATE_PATH, body) == 500
    state = await _state(http, emu)
    assert state["charges"][0]["creations"] == 0
    assert state["requests"][0]["status"] == 500
    assert "unexpected error on POST /api/v1/aigc_images/create" in caplog.text
