"""``aiportrait temporal batch`` and ``attach``: a batch workflow started from a batch file
and followed to its summary, and a training or batch followed again by id."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click

from .._batches.keys import read_item
from .._local.resolve import resolve
from .._local.upload import as_upload
from ..errors import ConfigWarning, ConnectError, PhotoCountWarning
from ._batchfile import Item, read_plan
from ._dryrun import print_temporal_dry_run
from ._exit import EXIT_OK, UsageError
from ._options import Common, shared
from ._output import Output, said_before
from ._temporal import CHECK, NO_FOLLOW, PROG, RECONNECT, Cluster, run_temporal, where
from ._temporalfollow import existing, follow_batch_lines, follow_train

__all__ = ["attach", "batch_"]


async def _follow_batch(handle: Any, cluster: Cluster, out: Output, reconnect: float) -> int:
    again = cluster.attach_command(handle.id)
    store = cluster.portraits()
    return await follow_batch_lines(handle, store, out, reconnect, cluster.address, again)


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
@click.option(
    "--dry-run", is_flag=True,
    help="say what would be charged now; upload, start and charge nothing",
)  # fmt: skip
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
    reconnect: float,
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

    --dry-run reads and checks the file (the photo check on this machine included) and says
    what a run would charge now and what Temporal holds of the batch already; exit 0 (5 when
    an item would be refused) even when Temporal does not answer."""
    from ..temporal import batch_id, start_batch

    async def follow(handle: Any) -> int:
        return EXIT_OK if no_follow else await _follow_batch(handle, cluster, common.out, reconnect)

    async def run(runtime: Any) -> int:
        plan = read_plan(file, _fits)  # its warnings are given now, with the file and lines
        with said_before(ConfigWarning, PhotoCountWarning):
            known = {k: await read_item(v) for k, v in plan.items.items()}
            wid = workflow_id or batch_id(((k, fp) for k, (fp, _) in known.items()), check=check)
            if dry_run:
                state, unasked = await _look(cluster, runtime, wid)
                given = workflow_id is not None
                out = common.out
                return await print_temporal_dry_run(
                    out, file, plan, None, wid, given, state, unasked
                )
            client = await cluster.client(runtime)
            if workflow_id is None and (handle := await existing(client, wid)) is not None:
                again = f"re-attach: {PROG} attach {wid}"
                line = (
                    f"workflow {wid}: this batch was started before (the same items and "
                    f"options): following it, nothing is charged again; to run it again, "
                    f"give a new --id ({again})"
                )
                common.out.result({"type": "attached", "id": wid, "total": len(plan)}, [line])
                return await follow(handle)
            async with common.uploading(plan.local) as uploader:
                upload = as_upload(uploader)
                items = [(k, await resolve(v, upload, known[k][1])) for k, v in plan.items.items()]
            handle = await cluster.start(
                client, start_batch, items, wid, store=cluster.portraits(), limit=limit,
                check=check,
            )  # fmt: skip
            again = f"re-attach: {PROG} attach {handle.id}"
            started = f"workflow {handle.id}: {len(items)} items ({again})"
            common.out.result({"type": "started", "id": handle.id, "total": len(items)}, [started])
            return await follow(handle)

    return run_temporal(common, "batch", run)


@click.command()
@click.argument("workflow_id", metavar="WORKFLOW_ID")
@RECONNECT
@where()
@shared("json", "debug")
@click.pass_obj
def attach(common: Common, workflow_id: str, reconnect: float, cluster: Cluster) -> int:
    """Follow a training or a batch workflow again, by id."""

    async def run(runtime: Any) -> int:
        client = await cluster.client(runtime)
        handle = client.get_workflow_handle(workflow_id)
        kind = (await handle.describe()).workflow_type
        if kind == "aiportrait.PortraitBatch":
            return await _follow_batch(handle, cluster, common.out, reconnect)
        if kind == "aiportrait.Train":
            again = cluster.attach_command(workflow_id)
            return await follow_train(handle, common.out, reconnect, cluster.address, again)
        raise UsageError(f"{workflow_id} is a {kind} workflow, not a training or a batch")

    return run_temporal(common, "attach", run)
