"""The ``aiportrait`` command (also ``python -m aiportrait``); see ``docs/guides/cli.md``.

One command tree on click: ``check``, ``train``, ``watch``, ``create``, ``batch`` talk to the
service; ``temporal ...`` runs them on Temporal; ``emulator`` runs the local emulator and
``demo`` the whole flow offline against it. Results go to stdout (``--json``: JSON), progress,
warnings and errors to stderr, each one line, in one format for every command (``_output``),
with one table of exit codes (``_exit``).

The modules: ``_main`` (the tree and ``main``), ``_options`` (the shared options),
``_commands`` (check, train, watch, create), ``_batch`` and ``_batchfile`` (a batch file),
``_dryrun`` (``batch --dry-run`` and the budget flags), ``_local`` (local files),
``_temporal`` (the group, workers, train), ``_temporalbatch`` (batch, attach),
``_temporalfollow`` and ``_temporaldev``, ``_emulator``, ``_output`` and ``_exit``;
``_reference`` writes the reference page of every command (docs/reference/cli.md).
"""

from ._batch import DEFAULT_JOURNAL
from ._batchfile import config_from, read_plan, row_request
from ._commands import parse_settings
from ._exit import (
    EXIT_BATCH_FAILED,
    EXIT_BUDGET,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    UsageError,
    cli_words,
    exit_code,
)
from ._main import console, main, parse
from ._reference import reference

__all__ = [
    "DEFAULT_JOURNAL",
    "EXIT_BATCH_FAILED",
    "EXIT_BUDGET",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "UsageError",
    "cli_words",
    "config_from",
    "exit_code",
    "console",
    "main",
    "parse",
    "parse_settings",
    "read_plan",
    "reference",
    "row_request",
]
