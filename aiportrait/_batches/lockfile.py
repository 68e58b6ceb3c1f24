"""The OS-level lock that makes a journal one run's at a time (``<journal>.lock``).

``flock`` on POSIX, ``msvcrt.locking`` on Windows; the lock file records who holds it (pid,
host, start time), so the error a second run gets names the holder. Closing the descriptor
releases the lock, so a killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .._files import open_new
from ..errors import JournalLocked

__all__ = ["FileLock"]


class FileLock:
    """An exclusive OS lock on ``<journal>.lock``, which records who holds it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal: Path, *, shared: bool = False) -> FileLock:
        """Take the lock without waiting; :class:`JournalLocked` names the holder. The lock
        file is created private unless ``shared`` (it names the holder's host)."""
        path = journal.with_name(journal.name + ".lock")
        fd = open_new(path, os.O_RDWR, shared=shared)
        try:
            if not _try_lock(fd):
                raise JournalLocked(journal, _holder(fd))
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(holder).encode())
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would race with a new holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor releases the lock

    def __del__(self) -> None:
        # A journal dropped without close() (the lock would otherwise stay until exit).
        self.release()


def _holder(fd: int) -> str:
    """The holder's record, as text for a message."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder not recorded"
    return f"pid {info.get('pid')} on {info.get('host', '?')}, since {info.get('started', '?')}"


if sys.platform == "win32":  # pragma: no cover - not run by the test suite
    import msvcrt

    _LOCK_OFFSET = 1 << 20  # beyond the holder's record, which stays readable

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
