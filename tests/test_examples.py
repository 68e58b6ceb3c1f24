"""The examples in ``examples/``, each run against the local emulator with fast jobs.

``quickstart.py`` and ``batch_generate.py`` run through their ``main()`` with ``AIPORTRAIT_*``
pointing at an emulator started here (so its counters prove what ran), and ``quickstart.py`` once
more as a script starting its own emulator; ``notebook.ipynb`` with nbclient, on a kernel of this
interpreter. The web examples are tested in ``test_web_backend.py`` and
``test_fastapi_backend.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import aiportrait
from aiportrait.emulator import Emulator
from aiportrait.errors import PhotoCountWarning
from aiportrait.samples import SamplePhotos, sample_photos
from tests._examples import ENV_NAMES, EXAMPLES, FRAMEWORKS, MODULES, example, image_size, serving

FAST = aiportrait.PollPolicy(first=0.02, cap=0.1, jitter=0.0, timeout=60)


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, SamplePhotos]:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder, sample_photos(folder)


@pytest.fixture
async def emu(media: tuple[Path, SamplePhotos]) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=media[0]) as emulator:
        yield emulator


@pytest.fixture
def urls(emu: Emulator, media: tuple[Path, SamplePhotos]) -> dict[str, list[str]]:
    """Photo and template URLs served by the emulator (two photos: training stays quick, and
    warns :class:`~aiportrait.errors.PhotoCountWarning`)."""
    names = media[1]
    return {
        "photos": [emu.media_url(n) for n in names.astronaut[:2]],
        "templates": [emu.media_url(n) for n in names.templates[:2]],
    }


@pytest.fixture
def env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials of the emulator in the environment, as for ``Session.from_env``."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIPORTRAIT_HOST", emu.url)
    monkeypatch.setenv("AIPORTRAIT_APP_ID", emu.app_id)
    monkeypatch.setenv("AIPORTRAIT_TOKEN", emu.token)


# -- quickstart.py -------------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
async def test_quickstart_against_the_service_named_in_the_environment(
    emu: Emulator,
    urls: dict[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quickstart = example("quickstart")
    out = tmp_path / "me"
    argv = ["--photos", *urls["photos"], "--template", urls["templates"][0], "--out", str(out)]
    with pytest.warns(PhotoCountWarning):
        code = await quickstart.main(argv)
    assert code == 0
    printed = capsys.readouterr().out
    assert "check: 2 of 2 photos usable" in printed
    assert "SUCCESS after" in printed
    assert "local emulator" not in printed  # it used the service from the environment
    assert image_size((tmp_path / "me.jpg").read_bytes()) == (768, 900)
    assert (emu.counters.checks, emu.counters.trainings, emu.counters.creations) == (1, 1, 1)


@pytest.mark.usefixtures("env")
async def test_quickstart_reports_a_refused_template_as_one_line(
    emu: Emulator, urls: dict[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quickstart = example("quickstart")
    missing = emu.media_url("no-such-template.jpg")
    argv = ["--photos", *urls["photos"], "--template", missing, "--out", str(tmp_path / "x")]
    with pytest.warns(PhotoCountWarning):
        code = await quickstart.main(argv)
    assert code == 1
    assert "error: TemplateDecodeError" in capsys.readouterr().err
    assert not [p.name for p in os.scandir(tmp_path) if p.name.startswith("x.")]


async def test_quickstart_needs_urls_when_credentials_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quickstart = example("quickstart")
    monkeypatch.setenv("AIPORTRAIT_HOST", "127.0.0.1:9")
    monkeypatch.setenv("AIPORTRAIT_APP_ID", "app")
    monkeypatch.setenv("AIPORTRAIT_TOKEN", "token")
    with pytest.raises(SystemExit, match="give your own photo and template URLs"):
        await quickstart.main([])


def _run_offline(
    tmp_path: Path, script: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run an example as a script in ``tmp_path`` with no credentials in its environment (so
    it starts what it needs locally); the run must succeed."""
    names = (*ENV_NAMES, "TEMPORAL_ADDRESS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run


def test_quickstart_runs_as_a_script_with_its_own_emulator(tmp_path: Path) -> None:
    run = _run_offline(tmp_path, "quickstart.py", "--train-seconds", "0.05")
    assert "local emulator at http://127.0.0.1:" in run.stdout
    assert "check: 5 of 5 photos usable" in run.stdout
    assert "SUCCESS after" in run.stdout
    assert (tmp_path / "quickstart.jpg").stat().st_size > 10_000


def test_local_photos_runs_offline_uploading_to_the_emulators_bucket(tmp_path: Path) -> None:
    run = _run_offline(tmp_path, "local_photos.py", "--train-seconds", "0.05")
    assert "checked here: 5 of 5 photos usable" in run.stdout
    assert "bucket: 6 photos uploaded, each once" in run.stdout
    assert (tmp_path / "local_photos.jpg").stat().st_size > 10_000


# -- batch_generate.py ---------------------------------------------------------------------------


@pytest.mark.usefixtures("env")
async def test_batch_generate_resumes_without_creating_anything_twice(
    emu: Emulator,
    urls: dict[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch_generate = example("batch_generate")
    journal = tmp_path / "run.sqlite"
    argv = ["--count", "20", "--limit", "4", "--journal", str(journal)]
    argv += ["--photos", *urls["photos"], "--templates", *urls["templates"]]

    with pytest.warns(PhotoCountWarning):
        code = await batch_generate.main(argv)
    assert code == 0
    first = capsys.readouterr().out
    assert "(trained now)" in first
    assert "[##############################] 20/20" in first  # the progress line
    assert "20 created now, 0 from an earlier run, 0 failed" in first
    portraits = sorted((tmp_path / "run_portraits").iterdir())
    assert [p.name for p in portraits][:2] == ["portrait-0000.jpg", "portrait-0001.jpg"]
    assert len(portraits) == 20
    assert (emu.counters.trainings, emu.counters.creations) == (1, 20)
    requests = emu.counters.requests

    assert await batch_generate.main(argv) == 0  # the same command again
    second = capsys.readouterr().out
    assert "(from the journal)" in second
    assert "0 created now, 20 from an earlier run, 0 failed" in second
    assert (emu.counters.trainings, emu.counters.creations) == (1, 20)  # nothing ran twice
    assert emu.counters.requests == requests  # not a single call: all from the journal


def test_batch_progress_redraws_one_line_on_a_terminal() -> None:
    batch_generate = example("batch_generate")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = batch_generate.Progress(3, stream=stream, width=3)
    request = aiportrait.CreateRequest("m", "http://127.0.0.1/t.jpg")
    portrait = aiportrait.Portrait(b"")
    progress.update(aiportrait.Outcome("a", request, value=portrait))
    progress.update(aiportrait.Outcome("b", request, value=portrait, resumed=True))
    progress.update(
        aiportrait.Outcome("c", request, error=aiportrait.errors.ModelIdError(462, "e", "x"))
    )
    summary = progress.close()
    assert (summary.created, summary.resumed, summary.failed) == (1, 1, 1)
    text = stream.getvalue()
    assert "\r[#..] 1/3" in text
    assert "c: ModelIdError: HTTP 462 e: x\n" in text
    assert text.count("\n") == 2  # the error, and the end: the bar is redrawn in place


def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


async def test_batch_generate_runs_its_emulator_on_a_free_port_and_reuses_it_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_credentials(monkeypatch)
    batch_generate = example("batch_generate")
    journal = tmp_path / "run.sqlite"
    argv = ["--count", "2", "--limit", "2", "--journal", str(journal), "--train-seconds", "0.05"]
    with socket.socket() as busy:  # the emulator's usual port, taken (or already in use)
        with contextlib.suppress(OSError):
            busy.bind(("127.0.0.1", 8089))
            busy.listen()
        assert await batch_generate.main(argv) == 0
    first = capsys.readouterr().out
    assert "2 created now, 0 from an earlier run, 0 failed" in first
    (url,) = re.findall(r"local emulator at (http://127\.0\.0\.1:\d+)", first)
    port = int(url.rsplit(":", 1)[1])
    assert port != 8089

    assert await batch_generate.main(argv) == 0  # the same command again
    second = capsys.readouterr().out
    assert f"local emulator at {url} " in second  # the same port: the same photo URLs
    assert "0 created now, 2 from an earlier run, 0 failed" in second

    with socket.socket() as busy:  # the earlier run's port is taken now
        busy.bind(("127.0.0.1", port))
        busy.listen()
        assert await batch_generate.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"batch_generate: port {port}, where the earlier run's emulator")
    assert "--journal" in line


async def test_batch_generate_says_in_one_line_that_a_given_port_is_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_credentials(monkeypatch)
    batch_generate = example("batch_generate")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["--emulator-port", str(port), "--journal", str(tmp_path / "j.sqlite")]
        assert await batch_generate.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"batch_generate: port {port} is in use (another emulator?): give another "
        "--emulator-port, or leave it out to use a free one\n"
    )
    assert "Traceback" not in captured.out + captured.err


# -- the web examples: their tracing, and as scripts (their API: test_web_backend.py) ----------


async def test_web_backend_prints_its_spans_when_otel_traces_exporter_is_console(
    emu: Emulator, urls: dict[str, list[str]], tmp_path: Path
) -> None:
    """aiohttp.web's example only: a server span per request, the library's spans below it."""
    pytest.importorskip("opentelemetry.sdk")
    web_backend = example("web_backend")
    assert web_backend.setup_tracing({}) is None  # nothing asked: nothing done
    out = io.StringIO()
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "test-backend"}
    tracing = web_backend.setup_tracing(env, out=out)
    assert tracing is not None
    factory = lambda: emu.session(poll=FAST)  # noqa: E731
    try:
        async with serving("aiohttp", factory, tmp_path / "t.json", tracing=tracing) as base:
            async with aiohttp.ClientSession() as client:
                with pytest.warns(PhotoCountWarning):
                    answer = await client.post(f"{base}/trainings", json=urls["photos"])
            assert answer.status == 202
    finally:
        tracing.shutdown()
    decoder = json.JSONDecoder()
    text, spans = out.getvalue(), []
    at = text.find("{")
    while at != -1:  # the console exporter prints one JSON object per span
        span, end = decoder.raw_decode(text, at)
        spans.append(span)
        at = text.find("{", end)
    by_name = {span["name"]: span for span in spans}
    server, train = by_name["POST /trainings"], by_name["POST /api/v1/aigc_images/train"]
    assert train["parent_id"] == server["context"]["span_id"]
    assert train["context"]["trace_id"] == server["context"]["trace_id"]
    assert train["kind"] == "SpanKind.CLIENT" and server["kind"] == "SpanKind.SERVER"
    assert server["resource"]["attributes"]["service.name"] == "test-backend"
    assert emu.token not in text
    assert not aiportrait.otel.instrumented()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_web_example_help_lists_the_options_for_a_real_service(framework: str) -> None:
    script = EXAMPLES / f"{MODULES[framework]}.py"
    run = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--photos URL", "--templates URL", "--heartbeat SECONDS", "--store", "--port"):
        assert option in run.stdout
    assert "--max-waiting N" in run.stdout and "--max-wait SECONDS" in run.stdout


def test_the_web_examples_bound_their_session_from_the_command_line() -> None:
    web = example("_web")
    args = web.parser("test").parse_args(["--max-waiting", "7", "--max-wait", "1.5"])
    session = web.bounded(aiportrait.Session, args)("http://127.0.0.1:9", "app", "token")
    assert (session.limits.max_waiting, session.limits.max_wait) == (7, 1.5)
    defaults = web.bounded(aiportrait.Session, web.parser("test").parse_args([]))
    assert defaults("http://127.0.0.1:9", "app", "token").limits.max_waiting == 64


@contextlib.asynccontextmanager
async def _started(
    script: str,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    stop: signal.Signals = signal.SIGINT,
) -> AsyncIterator[list[str]]:
    """Run a web example as a script; yields the 7 lines it printed first (where it serves,
    against what, and example commands), then stops it with ``stop`` (Ctrl-C; SIGTERM, as a
    service manager does): it must exit 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLES / script), *argv, env=env, cwd=cwd, stdout=PIPE, stderr=PIPE
    )
    assert process.stdout is not None
    stdout = process.stdout
    try:
        printed = [(await asyncio.wait_for(stdout.readline(), 60)).decode() for _ in range(7)]
        assert printed[0].startswith("serving on http://127.0.0.1:"), printed
        yield printed
    finally:
        process.send_signal(stop)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_web_example_starts_against_the_service_named_in_the_environment(
    framework: str, emu: Emulator, urls: dict[str, list[str]], tmp_path: Path
) -> None:
    """As a script, with credentials in the environment (an emulator started apart)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env["AIPORTRAIT_HOST"] = emu.url
    env["AIPORTRAIT_APP_ID"] = emu.app_id
    env["AIPORTRAIT_TOKEN"] = emu.token
    argv = ["--port", "0", "--store", str(tmp_path / "t.json"), "--photos", *urls["photos"]]
    argv += ["--templates", urls["templates"][0]]
    script = f"{MODULES[framework]}.py"
    async with _started(script, argv, env, tmp_path) as printed:
        assert printed[1] == "the service named by AIPORTRAIT_HOST\n"
        assert urls["templates"][0] in "".join(printed)  # in the example commands
        base = printed[0].split()[2]
        wanted = {"model_id": "nope", "template": urls["templates"][0]}
        async with aiohttp.ClientSession() as client:
            answer = await client.post(f"{base}/portraits", json=wanted)
            assert (answer.status, (await answer.json())["error"]) == (422, "ModelIdError")
    assert emu.counters.create_errors == 1  # it asked the emulator


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_web_example_starts_its_own_emulator_without_credentials(
    framework: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    argv = ["--port", "0", "--store", str(tmp_path / "t.json")]
    script = f"{MODULES[framework]}.py"
    async with _started(script, argv, env, tmp_path, signal.SIGTERM) as printed:
        assert printed[1].startswith("local emulator at http://127.0.0.1:")
        assert "astronaut_0.jpg" in printed[3]  # the bundled photos, in the example commands
        base = printed[0].split()[2]
        async with aiohttp.ClientSession() as client:
            listed = await client.get(f"{base}/trainings")
            assert (listed.status, await listed.json()) == (200, {"trainings": []})


# -- notebook.ipynb ------------------------------------------------------------------------------


def test_notebook_runs_and_shows_images_and_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    # A kernel spec of this very interpreter, in a private folder: no global kernel is used.
    spec = tmp_path / "jupyter" / "kernels" / "aiportrait-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "aiportrait test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # nothing written to ~
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)

    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells)  # committed without outputs
    client = NotebookClient(
        notebook,
        kernel_name="aiportrait-test",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out["output_type"] == "error"]
    shown = [set(out.get("data", {})) for out in outputs]
    assert any("image/jpeg" in kinds for kinds in shown)  # the Portrait
    assert any("image/png" in kinds for kinds in shown)  # the text-prompt portrait
    tables = [out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})]
    assert len(tables) >= 3 and all("<table>" in html for html in tables)
    streams = "".join(out.get("text", "") for out in outputs if out["output_type"] == "stream")
    assert "SUCCESS" in streams


def test_temporal_batch_runs_offline_with_its_own_server_emulator_and_worker(
    tmp_path: Path,
) -> None:
    pytest.importorskip("temporalio")
    run = _run_offline(tmp_path, "temporal_batch.py", timeout=300)
    assert "done: 8 succeeded" in run.stdout
    portraits = list((tmp_path / "aiportrait-store" / "portraits").glob("*/portrait-*.jpg"))
    assert len(portraits) == 6
    assert all(p.stat().st_size > 10_000 for p in portraits)
