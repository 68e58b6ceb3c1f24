"""Session behaviour: credentials, hosts, lifecycle, argument checks, answers and failures."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import aiportrait
from aiportrait import CreateConfig, InvalidArgument, RetryPolicy, Session
from tests._mock import PHOTOS, Arrival, Fake, mocked, sent
from tests._server import Server, closed_url

APP, TOKEN = "app-1", "secret-token-123"
PNG_1x1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# -- a loopback server that verifies signatures over the raw received bytes ------------------


def _signed(handler: Any) -> Any:
    """``handler``, behind the service's check of the signature over the raw bytes received."""

    def verify(arrival: Arrival) -> Any:
        msg = f"{arrival.method}\n{hashlib.md5(arrival.body).hexdigest()}\n{arrival.path}"
        good = APP + ":" + hmac.new(TOKEN.encode(), msg.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(arrival.headers.get("authorization", ""), good):
            return _envelope(401, "PARAMETER_ERROR", "sign error")
        return handler(arrival)

    return verify


def _envelope(status: int, code: str, message: str, data: Any = None) -> Any:
    return (status, {}, {"request_id": "req-7", "code": code, "message": message, "data": data})


def _check(arrival: Arrival) -> Any:
    images = arrival.json["images"]
    results = [{"code": 1, "frontal": True, "message": "success", "url": u} for u in images]
    data = {"images": images, "cost_time": 0.5, "check_results": results}
    return _envelope(200, "OK", "success", data)


def _train(arrival: Arrival) -> Any:
    return _envelope(200, "OK", "success", {"job_id": 7, "model_id": "m-7"})


def _job(arrival: Arrival) -> Any:
    result = json.dumps({"cost_time": 3.0, "states": [], "model_id": "m-7"})
    job = {"id": 7, "app_id": APP, "state": 2, "message": "success", "Result": result}
    return _envelope(200, "OK", "success", {"job": job})


def _batch(arrival: Arrival) -> Any:
    return _envelope(200, "OK", "success", {"jobs": [{"id": 1, "state": 1, "Result": ""}]})


def _create(arrival: Arrival) -> Any:
    if arrival.json["template_image"] == "https://t/noface.jpg":
        return _envelope(462, "error", "There is not face in template. Please Give a new template.")
    return _envelope(200, "OK", "success", {"image": base64.b64encode(PNG_1x1).decode(),
                                            "cost_time": 1.25})  # fmt: skip


async def test_base_path_prefix_is_in_the_url_but_not_signed() -> None:
    with mocked() as mock:
        mock.post("https://h.example/gw/api/v1/async_jobs/3",
                  payload={"code": "OK", "data": {"job": {"state": 1}}})  # fmt: skip
        async with Session("https://h.example/gw/", APP, TOKEN) as session:
            await session.get_job(3)
        (request,) = sent(mock)
    msg = f"POST\n{hashlib.md5(b'').hexdigest()}\n/api/v1/async_jobs/3".encode()
    sig = hmac.new(TOKEN.encode(), msg, hashlib.sha256).hexdigest()
    assert request["headers"]["Authorization"] == f"{APP}:{sig}"


@pytest.fixture
async def root_server() -> AsyncIterator[tuple[str, Server]]:
    routes = {
        "/api/v1/aigc_images/check": _signed(_check),
        "/api/v1/aigc_images/train": _signed(_train),
        "/api/v1/aigc_images/create": _signed(_create),
        "/api/v1/async_jobs/": _signed(_job),
        "/api/v1/batch_jobs/": _signed(_batch),
    }
    async with Server(routes=routes) as server:
        yield server.url + "/", server


async def test_calls_succeed_against_raw_byte_verifier(root_server: tuple[str, Server]) -> None:
    host, server = root_server
    async with Session(host, APP, TOKEN) as session:
        report = await session.check_images(["https://t/1.jpg", "https://t/2.jpg"])
        assert report.ok
        assert report.passed == ("https://t/1.jpg", "https://t/2.jpg")
        job = await session.train(PHOTOS, sdxl=True)
        assert job == aiportrait.TrainJob(7, "m-7")
        status = await session.get_job(job)
        assert status.state is aiportrait.JobState.SUCCESS
        assert status.result == aiportrait.TrainResult("m-7", 3.0, ())
        jobs = await session.get_batch_jobs(3)
        assert jobs[0].state is aiportrait.JobState.RUNNING
        portrait = await session.create("m-7", "https://t/tpl.jpg", config=CreateConfig())
        assert (portrait.format, portrait.width, portrait.height) == ("png", 1, 1)
        assert portrait.cost_time == 1.25
        assert portrait.request_id == "req-7"
        group = await session.create_group(["a", "b"], "https://t/tpl.jpg")
        assert group.image == PNG_1x1
        with pytest.raises(aiportrait.errors.NoFaceInTemplate) as info:
            await session.create("m-7", "https://t/noface.jpg")
        assert info.value.status == 462
        assert info.value.request_id == "req-7"
    methods = [(r.method, r.path) for r in server.requests]
    assert ("POST", "/api/v1/async_jobs/7") in methods
    assert ("GET", "/api/v1/batch_jobs/3") in methods
    poll = next(r for r in server.requests if r.path.startswith("/api/v1/async_jobs"))
    assert poll.body == b""
    assert poll.headers["accept"] == "text/plain"
    assert re.fullmatch(r"\d{10}", poll.headers["x-request-time"])
    ua = poll.headers["user-agent"]
    assert "aiportrait/" in ua
    assert "Python/" in ua
    assert "aiohttp/" in ua


# -- credentials and hosts ---------------------------------------------------------------------


def test_from_env_prefers_aiportrait_names_and_falls_back() -> None:
    env = {"AIPORTRAIT_HOST": "h.example", "AppId": "a", "Token": "t", "HOST": "other"}
    session = Session.from_env(env)
    assert session.host == "https://h.example"
    assert session.app_id == "a"
    session = Session.from_env({"Host": "http://x/", "AppId": "a", "Token": "t"})
    assert session.host == "http://x"


def test_from_env_names_what_it_tried() -> None:
    with pytest.raises(aiportrait.errors.CredentialsError) as info:
        Session.from_env({"HOST": "h"})
    text = str(info.value)
    assert "AIPORTRAIT_APP_ID" in text
    assert "AppId" in text
    assert "AIPORTRAIT_TOKEN" in text
    assert "AIPORTRAIT_HOST" not in text


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ai.example.com", "https://ai.example.com"),
        ("ai.example.com/", "https://ai.example.com"),
        ("http://ai.example.com/", "http://ai.example.com"),
        ("https://ai.example.com/base/", "https://ai.example.com/base"),
        ("127.0.0.1:8089", "http://127.0.0.1:8089"),
        ("localhost:1", "http://localhost:1"),
        ("[::1]:80", "http://[::1]:80"),
    ],
)
async def test_host_normalisation(given: str, expected: str) -> None:
    async with Session(given, "a", "t") as session:
        assert session.host == expected


@pytest.mark.parametrize("bad", ["", "   ", "ftp://x", "http://", "http://x/?q=1"])
def test_bad_hosts(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        Session(bad, "a", "t")


def test_constructor_checks() -> None:
    with pytest.raises(InvalidArgument, match="app_id"):
        Session("h", "", "t")
    with pytest.raises(InvalidArgument, match="token"):
        Session("h", "a", "")


def test_token_never_in_repr() -> None:
    session = Session("h.example", APP, TOKEN)
    assert TOKEN not in repr(session)
    assert TOKEN not in repr(session._transport)
    assert APP in repr(session)


# -- lifecycle ---------------------------------------------------------------------------------


async def test_borrowed_session_is_not_closed() -> None:
    async with aiohttp.ClientSession() as client:
        async with Session("h.example", "a", "t", session=client) as session:
            assert session._transport._client() is client
        assert not client.closed
        assert session.closed


async def test_own_session_is_closed_and_calls_after_close_fail() -> None:
    session = Session("h.example", "a", "t")
    async with session:
        client = session._transport._client()
    assert client.closed
    await session.aclose()  # idempotent
    with pytest.raises(aiportrait.errors.SessionClosed):
        await session.get_job(1)


# -- argument checks (no request sent) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.check_images("https://x/a.jpg"), "list of URLs"),
        (lambda s: s.check_images([]), "empty"),
        (lambda s: s.check_images(["x/a.jpg"]), r"images\[0\].*not a URL"),
        (lambda s: s.check_images([1]), "not a string"),
        (lambda s: s.check_images([b"\xff\xd8", "https://x/a.jpg"]), "no uploader"),
        (lambda s: s.train([b"\xff\xd8"]), "no uploader"),
        (lambda s: s.create("m", b"\xff\xd8"), "no uploader"),
        (lambda s: s.train(["https://x/a"], scene_lora=True, scene_prompts=["p"]), "sdxl=True"),
        (lambda s: s.train(["https://x/a"], sdxl=True, scene_lora=True), "needs scene_prompts"),
        (lambda s: s.train(["https://x/a"], sdxl=True, scene_prompts=["p"]), "only used with"),
        (lambda s: s.train(["https://x/a"], sdxl=True, scene_lora=True, scene_prompts="p"),
         "single string"),
        (lambda s: s.get_job(-1), "non-negative"),
        (lambda s: s.get_job("12"), "non-negative"),
        (lambda s: s.create("", "https://t/x.jpg"), "model_id"),
        (lambda s: s.create("m", "template.jpg"), "template"),
        (lambda s: s.create("m", "https://t/x.jpg", config=[1]), "CreateConfig or a mapping"),
        (lambda s: s.create_group([], "https://t/x.jpg"), "model_ids is empty"),
        (lambda s: s.create_group("ab", "https://t/x.jpg"), "list of model ids"),
        (lambda s: s.create_from_reference("https://r/x.jpg", "https://t/x.jpg", ipa_weight=3),
         "ipa_weight"),
        (lambda s: s.create_from_prompt("p"), "exactly one of"),
        (lambda s: s.create_from_prompt("p", model_id="m", reference="https://r/x.jpg"),
         "exactly one of"),
        (lambda s: s.create_from_prompt("", model_id="m"), "prompt"),
        (lambda s: s.create("m", "https://t/x.jpg", config={"ipa_control_only": True}),
         "needs ipa_image_path"),
    ],
)  # fmt: skip
async def test_bad_arguments_fail_before_any_request(call: Any, match: str) -> None:
    with mocked() as mock:
        async with Session("h.example", "a", "t") as session:
            with pytest.raises(InvalidArgument, match=match):
                await call(session)
        assert not mock.requests


def test_policies_refuse_bools_and_bad_values_with_invalid_argument() -> None:
    with pytest.raises(aiportrait.InvalidArgument):
        aiportrait.PollPolicy(timeout=True)  # type: ignore[arg-type]
    with pytest.raises(aiportrait.InvalidArgument):
        aiportrait.RetryPolicy(base=-1)
    with pytest.raises(aiportrait.InvalidArgument):
        Session("h.example", "a", "t").watch(1, timeout=-5)


async def test_explicit_arguments_and_config_must_agree() -> None:
    async with Session("h.example", "a", "t") as session:
        with pytest.raises(aiportrait.errors.ConflictingArguments, match="ipa_weight"):
            await session.create_from_reference(
                "https://r/x.jpg", "https://t/x.jpg", ipa_weight=0.6,
                config=CreateConfig(ipa_weight=0.7),
            )  # fmt: skip
        with pytest.raises(aiportrait.errors.ConflictingArguments, match="ipa_control_only"):
            await session.create_from_reference(
                "https://r/x.jpg", "https://t/x.jpg", config=CreateConfig(ipa_control_only=False)
            )
        with pytest.raises(aiportrait.errors.ConflictingArguments, match="t2i_prompt"):
            await session.create_from_prompt("a", model_id="m", config=CreateConfig(t2i_prompt="b"))
        with pytest.raises(aiportrait.errors.ConflictingArguments, match="scene_id"):
            await session.create_from_prompt(
                "a", model_id="m", scene_id="s1", config={"scene_id": "s2"}
            )


async def test_agreeing_duplicates_are_fine_and_prompt_defaults() -> None:
    with mocked() as mock:
        url = "https://h.example/api/v1/aigc_images/create"
        mock.post(url, payload={"code": "OK", "data": {"image": "aGk="}}, repeat=True)
        async with Session("h.example", "a", "t") as session:
            await session.create_from_reference(
                "https://r/x.jpg", "https://t/x.jpg", ipa_weight=0.6,
                config=CreateConfig(ipa_weight=0.6, lora_weights=0.8),
            )  # fmt: skip
            await session.create_from_prompt("sunny day", reference="https://r/x.jpg",
                                             scene_id="sc", sdxl=True)  # fmt: skip
        first, second = (json.loads(r["data"]) for r in sent(mock))
    assert first == {
        "action": "AIGCImageCreate",
        "model_id": "",
        "template_image": "https://t/x.jpg",
        "configure": {"ipa_weight": 0.6, "lora_weights": 0.8, "ipa_control_only": True,
                      "ipa_image_path": "https://r/x.jpg"},
    }  # fmt: skip
    assert second == {
        "action": "AIGCImageCreate",
        "model_id": "",
        "model_name": "create_xl",
        "template_image": "t2i_generate",
        "configure": {"t2i_prompt": "sunny day", "ipa_control_only": True,
                      "ipa_image_path": "https://r/x.jpg", "scene_id": "sc"},
    }  # fmt: skip


async def test_model_specific_keys_warn() -> None:
    with mocked() as mock:
        mock.post("https://h.example/api/v1/aigc_images/create",
                  payload={"code": "OK", "data": {"image": "aGk="}})  # fmt: skip
        async with Session("h.example", "a", "t") as session:
            with pytest.warns(aiportrait.errors.ConfigWarning, match="style_name.*SD1.5 only"):
                await session.create("m", "https://t/x.jpg", sdxl=True,
                                     config=CreateConfig(style_name="Anime"))  # fmt: skip


# -- answers and failures ----------------------------------------------------------------------

CHECK = "https://h.example/api/v1/aigc_images/check"


async def _check_with(**kw: Any) -> aiportrait.CheckReport:
    with mocked() as mock:
        mock.post(CHECK, **kw)
        async with Session("h.example", "a", TOKEN, retry=aiportrait.RetryPolicy.NEVER) as session:
            return await session.check_images(["https://x/a.jpg"])


async def test_non_ok_code_on_200_is_service_error() -> None:
    with pytest.raises(aiportrait.errors.ServiceError) as info:
        await _check_with(payload={"request_id": "r2", "code": "BUSY", "message": "try later"})
    assert info.value.status == 200
    assert info.value.code == "BUSY"
    assert info.value.request_id == "r2"


async def test_non_json_body_is_malformed_response() -> None:
    with pytest.raises(aiportrait.errors.MalformedResponse, match="not a JSON object"):
        await _check_with(body="<html>oops</html>", status=200)


async def test_non_json_error_falls_back_by_status() -> None:
    with pytest.raises(aiportrait.errors.ServerError) as info:
        await _check_with(body="Bad Gateway", status=502)
    assert info.value.status == 502
    assert "Bad Gateway" in info.value.message


async def test_429_carries_retry_after() -> None:
    with pytest.raises(aiportrait.errors.RateLimited) as info:
        await _check_with(status=429, payload={"code": "Throttling", "message": "slow"},
                          headers={"Retry-After": "7"})  # fmt: skip
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"check_results": "x"},
        {"check_results": [{"code": "one", "url": "u"}]},
        {"check_results": [{"code": 1, "url": 5}]},
        {"check_results": [], "images": [1]},
        {"check_results": [], "cost_time": "slow"},
    ],
)
async def test_wrong_types_are_malformed_response(data: Any) -> None:
    with pytest.raises(aiportrait.errors.MalformedResponse):
        await _check_with(payload={"code": "OK", "data": data})


async def test_unknown_verdict_and_missing_code_are_tolerated() -> None:
    report = await _check_with(payload={"code": "OK", "data": {"check_results": [
        {"code": 9, "url": "u1", "message": "new", "frontal": False},
        {"url": "u2", "message": "Number of face is not 1."},
    ]}})  # fmt: skip
    first, second = report.results
    assert first.code == 9
    assert not first.code.known
    assert second.code is aiportrait.CheckVerdict.FACE_COUNT


async def test_connection_refused_is_connect_error() -> None:
    # A real refused connection: what aiohttp raises when nothing listens.
    async with Session(await closed_url(), "a", TOKEN) as session:
        with pytest.raises(aiportrait.errors.ConnectError) as info:
            await session.get_job(1)
    assert TOKEN not in str(info.value)
    assert info.value.path == "/api/v1/async_jobs/1"


@pytest.mark.parametrize(
    "raised", [asyncio.TimeoutError, aiohttp.SocketTimeoutError], ids=["total", "sock_read"]
)
async def test_timeout_is_request_timeout(raised: type[Exception]) -> None:
    timeout = aiohttp.ClientTimeout(total=0.2)
    with Fake([raised]) as fake:  # what aiohttp raises when its timeout runs out
        async with Session(
            fake.url, "a", TOKEN, timeout=timeout, retry=aiportrait.RetryPolicy.NEVER
        ) as session:
            with pytest.raises(aiportrait.errors.RequestTimeout):
                await session.get_job(1)
    assert fake.requests[0].timeout == timeout  # the caller's timeout went to aiohttp


async def test_response_too_large() -> None:
    with mocked() as mock:
        mock.post(CHECK, body="x" * 5000)
        async with Session("h.example", "a", "t", max_response_bytes=2048) as session:
            with pytest.raises(aiportrait.errors.ResponseTooLarge):
                await session.check_images(["https://x/a.jpg"])


async def test_compressed_answers_cannot_bypass_the_size_bound() -> None:
    # aiohttp's HTTP parser inflates the answer: that needs a real socket.
    bomb = gzip.compress(b'{"code":"OK","data":{"x":"' + b"a" * 5_000_000 + b'"}}')
    async with Server([(200, {"Content-Encoding": "gzip"}, bomb)]) as server:
        async with Session(server.url, "a", "t", max_response_bytes=1 << 20,
                           retry=RetryPolicy.NEVER) as session:  # fmt: skip
            with pytest.raises(aiportrait.errors.ResponseTooLarge):
                await session.get_job(1)


async def test_job_result_spellings_and_bad_results() -> None:
    url = "https://h.example/api/v1/async_jobs/5"
    res = json.dumps({"model_id": "m", "cost_time": 2, "states": [{"url": "u", "code": 1}]})
    cases = [
        ({"state": 2, "result": res}, "m"),
        ({"state": 2, "Result": res}, "m"),
        ({"state": 2, "Result": "not json"}, None),
        ({"state": 2, "Result": json.loads(res)}, "m"),
        ({"state": 3, "Result": res, "message": "Train error"}, None),
    ]
    for job, model in cases:
        with mocked() as mock:
            mock.post(url, payload={"code": "OK", "data": {"job": job}})
            async with Session("h.example", "a", "t") as session:
                got = await session.get_job(5)
        assert (got.result.model_id if got.result else None) == model
        assert got.job_id == 5
        assert got.raw_result is not None


async def test_job_without_state_is_malformed() -> None:
    with mocked() as mock:
        mock.post("https://h.example/api/v1/async_jobs/5",
                  payload={"code": "OK", "data": {"job": {"message": "?"}}})  # fmt: skip
        async with Session("h.example", "a", "t") as session:
            with pytest.raises(aiportrait.errors.MalformedResponse, match="no state"):
                await session.get_job(5)


@pytest.mark.parametrize(
    "data",
    [{"image": ""}, {"image": 5}, {}, {"image": "!!!!"}],
)
async def test_bad_create_images(data: Any) -> None:
    with mocked() as mock:
        mock.post("https://h.example/api/v1/aigc_images/create",
                  payload={"code": "OK", "data": data})  # fmt: skip
        async with Session("h.example", "a", "t") as session:
            # The service said OK (the create ran), but the image cannot be read.
            with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await session.create("m", "https://t/x.jpg")
    assert isinstance(info.value.__cause__, aiportrait.errors.MalformedResponse)


async def test_create_tolerates_data_prefix() -> None:
    with mocked() as mock:
        image = "data:image/png;base64," + base64.b64encode(PNG_1x1).decode()
        mock.post("https://h.example/api/v1/aigc_images/create",
                  payload={"code": "OK", "data": {"image": image, "cost_time": 2}})  # fmt: skip
        async with Session("h.example", "a", "t") as session:
            portrait = await session.create("m", "https://t/x.jpg")
    assert portrait.image == PNG_1x1
    assert portrait.cost_time == 2.0


async def test_debug_log_has_request_id_and_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "aiportrait"):
        await _check_with(payload={"request_id": "rid-55", "code": "OK", "data": {}})
    assert "rid-55" in caplog.text
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in str(record.__dict__)
