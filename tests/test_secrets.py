"""Secret hygiene and logging: a full flow at DEBUG leaks no token, signature or image data."""

from __future__ import annotations

import base64
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import PollPolicy, Session
from aiportrait._wire.transport import Transport
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos, sample_photos

TOKEN = "tok-SECRET-0123456789"
FAST = PollPolicy(first=0.02, cap=0.05, jitter=0.0, timeout=30)


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    names = sample_photos(tmp_path)
    async with Emulator(token=TOKEN, train_seconds=0.05, serve_dir=tmp_path) as e:
        e.names = names  # type: ignore[attr-defined]
        yield e


async def test_full_flow_at_debug_leaks_nothing(
    emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    signatures: list[str] = []
    original = Transport.headers

    def spy(self: Transport, *args: Any) -> dict[str, str]:
        headers = original(self, *args)
        signatures.append(headers["Authorization"].split(":", 1)[1])
        return headers

    monkeypatch.setattr(Transport, "headers", spy)
    names: SamplePhotos = emu.names  # type: ignore[attr-defined]
    photos = [emu.media_url(n) for n in names.astronaut[:3]]
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with emu.session(poll=FAST) as session:
            texts.append(repr(session))
            report = await session.check_images(photos)
            with pytest.warns(aiportrait.errors.PhotoCountWarning):  # three photos: quick
                job = await session.train(report.passed)
            async for update in session.watch(job):
                texts.append(repr(update))
            result = await session.wait(job)
            portrait = await session.create(result.model_id, emu.media_url(names.templates[0]))
            texts += [repr(report), repr(job), repr(result), repr(portrait)]
            for call in (
                session.create("no-such-model", emu.media_url(names.templates[0])),
                session.get_job(999999),
            ):
                with pytest.raises(aiportrait.AIPortraitError) as info:
                    await call
                texts += [str(info.value), repr(info.value)]
        async with Session(emu.url, emu.app_id, "wrong-token") as bad:
            with pytest.raises(aiportrait.errors.SignatureMismatch) as info:
                await bad.get_job(1)
            texts += [str(info.value), repr(bad), repr(pickle.loads(pickle.dumps(info.value)))]
    records = caplog.records
    assert records  # DEBUG logging really ran
    texts += [r.getMessage() for r in records] + [str(r.__dict__) for r in records]
    image_b64 = base64.b64encode(portrait.image).decode()
    secrets = [TOKEN, *signatures, image_b64[:40], image_b64[-40:]]
    assert len(signatures) >= 5
    for text in texts:
        for secret in secrets:
            assert secret not in text
    # Records carry the request id; the watcher's carry the job id.
    assert any(getattr(r, "request_id", "") for r in records)
    assert any(getattr(r, "job_id", None) == job.job_id for r in records)


def test_importing_configures_no_logging_and_aiportrait_log_applies_at_the_first_session() -> None:
    code = (
        "import logging, aiportrait; "
        "logger = logging.getLogger('aiportrait'); "
        "print(logger.level, [type(h).__name__ for h in logger.handlers]); "
        "aiportrait.Session('h.example', 'a', 't'); "
        "print(logger.level); logger.debug('hello from %s', 'debug')"
    )
    env = {**os.environ, "AIPORTRAIT_LOG": "debug"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    at_import, at_session = done.stdout.splitlines()
    assert at_import == f"{logging.NOTSET} ['NullHandler']"  # importing changed nothing
    assert at_session == str(logging.DEBUG)
    assert "hello from debug" in done.stderr
    code = code.replace("print(logger.level, [type(h).__name__ for h in logger.handlers]); ", "")
    env["AIPORTRAIT_LOG"] = "info"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == str(logging.INFO)
    assert "hello" not in done.stderr
    env.pop("AIPORTRAIT_LOG")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stderr == ""


async def test_tls_verification_is_on_by_default() -> None:
    async with Session("https://ai.example.com", "a", "t") as session:
        connector = session._transport._client().connector
        assert connector is not None
        assert connector._ssl is True  # aiohttp's default: verify certificates


def _rendered_with_locals(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


async def test_a_failed_calls_traceback_with_locals_holds_no_signature_or_token() -> None:
    from tests._mock import PHOTOS, Fake

    error = (500, {}, {"code": "InternalError", "message": "boom"})
    with Fake([error]) as fake:
        async with Session(fake.url, "app", TOKEN, retry=aiportrait.RetryPolicy.NEVER) as s:
            with pytest.raises(aiportrait.SubmitOutcomeUnknown) as info:
                await s.train(PHOTOS)
            (sent,) = fake.requests
    text = _rendered_with_locals(info.value)
    app_id, signature = sent.headers["authorization"].split(":", 1)  # as sent
    assert app_id == "app" and len(signature) == 64
    assert "headers" in text  # the frame that built the request is rendered, with its locals
    assert signature not in text
    assert TOKEN not in text
    assert "<redacted>" in text


def test_sessions_do_not_pickle_and_hosts_carry_no_credentials() -> None:
    session = Session("h.example", "a", "secret-token")
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(session)
    with pytest.raises(aiportrait.InvalidArgument, match="credentials"):
        Session("https://user:pass@h.example", "a", "t")


def test_a_constructor_error_with_locals_holds_no_token_and_repr_never_raises() -> None:
    for make in (
        lambda: Session("ftp://nowhere", "app", TOKEN),
        lambda: Session.from_env({"AIPORTRAIT_APP_ID": "app", "AIPORTRAIT_TOKEN": TOKEN}),
    ):
        with pytest.raises(aiportrait.AIPortraitError) as info:
            make()
        text = _rendered_with_locals(info.value)
        assert TOKEN not in text
    half = Session.__new__(Session)
    assert "not constructed" in repr(half)
