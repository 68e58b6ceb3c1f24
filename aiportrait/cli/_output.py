"""What the command prints: results on stdout (text or JSON), notes, warnings and errors on stderr.

Models go to JSON through the library's converter where the command prints them as they are
(a :class:`~aiportrait.TrainJob`, the fields of an :class:`~aiportrait.ImageCheck`); the
functions here add what the command says beyond the model (``ok``, the verdict's name, the
``rejected`` photos, a portrait's ``path``).
"""

from __future__ import annotations

import contextlib
import json
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .._wire.codec import converter
from ..errors import AIPortraitWarning, JobTimeout
from ..models import CheckReport, ImageCheck, Portrait, TrainResult
from ._exit import UsageError, cli_words, error_doc, error_text, exit_code, one_line
from ._parser import PROG

__all__ = [
    "Output",
    "check_doc",
    "check_line",
    "portrait_doc",
    "portrait_text",
    "rejected_lines",
    "result_doc",
]


@attrs.define
class Output:
    """Where results (stdout) and notes, progress and errors (stderr) go.

    ``resume`` is what to tell the user if the command stops before its end (Ctrl-C, a job
    deadline): how to pick up where it stopped.
    """

    json: bool
    out: IO[str]
    err: IO[str]
    command: str | None = None
    resume: str | None = None

    def result(self, doc: Mapping[str, Any], lines: Sequence[str]) -> None:
        """Print a command's result: the JSON document with ``--json``, else the lines."""
        if self.json:
            print(json.dumps(doc, default=str), file=self.out, flush=True)
        else:
            for line in lines:
                print(line, file=self.out, flush=True)

    def note(self, line: str) -> None:
        """A progress or information line, on stderr."""
        print(line, file=self.err, flush=True)

    @contextlib.contextmanager
    def warnings_shown(self) -> Iterator[None]:
        """Warnings as one line each on stderr, each text once, in the command line's words."""
        shown: set[str] = set()

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: IO[str] | None = None,
            line: str | None = None,
        ) -> None:
            text = cli_words(one_line(message), self.command)
            if not issubclass(category, AIPortraitWarning):
                text = f"{category.__name__}: {text}"
            if text not in shown:
                shown.add(text)
                self.note(f"{PROG}: warning: {text}")

        with warnings.catch_warnings():
            warnings.simplefilter("always", AIPortraitWarning)
            warnings.showwarning = show
            yield

    def fail(self, exc: BaseException, *, debug: bool = False) -> int:
        """Report an error that ended the command (one line, and how to resume); its exit code."""
        code = exit_code(exc)
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.err)
        resume = self.resume if isinstance(exc, (KeyboardInterrupt, JobTimeout)) else None
        if isinstance(exc, KeyboardInterrupt):
            self.note(f"{PROG}: interrupted")
            if resume:
                self.note(f"{PROG}: {resume}")
            return code
        if isinstance(exc, UsageError):
            self.note(f"{PROG}: error: {one_line(exc)}")
        else:
            self.note(f"{PROG}: error: {error_text(exc, self.command)}")
        if resume:
            self.note(f"{PROG}: {resume} (--deadline SECONDS to wait longer)")
        if self.json:
            doc = {**error_doc(exc, self.command), "exit_code": code}
            if resume and isinstance(exc, JobTimeout):
                doc["resume"] = f"{PROG} watch {exc.job_id}"
            print(json.dumps({"error": doc}), file=self.out)
        return code


# -- models ------------------------------------------------------------------------------------


def check_doc(report: CheckReport) -> dict[str, Any]:
    """``check``'s JSON: each result as the model, with ``ok`` and the verdict's name."""
    return {
        "ok": report.ok,
        "passed": list(report.passed),
        "results": [
            {**converter.unstructure(r), "ok": r.ok, "verdict": r.code.name} for r in report.results
        ],
        "cost_time": report.cost_time,
        "request_id": report.request_id,
    }


def check_line(result: ImageCheck) -> str:
    """``FAIL  URL  VERDICT: message (detail)``; ``ok    URL  SUCCESS`` for a usable photo."""
    line = f"{'ok  ' if result.ok else 'FAIL'}  {result.url}  {result.code.name}"
    if not result.ok:
        line += f": {result.message}" if result.message else ""
        line += f" ({result.detail})" if result.detail else ""
    return line


def result_doc(result: TrainResult) -> dict[str, Any]:
    """A training's result as JSON, with the photos the service's check ``rejected``."""
    return {
        "model_id": result.model_id,
        "cost_time": result.cost_time,
        "states": [
            {
                "url": s.url,
                "ok": s.ok,
                "verdict": s.code.name,
                "message": s.message,
                "detail": s.detail,
            }
            for s in result.states
        ],
        "rejected": [s.url for s in result.states if not s.ok],
    }


def rejected_lines(result: TrainResult) -> list[str]:
    """The photos the service's check rejected (its ``states``), one line each; else nothing."""
    rejected = [s for s in result.states if not s.ok]
    if not rejected:
        return []
    head = f"{len(rejected)} of {len(result.states)} photos were rejected by the service's check:"
    return [head, *(f"  {check_line(s)}" for s in rejected)]


def portrait_doc(portrait: Portrait, path: Path | None) -> dict[str, Any]:
    """A portrait as JSON: where it was written, its format and size (not its bytes)."""
    return {
        "path": None if path is None else str(path),
        "format": portrait.format,
        "width": portrait.width,
        "height": portrait.height,
        "cost_time": portrait.cost_time,
        "request_id": portrait.request_id,
    }


def portrait_text(portrait: Portrait) -> str:
    """``jpeg 768x900, 12.40s, request_id=...``."""
    return (
        f"{portrait.format} {portrait.width}x{portrait.height}, {portrait.cost_time:.2f}s, "
        f"request_id={portrait.request_id}"
    )
