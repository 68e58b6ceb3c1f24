"""Shared by the examples: the service named in the environment, or else the local emulator.

With ``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID`` and ``AIPORTRAIT_TOKEN`` set (or the
documentation's ``HOST``, ``AppId`` and ``Token``), the examples talk to that service, with the
photo and template URLs given on their command line. Without them, they start the local emulator
in process (a stand-in that does real face detection and compositing, not diffusion) and use the
bundled public-domain photos, which the emulator serves over HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiportrait

__all__ = ["LOCAL_POLL", "PORT_FILE", "PortTaken", "Target", "connect"]

#: How the examples poll the local emulator, whose trainings take seconds, not minutes.
LOCAL_POLL = aiportrait.PollPolicy(first=0.25, cap=1.0, timeout=120)

#: In a kept ``data_dir``: the port the emulator listened on, used again by the next run.
PORT_FILE = "emulator-port"


class PortTaken(Exception):
    """The local emulator's port is in use by another program.

    Attributes:
        port: the port.
        remembered: True when it was not given but is the port an earlier run used (kept in
            ``data_dir``, so that its URLs stay the same).
    """

    def __init__(self, port: int, *, remembered: bool) -> None:
        super().__init__(f"port {port} is taken")
        self.port = port
        self.remembered = remembered


def _remembered_port(data_dir: Path | None) -> int | None:
    """The port an earlier run's emulator listened on, kept in ``data_dir``; else ``None``."""
    if data_dir is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        port = int((data_dir / PORT_FILE).read_text().strip())
        if 0 < port < 65536:
            return port
    return None


@dataclass
class Target:
    """Where the examples send their calls, and the photos to use there.

    Attributes:
        session: makes a new :class:`aiportrait.Session` (keyword arguments go to it).
        photos: photo URLs of one person, for training.
        templates: template URLs with one face each.
        emulator: the local emulator when one was started, else ``None``.
    """

    session: Callable[..., aiportrait.Session]
    photos: list[str]
    templates: list[str]
    emulator: Any = None
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        """True when the examples run against the local emulator they started."""
        return self.emulator is not None


def credentials_in_env() -> bool:
    """True when ``Session.from_env()`` finds credentials."""
    try:
        aiportrait.Session.from_env()
    except aiportrait.errors.CredentialsError:
        return False
    return True


@asynccontextmanager
async def connect(
    *,
    photos: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    train_seconds: float = 2.0,
    port: int | None = None,
    data_dir: Path | None = None,
    need_photos: bool = True,
    need_urls: bool = True,
) -> AsyncIterator[Target]:
    """Yield a :class:`Target`: the service from the environment, or the local emulator.

    ``train_seconds``, ``port`` and ``data_dir`` configure the local emulator only (a
    ``data_dir`` keeps its trained models and jobs across runs). Without ``port``, the
    emulator listens on the port an earlier run with the same ``data_dir`` used (so that its
    photo URLs are the same again), else on a free one. Raises :class:`PortTaken` when that
    port is in use. ``need_photos=False``: only templates are needed from the command line (a
    model is already trained); ``need_urls=False``: none are (a server that takes them in its
    requests).
    """
    if credentials_in_env():
        if need_urls and ((need_photos and not photos) or not templates):
            raise SystemExit(
                "credentials found in the environment: give your own photo and template URLs "
                "on the command line (see --help), or unset AIPORTRAIT_HOST to use the local "
                "emulator"
            )
        yield Target(aiportrait.Session.from_env, list(photos or ()), list(templates or ()))
        return

    from aiportrait.emulator import Emulator
    from aiportrait.samples import sample_photos  # the bundled public-domain photos

    remembered = port is None and _remembered_port(data_dir) is not None
    if port is None:
        port = _remembered_port(data_dir) or 0
    async with AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aiportrait-ex-")))
        samples = sample_photos(folder)
        names = {
            "astronaut": list(samples.astronaut),
            "hopper": list(samples.hopper),
            "templates": list(samples.templates),
        }
        emulator = Emulator(
            train_seconds=train_seconds, serve_dir=folder, port=port, data_dir=data_dir
        )
        try:
            emu = await stack.enter_async_context(emulator)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(port, remembered=remembered) from None
        if data_dir is not None:
            (data_dir / PORT_FILE).write_text(f"{emu.port}\n")
        url = emu.media_url

        def session(**options: Any) -> aiportrait.Session:
            options.setdefault("poll", LOCAL_POLL)
            return emu.session(**options)

        yield Target(
            session=session,
            photos=list(photos or [url(n) for n in names["astronaut"]]),
            templates=list(templates or [url(n) for n in names["templates"][:2]]),
            emulator=emu,
            extra={role: [url(n) for n in files] for role, files in names.items()},
        )
