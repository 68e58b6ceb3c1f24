"""The command line: the startup line, a signed request, and a clean stop on SIGTERM."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aiportrait.cli import main
from aiportrait.emulator import Emulator


def test_help_shows_the_defaults_and_a_bad_rate_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["emulator", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in ("--bind ADDRESS address to listen on [default: 127.0.0.1]",
                    "default: 8089", "emulated training time, seconds [default: 3.0"):  # fmt: skip
        assert default in text
    assert main(["emulator", "--fault-429", "2"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aiportrait: error: UsageError: Invalid value for '--fault-429'")
    assert "--fault-outage BOOL" in text
    assert main(["emulator", "--fault-latency", "601"]) == 2  # at most 600 s
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aiportrait: error: UsageError: Invalid value for '--fault-latency'")


def _signed_get(url: str, app_id: str, token: str, path: str) -> tuple[int, dict[str, object]]:
    sig = hmac.new(
        token.encode(), f"GET\n{hashlib.md5(b'').hexdigest()}\n{path}".encode(), hashlib.sha256
    )
    req = urllib.request.Request(
        url + path, headers={"Authorization": f"{app_id}:{sig.hexdigest()}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_module_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiportrait.emulator",
            "--port",
            "0",
            "--app-id",
            "cli-app",
            "--token",
            "cli-token",
            "--data-dir",
            str(tmp_path / "d"),
            "--train-seconds",
            "0.05",
            "--host",  # the old name of --bind: still works, with a warning
            "127.0.0.1",
            "--fault-path",
            "/api/v1/batch_jobs/2",
            "--fault-5xx",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "local stand-in, no diffusion" in line
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        exports = proc.stdout.readline().split()
        assert exports == [
            "export",
            f"AIPORTRAIT_HOST={url}",
            "AIPORTRAIT_APP_ID=cli-app",
            "AIPORTRAIT_TOKEN=cli-token",
        ]
        assert proc.stdout.readline().startswith("data: ")
        assert proc.stdout.readline() == f"dashboard: {url}/_dashboard/\n"
        status, body = _signed_get(url, "cli-app", "cli-token", "/api/v1/batch_jobs/1")
        assert (status, body["code"], body["data"]) == (200, "OK", {"jobs": []})
        status, body = _signed_get(url, "cli-app", "wrong", "/api/v1/batch_jobs/1")
        assert (status, body["message"]) == (401, "sign error")
        status, body = _signed_get(url, "cli-app", "cli-token", "/api/v1/batch_jobs/2")
        assert status == 503  # the fault, on the path given only
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert err.splitlines() == [
            "aiportrait: warning: FutureWarning: emulator --host is now --bind "
            "(--host means the service's address)"
        ]
        assert out.splitlines()[-1] == (  # the counters: three requests, the third one's fault
            "aiportrait emulator stopped: 3 requests, 0 trainings, 0 creations, "
            "0 charged duplicates, 1 faults fired"
        )
        assert (tmp_path / "d" / "jobs.jsonl").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args", [["--workers", "0"], ["--port", "99999"], ["--log-level", "x"]])
def test_bad_emulator_arguments_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiportrait.emulator", *args], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_import_loads_no_image_stack() -> None:
    code = (
        "import sys, aiportrait.emulator as e; "
        "print([m for m in ('numpy', 'cv2', 'dlib', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_synthetic_jobs_need_no_image_stack() -> None:
    code = """
import asyncio, sys
from aiportrait.emulator import Emulator
async def main():
    async with Emulator(app_id="a", token="t") as emu:
        emu.add_synthetic_job(0.0)
asyncio.run(main())
print([m for m in ('numpy', 'cv2', 'dlib') if m in sys.modules])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_session_binds_the_client(tmp_path: Path) -> None:
    import aiportrait

    async with Emulator(app_id="a", token="t") as emu:
        async with emu.session(poll=aiportrait.PollPolicy(first=0.01)) as session:
            assert isinstance(session, aiportrait.Session)
            job_id = emu.add_synthetic_job(0.0)
            job = await session.get_job(job_id)
            assert job.job_id == job_id


def test_importing_the_client_loads_no_emulator_server() -> None:
    code = (
        "import sys, aiportrait; "
        "print(sorted(m for m in sys.modules if m.startswith('aiportrait.emulator') "
        "or m == 'aiohttp.web'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_emulator_lifecycle_and_temporary_data_dir() -> None:
    emu = Emulator(app_id="a", token="t")
    assert emu.url == ""
    assert "not started" in repr(emu)
    with pytest.raises(RuntimeError):
        emu.add_synthetic_job(1.0)
    await emu.start()
    data_dir = emu.data_dir
    assert data_dir is not None
    assert data_dir.is_dir()
    assert emu.url.startswith("http://127.0.0.1:")
    assert emu.port > 0
    assert emu.authorization("GET", "/p", b"").startswith("a:")
    await emu.close()
    assert not data_dir.exists()
    await emu.close()  # idempotent


# -- credentials kept across restarts; a taken port ----------------------------------------------


def _start(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the CLI and read its three start lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiportrait.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, [proc.stdout.readline() for _ in range(3)]


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out, err


def _exports(line: str) -> dict[str, str]:
    words = shlex.split(line)
    assert words[0] == "export"
    return dict(word.split("=", 1) for word in words[1:])


def test_restarts_on_one_data_dir_keep_the_credentials(tmp_path: Path) -> None:
    data = tmp_path / "d"
    seen = []
    for extra in ([], [], ["--token", "mine"]):
        proc, lines = _start("--data-dir", str(data), *extra)
        try:
            exports = _exports(lines[1])
            assert exports["AIPORTRAIT_HOST"] in lines[0]
            assert not exports["AIPORTRAIT_HOST"].endswith(":0")  # the real port
            status, _ = _signed_get(
                exports["AIPORTRAIT_HOST"],
                exports["AIPORTRAIT_APP_ID"],
                exports["AIPORTRAIT_TOKEN"],
                "/api/v1/batch_jobs/1",
            )
            assert status == 200
            seen.append((exports["AIPORTRAIT_APP_ID"], exports["AIPORTRAIT_TOKEN"]))
        finally:
            out, err = _stop(proc)
        assert exports["AIPORTRAIT_TOKEN"] not in out + err  # printed once, in the banner only
    assert seen[0] == seen[1]
    assert seen[2] == ("local-app", "mine")
    assert (data / "credentials.json").stat().st_mode & 0o777 == 0o600
    kept = json.loads((data / "credentials.json").read_text())
    assert kept == {"app_id": "local-app", "token": seen[0][1]}  # --token did not replace it


async def test_emulator_keeps_its_token_in_a_given_data_dir(tmp_path: Path) -> None:
    async with Emulator(data_dir=tmp_path) as first:
        token = first.token
    async with Emulator(data_dir=tmp_path) as second:
        assert second.token == token
    async with Emulator(data_dir=tmp_path, token="given") as third:
        assert third.token == "given"
    async with Emulator(data_dir=tmp_path, app_id="other") as fourth:
        assert fourth.token != token  # the kept token belongs to the other AppId
    async with Emulator() as temporary:  # a temporary data dir keeps nothing
        assert not (temporary.data_dir / "credentials.json").exists()  # type: ignore[operator]
    (tmp_path / "credentials.json").write_text("{not json")
    async with Emulator(data_dir=tmp_path) as fifth:
        assert fifth.token not in (token, "given")
    assert json.loads((tmp_path / "credentials.json").read_text())["token"] == fifth.token


def test_a_taken_port_is_one_line_and_a_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "aiportrait.emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"aiportrait: error: StartError: port {port} on 127.0.0.1 is taken; "
        "pass --port 0 for a free one or another port"
    ]
    assert done.stdout == ""
