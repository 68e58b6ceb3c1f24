"""Exit codes, and an error or warning said in the command line's words."""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from ..errors import (
    CredentialsError,
    InvalidArgument,
    JobTimeout,
    JournalLocked,
    PreviousFailure,
    SubmitOutcomeUnknown,
    TransportError,
)

__all__ = [
    "EXIT_BATCH_FAILED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "UsageError",
    "cli_words",
    "error_doc",
    "error_text",
    "exit_code",
    "one_line",
]

EXIT_OK: Final = 0
"""Success."""
EXIT_FAILED: Final = 1
"""The service refused or failed: an API error, a failed job, photos that did not pass."""
EXIT_USAGE: Final = 2
"""Bad usage, arguments, batch file or credentials, or a journal another run holds; nothing
was sent."""
EXIT_TRANSPORT: Final = 3
"""No answer: connection error, request timeout, or a job's deadline passed."""
EXIT_OUTCOME_UNKNOWN: Final = 4
"""A charged call (train or create) may or may not have run on the service."""
EXIT_BATCH_FAILED: Final = 5
"""``batch`` ran, but at least one item failed."""
EXIT_INTERRUPTED: Final = 130
"""Interrupted (Ctrl-C)."""


class UsageError(Exception):
    """Bad command-line usage or batch file (exit 2)."""


def exit_code(exc: BaseException) -> int:
    """The exit code for an error (see :mod:`aiportrait.cli`)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (UsageError, InvalidArgument, CredentialsError, JournalLocked)):
        return EXIT_USAGE  # nothing was sent (another run holds the journal: wait or stop it)
    if isinstance(exc, (TransportError, JobTimeout)):
        return EXIT_TRANSPORT
    if isinstance(exc, SubmitOutcomeUnknown):
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_FAILED


# The library's messages name its keywords; on the command line, say the flags the user types.
_KEYWORD: Final = re.compile(r"\b([a-z][a-z0-9_]*)=True\b")
_ALIASES: Final = {"scene_lora": "--scene-prompts"}
_PHOTO: Final = re.compile(r"\bimages\[(\d+)\]=")
_CONFIG_KEY: Final = re.compile(r"\bCreateConfig\.(\w+)=|\bconfig sets (\w+)=")


@functools.cache
def _flags() -> frozenset[str]:
    from ._parser import long_flags  # the parser raises UsageError: imported when first needed

    return long_flags()


def cli_words(text: str, command: str | None = None) -> str:
    """``text`` with the library's keywords replaced by the flags a command-line user types.

    ``resubmit_unknown=True`` becomes ``--resubmit-unknown`` (any ``name=True`` with a flag
    ``--name``), ``scene_lora=True`` ``--scene-prompts``, ``images[0]=`` ``photo 1:``, and for
    ``create`` a ``CreateConfig.key=`` ``--set key=``. The meaning is kept.
    """
    flags = _flags()

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


def one_line(text: object) -> str:
    """``text`` with its white space (line breaks included) folded to single spaces."""
    return " ".join(str(text).split())


def _message(exc: BaseException, command: str | None) -> str:
    """The error's message on one line, in the command line's words."""
    text = cli_words(one_line(exc), command)
    if isinstance(exc, PreviousFailure):
        text += " (run again with --retry-failed to retry it)"
    return text


def error_doc(exc: BaseException, command: str | None = None) -> dict[str, Any]:
    """An error as JSON: ``type``, ``message`` and, when known, the request and job ids."""
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": _message(exc, command)}
    for attr in ("request_id", "job_id", "status", "code"):
        value = getattr(exc, attr, None)
        if value not in (None, ""):
            doc[attr] = value
    return doc


def error_text(exc: BaseException, command: str | None = None) -> str:
    """``ClassName: message (request_id=...)`` on one line."""
    text = _message(exc, command) or "(no message)"
    rid = getattr(exc, "request_id", "")
    if rid and str(rid) not in text:
        text += f" (request_id={rid})"
    return f"{type(exc).__name__}: {text}"
