"""The command line's reference page (docs/reference/cli.md), written from the command tree itself:
every command with its help text, usage, arguments and options as ``--help`` shows them (their
defaults and ranges included), so the page cannot drift from ``--help``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Final

import click

from ._main import context, tree
from ._output import PROG

__all__ = ["reference"]

_HEADER: Final = f"""\
# Command line reference

<!-- Generated from the command tree by aiportrait.cli.reference(): do not edit.
     ./scripts/docs --regenerate writes it again; a test fails when it is out of date. -->

Every command of `{PROG}`, as its `--help` describes it: what it does, its usage, its
arguments and options (with their defaults). The options of `{PROG}` itself are taken by
every command too; the exit codes are at the end of the first section.
"""

_FOOTER: Final = """\
## Python API

The command line as functions: run it in a process that goes on, parse a command line without
running it, the exit codes and the batch file's reader.

::: aiportrait.cli
"""

_SPECIAL: Final = re.compile(r"([\\*\[\]|])")
_CODE: Final = re.compile(r"(``.+?``|`[^`]+`)")


def reference() -> str:
    """The Markdown of the command line's reference page: one section per command, in the
    order of ``--help``, each with its help text, usage, arguments and options."""
    root = context(tree)
    sections = [_HEADER, *(_section(ctx) for ctx in _contexts(root)), _FOOTER]
    return "\n".join(sections)


def _contexts(ctx: click.Context) -> Iterator[click.Context]:
    """``ctx`` and the contexts of every command under it, depth first."""
    yield ctx
    for sub in _subcommands(ctx):
        yield from _contexts(sub)


def _subcommands(ctx: click.Context) -> list[click.Context]:
    """A context for each visible subcommand of a group (none for a command)."""
    group = ctx.command
    if not isinstance(group, click.Group):
        return []
    found = [(name, group.get_command(ctx, name)) for name in group.list_commands(ctx)]
    return [context(sub, name, ctx) for name, sub in found if sub is not None and not sub.hidden]


def _section(ctx: click.Context) -> str:
    command = ctx.command
    lines = [f"## `{ctx.command_path}` {{ #{_anchor(ctx.command_path)} }}", ""]
    lines += _text(command.help or "")
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines += ["```text", usage, "```", ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["| Argument | |", "| --- | --- |"]
        for argument in arguments:
            needed = "required" if argument.required else "optional"
            many = ", one or more" if argument.nargs == -1 else ""
            lines.append(f"| `{argument.human_readable_name}` | {needed}{many} |")
        lines.append("")
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option)]
    records = [r for p in options if (r := p.get_help_record(ctx)) is not None]
    if records:
        lines += ["| Option | |", "| --- | --- |"]
        lines += [f"| `{flags}` | {_escaped(text)} |" for flags, text in records]
        lines.append("")
    if subs := _subcommands(ctx):
        lines += ["| Command | |", "| --- | --- |"]
        for sub in subs:
            link = f"[`{sub.info_name}`](#{_anchor(sub.command_path)})"
            lines.append(f"| {link} | {_escaped(sub.command.get_short_help_str(200))} |")
        lines.append("")
    lines += _text(command.epilog or "")
    return "\n".join(lines)


def _text(help_text: str) -> list[str]:
    """Click's help text as Markdown: its paragraphs, and each ``\\b`` block as it is."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(help_text).split("\n\n"):
        if not paragraph.strip():
            continue
        if paragraph.startswith("\b\n"):  # click keeps these lines as they are
            lines += ["```text", paragraph[2:], "```", ""]
        else:
            lines += [_escaped(paragraph), ""]
    return lines


def _escaped(text: str) -> str:
    """``text`` shown as written, not read as Markdown (``*.jpg``, ``a|b``, ``<ext>``); its
    code spans (````aiportrait batch````) stay code."""
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # the text between the code spans
        part = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = _SPECIAL.sub(r"\\\1", part)
    return "".join(parts)


def _anchor(command_path: str) -> str:
    """The id of a command's section: ``aiportrait-temporal-worker``."""
    return command_path.replace(" ", "-")
