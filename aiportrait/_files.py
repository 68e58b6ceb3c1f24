"""Files that hold personal data, created private: ``0600`` (folders ``0700``) by default.

A batch's journal (and its ``-wal``, ``-shm`` and ``.lock``), its output files, portraits, the
Temporal store and the emulator's data hold photos of people or what the service said about
them. Each is created through this module with ``shared=False`` (the default): readable by
its owner only. ``shared=True`` (the CLI's ``--shared-files``) creates them as any new file is,
by the umask (``0644`` and ``0755`` under the usual ``022``), for a folder another user (a web
server) reads. An existing file or folder keeps its mode: only what is created here is set.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

__all__ = ["dir_mode", "file_mode", "make_dir", "open_new", "write_atomic"]


def file_mode(shared: bool = False) -> int:
    """The mode a new file is created with (the umask still applies): ``0600``, or ``0666``
    (the umask's choice) when ``shared``."""
    return 0o666 if shared else 0o600


def dir_mode(shared: bool = False) -> int:
    """The mode a new folder is created with (the umask still applies): ``0700``, or ``0777``
    when ``shared``."""
    return 0o777 if shared else 0o700


def make_dir(path: str | os.PathLike[str], *, shared: bool = False) -> Path:
    """Create a folder and its missing parents (each new one private unless ``shared``); an
    existing one is left as it is."""
    folder = Path(path)
    missing = []
    here = folder
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, dir_mode(shared))
        except FileExistsError:  # made meanwhile by another process: kept as it is
            if not new.is_dir():
                raise
    return folder


def open_new(path: str | os.PathLike[str], flags: int, *, shared: bool = False) -> int:
    """``os.open`` with ``O_CREAT``: a file created now gets the private (or shared) mode."""
    return os.open(path, flags | os.O_CREAT | getattr(os, "O_BINARY", 0), file_mode(shared))


def write_atomic(path: str | os.PathLike[str], data: bytes, *, shared: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and durably (private unless ``shared``).

    The data goes to a new hidden file beside ``path``, flushed to disk, then renamed over
    ``path``, so a reader never sees half a file; the folder (made private when missing) is
    flushed too, so the file survives a power cut once this returns.
    """
    target = Path(path)
    make_dir(target.parent, shared=shared)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = open_new(tmp, os.O_EXCL | os.O_WRONLY, shared=shared)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name beside {target}")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the system allows it."""
    if os.name == "nt":  # pragma: no cover - folders cannot be opened there
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise  # some file systems cannot sync a folder; any other failure is real
    finally:
        os.close(fd)
