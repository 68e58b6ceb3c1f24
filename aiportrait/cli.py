"""The ``aiportrait`` command (also ``python -m aiportrait``); see ``docs/cli.md``.

Subcommands: ``check``, ``train``, ``watch``, ``create``, ``batch`` talk to the service;
``emulator`` runs the local emulator and ``demo`` the whole flow offline against it.

Results go to stdout (one JSON document per command with ``--json``; for ``batch`` one JSON
line per item and a summary line), progress, warnings and errors to stderr. An error is one line
(its class, message and request id); ``--debug`` adds the traceback and DEBUG logging. Messages
name the command's flags (``--resubmit-unknown``), not the library's keywords.

Exit codes: 0 ok; 1 the service refused or failed (API error, failed job, photos that did not
pass ``check``); 2 bad usage, arguments or credentials, or a batch journal held by another
run; 3 no answer (transport error, timeout, job deadline); 4 a charged call may or may not
have run (``SubmitOutcomeUnknown``); 5 some ``batch`` items failed; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import json
import logging
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final, NoReturn

import aiohttp
import attrs

from ._batch import (
    AnyCreateRequest,
    CreateRequest,
    GroupCreateRequest,
    Outcome,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
    file_stem,
)
from ._progress import BatchProgress, batch_progress, watch_lines
from ._retry import RetryPolicy
from ._session import Session, credentials_from_env
from ._watch import PollPolicy
from .config import CreateConfig
from .errors import (
    AIPortraitWarning,
    ConfigWarning,
    CredentialsError,
    InvalidArgument,
    JobTimeout,
    JournalLocked,
    PhotoCountWarning,
    PreviousFailure,
    SubmitOutcomeUnknown,
    TransportError,
)
from .models import CheckReport, ImageCheck, Portrait, TrainJob, TrainResult

__all__ = [
    "EXIT_BATCH_FAILED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTCOME_UNKNOWN",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "main",
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

PROG: Final = "aiportrait"
DEFAULT_JOURNAL: Final = ".aiportrait-journal.sqlite"
TRAININGS_DIR: Final = "trainings"

log = logging.getLogger("aiportrait")


class UsageError(Exception):
    """Bad command-line usage or batch file (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


# -- output ------------------------------------------------------------------------------------


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


# The library's messages name its keywords; on the command line, say the flags the user types.
_KEYWORD: Final = re.compile(r"\b([a-z][a-z0-9_]*)=True\b")
_ALIASES: Final = {"scene_lora": "--scene-prompts"}
_PHOTO: Final = re.compile(r"\bimages\[(\d+)\]=")
_CONFIG_KEY: Final = re.compile(r"\bCreateConfig\.(\w+)=|\bconfig sets (\w+)=")


@functools.cache
def _flags() -> frozenset[str]:
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


def _message(exc: BaseException, command: str | None) -> str:
    """The error's message on one line, in the command line's words."""
    text = cli_words(" ".join(str(exc).split()), command)
    if isinstance(exc, PreviousFailure):
        text += " (run again with --retry-failed to retry it)"
    return text


def _error_doc(exc: BaseException, command: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": _message(exc, command)}
    for attr in ("request_id", "job_id", "status", "code"):
        value = getattr(exc, attr, None)
        if value not in (None, ""):
            doc[attr] = value
    return doc


def _error_text(exc: BaseException, command: str | None = None) -> str:
    """``ClassName: message (request_id=...)`` on one line."""
    text = _message(exc, command) or "(no message)"
    rid = getattr(exc, "request_id", "")
    if rid and str(rid) not in text:
        text += f" (request_id={rid})"
    return f"{type(exc).__name__}: {text}"


def exit_code(exc: BaseException) -> int:
    """The exit code for an error (see the module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (UsageError, InvalidArgument, CredentialsError, JournalLocked)):
        return EXIT_USAGE  # nothing was sent (another run holds the journal: wait or stop it)
    if isinstance(exc, (TransportError, JobTimeout)):
        return EXIT_TRANSPORT
    if isinstance(exc, SubmitOutcomeUnknown):
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_FAILED


# -- the parser --------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, default: Any) -> None:
    """Options accepted before and after the subcommand (``default`` SUPPRESS after it)."""
    g = parser.add_argument_group("connection and output")
    g.add_argument("--host", default=default, help="service address (else AIPORTRAIT_HOST)")
    g.add_argument("--app-id", default=default, help="AppId (else AIPORTRAIT_APP_ID)")
    g.add_argument("--token", default=default, help="Token (else AIPORTRAIT_TOKEN)")
    g.add_argument(
        "--timeout", type=_positive, default=default, metavar="SECONDS", help="per try of a call"
    )
    g.add_argument(
        "--tries", type=_count, default=default, metavar="N", help="tries per call in all"
    )
    g.add_argument("--json", action="store_true", default=default, help="JSON output")
    g.add_argument(
        "--debug", action="store_true", default=default, help="tracebacks and DEBUG logging"
    )


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
    p.add_argument("urls", nargs="+", metavar="URL", help="photo URLs")


def _add_train(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[common], help="start a training (and wait for it)")
    p.add_argument("urls", nargs="+", metavar="URL", help="photo URLs of one person")
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
    who.add_argument("--reference", metavar="URL", help="a reference photo (no training)")
    p.add_argument("--template", metavar="URL", help="template image URL")
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


_EPILOG: Final = """\
credentials: --host/--app-id/--token, else AIPORTRAIT_HOST, AIPORTRAIT_APP_ID, AIPORTRAIT_TOKEN
(or the documentation's HOST, AppId, Token); flags win.

exit codes: 0 ok; 1 the service refused or failed; 2 bad usage, arguments or credentials;
3 no answer (connection, timeout, job deadline); 4 a charged call may or may not have run;
5 some batch items failed; 130 interrupted. See docs/cli.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``aiportrait`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Client and local emulator for PAI AI Portrait.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser, default=None)
    common = _Parser(add_help=False)
    _common(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_check, _add_train, _add_watch, _add_create, _add_batch):
        add(sub, common)
    demo = sub.add_parser(
        "demo", help="run the whole flow offline against the local emulator (no account)"
    )
    demo.add_argument("--out", default="portraits", help="output folder (default ./portraits)")
    demo.add_argument(
        "--train-seconds", type=float, default=2.0, help="emulated training time (default 2)"
    )
    sub.add_parser("emulator", help="run the local emulator", add_help=False)
    return parser


# -- sessions ----------------------------------------------------------------------------------


_FLAG_ENV: Final = {
    "host": "AIPORTRAIT_HOST",
    "app_id": "AIPORTRAIT_APP_ID",
    "token": "AIPORTRAIT_TOKEN",
}


def _session(args: argparse.Namespace) -> Session:
    """A Session from the flags, else the environment (as ``Session.from_env``)."""
    environ = dict(os.environ)
    for attr, name in _FLAG_ENV.items():
        value = getattr(args, attr)
        if value is not None:
            environ[name] = value
    kwargs: dict[str, Any] = {}
    if args.timeout is not None:
        t = args.timeout
        kwargs["timeout"] = aiohttp.ClientTimeout(
            total=t, connect=min(10.0, t), sock_read=min(180.0, t)
        )
    if args.tries is not None:
        kwargs["retry"] = RetryPolicy(attempts=args.tries, charged_attempts=args.tries)
    return Session(*credentials_from_env(environ), **kwargs)


def _poll_policy(args: argparse.Namespace) -> PollPolicy:
    policy = PollPolicy.TRAINING
    if args.poll is not None:
        policy = attrs.evolve(policy, first=args.poll, cap=max(args.poll, policy.cap))
    if args.deadline is not None:
        policy = attrs.evolve(policy, timeout=args.deadline)
    return policy


# -- check, train, watch -----------------------------------------------------------------------


def _check_doc(report: CheckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "passed": list(report.passed),
        "results": [
            {
                "url": r.url,
                "ok": r.ok,
                "code": int(r.code),
                "verdict": r.code.name,
                "message": r.message,
                "detail": r.detail,
                "frontal": r.frontal,
            }
            for r in report.results
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


async def _cmd_check(session: Session, args: argparse.Namespace, out: Output) -> int:
    report = await session.check_images(args.urls)
    lines = [check_line(r) for r in report.results]
    lines.append(f"{len(report.passed)}/{len(report.results)} photos usable")
    out.result(_check_doc(report), lines)
    return EXIT_OK if report.ok else EXIT_FAILED


def _scene_prompts(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--scene-prompts: cannot read {path}: {exc.strerror}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


def _result_doc(result: TrainResult) -> dict[str, Any]:
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


async def _watch(
    session: Session, job: int | TrainJob, args: argparse.Namespace, out: Output
) -> TrainResult:
    """Watch a job to its end, live on a terminal; tell how to resume if it stops first."""
    job_id = job.job_id if isinstance(job, TrainJob) else job
    again = f"{PROG} watch {job_id}"
    out.resume = f"watching stopped, job {job_id} did not; follow it again with: {again}"
    result = await watch_lines(session, job, echo=out.note, poll=_poll_policy(args), stream=out.err)
    out.resume = None
    return result


async def _cmd_train(session: Session, args: argparse.Namespace, out: Output) -> int:
    prompts = _scene_prompts(args.scene_prompts)
    job = await session.train(
        args.urls, sdxl=args.sdxl, scene_lora=prompts is not None, scene_prompts=prompts
    )
    doc: dict[str, Any] = {"job_id": job.job_id, "model_id": job.model_id}
    if not args.wait:
        out.result(
            doc,
            [
                f"training started: job {job.job_id}, model_id {job.model_id}",
                f"watch it with: {PROG} watch {job.job_id}",
            ],
        )
        return EXIT_OK
    out.note(f"training started: job {job.job_id}, model_id {job.model_id}")
    result = await _watch(session, job, args, out)
    doc.update(_result_doc(result), state="SUCCESS")
    trained = f"trained: model_id {result.model_id} in {result.cost_time:.1f}s"
    out.result(doc, [trained, *rejected_lines(result)])
    return EXIT_OK


async def _cmd_watch(session: Session, args: argparse.Namespace, out: Output) -> int:
    if args.job_id < 0:
        raise UsageError("JOB_ID must not be negative")
    result = await _watch(session, args.job_id, args, out)
    doc = {"job_id": args.job_id, "state": "SUCCESS", **_result_doc(result)}
    succeeded = f"job {args.job_id} succeeded: model_id {result.model_id}"
    out.result(doc, [succeeded, *rejected_lines(result)])
    return EXIT_OK


# -- create ------------------------------------------------------------------------------------

_CONFIG_KEYS: Final = frozenset(a.name for a in attrs.fields(CreateConfig) if a.name != "extra")


def config_from(values: Mapping[str, Any]) -> CreateConfig | None:
    """A :class:`CreateConfig` from a mapping: documented keys as attributes, others in extra."""
    if not values:
        return None
    known = {k: v for k, v in values.items() if k in _CONFIG_KEYS}
    extra = {k: v for k, v in values.items() if k not in _CONFIG_KEYS}
    return CreateConfig(**known, extra=extra or None)


def parse_settings(settings: Sequence[str]) -> dict[str, Any]:
    """``["lora_weights=0.8", "style_name=Anime"]`` -> values parsed as JSON, else strings."""
    values: dict[str, Any] = {}
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _create_request(args: argparse.Namespace) -> AnyCreateRequest:
    config = config_from(parse_settings(args.settings))
    weight = args.ipa_weight
    if weight is not None and config is not None and config.ipa_weight not in (None, weight):
        raise UsageError("--ipa-weight and --set ipa_weight=... disagree")
    if args.prompt is not None:
        if args.group is not None:
            raise UsageError("--prompt takes --model or --reference, not --group")
        if args.ipa_weight is not None:
            if args.reference is None:
                raise UsageError("--ipa-weight needs --reference")
            config = _with_ipa_weight(config, args.ipa_weight)
        return PromptCreateRequest(
            prompt=args.prompt,
            model_id=args.model,
            template=args.template,
            reference=args.reference,
            scene_id=args.scene_id,
            sdxl=args.sdxl,
            config=config,
        )
    if args.scene_id is not None:
        raise UsageError("--scene-id needs --prompt")
    if args.template is None:
        raise UsageError("--template is required (except with --prompt)")
    if args.ipa_weight is not None and args.reference is None:
        raise UsageError("--ipa-weight needs --reference")
    if args.group is not None:
        return GroupCreateRequest(args.group, args.template, sdxl=args.sdxl, config=config)
    if args.reference is not None:
        return ReferenceCreateRequest(
            args.reference, args.template, args.ipa_weight, sdxl=args.sdxl, config=config
        )
    return CreateRequest(args.model, args.template, sdxl=args.sdxl, config=config)


def _with_ipa_weight(config: CreateConfig | None, weight: float) -> CreateConfig:
    """``config`` with ``ipa_weight`` set (the prompt call has no argument of its own for it)."""
    if config is None:
        return CreateConfig(ipa_weight=weight)
    return attrs.evolve(config, ipa_weight=weight)


def _portrait_doc(portrait: Portrait, path: Path | None) -> dict[str, Any]:
    return {
        "path": None if path is None else str(path),
        "format": portrait.format,
        "width": portrait.width,
        "height": portrait.height,
        "cost_time": portrait.cost_time,
        "request_id": portrait.request_id,
    }


def _portrait_text(portrait: Portrait) -> str:
    return (
        f"{portrait.format} {portrait.width}x{portrait.height}, {portrait.cost_time:.2f}s, "
        f"request_id={portrait.request_id}"
    )


async def _cmd_create(session: Session, args: argparse.Namespace, out: Output) -> int:
    portrait = await args.request.submit(session)
    path = await asyncio.to_thread(portrait.save, args.out)
    out.result(_portrait_doc(portrait, path), [f"wrote {path} ({_portrait_text(portrait)})"])
    return EXIT_OK


# -- batch files -------------------------------------------------------------------------------

_COLUMNS: Final = {
    "solo": ({"model_id", "template"}, {"sdxl", "config"}),
    "group": ({"model_ids", "template"}, {"sdxl", "config"}),
    "reference": ({"reference", "template"}, {"sdxl", "config"}),
    "prompt": ({"prompt"}, {"model_id", "reference", "template", "scene_id", "sdxl", "config"}),
    "train": ({"images"}, {"sdxl"}),
}
"""Per kind: the required fields and the optional ones (besides ``kind`` and ``key``)."""

_ALL_COLUMNS: Final = frozenset({"kind", "key"}).union(
    *(required | optional for required, optional in _COLUMNS.values())
)
_TRUE: Final = frozenset({"1", "true", "yes", "y", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "n", "off", ""})


@attrs.define
class Plan:
    """A batch file, parsed: trainings and creations by key."""

    trainings: dict[str, TrainRequest] = attrs.Factory(dict)
    creations: dict[str, AnyCreateRequest] = attrs.Factory(dict)

    def __len__(self) -> int:
        return len(self.trainings) + len(self.creations)


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that have a value (empty CSV cells and JSON nulls are absent)."""
    return {
        k: v for k, v in row.items() if v is not None and not (isinstance(v, str) and not v.strip())
    }


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise UsageError(f"{name}: expected a string, got {json.dumps(value)}")
    return str(value).strip()


def _strings(row: Mapping[str, Any], name: str) -> list[str]:
    value = row[name]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    if not isinstance(value, str):
        raise UsageError(f"{name}: expected a list of strings or a '|'-separated string")
    parts = value.split("|") if "|" in value else value.split()
    return [p.strip() for p in parts if p.strip()]


def _flag(row: Mapping[str, Any], name: str) -> bool:
    value = row.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"{name}: expected true or false, got {value!r}")


def _config(row: Mapping[str, Any]) -> CreateConfig | None:
    value = row.get("config")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UsageError(f"config: not JSON ({exc.msg})") from exc
    if value is not None and not isinstance(value, dict):
        raise UsageError("config: expected a JSON object")
    try:
        return config_from(value or {})
    except InvalidArgument as exc:
        raise UsageError(f"config: {exc}") from exc


def _check_fields(kind: str, row: Mapping[str, Any]) -> None:
    required, optional = _COLUMNS[kind]
    missing = sorted(required - row.keys())
    if missing:
        raise UsageError(f"kind {kind} needs {', '.join(missing)}")
    unused = sorted(row.keys() - required - optional - {"kind", "key"})
    if unused:
        raise UsageError(f"kind {kind} does not use {', '.join(unused)}")


def row_request(row: Mapping[str, Any]) -> AnyCreateRequest | TrainRequest:
    """The request one batch row describes (raises :class:`UsageError` saying what is wrong)."""
    unknown = sorted(set(row) - _ALL_COLUMNS)
    if unknown:
        raise UsageError(f"unknown field {', '.join(unknown)}")
    fields = _present(row)
    kind = (_text(fields, "kind") or "").lower()
    if kind not in _COLUMNS:
        raise UsageError(f"kind must be one of {', '.join(_COLUMNS)}, got {kind or 'nothing'!r}")
    _check_fields(kind, fields)
    sdxl = _flag(fields, "sdxl")
    if kind == "train":
        return TrainRequest(_strings(fields, "images"), sdxl=sdxl)
    if kind == "prompt":
        return _prompt_row(fields, sdxl)
    config = _config(fields)
    template = str(_text(fields, "template"))
    if kind == "solo":
        return CreateRequest(str(_text(fields, "model_id")), template, sdxl, config)
    if kind == "group":
        return GroupCreateRequest(_strings(fields, "model_ids"), template, sdxl, config)
    reference = str(_text(fields, "reference"))
    return ReferenceCreateRequest(reference, template, sdxl=sdxl, config=config)


def _prompt_row(fields: Mapping[str, Any], sdxl: bool) -> PromptCreateRequest:
    model_id, reference = _text(fields, "model_id"), _text(fields, "reference")
    if (model_id is None) == (reference is None):
        raise UsageError("kind prompt needs exactly one of model_id or reference")
    return PromptCreateRequest(
        prompt=str(_text(fields, "prompt")),
        model_id=model_id,
        template=_text(fields, "template"),
        reference=reference,
        scene_id=_text(fields, "scene_id"),
        sdxl=sdxl,
        config=_config(fields),
    )


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None:
        return
    for row in reader:
        if None in row:
            raise UsageError(f"line {reader.line_num}: more cells than columns")
        yield reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UsageError(f"line {number}: expected a JSON object")
        yield number, row


def _is_jsonl(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return True
    return suffix != ".csv" and text.lstrip().startswith("{")


def check_request(request: AnyCreateRequest | TrainRequest) -> None:
    """Warn now what the library would warn when the request is sent (nothing is sent here).

    A training outside the documented 5 to 20 photos (:class:`PhotoCountWarning`); config keys
    documented for the other model only (:class:`ConfigWarning`).
    """
    if isinstance(request, TrainRequest):
        PhotoCountWarning.check(len(request.images))
    elif request.config is not None:
        request.config.model_mismatch(sdxl=request.sdxl)


def _line_numbers(numbers: list[int], shown: int = 5) -> str:
    more = f" and {len(numbers) - shown} more" if len(numbers) > shown else ""
    listed = ", ".join(str(n) for n in numbers[:shown])
    return f"line{'s' if len(numbers) > 1 else ''} {listed}{more}"


def read_plan(path: Path) -> Plan:
    """Parse a batch file (CSV with a header row, or JSON Lines) into a :class:`Plan`.

    Warnings about the rows (see :func:`check_request`) are issued once per message, with the
    file and the lines they concern.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    rows = _jsonl_rows(text) if _is_jsonl(path, text) else _csv_rows(text)
    plan = Plan()
    index = 0
    notes: dict[tuple[str, type[Warning]], list[int]] = {}
    try:
        for index, (number, row) in enumerate(rows, 1):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AIPortraitWarning)
                _add_row(plan, number, index, row)
            for w in caught:
                notes.setdefault((str(w.message), w.category), []).append(number)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not plan:
        raise UsageError(f"{path}: no items")
    for (message, category), numbers in notes.items():
        warnings.warn(f"{path}: {_line_numbers(numbers)}: {message}", category, stacklevel=2)
    return plan


def _add_row(plan: Plan, number: int, index: int, row: dict[str, Any]) -> None:
    try:
        request = row_request(row)
        key = _text(_present(row), "key") or f"row{index}"
    except (UsageError, InvalidArgument) as exc:
        raise UsageError(f"line {number}: {exc}") from exc
    check_request(request)
    if key in plan.trainings or key in plan.creations:
        raise UsageError(f"line {number}: key {key!r} is used twice")
    if isinstance(request, TrainRequest):
        plan.trainings[key] = request
    else:
        plan.creations[key] = request


# -- batch runs --------------------------------------------------------------------------------


@attrs.define
class _Tally:
    ok: int = 0
    failed: int = 0
    resumed: int = 0


def _value_doc(value: Any, path: Path | None) -> dict[str, Any]:
    if isinstance(value, Portrait):
        return _portrait_doc(value, path)
    if isinstance(value, TrainResult):
        return _result_doc(value)
    return {}


def outcome_doc(kind: str, outcome: Outcome[Any, Any]) -> dict[str, Any]:
    """The JSON line for one batch outcome."""
    doc: dict[str, Any] = {
        "type": "outcome",
        "kind": kind,
        "key": outcome.key,
        "ok": outcome.ok,
        "resumed": outcome.resumed,
    }
    if outcome.job is not None:
        doc.update(job_id=outcome.job.job_id, model_id=outcome.job.model_id)
    if outcome.error is not None:
        doc["error"] = _error_doc(outcome.error, "batch")
    else:
        doc.update(_value_doc(outcome.value, outcome.path))
    return doc


def _outcome_text(kind: str, outcome: Outcome[Any, Any], written: Path | None) -> str:
    resumed = " (resumed)" if outcome.resumed else ""
    if outcome.error is not None:
        return f"failed  {outcome.key}  {_error_text(outcome.error, 'batch')}{resumed}"
    value = outcome.value
    if isinstance(value, Portrait):
        return f"ok      {outcome.key}  {outcome.path or ''}  {_portrait_text(value)}{resumed}"
    model = value.model_id if isinstance(value, (TrainResult, TrainJob)) else ""
    where = f"  {written}" if written is not None else ""
    rejected = ""
    if isinstance(value, TrainResult) and any(not s.ok for s in value.states):
        count = sum(not s.ok for s in value.states)
        rejected = f"  ({count} of {len(value.states)} photos rejected by the service's check)"
    return f"ok      {outcome.key}  {kind} model_id {model}{where}{rejected}{resumed}"


def _save_training(out_dir: Path, outcome: Outcome[Any, Any]) -> Path | None:
    """Write a training's result to ``DIR/trainings/<key>.json``."""
    if outcome.error is not None or outcome.job is None:
        return None
    doc = {"key": outcome.key, "job_id": outcome.job.job_id, "model_id": outcome.job.model_id}
    doc.update(_value_doc(outcome.value, None))
    path = out_dir / TRAININGS_DIR / f"{file_stem(outcome.key)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


@attrs.define
class _BatchRun:
    session: Session
    args: argparse.Namespace
    out: Output
    progress: BatchProgress
    tally: _Tally = attrs.Factory(_Tally)

    @property
    def journal(self) -> Path:
        path: Path | None = self.args.journal
        return path if path is not None else self.args.out / DEFAULT_JOURNAL

    def _options(self) -> dict[str, Any]:
        return {
            "limit": self.args.limit,
            "journal": self.journal,
            "resubmit_unknown": self.args.resubmit_unknown,
            "retry_failed": self.args.retry_failed,
        }

    async def report(self, kind: str, outcome: Outcome[Any, Any]) -> None:
        written = None
        if kind == "train":
            written = await asyncio.to_thread(_save_training, self.args.out, outcome)
        self.tally.ok += outcome.ok
        self.tally.failed += not outcome.ok
        self.tally.resumed += outcome.resumed
        self.progress.advance(outcome.ok)
        if self.out.json:
            line = json.dumps(outcome_doc(kind, outcome), default=str)
        else:
            line = _outcome_text(kind, outcome, written)
        self.progress.write(line, self.out.out)

    async def trainings(self, requests: Mapping[str, TrainRequest]) -> None:
        session = self.session.with_options(poll=_poll_policy(self.args))
        outcomes = session.train_many(requests, wait=not self.args.no_wait, **self._options())
        async with outcomes:
            async for outcome in outcomes:
                await self.report("train", outcome)

    async def creations(self, requests: Mapping[str, AnyCreateRequest]) -> None:
        outcomes = self.session.create_many(
            requests,
            out_dir=self.args.out,
            recreate_missing=self.args.recreate_missing,
            **self._options(),
        )
        async with outcomes:
            async for outcome in outcomes:
                await self.report("create", outcome)


async def _cmd_batch(session: Session, args: argparse.Namespace, out: Output) -> int:
    plan: Plan = args.plan
    started = time.monotonic()
    progress = batch_progress(len(plan), out.err, enabled=not args.no_progress)
    run = _BatchRun(session, args, out, progress)
    out.resume = (
        f"run the same command again to resume: the journal {run.journal} remembers what is done"
    )
    try:
        if plan.trainings:
            await run.trainings(plan.trainings)
        if plan.creations:
            await run.creations(plan.creations)
    finally:
        progress.close()
    out.resume = None
    tally, seconds = run.tally, time.monotonic() - started
    summary = {"type": "summary", "total": len(plan), **attrs.asdict(tally), "seconds": seconds}
    summary.update(out=str(args.out), journal=str(run.journal))
    text = (
        f"{tally.ok} ok, {tally.failed} failed ({tally.resumed} resumed) of {len(plan)} "
        f"in {seconds:.1f}s -> {args.out}"
    )
    out.result(summary, [text])
    return EXIT_BATCH_FAILED if tally.failed else EXIT_OK


# -- main --------------------------------------------------------------------------------------

_COMMANDS: Final = {
    "check": _cmd_check,
    "train": _cmd_train,
    "watch": _cmd_watch,
    "create": _cmd_create,
    "batch": _cmd_batch,
}


_WARNED_BEFORE: Final[dict[str, tuple[type[Warning], ...]]] = {
    "create": (ConfigWarning,),
    "batch": (ConfigWarning, PhotoCountWarning),
}
"""Per command, the warnings :func:`_prepare` already gave: not repeated when sending."""


def _prepare(args: argparse.Namespace) -> None:
    """Checks and parsing that need no Session (so usage errors come before credentials)."""
    if args.command == "create":
        args.request = _create_request(args)
        check_request(args.request)
    elif args.command == "batch":
        args.plan = read_plan(args.file)


async def _dispatch(args: argparse.Namespace, out: Output) -> int:
    _prepare(args)
    with warnings.catch_warnings():
        for category in _WARNED_BEFORE.get(args.command, ()):
            warnings.filterwarnings("ignore", category=category)
        async with _session(args) as session:
            return await _COMMANDS[args.command](session, args, out)


@contextlib.contextmanager
def _warnings_shown(out: Output) -> Iterator[None]:
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
        text = cli_words(" ".join(str(message).split()), out.command)
        if not issubclass(category, AIPortraitWarning):
            text = f"{category.__name__}: {text}"
        if text not in shown:
            shown.add(text)
            out.note(f"{PROG}: warning: {text}")

    with warnings.catch_warnings():
        warnings.simplefilter("always", AIPortraitWarning)
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _logging(debug: bool, stream: IO[str]) -> Iterator[None]:
    """With ``--debug``: DEBUG records of the ``aiportrait`` logger to stderr."""
    if not debug:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _fail(exc: BaseException, args: argparse.Namespace | None, out: Output) -> int:
    code = exit_code(exc)
    if args is not None and args.debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=out.err)
    resume = out.resume if isinstance(exc, (KeyboardInterrupt, JobTimeout)) else None
    if isinstance(exc, KeyboardInterrupt):
        out.note(f"{PROG}: interrupted")
        if resume:
            out.note(f"{PROG}: {resume}")
        return code
    if isinstance(exc, UsageError):
        out.note(f"{PROG}: error: {' '.join(str(exc).split())}")
    else:
        out.note(f"{PROG}: error: {_error_text(exc, out.command)}")
    if resume:
        out.note(f"{PROG}: {resume} (--deadline SECONDS to wait longer)")
    if out.json:
        doc = {**_error_doc(exc, out.command), "exit_code": code}
        if resume and isinstance(exc, JobTimeout):
            doc["resume"] = f"{PROG} watch {exc.job_id}"
        print(json.dumps({"error": doc}), file=out.out)
    return code


def _run(args: argparse.Namespace, out: Output) -> int:
    if args.command == "demo":
        try:
            from ._demo import run_demo
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(f"the demo needs: pip install 'aiportrait[emulator]' ({exc})") from exc
        asyncio.run(run_demo(args.out, train_seconds=args.train_seconds))
        return EXIT_OK
    if args.command == "emulator":
        raise UsageError(f"put emulator first: {PROG} emulator [OPTIONS]")
    return asyncio.run(_dispatch(args, out))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``aiportrait`` command line; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator._cli import main as emulator_main

        return emulator_main(args_list[1:], prog=f"{PROG} emulator")
    out = Output(json="--json" in args_list, out=sys.stdout, err=sys.stderr)
    args = None
    try:
        args = build_parser().parse_args(args_list)
        out.json, out.command = bool(args.json), args.command
        with _logging(bool(args.debug), out.err), _warnings_shown(out):
            return _run(args, out)
    except (Exception, KeyboardInterrupt) as exc:
        return _fail(exc, args, out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
