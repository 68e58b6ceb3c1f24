"""Everything every command prints: results on stdout (text or JSON); notes, warnings and errors
on stderr. Each printed line is one line: control characters in it (from a key, a file name or
the server's text) are shown escaped (``\\n``, ``\\t``, ``\\x00``), never written raw.

Models go to JSON through the library's converter where the command prints them as they are;
the functions here add what the command says beyond the model (``ok``, the verdict's name, the
``rejected`` photos, a portrait's ``path``) and show a local photo by its path, never by the
signed URL it was uploaded to, and any presigned URL without its query (the signature): in
JSON too, where ``url`` is query-less and ``path`` is the local file's path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import traceback
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import attrs

from .._retrying.call import request_id_of
from .._wire.codec import converter
from .._wire.signing import public_json, public_text, public_url
from ..errors import AIPortraitWarning, JobTimeout, PreviousFailure
from ..models import CheckReport, ImageCheck, Portrait, TrainResult
from ._exit import cli_words, exit_code

__all__ = [
    "PROG",
    "Output",
    "check_doc",
    "check_line",
    "one_line",
    "outcome_line",
    "photo_names",
    "photo_paths",
    "portrait_doc",
    "portrait_text",
    "rejected_lines",
    "result_doc",
    "said_before",
    "shown",
]

PROG: Final = "aiportrait"

_CONTROL: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(value: object) -> str:
    """``value`` as text with every control character escaped: it prints as one line."""
    return _CONTROL.sub(
        lambda m: _NAMED.get(m.group()) or m.group().encode("unicode_escape").decode("ascii"),
        str(value),
    )


def one_line(value: object) -> str:
    """A message on one line: its runs of white space (line breaks too) folded to one space,
    any other control character escaped."""
    return shown(" ".join(str(value).split()))


@contextlib.contextmanager
def said_before(*categories: type[Warning]) -> Iterator[None]:
    """Warnings of ``categories`` are not given again: the command said them already (with
    the file and lines a batch file's warnings concern)."""
    with warnings.catch_warnings():
        for category in categories:
            warnings.filterwarnings("ignore", category=category)
        yield


@attrs.define
class Output:
    """Where a command's results (stdout) and notes, progress and errors (stderr) go.

    ``command`` names the running command, and ``flags`` are every long option of the tree
    (messages name the flags, see :func:`~aiportrait.cli.cli_words`). ``resume`` is what to
    tell the user if the command stops before its end (Ctrl-C, a job deadline).
    """

    out: IO[str]
    err: IO[str]
    json: bool = False
    command: str | None = None
    flags: Collection[str] = ()
    resume: str | None = None

    def result(self, doc: Mapping[str, Any], lines: Sequence[str]) -> None:
        """Print a command's result: the JSON document with ``--json``, else the lines."""
        if self.json:
            self.line(json.dumps(public_json(doc), default=str))
        else:
            for line in lines:
                self.line(line)

    def line(self, text: str) -> None:
        """One line on stdout (a presigned URL in it without its query)."""
        print(shown(public_text(text)), file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A progress or information line, on stderr (a presigned URL in it without its
        query)."""
        print(shown(public_text(text)), file=self.err, flush=True)

    def words(self, text: object) -> str:
        """A message on one line, in the command line's words."""
        return cli_words(one_line(text), self.command, self.flags)

    def _message(self, exc: BaseException) -> str:
        text = self.words(exc) or "(no message)"
        if isinstance(exc, PreviousFailure):
            text += " (run again with --retry-failed to retry it)"
        return text

    def error_text(self, exc: BaseException) -> str:
        """``ClassName: message (request_id=...)`` on one line."""
        text = self._message(exc)
        rid = shown(request_id_of(exc))
        if rid and rid not in text:
            text += f" (request_id={rid})"
        return f"{type(exc).__name__}: {text}"

    def error_doc(self, exc: BaseException) -> dict[str, Any]:
        """An error as JSON: ``type``, ``message`` and, when known, the request and job ids."""
        doc: dict[str, Any] = {"type": type(exc).__name__, "message": self._message(exc)}
        for attr in ("request_id", "job_id", "status", "code"):
            value = getattr(exc, attr, None)
            if value not in (None, ""):
                doc[attr] = value
        return doc

    @contextlib.contextmanager
    def warnings_shown(self) -> Iterator[None]:
        """Every warning as one line ``aiportrait: warning: <Class>: <message>`` on stderr,
        each distinct line once."""
        seen: set[str] = set()

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: IO[str] | None = None,
            line: str | None = None,
        ) -> None:
            text = f"{PROG}: warning: {category.__name__}: {self.words(message)}"
            if text not in seen:
                seen.add(text)
                self.note(text)

        with warnings.catch_warnings():
            warnings.simplefilter("always", AIPortraitWarning)  # show() says each text once
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
        self.note(f"{PROG}: error: {self.error_text(exc)}")
        if resume:
            self.note(f"{PROG}: {resume} (--deadline SECONDS to wait longer)")
        if self.json:
            doc = {**self.error_doc(exc), "exit_code": code}
            if resume and isinstance(exc, JobTimeout):
                doc["resume"] = f"{PROG} watch {exc.job_id}"
            self.line(json.dumps(public_json({"error": doc}), default=str))
        return code

    @contextlib.contextmanager
    def debug_logging(self, debug: bool) -> Iterator[None]:
        """With ``--debug``: DEBUG records of the ``aiportrait`` logger to stderr."""
        if not debug:
            yield
            return
        log = logging.getLogger("aiportrait")
        handler = logging.StreamHandler(self.err)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        level = log.level
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            log.removeHandler(handler)
            log.setLevel(level)


def outcome_line(word: str, key: str, detail: str) -> str:
    """One batch item's line, for ``batch`` and ``temporal batch`` alike:
    ``ok      KEY  DETAIL`` (``failed``, ``unknown``)."""
    return f"{word:<8}{key}  {detail}"


# -- models ------------------------------------------------------------------------------------


def photo_paths(inputs: Sequence[object], count: int) -> list[str | None]:
    """The path of each of ``count`` photos that was a local file in ``inputs``; else None."""
    return [
        str(inputs[i]) if i < len(inputs) and isinstance(inputs[i], Path) else None
        for i in range(count)
    ]


def photo_names(inputs: Sequence[object], urls: Sequence[str]) -> list[str]:
    """Each photo as the user knows it: a local file (in ``inputs``) by its path, not by the
    signed URL it was uploaded to; else its URL, query-less when presigned."""
    paths = photo_paths(inputs, len(urls))
    return [path or public_url(url) for url, path in zip(urls, paths, strict=True)]


def _photo_doc(url: str, path: str | None) -> dict[str, Any]:
    """A photo in JSON: ``url`` query-less when presigned, ``path`` its local file or null."""
    return {"url": public_url(url), "path": path}


def check_doc(report: CheckReport, inputs: Sequence[object]) -> dict[str, Any]:
    """``check``'s JSON: each result as the model, with ``ok``, the verdict's name and the
    photo's ``path`` (``inputs``: the photos as given); ``passed`` names each photo as the
    user knows it (its path, else its URL)."""
    urls = [r.url for r in report.results]
    names = photo_names(inputs, urls)
    paths = photo_paths(inputs, len(urls))
    results = [
        {**converter.unstructure(r), **_photo_doc(r.url, path), "ok": r.ok, "verdict": r.code.name}
        for r, path in zip(report.results, paths, strict=True)
    ]
    return {
        "ok": report.ok,
        "passed": [name for r, name in zip(report.results, names, strict=True) if r.ok],
        "results": results,
        "cost_time": report.cost_time,
        "request_id": report.request_id,
    }


def check_line(result: ImageCheck, name: str) -> str:
    """``FAIL  NAME  VERDICT: message (detail)``; ``ok    NAME  SUCCESS`` for a usable photo."""
    line = f"{'ok  ' if result.ok else 'FAIL'}  {name}  {result.code.name}"
    if not result.ok:
        line += f": {result.message}" if result.message else ""
        line += f" ({result.detail})" if result.detail else ""
    return line


def result_doc(result: TrainResult, inputs: Sequence[object]) -> dict[str, Any]:
    """A training's result as JSON (``inputs``: the photos as given, if known), with the
    photos the service's check ``rejected``, each as the user knows it."""
    urls = [s.url for s in result.states]
    names = photo_names(inputs, urls)
    paths = photo_paths(inputs, len(urls))
    states = [
        {**_photo_doc(s.url, path), "ok": s.ok, "verdict": s.code.name, "message": s.message,
         "detail": s.detail}
        for s, path in zip(result.states, paths, strict=True)
    ]  # fmt: skip
    return {
        "model_id": result.model_id,
        "cost_time": result.cost_time,
        "states": states,
        "rejected": [name for s, name in zip(result.states, names, strict=True) if not s.ok],
    }


def rejected_lines(result: TrainResult, inputs: Sequence[object]) -> list[str]:
    """The photos the service's check rejected (its ``states``), one line each, each as the
    user knows it (``inputs``: the photos as given, if known); else nothing."""
    names = photo_names(inputs, [s.url for s in result.states])
    rejected = [(s, name) for s, name in zip(result.states, names, strict=True) if not s.ok]
    if not rejected:
        return []
    head = f"{len(rejected)} of {len(result.states)} photos were rejected by the service's check:"
    return [head, *(f"  {check_line(s, name)}" for s, name in rejected)]


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
