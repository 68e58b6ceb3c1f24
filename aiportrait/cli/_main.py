"""``main``: parse, set up logging and warnings, run the command, map an error to an exit code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import IO, Final

from .. import Session
from .._logging import configure_from_env
from ..errors import ConfigWarning, PhotoCountWarning
from ._batch import cmd_batch
from ._batchfile import check_request, read_plan
from ._commands import cmd_check, cmd_create, cmd_train, cmd_watch, create_request, session_from
from ._exit import EXIT_OK, UsageError
from ._output import Output
from ._parser import PROG, Args, build_parser

__all__ = ["main"]

_COMMANDS: Final[dict[str, Callable[[Session, Args, Output], Awaitable[int]]]] = {
    "check": cmd_check,
    "train": cmd_train,
    "watch": cmd_watch,
    "create": cmd_create,
    "batch": cmd_batch,
}

_WARNED_BEFORE: Final[dict[str, tuple[type[Warning], ...]]] = {
    "create": (ConfigWarning,),
    "batch": (ConfigWarning, PhotoCountWarning),
}
"""Per command, the warnings :func:`_prepare` already gave: not repeated when sending."""


def _prepare(args: Args) -> None:
    """Checks and parsing that need no Session (so usage errors come before credentials)."""
    if args.command == "create":
        args.request = create_request(args)
        check_request(args.request)
    elif args.command == "batch":
        args.plan = read_plan(args.file, local_files=True)


async def _dispatch(args: Args, out: Output) -> int:
    _prepare(args)
    with warnings.catch_warnings():
        for category in _WARNED_BEFORE.get(args.command, ()):
            warnings.filterwarnings("ignore", category=category)
        async with session_from(args) as session:
            return await _COMMANDS[args.command](session, args, out)


@contextlib.contextmanager
def _debug_logging(debug: bool, stream: IO[str]) -> Iterator[None]:
    """With ``--debug``: DEBUG records of the ``aiportrait`` logger to stderr."""
    if not debug:
        yield
        return
    log = logging.getLogger("aiportrait")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _run(args: Args, out: Output) -> int:
    if args.command == "demo":
        try:
            from .._demo import run_demo
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(f"the demo needs: pip install 'aiportrait[emulator]' ({exc})") from exc
        asyncio.run(run_demo(args.out, train_seconds=args.train_seconds))
        return EXIT_OK
    if args.command == "emulator":
        raise UsageError(f"put emulator first: {PROG} emulator [OPTIONS]")
    return asyncio.run(_dispatch(args, out))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiportrait`` command line; returns the exit code."""
    configure_from_env()  # AIPORTRAIT_LOG=debug|info|warning
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from ..emulator._cli import main as emulator_main

        return emulator_main(argv[1:], prog=f"{PROG} emulator")
    if argv[:1] == ["temporal"]:
        from ._temporal import main as temporal_main

        return temporal_main(argv[1:])
    out = Output(json=False, out=sys.stdout, err=sys.stderr)
    try:
        args = build_parser().parse_args(argv, namespace=Args())
    except UsageError as exc:
        # argparse gives no namespace when it fails: the error is in JSON if --json was typed
        out.json = "--json" in argv
        return out.fail(exc)
    out.json, out.command = args.json, args.command
    try:
        with _debug_logging(args.debug, out.err), out.warnings_shown():
            return _run(args, out)
    except (Exception, KeyboardInterrupt) as exc:
        return out.fail(exc, debug=args.debug)
