"""The ``aiportrait`` argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final, NoReturn

from .._wire.signing import redacted
from ._exit import UsageError

__all__ = ["DEFAULT_JOURNAL", "PROG", "Args", "build_parser", "long_flags"]

PROG: Final = "aiportrait"
DEFAULT_JOURNAL: Final = ".aiportrait-journal.sqlite"


class Args(argparse.Namespace):
    """The parsed command line; the common flags' defaults are class attributes.

    The common flags are given to the top-level parser and to every subcommand's parser with
    no default of their own (``SUPPRESS``), so that a subcommand's parser does not reset a value
    given before the subcommand: an absent flag reads the default here.
    """

    command: str
    host: str | None = None
    app_id: str | None = None
    token: str | None = None
    timeout: float | None = None
    tries: int | None = None
    json: bool = False
    debug: bool = False


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of printing usage and exiting.

    Overriding ``error`` is argparse's documented hook; ``exit_on_error=False`` does not cover
    missing arguments before Python 3.12.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0.0 to 1.0, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _common() -> argparse.ArgumentParser:
    """The connection and output flags, a parent of every parser (see :class:`Args`)."""
    parser = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
    g = parser.add_argument_group("connection and output")
    g.add_argument("--host", help="service address (else AIPORTRAIT_HOST)")
    g.add_argument("--app-id", help="AppId (else AIPORTRAIT_APP_ID)")
    g.add_argument("--token", type=redacted, help="Token (else AIPORTRAIT_TOKEN)")
    g.add_argument("--timeout", type=_positive, metavar="SECONDS", help="per try of a call")
    g.add_argument("--tries", type=_count, metavar="N", help="tries per call in all")
    g.add_argument("--json", action="store_true", help="JSON output")
    g.add_argument("--debug", action="store_true", help="tracebacks and DEBUG logging")
    return parser


def _polling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deadline", type=_positive, metavar="SECONDS", help="job deadline (default 1800)"
    )
    parser.add_argument(
        "--poll",
        type=_positive,
        metavar="SECONDS",
        help="first poll interval; intervals grow from it up to 30 s (default 2)",
    )


def _add_check(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[common], help="check photos before training")
    p.add_argument(
        "urls", nargs="+", metavar="PHOTO", help="photo URLs, or local files and globs (uploaded)"
    )
    p.add_argument(
        "--local", action="store_true", help="check local files on this machine (nothing sent)"
    )


def _add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="start a training (and wait for it)")
    p.add_argument(
        "urls",
        nargs="+",
        metavar="PHOTO",
        help="photo URLs of one person, or local files and globs (checked here, then uploaded)",
    )
    p.add_argument(
        "--force", action="store_true", help="train on local photos that fail the local check"
    )
    p.add_argument("--sdxl", action="store_true", help="train an SDXL model")
    p.add_argument(
        "--scene-prompts",
        type=Path,
        metavar="FILE",
        help="train an SDXL scene LoRA; FILE has one prompt per line, one per photo",
    )
    p.add_argument("--wait", action="store_true", help="watch the job to its end")
    _polling(p)


def _add_watch(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("watch", parents=[common], help="watch a training job to its end")
    p.add_argument("job_id", type=int, metavar="JOB_ID")
    _polling(p)


def _add_create(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("create", parents=[common], help="create a portrait")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", metavar="ID", help="a trained model id (solo portrait)")
    who.add_argument("--group", nargs="+", metavar="ID", help="model ids, left to right")
    who.add_argument("--reference", metavar="PHOTO", help="a reference photo (no training)")
    p.add_argument("--template", metavar="IMAGE", help="template image URL or local file")
    p.add_argument("--prompt", metavar="TEXT", help="a text prompt (with --model or --reference)")
    p.add_argument("--scene-id", metavar="ID", help="a scene LoRA id (with --prompt)")
    p.add_argument("--ipa-weight", type=_fraction, metavar="W", help="with --reference: 0.0-1.0")
    p.add_argument("--sdxl", action="store_true", help="use the SDXL model")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        metavar="KEY=VALUE",
        help="a configure key (VALUE is JSON, else a string); repeatable",
    )
    p.add_argument(
        "--out", type=Path, default=Path("portrait"), metavar="FILE", help="default portrait.<ext>"
    )


def _add_batch(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("batch", parents=[common], help="run a CSV or JSONL file of requests")
    p.add_argument("file", type=Path, metavar="FILE", help="a .csv or .jsonl file")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--limit", type=_count, metavar="N", help="items in flight at once")
    p.add_argument("--journal", type=Path, metavar="PATH", help=f"default DIR/{DEFAULT_JOURNAL}")
    p.add_argument(
        "--resubmit-unknown",
        action="store_true",
        help="submit again items that were in flight when an earlier run stopped",
    )
    p.add_argument("--retry-failed", action="store_true", help="retry items that failed before")
    p.add_argument(
        "--recreate-missing",
        action="store_true",
        help="create again (and pay for) finished portraits whose file is gone from DIR",
    )
    p.add_argument(
        "--no-wait", action="store_true", help="trainings: stop when the service accepts them"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    _polling(p)


def _add_offline(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="run the whole flow offline against the local emulator (no account)"
    )
    demo.add_argument("--out", default="portraits", help="output folder (default ./portraits)")
    demo.add_argument(
        "--train-seconds", type=float, default=2.0, help="emulated training time (default 2)"
    )
    # listed for --help; main() hands "emulator ..." to the emulator's own parser
    sub.add_parser("emulator", help="run the local emulator", add_help=False)
    sub.add_parser(
        "temporal",
        help="a local Temporal cluster, workers, trainings and batches on it",
        add_help=False,
    )


_EPILOG: Final = """\
credentials: --host/--app-id/--token, else AIPORTRAIT_HOST, AIPORTRAIT_APP_ID, AIPORTRAIT_TOKEN
(or the documentation's HOST, AppId, Token); flags win.

exit codes: 0 ok; 1 the service refused or failed; 2 bad usage, arguments or credentials;
3 no answer (connection, timeout, job deadline); 4 a charged call may or may not have run;
5 some batch items failed; 130 interrupted. See docs/cli.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``aiportrait`` argument parser; parse into an :class:`Args`."""
    common = _common()
    parser = _Parser(
        prog=PROG,
        description="Client and local emulator for PAI AI Portrait.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_check, _add_train, _add_watch, _add_create, _add_batch):
        add(sub, common)
    _add_offline(sub)
    return parser


def long_flags() -> frozenset[str]:
    """Every long option of every subcommand."""
    found: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            found.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return frozenset(found)
