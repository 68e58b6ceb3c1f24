"""The exit codes of every command (one table), and an error said in the command line's words."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Final

from ..errors import (
    CredentialsError,
    InvalidArgument,
    JobTimeout,
    JournalLocked,
    SubmitOutcomeUnknown,
    TransportError,
)

__all__ = [
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
    "batch_exit",
    "cli_words",
    "exit_code",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TRANSPORT: Final = 3
EXIT_OUTCOME_UNKNOWN: Final = 4
EXIT_BATCH_FAILED: Final = 5
EXIT_BUDGET: Final = 6
EXIT_INTERRUPTED: Final = 130

EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_FAILED: "the service (or Temporal) refused or failed; check: a photo did not pass",
    EXIT_USAGE: "bad usage, arguments, batch file or credentials; nothing was sent",
    EXIT_TRANSPORT: "no answer: connection, timeout, a job's deadline",
    EXIT_OUTCOME_UNKNOWN: "a charged call (or a batch item) may or may not have run",
    EXIT_BATCH_FAILED: "some batch items failed",
    EXIT_BUDGET: "the budget was reached: some batch items were not submitted (not charged)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); a batch: stopped (Ctrl-C, SIGTERM), nothing lost",
}
"""Every command's exit codes (docs/guides/cli.md explains each)."""


class UsageError(Exception):
    """Bad command-line usage or batch file (exit 2)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an error that ended a command (see :data:`EXIT_CODES`)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (UsageError, InvalidArgument, CredentialsError, JournalLocked)):
        return EXIT_USAGE  # nothing was sent (another run holds the journal: wait or stop it)
    if isinstance(exc, (TransportError, JobTimeout)):
        return EXIT_TRANSPORT
    if isinstance(exc, SubmitOutcomeUnknown):
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_FAILED


def batch_exit(
    unknown: int, failed: int, not_submitted: int = 0, stopped: BaseException | None = None
) -> int:
    """A batch's exit code (``batch`` and ``temporal batch``): 4 when an item may or may not
    have run; else, for a batch ``stopped`` before its end, the code of what stopped it (130
    for Ctrl-C or SIGTERM, a ``KeyboardInterrupt``; 1 for an error that would have repeated
    for every item); else 5 when an item failed, else 6 when the budget left items not
    submitted, else 0."""
    if unknown:
        return EXIT_OUTCOME_UNKNOWN
    if stopped is not None:
        return exit_code(stopped)
    if failed:
        return EXIT_BATCH_FAILED
    return EXIT_BUDGET if not_submitted else EXIT_OK


# The library's messages name its keywords; on the command line, say the flags the user types.
_KEYWORD: Final = re.compile(r"\b([a-z][a-z0-9_]*)=True\b")
_ALIASES: Final = {"scene_lora": "--scene-prompts"}
_PHOTO: Final = re.compile(r"\bimages\[(\d+)\]=")
_CONFIG_KEY: Final = re.compile(r"\bCreateConfig\.(\w+)=|\bconfig sets (\w+)=")


def cli_words(text: str, command: str | None = None, flags: Collection[str] = ()) -> str:
    """``text`` with the library's keywords replaced by the flags a command-line user types.

    ``resubmit_unknown=True`` becomes ``--resubmit-unknown`` (any ``name=True`` with a flag
    ``--name`` in ``flags``), ``scene_lora=True`` ``--scene-prompts``, ``images[0]=``
    ``photo 1:``, and for ``create`` a ``CreateConfig.key=`` ``--set key=``. The meaning is kept.
    """

    def keyword(match: re.Match[str]) -> str:
        name = match.group(1)
        flag = _ALIASES.get(name) or f"--{name.replace('_', '-')}"
        return flag if flag in flags else match.group(0)

    text = _KEYWORD.sub(keyword, text)
    text = text.replace("scene_prompts ", "--scene-prompts ")
    text = _PHOTO.sub(lambda m: f"photo {int(m.group(1)) + 1}: ", text)
    if command == "create":
        text = _CONFIG_KEY.sub(lambda m: f"--set {m.group(1) or m.group(2)}=", text)
    return text
