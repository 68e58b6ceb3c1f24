"""``aiportrait emulator`` (also ``python -m aiportrait.emulator``): run the local emulator
until stopped."""

from __future__ import annotations

import dataclasses
import errno
import inspect
import logging
import re
import shlex
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from ..emulator import Faults
from ..emulator._faults import MAX_SECONDS, MAX_SEED
from ._exit import EXIT_OK, UsageError
from ._options import POSITIVE, Common, port_option, shared, stop_event, train_seconds_option

if TYPE_CHECKING:
    from ..emulator import Counters, Emulator

__all__ = ["DEFAULT_PORT", "emulator"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PORT: Final = 8089
BANNER: Final = "local stand-in, no diffusion: real face detection and compositing"
_RATE: Final = click.FloatRange(0.0, 1.0)
_SECONDS: Final = click.FloatRange(min=0.0)
_FAULT_SECONDS: Final = click.FloatRange(0.0, MAX_SECONDS)
_SEED: Final = click.IntRange(-MAX_SEED, MAX_SEED)


class StartError(Exception):
    """The emulator could not start (its port is taken...)."""


def _banner(emu: Emulator, *, token_given: bool) -> list[str]:
    """The start lines: the address, a copy-pasteable ``export`` of the credentials, the data.

    This is the one place the token is printed: on the emulator's own terminal, on purpose.
    """
    exports = " ".join(
        f"{name}={shlex.quote(value)}"
        for name, value in (
            ("AIPORTRAIT_HOST", emu.url),
            ("AIPORTRAIT_APP_ID", emu.app_id),
            ("AIPORTRAIT_TOKEN", emu.token),
        )
    )
    if emu.kept_data_dir and token_given:
        data = f"data: {emu.data_dir} (models and jobs kept across restarts; token from --token)"
    elif emu.kept_data_dir:
        data = f"data: {emu.data_dir} (models, jobs and credentials.json kept across restarts)"
    else:
        data = f"data: {emu.data_dir} (temporary, removed on stop)"
    needs = " (HTTP Basic: an AppId and its token)" if emu.dashboard_auth else ""
    return [
        f"aiportrait emulator on {emu.url} ({BANNER})",
        f"export {exports}",
        f"{data}; stop with Ctrl-C",
        f"dashboard: {emu.dashboard_url}{needs}",
    ]


def _summary(counters: Counters) -> str:
    """The line printed at stop: what the emulator did (a charged duplicate is a training or
    creation body processed again, each time after the first)."""
    duplicates = sum(n - 1 for n in counters.charged_duplicates().values())
    return (
        f"aiportrait emulator stopped: {counters.requests} requests, "
        f"{counters.trainings} trainings, {counters.creations} creations, "
        f"{duplicates} charged duplicates, {sum(counters.faults.values())} faults fired"
    )


_FAULTS: Final = {
    "--fault-seed": ("seed", _SEED, "N"),
    "--fault-5xx": ("rate_5xx", _RATE, "RATE"),
    "--fault-5xx-status": ("status_5xx", int, "STATUS"),
    "--fault-429": ("rate_429", _RATE, "RATE"),
    "--fault-retry-after": ("retry_after", _FAULT_SECONDS, "SECONDS"),
    "--fault-drop-before": ("drop_before", _RATE, "RATE"),
    "--fault-drop-after": ("drop_after", _RATE, "RATE"),
    "--fault-latency": ("latency", _FAULT_SECONDS, "SECONDS"),
    "--fault-latency-rate": ("latency_rate", _RATE, "RATE"),
    "--fault-malformed": ("malformed", _RATE, "RATE"),
    "--fault-job-failure": ("job_failure", _RATE, "RATE"),
    "--fault-outage": ("outage", click.BOOL, "BOOL"),
}
"""Fault injection: each option sets the :class:`~aiportrait.emulator.Faults` field it names
(the command gets them as keywords, given to ``Faults``); a RATE is a share of requests."""


def _faults_help() -> dict[str, str]:
    """Each field's help, from the ``Attributes:`` of :class:`Faults`' docstring (the one
    place it is said), a field named in it written as the option that sets it."""
    flags = {name: flag for flag, (name, _, _) in _FAULTS.items()}
    attributes = inspect.cleandoc(Faults.__doc__ or "").partition("Attributes:\n")[2]
    found = re.findall(r"^    (\w+): (.*(?:\n {8}.*)*)", attributes, re.MULTILINE)
    return {
        name: re.sub(
            r"``([^`]+)``", lambda m: flags.get(m[1], m[1]), " ".join(said.split())
        ).rstrip(".")
        for name, said in found
    }


def _faults(f: F) -> F:
    defaults = {field.name: field.default for field in dataclasses.fields(Faults)}
    helps = _faults_help()
    for flag, (name, kind, metavar) in reversed(_FAULTS.items()):
        f = click.option(
            flag,
            name,
            type=kind,
            default=defaults[name],
            show_default=True,
            metavar=metavar,
            help=helps.get(name),  # none under python -OO (no docstrings)
        )(f)
    return f


def _old_host(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        warnings.warn(
            "emulator --host is now --bind (--host means the service's address)",
            FutureWarning,
            stacklevel=1,
        )
        ctx.params["bind"] = value


@click.command()
@click.option(
    "--bind", default="127.0.0.1", show_default=True, metavar="ADDRESS", help="address to listen on"
)
@click.option("--host", callback=_old_host, expose_value=False, hidden=True)
@port_option("--port", DEFAULT_PORT, "port to listen on (0: a free one)")
@click.option("--app-id", default="local-app", show_default=True, help="AppId")
@click.option(
    "--token",
    help="token (default: the one kept in --data-dir, else a new random one; printed at start)",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="where models, jobs and the "
    "credentials are kept across restarts (default: a temporary directory)",
)
@train_seconds_option(3.0)
@click.option("--serve-dir", type=click.Path(path_type=Path), help="serve these files at /media/")
@click.option("--file-root", type=click.Path(path_type=Path), help="allow file:// URLs under it")
@click.option(
    "--allow-remote", is_flag=True, help="fetch image URLs from any host (default: loopback only)"
)
@click.option("--no-sdxl", is_flag=True, help="train_xl/create_xl answer 404")
@click.option("--quota", type=int, help="aigc calls allowed for the app")
@click.option("--workers", type=click.IntRange(min=1), help="threads for image work")
@click.option(
    "--read-timeout",
    type=POSITIVE,
    default=30.0,
    show_default=True,
    help="seconds a client has to send a request before its connection is closed",
)
@click.option(
    "--max-request-pixels",
    type=click.IntRange(min=1),
    default=400_000_000,
    show_default=True,
    help="pixels all the photos of one check or training may decode",
)
@click.option(
    "--time-skew",
    type=_SECONDS,
    default=900.0,
    show_default=True,
    help="seconds an X-Request-Time may differ from now",
)
@click.option(
    "--dashboard-auth/--no-dashboard-auth",
    default=None,
    help="whether the dashboard asks for an AppId and its token (HTTP Basic) "
    "[default: only when --bind is not loopback]",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="logging level",
)
@_faults
@click.option(
    "--fault-path",
    "paths",
    multiple=True,
    metavar="PREFIX",
    help="only inject faults on paths starting with PREFIX (repeatable)",
)
@shared("debug")
@click.pass_obj
def emulator(
    common: Common,
    /,
    bind: str,
    port: int,
    app_id: str,
    token: str | None,
    data_dir: Path | None,
    train_seconds: float,
    serve_dir: Path | None,
    file_root: Path | None,
    allow_remote: bool,
    no_sdxl: bool,
    quota: int | None,
    workers: int | None,
    read_timeout: float,
    max_request_pixels: int,
    time_skew: float,
    dashboard_auth: bool | None,
    log_level: str,
    paths: tuple[str, ...],
    **faults: Any,
) -> int:
    """Run the local emulator until Ctrl-C.

    A local stand-in for Alibaba Cloud PAI AI Portrait: it verifies signatures and keeps jobs
    like the service, with real face detection and compositing (no diffusion)."""  # fmt: skip
    from ..emulator import Emulator  # the server loads when it runs, not with every command

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        server = Emulator(
            app_id=app_id,
            token=token,
            data_dir=data_dir,
            train_seconds=train_seconds,
            sdxl=not no_sdxl,
            quota=quota,
            faults=Faults(**faults, paths=frozenset(paths) or None),
            serve_dir=serve_dir,
            file_root=file_root,
            host=bind,
            port=port,
            allow_remote=allow_remote,
            workers=workers,
            time_skew=time_skew,
            read_timeout=read_timeout,
            max_request_pixels=max_request_pixels,
            dashboard_auth=dashboard_auth,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    async def run() -> int:
        stop = await stop_event()
        try:
            async with server as emu:
                for line in _banner(emu, token_given=token is not None):
                    common.out.line(line)
                await stop.wait()
                summary = _summary(emu.counters)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartError(
                    f"port {port} on {bind} is taken; pass --port 0 for a free one or another port"
                ) from None
            raise StartError(f"cannot start: {exc}") from None
        common.out.line(summary)
        return EXIT_OK

    return common.run("emulator", run)
