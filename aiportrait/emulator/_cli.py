"""``python -m aiportrait.emulator`` / ``aiportrait emulator``: run the emulator until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ._credentials import CREDENTIALS_FILE
from ._emulator import DEFAULT_APP_ID, Emulator
from ._faults import Faults

__all__ = ["DEFAULT_PORT", "build_parser", "main"]

DEFAULT_PORT = 8089
BANNER = "local stand-in, no diffusion: real face detection and compositing"


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a rate must be within [0, 1], got {text}")
    return value


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            span = f"{low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {value}")
        return value

    return parse


def _nonnegative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser(prog: str = "python -m aiportrait.emulator") -> argparse.ArgumentParser:
    """The command line parser (shared with ``aiportrait emulator``)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Run a local emulator of Alibaba Cloud PAI AI Portrait on loopback. It verifies "
            f"signatures and keeps jobs like the service ({BANNER})."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_int_in(0, 65535), default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}"
    )
    p.add_argument("--app-id", default=DEFAULT_APP_ID, help=f"AppId (default {DEFAULT_APP_ID})")
    p.add_argument(
        "--token",
        default=None,
        help=(
            "token (default: the one kept in --data-dir, else a new random one; printed at start)"
        ),
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=(
            "where models, jobs and the credentials are kept across restarts "
            "(default: a temporary directory)"
        ),
    )
    p.add_argument("--train-seconds", type=_nonnegative, default=3.0, help="training duration")
    p.add_argument("--serve-dir", type=Path, default=None, help="serve these files at /media/")
    p.add_argument("--file-root", type=Path, default=None, help="allow file:// URLs under it")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="fetch image URLs from any host (default: loopback only)",
    )
    p.add_argument("--no-sdxl", action="store_true", help="train_xl/create_xl answer 404")
    p.add_argument("--quota", type=int, default=None, help="aigc calls allowed for the app")
    p.add_argument("--workers", type=_int_in(1), default=None, help="threads for image work")
    p.add_argument(
        "--read-timeout",
        type=_positive,
        default=30.0,
        help="seconds a client has to send a request before its connection is closed (default 30)",
    )
    p.add_argument(
        "--max-request-pixels",
        type=_int_in(1),
        default=400_000_000,
        help="pixels all the photos of one check or training may decode (default 400000000)",
    )
    p.add_argument(
        "--time-skew",
        type=_nonnegative,
        default=900.0,
        help="seconds an X-Request-Time may differ from now (default 900)",
    )
    p.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default WARNING)",
    )
    f = p.add_argument_group("fault injection (rates are per request, within [0, 1])")
    f.add_argument("--fault-seed", type=int, default=0)
    f.add_argument("--fault-5xx", type=_rate, default=0.0, metavar="RATE")
    f.add_argument("--fault-5xx-status", type=int, default=503, metavar="STATUS")
    f.add_argument("--fault-429", type=_rate, default=0.0, metavar="RATE")
    f.add_argument("--fault-retry-after", type=_nonnegative, default=1.0, metavar="SECONDS")
    f.add_argument("--fault-drop-before", type=_rate, default=0.0, metavar="RATE")
    f.add_argument("--fault-drop-after", type=_rate, default=0.0, metavar="RATE")
    f.add_argument("--fault-latency", type=_nonnegative, default=0.0, metavar="SECONDS")
    f.add_argument("--fault-latency-rate", type=_rate, default=1.0, metavar="RATE")
    f.add_argument("--fault-malformed", type=_rate, default=0.0, metavar="RATE")
    f.add_argument("--fault-job-failure", type=_rate, default=0.0, metavar="RATE")
    f.add_argument(
        "--fault-path",
        action="append",
        default=None,
        metavar="PREFIX",
        help="only inject on paths starting with PREFIX (repeatable)",
    )
    return p


def _faults(args: argparse.Namespace) -> Faults:
    return Faults(
        seed=args.fault_seed,
        rate_5xx=args.fault_5xx,
        status_5xx=args.fault_5xx_status,
        rate_429=args.fault_429,
        retry_after=args.fault_retry_after,
        drop_before=args.fault_drop_before,
        drop_after=args.fault_drop_after,
        latency=args.fault_latency,
        latency_rate=args.fault_latency_rate,
        malformed=args.fault_malformed,
        job_failure=args.fault_job_failure,
        paths=frozenset(args.fault_path) if args.fault_path else None,
    )


def _banner(emu: Emulator, *, token_given: bool) -> str:
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
        data = f"data: {emu.data_dir} (models, jobs and {CREDENTIALS_FILE} kept across restarts)"
    else:
        data = f"data: {emu.data_dir} (temporary, removed on stop)"
    return "\n".join(
        [
            f"aiportrait emulator on {emu.url} ({BANNER})",
            f"export {exports}",
            f"{data}; stop with Ctrl-C",
        ]
    )


async def _serve(emulator: Emulator, stop: asyncio.Event, *, token_given: bool) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with emulator as emu:
        print(_banner(emu, token_given=token_given), flush=True)
        await stop.wait()
    print("aiportrait emulator stopped", flush=True)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit status."""
    parser = build_parser(prog or "python -m aiportrait.emulator")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        emulator = Emulator(
            app_id=args.app_id,
            token=args.token,
            data_dir=args.data_dir,
            train_seconds=args.train_seconds,
            sdxl=not args.no_sdxl,
            quota=args.quota,
            faults=_faults(args),
            serve_dir=args.serve_dir,
            file_root=args.file_root,
            host=args.host,
            port=args.port,
            allow_remote=args.allow_remote,
            workers=args.workers,
            time_skew=args.time_skew,
            read_timeout=args.read_timeout,
            max_request_pixels=args.max_request_pixels,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve(emulator, asyncio.Event(), token_given=args.token is not None))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"aiportrait emulator: port {args.port} on {args.host} is taken; "
                "pass --port 0 for a free one or another port",
                file=sys.stderr,
            )
        else:
            print(f"aiportrait emulator: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
