"""A presigned URL is a key to a person's photo: local photos uploaded to the emulator's bucket
are sent whole, yet no repr, pickle, exception attribute, traceback with locals or output of
the command line holds one (each test searches for ``x-oss-signature``)."""

from __future__ import annotations

import asyncio
import functools
import json
import pickle
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import cli
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import JobFailed, SubmitOutcomeUnknown, UploadError
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader

pytest.importorskip("alibabacloud_oss_v2")
Image = pytest.importorskip("PIL.Image")

FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)
TOKEN = "presigned-token-0123456789"
SIGNATURE = "x-oss-signature"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token=TOKEN, train_seconds=0.05) as emulator:
        yield emulator


@pytest.fixture
def me(sample_media: SamplePhotos, tmp_path: Path) -> list[Path]:
    """The astronaut's five photos in a folder ``me``."""
    folder = tmp_path / "me"
    folder.mkdir()
    for name in sample_media.astronaut:
        (folder / name).write_bytes(sample_media.path(name).read_bytes())
    return sorted(folder.glob("*.jpg"))


def with_locals(exc: BaseException) -> str:
    """The traceback as an error tracker that captures locals renders it."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


def assert_hidden(*values: Any) -> None:
    """No repr, str or pickle of ``values`` holds a signature."""
    for value in values:
        assert SIGNATURE not in repr(value)
        assert SIGNATURE not in str(value)
        assert SIGNATURE.encode() not in pickle.dumps(value)


async def test_uploads_are_sent_whole_and_results_hold_no_usable_url(
    emu: Emulator, me: list[Path]
) -> None:
    sent: list[str] = []
    async with OSSUploader.for_emulator(emu) as oss:

        async def mine(data: bytes, content_type: str, key: str) -> str:
            """The user's own callable, returning a plain string."""
            url = str.__str__(await oss.upload(data, content_type, key))
            sent.append(url)
            return url

        async with emu.session(uploader=mine, poll=FAST) as session:
            report = await session.check_images(me[:2])
            job = await session.train(me)
            result = await session.wait(job)
            finished = await session.get_job(job)
    assert all(SIGNATURE in url for url in sent)  # the service got the signed URLs...
    assert report.ok and len(result.states) == 5  # ...and downloaded every photo
    assert [c.url for c in report.results] == sent[:2]  # equal to the URLs sent
    assert [str(c.url) for c in report.results] == [str(p) for p in me[:2]]  # shown as the path
    assert [s.url for s in result.states] == sent[2:]
    assert [str(s.url) for s in result.states] == [u.partition("?")[0] for u in sent[2:]]
    assert finished.raw_result is not None and finished.result == result
    assert_hidden(report, report.results, report.passed, result, finished)
    assert_hidden(finished.raw_result)
    assert SIGNATURE not in json.dumps(result.to_dict())  # what is kept: query-less
    assert aiportrait.TrainResult.from_dict(result.to_dict()).states[0].url == str(
        result.states[0].url
    )
    assert json.loads(finished.raw_result)["states"][0]["url"] == sent[2].partition("?")[0]


async def test_failures_hold_no_usable_url_in_attributes_pickles_or_locals(
    emu: Emulator, me: list[Path], sample_media: SamplePhotos
) -> None:
    async with OSSUploader.for_emulator(emu) as oss:
        async with emu.session(uploader=oss, poll=FAST) as session:
            model_id = (await session.wait(await session.train(me))).model_id
            create = frozenset({"/api/v1/aigc_images/create"})
            emu.faults = Faults(rate_5xx=1.0, status_5xx=500, paths=create)
            with pytest.raises(SubmitOutcomeUnknown) as unknown:  # a 500: it may have run
                await session.create(model_id, sample_media.path(sample_media.hopper_template))
            assert "template" in str(unknown.value.request)
            emu.faults = Faults(job_failure=1.0)
            job = await session.train(me)
            with pytest.raises(JobFailed) as failed:
                await session.wait(job)
    assert failed.value.raw_result and "states" in failed.value.raw_result
    for exc in (unknown.value, failed.value):
        assert_hidden(exc, exc.args, vars(exc))
        assert SIGNATURE not in with_locals(exc)


async def test_a_failed_upload_leaves_no_usable_url_in_the_frames(
    emu: Emulator, me: list[Path]
) -> None:
    async with OSSUploader.for_emulator(emu) as oss:

        async def second_fails(data: bytes, content_type: str, key: str) -> str:
            if oss_puts() >= 1:
                raise OSError("disk full")
            return await oss.upload(data, content_type, key)

        def oss_puts() -> int:
            return emu.bucket.puts

        async with emu.session(uploader=second_fails) as session:
            with pytest.raises(UploadError) as info:
                await session.check_images(me[:2])
    assert emu.bucket.puts == 1
    assert SIGNATURE not in with_locals(info.value)


async def test_batch_outcomes_hold_no_usable_url(
    emu: Emulator, me: list[Path], tmp_path: Path
) -> None:
    async with OSSUploader.for_emulator(emu) as oss:
        async with emu.session(uploader=oss, poll=FAST) as session:
            async with session.train_many({"me": me}, journal=tmp_path / "j.sqlite") as outcomes:
                (outcome,) = [o async for o in outcomes]
    assert outcome.ok and len(outcome.unwrap().states) == 5
    assert_hidden(outcome, outcome.value)


SIGNED = "https://bucket.example/me/0.jpg?x-oss-credential=c&x-oss-signature=" + "9" * 64


def _unreadable(query: str, arrival: object) -> tuple[int, dict[str, str], Any]:
    """An OK answer echoing a presigned URL that cannot be read (the second verdict, or the
    job's state): built here, so that no frame of the failure holds it but the library's."""
    states = [{"url": SIGNED, "code": 1, "message": "success"}, {"url": SIGNED, "code": "?"}]
    data = {
        "check": {"check_results": states, "images": [SIGNED]},
        "job": {"job": {"id": 1, "state": "?", "Result": json.dumps({"states": states})}},
    }[query]
    return 200, {}, {"code": "OK", "message": "", "request_id": "r", "data": data}


async def _ask(session: aiportrait.Session, query: str) -> object:
    if query == "check":
        return await session.check_images(["https://bucket.example/me/0.jpg"] * 2)
    return await session.get_job(1)


@pytest.mark.parametrize("query", ["check", "job"])
async def test_an_unreadable_answer_leaves_no_usable_url_in_the_frames(query: str) -> None:
    from tests._mock import Fake

    retry = aiportrait.RetryPolicy.NEVER
    with Fake([functools.partial(_unreadable, query)]) as fake:
        async with aiportrait.Session(fake.url, "a", TOKEN, retry=retry) as session:
            with pytest.raises(aiportrait.errors.MalformedResponse) as info:
                await _ask(session, query)
    text = with_locals(info.value)
    assert "x-oss-credential" not in text and SIGNATURE not in text
    assert "decode_" in text  # the decoder's frames were rendered, with their locals


_GO_STYLE = json.dumps({"states": [{"url": SIGNED}]}).replace("&", "\\u0026")


@pytest.mark.parametrize(
    ("result", "kept"),
    [
        (json.dumps({"states": [{"url": SIGNED}], "model_id": "m"}), '"model_id": "m"'),
        (_GO_STYLE, "states"),  # & escaped in the JSON text, as Go writes it
        (f"cannot download {SIGNED}: 403", "cannot download https://bucket.example/me/0.jpg: 403"),
        ('{"message": "no URL here"}', '{"message": "no URL here"}'),
    ],
)
async def test_raw_result_keeps_the_text_without_signatures(result: str, kept: str) -> None:
    from tests._mock import Fake

    job = {"id": 1, "state": 3, "message": "failed", "Result": result}
    with Fake([(200, {}, {"code": "OK", "request_id": "r", "data": {"job": job}})]) as fake:
        async with aiportrait.Session(fake.url, "a", TOKEN) as session:
            answer = await session.get_job(1)
    assert answer.raw_result is not None and kept in answer.raw_result
    assert "x-oss-credential" not in answer.raw_result and SIGNATURE not in answer.raw_result
    assert_hidden(answer)


async def test_server_messages_naming_a_presigned_url_show_it_query_less() -> None:
    from tests._mock import Fake

    said = f"cannot download {SIGNED}."
    job = {"id": 1, "state": 3, "message": said}
    answers = [
        (200, {}, {"code": "OK", "request_id": "r", "data": {"job": job}}),
        (400, {}, {"code": "InvalidInput", "message": said, "request_id": "r"}),
    ]
    with Fake(answers) as fake:
        async with aiportrait.Session(fake.url, "a", TOKEN) as session:
            failed = await session.get_job(1)
            with pytest.raises(aiportrait.errors.APIError) as info:
                await session.get_job(2)
    assert failed.message == "cannot download https://bucket.example/me/0.jpg."
    assert_hidden(failed, info.value, vars(info.value))


# -- the command line ----------------------------------------------------------------------


async def run(emu: Emulator, *args: str) -> int:
    creds = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return await asyncio.to_thread(cli.main, [*args, *creds])


async def test_cli_check_train_watch_show_paths_and_query_less_urls(
    emu: Emulator, me: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    blank = me[0].parent / "blank.jpg"
    Image.new("RGB", (800, 800), (128, 128, 128)).save(blank)
    paths = [str(p) for p in me]
    assert await run(emu, "check", *paths[:2]) == cli.EXIT_OK
    assert await run(emu, "check", *paths[:2], "--json") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert SIGNATURE not in out
    doc = json.loads(out.splitlines()[-1])
    assert doc["passed"] == paths[:2]
    assert [r["path"] for r in doc["results"]] == paths[:2]
    urls = [r["url"] for r in doc["results"]]
    assert all(u.startswith(emu.url.rstrip("/")) and "?" not in u for u in urls)

    train = ["train", *paths, str(blank), "--force", "--wait", "--poll", "0.05"]
    assert await run(emu, *train) == cli.EXIT_OK
    text = capsys.readouterr()
    assert SIGNATURE not in text.out + text.err
    assert f"  FAIL  {blank}  " in text.out  # the service's rejection, by the path
    assert await run(emu, *train, "--json") == cli.EXIT_OK
    text = capsys.readouterr()
    assert SIGNATURE not in text.out + text.err
    doc = json.loads(text.out)
    assert doc["rejected"] == [str(blank)]
    assert [s["path"] for s in doc["states"]] == [*paths, str(blank)]
    assert all("?" not in s["url"] for s in doc["states"])

    assert await run(emu, "watch", str(doc["job_id"]), "--poll", "0.05") == cli.EXIT_OK
    assert await run(emu, "watch", str(doc["job_id"]), "--json", "--poll", "0.05") == cli.EXIT_OK
    text = capsys.readouterr()
    assert SIGNATURE not in text.out + text.err
    assert "FAIL  http" in text.out  # a job alone: its photos by their query-less URLs
    doc = json.loads(text.out.strip().splitlines()[-1])
    assert doc["rejected"] == [s["url"] for s in doc["states"] if not s["ok"]]
    assert all(s["path"] is None and "?" not in s["url"] for s in doc["states"])


async def test_cli_batch_output_and_files_show_paths(
    emu: Emulator,
    me: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OSS_BUCKET", raising=False)
    rows = [{"kind": "train", "key": "me", "images": [str(p) for p in me]}]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ["batch", str(batch), "--out", str(out), "--poll", "0.05", "--json"]
    assert await run(emu, *args) == cli.EXIT_OK
    text = capsys.readouterr()
    assert SIGNATURE not in text.out + text.err
    (doc,) = [d for d in map(json.loads, text.out.splitlines()) if d.get("type") == "outcome"]
    assert [s["path"] for s in doc["states"]] == [str(p) for p in me]
    saved = (out / "trainings" / "me.json").read_text()
    assert SIGNATURE not in saved


async def test_cli_shows_a_presigned_url_given_by_the_user_without_its_query(
    emu: Emulator, me: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    async with OSSUploader.for_emulator(emu) as oss:
        url = str.__str__(await oss.upload(me[0].read_bytes(), "image/jpeg", "mine.jpg"))
    assert SIGNATURE in url
    assert await run(emu, "check", url) == cli.EXIT_OK
    assert await run(emu, "check", url, "--json") == cli.EXIT_OK
    text = capsys.readouterr()
    assert SIGNATURE not in text.out + text.err
    public = url.partition("?")[0]
    assert text.out.splitlines()[0] == f"ok    {public}  SUCCESS"
    doc = json.loads(text.out.splitlines()[-1])
    assert doc["passed"] == [public]
    assert [(r["url"], r["path"]) for r in doc["results"]] == [(public, None)]
