"""The commands that make one call: ``check``, ``train``, ``watch`` and ``create``.

``train`` and ``create`` build the library's request (local files in it as paths) from
options named after the request's arguments, before any Session or credential is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import click

from .. import (
    CreateConfig,
    CreateRequest,
    GroupCreateRequest,
    PollPolicy,
    PromptCreateRequest,
    ReferenceCreateRequest,
    Session,
    TrainRequest,
    TrainResult,
)
from .._display.progress import watch_lines
from .._local.resolve import ReadInputs, read_local, resolve
from .._local.upload import Uploader, as_upload
from .._requests import AnyCreateRequest, AnyRequest
from .._wire.codec import converter
from ..errors import ConfigWarning, PhotoCountWarning
from ._batchfile import check_request, config_from
from ._exit import EXIT_FAILED, EXIT_OK, UsageError
from ._local import PHOTO_FIELDS, has_local, local_inputs, local_value
from ._options import SERVICE, Common, polling, shared, uploading_options
from ._output import (
    PROG,
    Output,
    check_doc,
    check_line,
    photo_names,
    portrait_doc,
    portrait_text,
    rejected_lines,
    result_doc,
    said_before,
)

__all__ = ["check", "create", "parse_settings", "train", "watch"]

_PHOTO: Final = click.argument("photos", nargs=-1, required=True, metavar="PHOTO...")


@contextlib.asynccontextmanager
async def _session(common: Common, local: bool) -> AsyncIterator[tuple[Session, Uploader | None]]:
    """The Session and, with ``local`` files to send, the uploader (the Session's too); the
    warnings the command gave before sending are not given again."""
    async with common.session() as session, common.uploading(local) as uploader:
        with said_before(ConfigWarning, PhotoCountWarning):
            yield (
                (session if uploader is None else session.with_options(uploader=uploader)),
                uploader,
            )


async def _send(
    session: Session, uploader: Uploader | None, request: AnyRequest, read: ReadInputs | None
) -> Any:
    """Send ``request``, its local files (``read`` before) checked and uploaded first."""
    return await session.send(await resolve(request, as_upload(uploader), read))


# -- check, train, watch -----------------------------------------------------------------------


@click.command()
@_PHOTO
@click.option("--local", is_flag=True, help="check local files on this machine (nothing sent)")
@uploading_options()
@shared(*SERVICE)
@click.pass_obj
def check(common: Common, photos: tuple[str, ...], local: bool) -> int:
    """Check photos before training.

    PHOTO: URLs, or local files and globs (uploaded; with --local, checked here)."""

    async def run() -> int:
        inputs = local_inputs(photos, "check")
        async with _session(common, has_local(inputs) and not local) as (session, _):
            report = await session.check_images(inputs, local=local)
        names = photo_names(inputs, [r.url for r in report.results])
        lines = [check_line(r, name) for r, name in zip(report.results, names, strict=True)]
        lines.append(f"{len(report.passed)}/{len(report.results)} photos usable")
        common.out.result(check_doc(report, inputs), lines)
        return EXIT_OK if report.ok else EXIT_FAILED

    return common.run("check", run)


def _scene_prompts(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--scene-prompts: cannot read {path}: {exc.strerror}") from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


async def _watch(session: Session, job: int, poll: PollPolicy, out: Output) -> TrainResult:
    """Watch a job to its end, live on a terminal; tell how to resume if it stops first."""
    out.resume = f"watching stopped, job {job} did not; follow it again with: {PROG} watch {job}"
    result = await watch_lines(session, job, echo=out.note, poll=poll, stream=out.err)
    out.resume = None
    return result


@click.command()
@_PHOTO
@click.option("--force", is_flag=True, help="train on local photos that fail the local check")
@click.option("--sdxl", is_flag=True, help="train an SDXL model")
@click.option(
    "--scene-prompts",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="train an SDXL scene LoRA; FILE has one prompt per line, one per photo",
)
@click.option("--wait", is_flag=True, help="watch the job to its end")
@polling
@uploading_options(wait="wait")
@shared(*SERVICE)
@click.pass_obj
def train(
    common: Common,
    photos: tuple[str, ...],
    force: bool,
    sdxl: bool,
    scene_prompts: Path | None,
    wait: bool,
    poll: PollPolicy,
) -> int:
    """Start a training (and with --wait, watch it).

    PHOTO: photos of one person: URLs, or local files and globs (checked here, then
    uploaded)."""

    async def run() -> int:
        prompts = _scene_prompts(scene_prompts)
        images = local_inputs(photos, "train")
        request = TrainRequest(images, sdxl, prompts is not None, prompts, force)
        read = await read_local(request)  # a bad file is said before any warning
        check_request(request)
        async with _session(common, request.local) as (session, uploader):
            job = await _send(session, uploader, request, read)
            out = common.out
            doc: dict[str, Any] = converter.unstructure(job)
            started = f"training started: job {job.job_id}, model_id {job.model_id}"
            if not wait:
                out.result(doc, [started, f"watch it with: {PROG} watch {job.job_id}"])
                return EXIT_OK
            out.note(started)
            result = await _watch(session, job.job_id, poll, out)
        doc.update(result_doc(result, images), state="SUCCESS")
        trained = f"trained: model_id {result.model_id} in {result.cost_time:.1f}s"
        out.result(doc, [trained, *rejected_lines(result, images)])
        return EXIT_OK

    return common.run("train", run)


@click.command()
@click.argument("job_id", type=click.IntRange(min=0))
@polling
@shared(*SERVICE)
@click.pass_obj
def watch(common: Common, job_id: int, poll: PollPolicy) -> int:
    """Watch a training job to its end."""

    async def run() -> int:
        async with _session(common, False) as (session, _):
            result = await _watch(session, job_id, poll, common.out)
        doc = {"job_id": job_id, "state": "SUCCESS", **result_doc(result, ())}
        succeeded = f"job {job_id} succeeded: model_id {result.model_id}"
        common.out.result(doc, [succeeded, *rejected_lines(result, ())])
        return EXIT_OK

    return common.run("watch", run)


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


_WHO: Final = {
    "model_id": CreateRequest,
    "model_ids": GroupCreateRequest,
    "reference": ReferenceCreateRequest,
}
"""Without --prompt, the option that names the person picks the request."""


def create_request(
    given: dict[str, Any], settings: Sequence[str], flags: dict[str, str]
) -> AnyCreateRequest:
    """The request ``create``'s options describe: each option is the request argument of its
    name (``flags``: argument -> option, for the messages)."""
    given = {k: v for k, v in given.items() if v not in (None, False, ())}
    config = config_from(parse_settings(settings))
    weight = given.get("ipa_weight")
    if weight is not None and config is not None and config.ipa_weight not in (None, weight):
        raise UsageError("--ipa-weight and --set ipa_weight=... disagree")
    who = [name for name in _WHO if name in given]
    if "prompt" in given:
        cls: type[Any] = PromptCreateRequest
        if weight is not None and "reference" in given:  # the prompt call has no argument for it
            config = attrs.evolve(config or CreateConfig(), ipa_weight=given.pop("ipa_weight"))
    elif len(who) == 1:
        cls = _WHO[who[0]]
    else:
        raise UsageError(f"give one of {', '.join(flags[n] for n in _WHO)}")
    if config is not None:
        given["config"] = config
    for name in PHOTO_FIELDS & given.keys():
        given[name] = local_value(given[name], flags[name])
    chosen = flags["prompt" if cls is PromptCreateRequest else who[0]]
    fields = {a.name: a for a in attrs.fields(cls) if a.init}
    unused = [flags[name] for name in given if name not in fields]
    if unused:
        raise UsageError(f"{', '.join(unused)} does not go with {chosen}")
    for name, field in fields.items():
        if field.default is attrs.NOTHING and name not in given:
            raise UsageError(f"{flags[name]} is required with {chosen}")
    request: AnyCreateRequest = cls(**given)
    return request


@click.command()
@click.option("--model", "model_id", metavar="ID", help="a trained model id (solo portrait)")
@click.option(
    "--group", "model_ids", multiple=True, metavar="ID", help="model ids, left to right; repeat"
)
@click.option("--reference", metavar="PHOTO", help="a reference photo (no training)")
@click.option("--template", metavar="IMAGE", help="template image URL or local file")
@click.option("--prompt", metavar="TEXT", help="a text prompt (with --model or --reference)")
@click.option("--scene-id", metavar="ID", help="a scene LoRA id (with --prompt)")
@click.option("--ipa-weight", type=click.FloatRange(0.0, 1.0), metavar="W", help="0.0-1.0")
@click.option("--sdxl", is_flag=True, help="use the SDXL model")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="a configure key (VALUE is JSON, else a string); repeatable",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("portrait"),
    metavar="FILE",
    help="default portrait.<ext>",
)
@uploading_options()
@shared(*SERVICE, "shared_files")
@click.pass_context
def create(ctx: click.Context, /, settings: tuple[str, ...], out: Path, **given: Any) -> int:
    """Create a portrait.

    With --model (solo), --group (group) or --reference (no training); with --prompt, from a
    text prompt (and --model or --reference)."""
    common: Common = ctx.obj
    flags = {p.name: p.opts[0] for p in ctx.command.params if p.name}

    async def run() -> int:
        item = create_request(given, settings, flags)
        read = await read_local(item)  # a bad file is said before any warning
        check_request(item)
        async with _session(common, item.local) as (session, uploader):
            portrait = await _send(session, uploader, item, read)
        path = await asyncio.to_thread(portrait.save, out, shared=common.shared_files)
        done = f"wrote {path} ({portrait_text(portrait)})"
        common.out.result(portrait_doc(portrait, path), [done])
        return EXIT_OK

    return common.run("create", run)
