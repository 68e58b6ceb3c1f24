"""The command line: the startup line, a signed request, and a clean stop on SIGTERM."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import aiportrait.emulator
from aiportrait.emulator import Emulator
from aiportrait.emulator._cli import DEFAULT_PORT, build_parser


def test_parser_defaults_and_faults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.train_seconds, args.allow_remote) == (
        "127.0.0.1",
        DEFAULT_PORT,
        3.0,
        False,
    )
    args = build_parser().parse_args(
        ["--fault-5xx", "0.1", "--fault-path", "/api/v1/aigc_images/create"]
    )
    assert args.fault_5xx == 0.1
    assert args.fault_path == ["/api/v1/aigc_images/create"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fault-429", "2"])


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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "local stand-in, no diffusion" in line
        assert "cli-app" in line
        assert "cli-token" in line
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        status, body = _signed_get(url, "cli-app", "cli-token", "/api/v1/batch_jobs/1")
        assert (status, body["code"], body["data"]) == (200, "OK", {"jobs": []})
        status, body = _signed_get(url, "cli-app", "wrong", "/api/v1/batch_jobs/1")
        assert (status, body["message"]) == (401, "sign error")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped" in out
        assert (tmp_path / "d" / "jobs.jsonl").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_import_loads_no_image_stack() -> None:
    code = (
        "import sys, aiportrait.emulator as e; "
        "print([m for m in ('numpy', 'cv2', 'dlib', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_emulator_modules_never_import_the_client_at_module_level() -> None:
    package = Path(aiportrait.emulator.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are not executed
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.startswith(".."), (source.name, module)
                assert (
                    node.level == 1
                    or module.startswith("aiportrait.emulator")
                    or not module.startswith("aiportrait")
                ), (source.name, module)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name
                    assert not name.startswith("aiportrait") or name.startswith(
                        "aiportrait.emulator"
                    ), (source.name, name)


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
    pytest.importorskip("aiportrait._session")
    async with Emulator(app_id="a", token="t") as emu:
        session = emu.session()
        try:
            assert session is not None
        finally:
            close = getattr(session, "aclose", None) or getattr(session, "close", None)
            if close is not None:
                await close()


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
