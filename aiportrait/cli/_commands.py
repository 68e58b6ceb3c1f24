"""The commands that make one call: ``check``, ``train``, ``watch`` and ``create``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import ChainMap
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from .. import (
    AnyCreateRequest,
    CreateConfig,
    CreateRequest,
    GroupCreateRequest,
    PollPolicy,
    PromptCreateRequest,
    ReferenceCreateRequest,
    RetryPolicy,
    Session,
    TrainJob,
    TrainResult,
)
from .._display.progress import watch_lines
from .._wire.codec import converter
from .._wire.signing import PrivateMapping
from ._batchfile import config_from
from ._exit import EXIT_FAILED, EXIT_OK, UsageError
from ._local import has_local, local_inputs, local_value, uploader_for
from ._output import (
    Output,
    check_doc,
    check_line,
    portrait_doc,
    portrait_text,
    rejected_lines,
    result_doc,
)
from ._parser import PROG, Args

__all__ = [
    "cmd_check",
    "cmd_create",
    "cmd_train",
    "cmd_watch",
    "create_request",
    "parse_settings",
    "poll_policy",
    "session_from",
]

_FLAG_ENV: Final = {
    "host": "AIPORTRAIT_HOST",
    "app_id": "AIPORTRAIT_APP_ID",
    "token": "AIPORTRAIT_TOKEN",
}


def session_from(args: Args) -> Session:
    """A Session from the flags, else the environment (as ``Session.from_env``)."""
    flags = {name: getattr(args, attr) for attr, name in _FLAG_ENV.items()}
    # Flags before the environment; a view whose repr shows no value (tracebacks' locals).
    environ = PrivateMapping(
        ChainMap({k: v for k, v in flags.items() if v is not None}, dict(os.environ))
    )
    flags.clear()
    kwargs: dict[str, Any] = {}
    if args.timeout is not None:
        kwargs["timeout"] = args.timeout  # seconds: the Session's one meaning of it
    if args.tries is not None:
        kwargs["retry"] = RetryPolicy(attempts=args.tries, charged_attempts=args.tries)
    return Session.from_env(environ, **kwargs)


def poll_policy(args: Args) -> PollPolicy:
    """The training poll policy with ``--poll`` and ``--deadline``."""
    policy = PollPolicy.TRAINING
    if args.poll is not None:
        policy = attrs.evolve(policy, first=args.poll, cap=max(args.poll, policy.cap))
    if args.deadline is not None:
        policy = attrs.evolve(policy, timeout=args.deadline)
    return policy


# -- check, train, watch -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _with_local(session: Session, args: Args, values: list[Any]) -> AsyncIterator[Session]:
    """The session with an uploader when ``values`` hold local files (see ``_local``); the
    uploader is closed on the way out."""
    uploader = uploader_for(args) if has_local(values) else None
    if uploader is None:  # no local file, or the Session refuses it, naming what it lacks
        yield session
        return
    try:
        yield session.with_options(uploader=uploader)
    finally:
        await uploader.aclose()


async def cmd_check(session: Session, args: Args, out: Output) -> int:
    """``check URL|FILE|GLOB... [--local]``: exit 0 when every photo passed."""
    photos = local_inputs(args.urls, "check")
    if args.local:
        report = await session.check_images(photos, local=True)
    else:
        async with _with_local(session, args, photos) as local:
            report = await local.check_images(photos)
    lines = [check_line(r) for r in report.results]
    lines.append(f"{len(report.passed)}/{len(report.results)} photos usable")
    out.result(check_doc(report), lines)
    return EXIT_OK if report.ok else EXIT_FAILED


def _scene_prompts(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--scene-prompts: cannot read {path}: {exc.strerror}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


async def _watch(session: Session, job: int | TrainJob, args: Args, out: Output) -> TrainResult:
    """Watch a job to its end, live on a terminal; tell how to resume if it stops first."""
    job_id = job.job_id if isinstance(job, TrainJob) else job
    again = f"{PROG} watch {job_id}"
    out.resume = f"watching stopped, job {job_id} did not; follow it again with: {again}"
    result = await watch_lines(session, job, echo=out.note, poll=poll_policy(args), stream=out.err)
    out.resume = None
    return result


async def cmd_train(session: Session, args: Args, out: Output) -> int:
    """``train URL|FILE|GLOB... [--wait] [--force]``."""
    prompts = _scene_prompts(args.scene_prompts)
    photos = local_inputs(args.urls, "train")
    async with _with_local(session, args, photos) as local:
        job = await local.train(
            photos,
            sdxl=args.sdxl,
            scene_lora=prompts is not None,
            scene_prompts=prompts,
            force=args.force,
        )
    doc: dict[str, Any] = converter.unstructure(job)
    started = f"training started: job {job.job_id}, model_id {job.model_id}"
    if not args.wait:
        out.result(doc, [started, f"watch it with: {PROG} watch {job.job_id}"])
        return EXIT_OK
    out.note(started)
    result = await _watch(session, job, args, out)
    doc.update(result_doc(result), state="SUCCESS")
    trained = f"trained: model_id {result.model_id} in {result.cost_time:.1f}s"
    out.result(doc, [trained, *rejected_lines(result)])
    return EXIT_OK


async def cmd_watch(session: Session, args: Args, out: Output) -> int:
    """``watch JOB_ID``."""
    if args.job_id < 0:
        raise UsageError("JOB_ID must not be negative")
    result = await _watch(session, args.job_id, args, out)
    doc = {"job_id": args.job_id, "state": "SUCCESS", **result_doc(result)}
    succeeded = f"job {args.job_id} succeeded: model_id {result.model_id}"
    out.result(doc, [succeeded, *rejected_lines(result)])
    return EXIT_OK


# -- create ------------------------------------------------------------------------------------


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


_PLACEHOLDER: Final = "https://local.invalid/{}"
"""Stands for a local --template or --reference until it is uploaded (see :func:`cmd_create`)."""


def _local_flags(args: Args) -> None:
    """Local --template / --reference: kept in ``args.local`` and replaced by placeholders."""
    args.local = {}
    for flag in ("template", "reference"):
        text = getattr(args, flag)
        if text is None or text == "t2i_generate":
            continue
        value = local_value(text, f"--{flag}")
        if isinstance(value, Path):
            args.local[flag] = value
            setattr(args, flag, _PLACEHOLDER.format(flag))


def create_request(args: Args) -> AnyCreateRequest:
    """The request ``create``'s flags describe (checked before any Session is made)."""
    _local_flags(args)
    config = config_from(parse_settings(args.settings))
    weight = args.ipa_weight
    if weight is not None and config is not None and config.ipa_weight not in (None, weight):
        raise UsageError("--ipa-weight and --set ipa_weight=... disagree")
    if args.prompt is not None:
        if args.group is not None:
            raise UsageError("--prompt takes --model or --reference, not --group")
        if weight is not None:
            if args.reference is None:
                raise UsageError("--ipa-weight needs --reference")
            # the prompt call has no argument of its own for it
            config = attrs.evolve(config or CreateConfig(), ipa_weight=weight)
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
    if weight is not None and args.reference is None:
        raise UsageError("--ipa-weight needs --reference")
    if args.group is not None:
        return GroupCreateRequest(args.group, args.template, sdxl=args.sdxl, config=config)
    if args.reference is not None:
        return ReferenceCreateRequest(
            args.reference, args.template, weight, sdxl=args.sdxl, config=config
        )
    return CreateRequest(args.model, args.template, sdxl=args.sdxl, config=config)


async def _upload_one(session: Session, path: Path, flag: str) -> str:
    from .._local.inputs import resolve_image

    url: str = await resolve_image(session._upload, path, f"--{flag}")
    return url


async def cmd_create(session: Session, args: Args, out: Output) -> int:
    """``create``: the request :func:`create_request` made, its portrait written to ``--out``.

    A local ``--template`` or ``--reference`` is uploaded first and its URL put in the request.
    """
    request = args.request
    local: dict[str, Path] = getattr(args, "local", {})
    if local:
        async with _with_local(session, args, list(local.values())) as uploading:
            urls = {flag: await _upload_one(uploading, path, flag) for flag, path in local.items()}
        request = attrs.evolve(request, **urls)
    portrait = await session.send(request)
    path = await asyncio.to_thread(portrait.save, args.out)
    out.result(portrait_doc(portrait, path), [f"wrote {path} ({portrait_text(portrait)})"])
    return EXIT_OK
