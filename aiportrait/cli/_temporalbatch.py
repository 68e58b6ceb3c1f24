"""``aiportrait temporal batch`` and ``attach``: a batch workflow started from a batch file
and followed to its summary, and a training or batch followed again by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click

from .._batches.keys import read_item
from .._local.oss_uploader import OSSUploader
from .._local.resolve import resolve
from .._local.upload import as_upload
from ..errors import ConfigWarning, ConnectError, PhotoCountWarning
from ._batchfile import Item, read_plan
from ._dryrun import budget_from, budget_options, print_temporal_dry_run
from ._exit import EXIT_INTERRUPTED, EXIT_OK, UsageError
from ._options import Common, shared, uploading_options
from ._output import PROG as AIPORTRAIT
from ._output import Output, said_before
from ._temporal import CHECK, NO_FOLLOW, PROG, RECONNECT, Cluster, run_temporal, where
from ._temporalfollow import FollowerStop, existing, follow_batch_lines, follow_train, stoppable

__all__ = ["attach", "batch_"]


async def _follow_batch(
    handle: Any, cluster: Cluster, out: Output, reconnect: float, stop: FollowerStop, resume: str
) -> int:
    again = cluster.attach_command(handle.id)
    store = cluster.portraits()
    return await follow_batch_lines(
        handle, store, out, reconnect, cluster.address, again, stop, resume
    )


_BATCH_ID: Final = click.option(
    "--id", "workflow_id", metavar="ID",
    help="workflow id (default: from the items and --check; a re-run follows, never recharges)",
)  # fmt: skip


_UPLOADED: Final = "https://upload.invalid/" + "u" * 1001
"""What a local file is measured as: the URL it will be uploaded to (signed: some 330
characters), counted as 1 KiB."""


def _fits(key: str, request: Item) -> None:
    """Refuse an item too large for Temporal as the starter will send it (its local files as
    the URLs they will be uploaded to): :func:`aiportrait.temporal.check_item`."""
    from ..temporal import check_item

    check_item(key, request.with_urls(dict.fromkeys(request.local_inputs(), _UPLOADED)))


_LATER: Final = "the same command with --delete-uploads, once the batch ended"
"""What deletes the uploads ``temporal batch --delete-uploads`` kept: run again, it follows the
batch (to its end) and deletes what it hands out again (uploaded or found present)."""


def _kept(out: Output, uploader: OSSUploader | None, workflow_id: str) -> None:
    """``--delete-uploads`` while the batch ``workflow_id`` has not ended (it waits for a
    resume, the follower left, Temporal did not answer): its uploads are kept, in one line."""
    if uploader is None or not uploader.delete_after:
        return
    uploader.delete_after = False  # a worker may still presign and send them
    if uploader.handed_out:
        out.note(
            f"{AIPORTRAIT}: uploads kept: batch {workflow_id} has not ended (a worker may still "
            f"send them); to delete them, run {_LATER}"
        )


async def _ended(handle: Any) -> bool:
    """Whether the batch's workflow has ended (``False`` when Temporal does not say); its
    latest run is asked (``handle`` has no run id), as a run that continued as new goes on."""
    from temporalio.client import WorkflowExecutionStatus as Status

    try:
        status = (await handle.describe()).status
    except Exception:
        return False
    return status not in (None, Status.RUNNING, Status.CONTINUED_AS_NEW)


async def _look(cluster: Cluster, runtime: Any, workflow_id: str) -> tuple[Any, str | None]:
    """What Temporal holds of the batch ``workflow_id`` (``None``: nothing), or why Temporal
    could not be asked."""
    from ..temporal import batch_state, unreachable

    try:
        client = await cluster.client(runtime)
        return await batch_state(client, workflow_id, cluster.portraits()), None
    except Exception as exc:
        if isinstance(exc, ConnectError) or unreachable(exc):
            return None, str(exc).splitlines()[0]
        raise


@click.command("batch")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--limit", type=click.IntRange(min=1), default=8, show_default=True,
    help="items in flight at once",
)  # fmt: skip
@CHECK
@_BATCH_ID
@NO_FOLLOW
@RECONNECT
@budget_options
@click.option(
    "--dry-run", is_flag=True,
    help="say what would be charged now; upload, start and charge nothing",
)  # fmt: skip
@where()
@uploading_options(wait="no_follow", later=_LATER)
@shared("host", "app_id", "token", "json", "debug")
@click.pass_obj
def batch_(
    common: Common,
    file: Path,
    limit: int,
    check: bool,
    workflow_id: str | None,
    no_follow: bool,
    reconnect: float,
    max_trainings: int | None,
    max_creations: int | None,
    dry_run: bool,
    cluster: Cluster,
) -> int:
    """Start a batch workflow and follow it.

    FILE: a batch file, as ``aiportrait batch`` takes it.

    Without --id, the workflow's id comes from the file's items (their content, local files'
    included) and --check: running the same command again follows the batch it started
    (running or finished) and charges nothing again.

    Local files in it are checked and uploaded here first (as ``batch`` does), so that every
    worker can fetch them by URL: the credentials are needed only then.

    Ctrl-C (or SIGTERM) stops the batch: no new item starts, those in flight finish on the
    workers and are saved, and the workflow waits; running the same command again resumes it
    (a second Ctrl-C leaves the follower only). --max-trainings and --max-creations stop it the
    same way at that many (exit 6); they are not part of the id: run again with a higher one to
    go on.

    With --delete-uploads, the photos uploaded here (or found there already) are deleted once
    the batch's workflow has ended; a batch that has not (it waits for a resume, or the
    follower left) keeps them, and running the same command again deletes them at its end.
    --url-lifetime: how long their URLs made here work (the workers presign them again).

    --dry-run reads and checks the file (the photo check on this machine included) and says
    what a run would charge now and what Temporal holds of the batch already; exit 0 (5 when
    an item would be refused) even when Temporal does not answer."""
    from ..temporal import batch_id, resume_batch, start_batch

    budget = {"max_trainings": max_trainings, "max_creations": max_creations}
    resume = "run the same command again to resume: the workflow waits for it"

    async def follow(handle: Any, stop: FollowerStop) -> int:
        if no_follow:  # a Ctrl-C while it started still stops it
            stopped = await stop.settled(handle, cluster.attach_command(handle.id))
            return EXIT_INTERRUPTED if stopped else EXIT_OK
        return await _follow_batch(handle, cluster, common.out, reconnect, stop, resume)

    async def resumed(handle: Any, stopped: Any, stop: FollowerStop, total: int) -> int:
        """Follow the batch ``handle`` started before; a ``stopped`` one (its progress) goes
        on, on this run's budget."""
        wid = handle.id
        if stopped is not None:
            stop.starting = True
            await resume_batch(handle, **budget)
            left = max(stopped.total, stopped.read) - stopped.read
            line = (
                f"workflow {wid}: this batch stopped before with {left} items not submitted: "
                "resuming it; what was charged is not sent again"
            )
        else:
            line = (
                f"workflow {wid}: this batch was started before (the same items and "
                f"options): following it, nothing is charged again; to run it again, "
                f"give a new --id (re-attach: {PROG} attach {wid})"
            )
        kind = "attached" if stopped is None else "resumed"
        common.out.result({"type": kind, "id": wid, "total": total}, [line])
        return await follow(handle, stop)

    async def run(runtime: Any, stop: FollowerStop) -> int:
        plan = read_plan(file, _fits)  # its warnings are given now, with the file and lines
        common.out.resume = "nothing was started (nothing charged); run the same command again"
        with said_before(ConfigWarning, PhotoCountWarning):
            known = {k: await read_item(v) for k, v in plan.items.items()}
            wid = workflow_id or batch_id(((k, fp) for k, (fp, _) in known.items()), check=check)
            if dry_run:
                found = await _look(cluster, runtime, wid)
                most = budget_from(max_trainings, max_creations)
                given = workflow_id is not None
                return await print_temporal_dry_run(
                    common.out, file, plan, most, wid, given, *found
                )
            client = await cluster.client(runtime)
            stopped = None
            if (handle := await existing(client, wid)) is not None:
                stopped = await _stopped(handle)
            before = handle is not None and (workflow_id is None or stopped is not None)
            if before and not common.delete_uploads:
                common.out.resume = None
                return await resumed(handle, stopped, stop, len(plan))
            async with common.uploading(plan.local) as uploader:  # deletes at its end, or not
                upload = as_upload(uploader)  # URLs as PresignedURL: _local.upload
                items = [(k, await resolve(v, upload, known[k][1])) for k, v in plan.items.items()]
                if not before:
                    handle = await start(client, wid, items, stop)
                try:
                    if before:
                        common.out.resume = None
                        code = await resumed(handle, stopped, stop, len(plan))
                    else:
                        code = await follow(handle, stop)
                except BaseException:  # the follower left, or Temporal does not answer
                    _kept(common.out, uploader, wid)
                    raise
                if uploader is not None and uploader.delete_after and not await _ended(handle):
                    _kept(common.out, uploader, wid)
                deleting = len(uploader.handed_out) if uploader and uploader.delete_after else 0
        if deleting:
            common.out.note(f"{AIPORTRAIT}: deleted {deleting} uploaded photo(s)")
        return code

    async def start(client: Any, wid: str, items: list[Any], stop: FollowerStop) -> Any:
        """Start the batch ``wid`` of ``items`` (their local files uploaded): its handle."""
        stop.starting = True
        common.out.resume = None
        handle = await cluster.start(
            client, start_batch, items, wid, store=cluster.portraits(), limit=limit,
            check=check, **budget,
        )  # fmt: skip
        again = f"re-attach: {PROG} attach {handle.id}"
        started = f"workflow {handle.id}: {len(items)} items ({again})"
        common.out.result({"type": "started", "id": handle.id, "total": len(items)}, [started])
        return handle

    return run_temporal(
        common, "batch", lambda runtime: stoppable(lambda stop: run(runtime, stop), common.out)
    )


async def _stopped(handle: Any) -> Any:
    """The progress of the batch ``handle`` when it stopped and waits to be resumed (``None``
    when it runs on, ended, or no worker answers now: the follower waits for one)."""
    from ..temporal import stopped_progress

    try:
        return await stopped_progress(handle)
    except Exception:
        return None


@click.command()
@click.argument("workflow_id", metavar="WORKFLOW_ID")
@RECONNECT
@where()
@shared("json", "debug")
@click.pass_obj
def attach(common: Common, workflow_id: str, reconnect: float, cluster: Cluster) -> int:
    """Follow a training or a batch workflow again, by id.

    Following a batch, Ctrl-C (or SIGTERM) stops it, as in ``temporal batch``."""

    async def run(runtime: Any, stop: FollowerStop) -> int:
        client = await cluster.client(runtime)
        handle = client.get_workflow_handle(workflow_id)
        kind = (await handle.describe()).workflow_type
        if kind == "aiportrait.PortraitBatch":
            resume = f"run the `{PROG} batch` command that started it again to resume it"
            return await _follow_batch(handle, cluster, common.out, reconnect, stop, resume)
        if kind == "aiportrait.Train":
            again = cluster.attach_command(workflow_id)
            return await follow_train(handle, common.out, reconnect, cluster.address, again)
        raise UsageError(f"{workflow_id} is a {kind} workflow, not a training or a batch")

    return run_temporal(
        common, "attach", lambda runtime: stoppable(lambda stop: run(runtime, stop), common.out)
    )
