"""The ``aiportrait`` command.

Subcommands:

- ``aiportrait demo [--out DIR]``: the whole flow offline against the local emulator.
- ``aiportrait emulator [...]``: run the local emulator (see ``aiportrait emulator --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiportrait", description="Client and local emulator for PAI AI Portrait."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="run the whole flow offline against the local emulator (no account)"
    )
    demo.add_argument("--out", default="portraits", help="output folder (default ./portraits)")
    demo.add_argument(
        "--train-seconds", type=float, default=2.0, help="emulated training time (default 2)"
    )
    sub.add_parser("emulator", help="run the local emulator", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator._cli import main as emulator_main

        return emulator_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command == "demo":
        try:
            from ._demo import run_demo
        except ImportError as exc:  # pragma: no cover - depends on the install
            print(f"the demo needs the emulator extra: pip install 'aiportrait[emulator]' ({exc})")
            return 2
        asyncio.run(run_demo(args.out, train_seconds=args.train_seconds))
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
