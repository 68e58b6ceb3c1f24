"""The one command tree (``aiportrait`` and its commands) and :func:`main`: parse, run the
command, turn an error into its one line and exit code."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import click

from .._logging import configure_from_env
from .._wire.credentials import ENV_NAMES
from ._batch import batch
from ._commands import check, create, train, watch
from ._emulator import emulator
from ._exit import EXIT_CODES, EXIT_OK, UsageError
from ._options import SERVICE, Common, shared, train_seconds_option
from ._output import PROG, Output
from ._temporal import core_made, temporal
from ._temporalbatch import attach, batch_
from ._temporaldev import dev
from ._uploads import uploads

__all__ = ["console", "context", "main", "parse", "tree"]

_EPILOG: Final = (
    "Credentials: --host/--app-id/--token, else "
    + "; ".join(" or ".join(names) for names in ENV_NAMES.values())
    + "; flags win.\n\n"
    "\b\nExit codes of every command (docs/guides/cli.md):\n"  # \b: click keeps these lines
     + "\n".join(f"{code:>5}  {meaning}" for code, meaning in EXIT_CODES.items())
)


@click.group(
    epilog=_EPILOG,
    context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
)
@shared(*SERVICE)
def tree() -> None:
    """Client and local emulator for PAI AI Portrait."""


@tree.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("portraits"),
    show_default=True,
    help="output folder",
)
@train_seconds_option(2.0)
@shared("debug")
@click.pass_obj
def demo(common: Common, out: Path, train_seconds: float) -> int:
    """Run the whole flow offline (no account).

    Trains and creates against the local emulator, with the bundled photos."""
    try:
        from .._demo import run_demo
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise UsageError(f"the demo needs: pip install 'aiportrait[emulator]' ({exc})") from exc

    async def run() -> int:
        await run_demo(out, train_seconds=train_seconds)
        return EXIT_OK

    return common.run("demo", run)


for _command in (check, train, watch, create, batch, uploads, emulator, temporal):
    tree.add_command(_command)
for _command in (batch_, attach, dev):
    temporal.add_command(_command)


def _long_flags(command: click.Command) -> frozenset[str]:
    """Every long option of ``command`` and its subcommands."""
    found = {o for p in command.params for o in getattr(p, "opts", ()) if o.startswith("--")}
    for sub in getattr(command, "commands", {}).values():
        found |= _long_flags(sub)
    return frozenset(found)


_FLAGS: Final = _long_flags(tree)


def context(
    command: click.Command,
    name: str | None = PROG,
    parent: click.Context | None = None,
    obj: object = None,
) -> click.Context:
    """A context of ``command`` made as ``main`` makes it: with the command's own settings (its
    help options among them: click keeps a command's help option from the first context that
    asks, so one made without them would change ``--help`` for the rest of the process)."""
    return command.context_class(
        command, info_name=name, parent=parent, obj=obj, **command.context_settings
    )


def parse(argv: Sequence[str]) -> str:
    """Parse ``argv`` (the arguments after ``aiportrait``) as the command would, options' types
    and checks included, and run nothing; returns the command's path (``aiportrait temporal
    worker``). A wrong command, flag or value raises :class:`click.UsageError`; ``--help`` parses
    (its text is not shown). The documentation's tests check its command lines with it."""
    obj = Common(Output(io.StringIO(), io.StringIO(), flags=_FLAGS))  # for the options' callbacks
    command: click.Command = tree
    ctx = context(tree, obj=obj)
    args = list(argv)
    with contextlib.redirect_stdout(io.StringIO()):
        while True:
            with ctx.scope(cleanup=False):
                try:  # a group's own options: its subcommand and the rest stay in ``args``
                    args = click.Command.parse_args(command, ctx, args)
                except click.exceptions.Exit:  # --help
                    return ctx.command_path
            if not isinstance(command, click.Group):
                return ctx.command_path
            if not args:
                ctx.fail("missing command")
            name, sub, args = command.resolve_command(ctx, args)
            assert sub is not None  # else resolve_command raised
            ctx = context(sub, name, ctx)
            command = sub


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiportrait`` command line (``argv``: its arguments, else ``sys.argv``'s);
    returns the exit code, in a process that goes on (a temporal command drops its Temporal
    core before it returns; the ``aiportrait`` command itself is :func:`console`)."""
    return _run(argv, ends_process=False)


def console(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``aiportrait`` command (its console script, and ``python -m aiportrait``): the
    command line run as :func:`main` does, then the process ends with its exit code.

    A temporal command's Temporal core is then the process's, never dropped (dropping it can
    hang the process: ``_temporal.core``), and one of its threads that wakes in the
    interpreter's teardown would crash the process: so, once a core was made, the process ends
    without that teardown, after the ``atexit`` handlers ran and the output was flushed."""
    code = 1  # what ends the process when an error escaped (its traceback printed)
    try:
        code = _run(argv, ends_process=True)
    except BaseException:
        if not core_made():
            raise
        traceback.print_exc()
    if not core_made():
        sys.exit(code)
    atexit._run_exitfuncs()  # what the teardown would run first (an exporter's flush...)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


def _run(argv: Sequence[str] | None, ends_process: bool) -> int:
    configure_from_env()  # AIPORTRAIT_LOG=debug|info|warning
    args = list(sys.argv[1:] if argv is None else argv)
    out = Output(sys.stdout, sys.stderr, json="--json" in args, flags=_FLAGS)
    common = Common(out, ends_process=ends_process)
    with out.warnings_shown():
        try:
            with tree.make_context(PROG, args, obj=common) as ctx:
                code: int = tree.invoke(ctx)
                return code
        except click.exceptions.Exit as exc:  # --help
            return exc.exit_code
        except click.ClickException as exc:
            failed: click.Context | None = getattr(exc, "ctx", None)
            where = f" (see {failed.command_path} --help)" if failed is not None else ""
            return out.fail(UsageError(f"{exc.format_message()}{where}"))
        except (Exception, KeyboardInterrupt) as exc:
            return out.fail(exc, debug=common.debug)
