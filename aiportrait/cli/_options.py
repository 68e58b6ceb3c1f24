"""The options commands share, defined once: credentials, ``--timeout``, ``--tries``,
``--json``, ``--debug``, the polling options, the uploads' options (``--delete-uploads``,
``--url-lifetime``) and ``--shared-files``; and :class:`Common`, where their values go.

A shared option is given to the ``aiportrait`` group and to each command that uses it, so it
may be typed before or after the command's name (``aiportrait --debug watch 12`` and
``aiportrait watch 12 --debug``); the value typed last wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
from collections import ChainMap
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import attrs
import click

from .. import DEFAULT_READ_TIMEOUT, DEFAULT_TIMEOUT, PollPolicy, RetryPolicy, Session
from .._wire.credentials import credentials_from_env
from .._wire.http import normalise_host
from .._wire.signing import PrivateMapping, redacted
from ..errors import JobFailed
from ..uploads import DEFAULT_EXPIRES, MAX_EXPIRES, OSSUploader
from ._exit import UsageError
from ._output import PROG, Output

__all__ = [
    "POSITIVE",
    "SERVICE",
    "UPLOADS",
    "Common",
    "on_stop_signals",
    "polling",
    "port_option",
    "shared",
    "stop_event",
    "train_seconds_option",
    "uploading_options",
]

F = TypeVar("F", bound=Callable[..., Any])

POSITIVE: Final = click.FloatRange(min=0, min_open=True)
"""A number of seconds > 0."""


@attrs.define
class Common:
    """The shared options' values and the :class:`Output`: every command's ``ctx.obj``."""

    out: Output
    host: str | None = None
    app_id: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    timeout: float | None = None
    tries: int | None = None
    debug: bool = False
    delete_uploads: bool = False
    url_lifetime: float | None = None
    shared_files: bool = False
    trains: bool = False
    """The command starts trainings: an error keeps its uploads (a training may still run)."""
    ends_process: bool = False
    """The process ends when the command does (the ``aiportrait`` command: ``console``)."""

    def _environ(self) -> PrivateMapping:
        """The credentials: flags before the environment, in a view whose repr shows no
        value (tracebacks' locals)."""
        names = ("AIPORTRAIT_HOST", "AIPORTRAIT_APP_ID", "AIPORTRAIT_TOKEN")
        values = (self.host, self.app_id, self.token)
        return PrivateMapping(
            ChainMap(
                {k: v for k, v in zip(names, values, strict=True) if v is not None},
                dict(os.environ),
            )
        )

    def session(self, **options: Any) -> Session:
        """A Session from the flags, else the environment (as ``Session.from_env``);
        ``options``: more of its arguments, from a command's own flags."""
        kwargs: dict[str, Any] = dict(options)
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout  # seconds: the Session's one meaning of it
        if self.tries is not None:
            kwargs["retry"] = RetryPolicy(attempts=self.tries, charged_attempts=self.tries)
        return Session.from_env(self._environ(), **kwargs)

    def uploader(self) -> OSSUploader | None:
        """The uploader for local files: ``OSS_BUCKET`` set -> OSS from the ``OSS_*``
        variables; else, against a loopback host (the local emulator), its bucket; else none.
        Its URLs last ``--url-lifetime``; with ``--delete-uploads`` it deletes every object it
        handed out when it is closed."""
        options: dict[str, Any] = {
            "expires": DEFAULT_EXPIRES if self.url_lifetime is None else self.url_lifetime,
            "delete_after": self.delete_uploads,
            "shared_files": self.shared_files,
        }
        if os.environ.get("OSS_BUCKET"):
            return OSSUploader(**options)
        host, app_id, token = credentials_from_env(self._environ())
        url = normalise_host(host)
        name = urlsplit(url).hostname or ""
        if name == "localhost" or name.startswith("127.") or name == "::1":
            return OSSUploader.emulated(url, app_id, token, **options)
        return None

    @contextlib.asynccontextmanager
    async def uploading(self, local: bool) -> AsyncIterator[OSSUploader | None]:
        """With ``local`` (local files to send), the uploader (closed on the way out)."""
        if not local:
            yield None
            return
        uploader = self.uploader()
        if uploader is None:
            raise UsageError(
                "local files need an uploader: set OSS_BUCKET (and the OSS_* keys) to upload "
                "them to OSS, or run against the local emulator; or give URLs"
            )
        async with uploader:
            try:
                yield uploader
            except BaseException as exc:
                if self.trains and uploader.delete_after and not isinstance(exc, JobFailed):
                    uploader.delete_after = False  # a training may still download them
                    if uploader.handed_out:
                        self.out.note(
                            f"{PROG}: uploads kept: a training may still be running and "
                            "download them (--delete-uploads deletes them once a run ends "
                            "cleanly)"
                        )
                raise

    def run(self, command: str, work: Callable[[], Coroutine[Any, Any, int]]) -> int:
        """Run a command's coroutine (with ``--debug``'s logging); its exit code."""
        self.out.command = command
        with self.out.debug_logging(self.debug):
            return asyncio.run(work())


def on_stop_signals(handler: Callable[[], None]) -> None:
    """Call ``handler`` on the running event loop at each SIGINT or SIGTERM (instead of
    raising ``KeyboardInterrupt``), for as long as the loop runs."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)


async def stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    on_stop_signals(stop.set)
    return stop


def _keep(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a shared option's value in :class:`Common`, when it was given."""
    if value is None or value is False:
        return value
    common = ctx.find_object(Common)
    assert common is not None
    assert param.name is not None
    if param.name == "json":
        common.out.json = True
    else:
        setattr(common, param.name, redacted(value) if param.name == "token" else value)
    return value


def _option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(*decls, callback=_keep, expose_value=False, **kwargs)


_RETRY: Final = RetryPolicy()
"""The Session's retries when ``--tries`` is not given (its defaults, shown in the help)."""

_SHARED: Final = {
    "host": _option("--host", metavar="URL", help="service address (else AIPORTRAIT_HOST)"),
    "app_id": _option("--app-id", metavar="ID", help="AppId (else AIPORTRAIT_APP_ID)"),
    "token": _option("--token", metavar="TOKEN", help="Token (else AIPORTRAIT_TOKEN)"),
    "timeout": _option(
        "--timeout",
        type=POSITIVE,
        metavar="SECONDS",
        help="per try of a call, in all",
        show_default=f"{DEFAULT_READ_TIMEOUT.total:g} a query; a train or create"
        f" {DEFAULT_TIMEOUT.total:g}, {DEFAULT_TIMEOUT.sock_read:g} between bytes",
    ),
    "tries": _option(
        "--tries",
        type=click.IntRange(min=1),
        metavar="N",
        help="tries per call in all (a train or create is sent again only when it provably"
        " did not run)",
        show_default=f"{_RETRY.attempts}; a train or create {_RETRY.charged_attempts}",
    ),
    "json": _option("--json", is_flag=True, default=False, help="JSON output"),
    "debug": _option("--debug", is_flag=True, default=False, help="tracebacks and DEBUG logging"),
    "delete_uploads": _option(
        "--delete-uploads",
        is_flag=True,
        default=False,
        help="delete the photos this run uploaded (or found, or resumed) once its jobs ended",
    ),
    "url_lifetime": _option(
        "--url-lifetime",
        type=click.FloatRange(60, MAX_EXPIRES),
        metavar="SECONDS",
        help=f"how long an uploaded photo's URL works (default {DEFAULT_EXPIRES:.0f})",
    ),
    "shared_files": _option(
        "--shared-files",
        is_flag=True,
        default=False,
        help="files written by the umask (0644), not private (0600)",
    ),
}

SERVICE: Final = ("host", "app_id", "token", "timeout", "tries", "json", "debug")
"""The shared options of the commands that call the service."""


UPLOADS: Final = ("delete_uploads", "url_lifetime")
"""The shared options of the commands that upload local photos."""


def uploading_options(
    *, wait: str | None = None, later: str = f"{PROG} uploads delete"
) -> Callable[[F], F]:
    """:data:`UPLOADS` for a command that uploads local photos; ``wait``: the name of its
    flag that says whether it waits for its trainings to end (``wait``, or ``no_wait`` that
    says it does not): ``--delete-uploads`` is refused when it does not wait, since a
    training downloads its photos while it runs (the refusal says to run ``later``)."""

    def add(f: F) -> F:
        @functools.wraps(f)
        def checked(*args: Any, **kwargs: Any) -> Any:
            common = click.get_current_context().find_object(Common)
            if wait is not None and common is not None:
                common.trains = True
            if wait is not None and common is not None and common.delete_uploads:
                negated = wait.startswith("no_")
                if bool(kwargs.get(wait)) == negated:
                    flag = "--" + wait.replace("_", "-")
                    verb = "does not go with" if negated else "needs"
                    raise UsageError(
                        f"--delete-uploads {verb} {flag}: a training downloads its photos "
                        f"while it runs (delete them once it ended: {later})"
                    )
            return f(*args, **kwargs)

        return shared(*UPLOADS)(cast(F, checked))

    return add


def shared(*names: str) -> Callable[[F], F]:
    """Add the shared options ``names`` to a command (or group)."""

    def add(f: F) -> F:
        for name in reversed(names):
            f = _SHARED[name](f)
        return f

    return add


def train_seconds_option(default: float) -> Callable[[F], F]:
    """``--train-seconds``: the emulator's training time (``emulator``, ``demo``,
    ``temporal dev``)."""
    return click.option(
        "--train-seconds",
        type=click.FloatRange(min=0),
        default=default,
        show_default=True,
        help="emulated training time, seconds",
    )


def port_option(name: str, default: int, what: str) -> Callable[[F], F]:
    """A port option: a number from 0 (any free port) to 65535."""
    return click.option(
        name, type=click.IntRange(0, 65535), default=default, show_default=True, help=what
    )


def polling(f: F) -> F:
    """``--poll`` and ``--deadline``; the command gets ``poll``, a :class:`PollPolicy`."""

    def policy(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
        current: PollPolicy = ctx.params.get("poll") or PollPolicy.TRAINING
        if value is not None and param.name == "poll_first":
            current = attrs.evolve(current, first=value, cap=max(value, current.cap))
        elif value is not None:
            current = attrs.evolve(current, timeout=value)
        ctx.params["poll"] = current

    deadline = click.option(
        "--deadline",
        "poll_deadline",
        type=POSITIVE,
        metavar="SECONDS",
        callback=policy,
        expose_value=False,
        help="job deadline (default 1800)",
    )
    first = click.option(
        "--poll",
        "poll_first",
        type=POSITIVE,
        metavar="SECONDS",
        callback=policy,
        expose_value=False,
        help="first poll interval; intervals grow from it up to 30 s (default 2)",
    )
    return first(deadline(f))
