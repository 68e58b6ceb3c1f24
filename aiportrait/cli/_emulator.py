"""``aiportrait emulator`` (also ``python -m aiportrait.emulator``): run the local emulator
until stopped."""

from __future__ import annotations

import errno
import logging
import shlex
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from ._exit import EXIT_OK, UsageError
from ._options import POSITIVE, Common, shared, stop_event

if TYPE_CHECKING:
    from ..emulator import Emulator

__all__ = ["DEFAULT_PORT", "emulator"]

DEFAULT_PORT: Final = 8089
BANNER: Final = "local stand-in, no diffusion: real face detection and compositing"
_RATE: Final = click.FloatRange(0.0, 1.0)
_SECONDS: Final = click.FloatRange(min=0.0)


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
    return [
        f"aiportrait emulator on {emu.url} ({BANNER})",
        f"export {exports}",
        f"{data}; stop with Ctrl-C",
    ]


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
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="port to listen on (0: a free one)",
)
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
@click.option(
    "--train-seconds", type=_SECONDS, default=3.0, show_default=True, help="emulated training time"
)
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
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="logging level",
)
@click.option("--fault-seed", "seed", type=int, default=0, help="fault injection: the seed")
@click.option(
    "--fault-5xx",
    "rate_5xx",
    type=_RATE,
    default=0.0,
    metavar="RATE",
    help="share of requests answered --fault-5xx-status",
)
@click.option("--fault-5xx-status", "status_5xx", type=int, default=503, metavar="STATUS")
@click.option("--fault-429", "rate_429", type=_RATE, default=0.0, metavar="RATE")
@click.option("--fault-retry-after", "retry_after", type=_SECONDS, default=1.0, metavar="SECONDS")
@click.option("--fault-drop-before", "drop_before", type=_RATE, default=0.0, metavar="RATE")
@click.option("--fault-drop-after", "drop_after", type=_RATE, default=0.0, metavar="RATE")
@click.option("--fault-latency", "latency", type=_SECONDS, default=0.0, metavar="SECONDS")
@click.option("--fault-latency-rate", "latency_rate", type=_RATE, default=1.0, metavar="RATE")
@click.option("--fault-malformed", "malformed", type=_RATE, default=0.0, metavar="RATE")
@click.option("--fault-job-failure", "job_failure", type=_RATE, default=0.0, metavar="RATE")
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
    log_level: str,
    paths: tuple[str, ...],
    **faults: Any,
) -> int:
    """Run a local emulator of Alibaba Cloud PAI AI Portrait on loopback until Ctrl-C. It
    verifies signatures and keeps jobs like the service (a local stand-in, no diffusion: real
    face detection and compositing)."""  # fmt: skip
    from ..emulator import Emulator, Faults  # the server loads when it runs, not at every command

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
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartError(
                    f"port {port} on {bind} is taken; pass --port 0 for a free one or another port"
                ) from None
            raise StartError(f"cannot start: {exc}") from None
        common.out.line("aiportrait emulator stopped")
        return EXIT_OK

    return common.run("emulator", run)
