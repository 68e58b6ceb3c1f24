"""The ``aiportrait`` command (also ``python -m aiportrait``); see ``docs/cli.md``.

Subcommands: ``check``, ``train``, ``watch``, ``create``, ``batch`` talk to the service;
``emulator`` runs the local emulator and ``demo`` the whole flow offline against it.

Results go to stdout (one JSON document per command with ``--json``; for ``batch`` one JSON
line per item and a summary line), progress, warnings and errors to stderr. An error is one line
(its class, message and request id); ``--debug`` adds the traceback and DEBUG logging, and
``AIPORTRAIT_LOG=debug|info|warning`` logs the package to stderr. Messages name the command's
flags (``--resubmit-unknown``), not the library's keywords.

Exit codes: 0 ok; 1 the service refused or failed (API error, failed job, photos that did not
pass ``check``); 2 bad usage, arguments or credentials, or a batch journal held by another
run; 3 no answer (transport error, timeout, job deadline); 4 a charged call may or may not
have run (``SubmitOutcomeUnknown``); 5 some ``batch`` items failed; 130 interrupted (Ctrl-C).

The modules: ``_parser`` (the command line), ``_main`` (``main``), ``_commands`` (check, train,
watch, create), ``_batch`` (the batch command), ``_batchfile`` (reading a batch file),
``_output`` (text and JSON), ``_exit`` (exit codes and error messages).
"""

from ._batchfile import config_from, read_plan, row_request
from ._commands import parse_settings
from ._exit import (
    EXIT_BATCH_FAILED,
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
from ._main import main
from ._parser import DEFAULT_JOURNAL

__all__ = [
    "DEFAULT_JOURNAL",
    "EXIT_BATCH_FAILED",
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
    "main",
    "parse_settings",
    "read_plan",
    "row_request",
]
