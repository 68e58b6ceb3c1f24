"""``aiportrait temporal ...`` against a real local Temporal server, the emulator, and a worker
in this process: train, batch, attach by id, and ``dev`` (the one-command local cluster); and
its warnings, errors and exit codes, which are every command's."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.importorskip("temporalio")

from aiportrait.cli import main


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``aiportrait temporal ARGV`` in a thread (it runs its own event loop); its stdout."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["temporal", *argv])
    return code, capsys.readouterr().out


def _where(cluster: Any) -> list[str]:
    return [
        "--address",
        cluster.server.address,
        "--task-queue",
        cluster.queue,
        "--store",
        str(cluster.store.root),
    ]


def _references(emu: Any, media: Any, count: int, tag: str) -> list[dict[str, Any]]:
    """``count`` reference rows of a batch file (keys ``r0``...), distinct by ``tag``."""
    url = emu.media_url
    return [
        {
            "kind": "reference",
            "key": f"r{i}",
            "reference": url(media.astronaut[0]),
            "template": f"{url(media.astronaut_template)}?{tag}={i}",
        }
        for i in range(count)
    ]


def _batch_file(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_train_prints_the_id_follows_and_reattaches(
    cluster: Any, temporal_emu: Any, sample_media: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = [temporal_emu.media_url(n) for n in sample_media.astronaut]
    args = ["train", *photos, "--check", "--id", "cli-train-1", *_where(cluster)]
    code, text = await run(capsys, *args)
    assert code == 0, text
    assert text.startswith("workflow cli-train-1 (re-attach: aiportrait temporal attach")
    assert "model " in text.splitlines()[-1] and "training time" in text
    code, again = await run(capsys, "attach", "cli-train-1", *_where(cluster))
    assert code == 0
    assert again.splitlines()[-1] == text.splitlines()[-1]
    code, doc = await run(capsys, "attach", "cli-train-1", *_where(cluster), "--json")
    assert code == 0
    assert json.loads(doc)["id"] == "cli-train-1"  # one document: --json's rule
    assert json.loads(doc)["model_id"] in text
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["temporal", *args])
    assert code == 2  # an id runs once: the training is not charged again
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aiportrait: error: UsageError: workflow cli-train-1 exists already")
    assert temporal_emu.counters.trainings == 1


async def test_batch_shows_outcomes_and_exits_5_when_one_failed(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = _references(temporal_emu, sample_media, 3, "v")
    rows.append(
        {
            "kind": "solo",
            "key": "bad",
            "model_id": "no-such-model",
            "template": temporal_emu.media_url(sample_media.astronaut_template),
        }
    )
    batch = _batch_file(tmp_path / "batch.jsonl", rows)
    code, text = await run(capsys, "batch", str(batch), "--id", "cli-batch-1", *_where(cluster))
    assert code == 5, text
    lines = text.splitlines()
    assert lines[0].startswith("workflow cli-batch-1: 4 items")
    assert sorted(line.split()[1] for line in lines[1:-1]) == ["bad", "r0", "r1", "r2"]
    (failed,) = [line for line in lines if line.startswith("failed")]
    # as ``aiportrait batch`` prints it: the word, the key, the error's class and message
    assert failed.startswith("failed  bad  ModelIdError: HTTP ")
    assert "(request_id=" in failed
    assert all(line.startswith("ok      r") for line in lines[1:-1] if line != failed)
    assert lines[-1] == "batch cli-batch-1: 4 items: 1 failed, 3 succeeded"
    code, again = await run(capsys, "attach", "cli-batch-1", *_where(cluster), "--json")
    docs = [json.loads(line) for line in again.splitlines()]
    assert code == 5
    assert docs[-1] == {"type": "summary", "id": "cli-batch-1", "total": 4, "failed": 1,
                        "succeeded": 3}  # fmt: skip
    assert {d["key"]: d["ok"] for d in docs[:-1]} == {"bad": False, "r0": True, "r1": True,
                                                      "r2": True}  # fmt: skip


async def test_batch_run_twice_without_an_id_follows_the_first_and_charges_each_item_once(
    cluster: Any,
    temporal_emu: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = _references(temporal_emu, sample_media, 3, "twice")
    batch = _batch_file(tmp_path / "twice.jsonl", rows)
    code, first = await run(capsys, "batch", str(batch), *_where(cluster))
    assert code == 0, first
    started = first.splitlines()[0]
    assert started.startswith("workflow batch-") and ": 3 items (re-attach: " in started
    workflow_id = started.split()[1].rstrip(":")
    code, second = await run(capsys, "batch", str(batch), *_where(cluster))
    assert code == 0, second
    assert second.splitlines()[0].startswith(
        f"workflow {workflow_id}: this batch was started before (the same items and options): "
        "following it, nothing is charged again"
    )
    assert sorted(second.splitlines()[1:]) == sorted(first.splitlines()[1:])
    assert temporal_emu.counters.creations == 3  # each item charged once in two runs
    assert temporal_emu.counters.charged_duplicates() == {}
    # the same file in another order is the same batch; --check would charge otherwise
    _batch_file(batch, rows[::-1])
    code, third = await run(capsys, "batch", str(batch), *_where(cluster), "--no-follow")
    assert code == 0 and third.startswith(f"workflow {workflow_id}: this batch was started")
    assert temporal_emu.counters.creations == 3


def test_a_batch_id_comes_from_the_items_and_the_options_that_change_the_charge() -> None:
    from aiportrait.temporal import batch_id

    pairs = [("a", "f1"), ("b", "f2")]
    assert batch_id(pairs) == batch_id(reversed(pairs))
    assert batch_id(pairs) != batch_id(pairs, check=True)
    assert batch_id(pairs) != batch_id([("a", "f1"), ("b", "f3")])
    assert batch_id(pairs) != batch_id([("a", "f2"), ("b", "f1")])


async def test_attach_to_an_unknown_id_is_an_error(
    cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await asyncio.to_thread(main, ["temporal", "attach", "nope", *_where(cluster)])
    assert code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aiportrait: error: RPCError: ")


_CONSOLE = """
import atexit, os, sys
class Torn:  # a global of __main__: deleted in the interpreter's teardown
    def __del__(self, write=os.write):
        write(1, b"teardown\\n")
torn = Torn()
atexit.register(print, "atexit ran")
from aiportrait.cli import console
console(sys.argv[1:])
"""


async def test_the_command_ends_without_the_teardown_after_a_temporal_command(
    cluster: Any, temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    # Temporal's core threads run until the process ends (dropping the core while one of them
    # waits for the GIL hangs the process), and one that wakes in the interpreter's teardown
    # crashes it (SIGSEGV after the summary): after a temporal command, ok or not, the command
    # ends without that teardown, once the atexit handlers ran, its output all there.
    batch = _batch_file(tmp_path / "one.jsonl", _references(temporal_emu, sample_media, 1, "t"))
    summary = "batch core-threads: 1 items: 1 succeeded"
    for argv, code, last in (
        (["temporal", "batch", str(batch), "--id", "core-threads", *_where(cluster)], 0, summary),
        (["temporal", "attach", "core-threads", *_where(cluster)], 0, summary),
        (["temporal", "attach", "no-such-batch", *_where(cluster)], 1, None),
        (["temporal", "--help"], 0, "  worker  Run a worker until SIGINT or SIGTERM."),
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CONSOLE, *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await process.communicate()
        lines = out.decode().splitlines()
        assert process.returncode == code, lines
        if last is None:
            assert lines == ["atexit ran"]
        elif argv[1] == "--help":  # no core was made: the usual exit, teardown and all
            assert lines[-3:] == [last, "atexit ran", "teardown"]
        else:
            assert lines[-2:] == [last, "atexit ran"]


async def _line_with(process: Any, words: str, timeout: float = 180.0) -> str:
    """The next line of ``process``'s stderr (its notes) that holds ``words`` (the bound is
    generous: the machine may be loaded)."""
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), timeout)).decode()
        assert line, f"the process ended before printing {words!r}"
        if words in line:
            return line.rstrip("\n")


async def restart_and_follow(
    temporal_emu: Any, folder: Path, what: str, start: Any
) -> tuple[str, str]:
    """Start a workflow with ``start(client, store, queue)`` (a ``what``: batch or training)
    on a Temporal server of its own (its database in ``folder``), with no worker yet; two
    ``attach`` followers of it through a restart of the server: the one with ``--reconnect 1``
    exits 3 with the exact attach command; the other (600 s) reconnects and, once a worker
    runs, follows it to its end (exit 0). Its id and the output."""
    from aiportrait import temporal as at

    server = at.DevServer(ui=False, port=_free_port(), db_file=folder / "t.db")
    await server.start()
    try:
        store = at.LocalPortraitStore(folder / "store")
        queue = f"restart-{what}"
        handle = await start(await at.connect(server.address), store, queue)
        return handle.id, await _restarted(temporal_emu, server, store, queue, handle.id, what)
    finally:
        await server.stop()


async def _restarted(
    temporal_emu: Any, server: Any, store: Any, queue: str, workflow_id: str, what: str
) -> str:
    from aiportrait import temporal as at

    where = ["--address", server.address, "--store", str(store.root)]

    async def follower(reconnect: str) -> Any:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aiportrait", "temporal", "attach", workflow_id, *where,
            "--reconnect", reconnect,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    stays, gives_up = await follower("600"), await follower("1")
    try:
        for process in (stays, gives_up):  # each is following: no worker answers its queries
            await _line_with(process, "no answer to the progress query")
        await server.stop()
        for process in (stays, gives_up):
            await _line_with(process, "Temporal does not answer (")
        _, err = await asyncio.wait_for(gives_up.communicate(), 180)
        assert gives_up.returncode == 3
        line = [x for x in err.decode().splitlines() if x.startswith("aiportrait: error:")][-1]
        assert line.startswith(f"aiportrait: error: ConnectError: Temporal at {server.address} ")
        assert line.endswith(
            f"the {what} goes on without this follower: follow it again with: aiportrait "
            f"temporal attach {workflow_id} --address {server.address} --store {store.root}"
        )
        await server.start()  # the same port and database: the workflow is still there
        client = await at.connect(server.address)
        async with temporal_emu.session() as session:
            async with at.new_worker(client, session, store, task_queue=queue):
                out, err = await asyncio.wait_for(stays.communicate(), 180)
        assert stays.returncode == 0, err
        return out.decode()
    finally:
        for process in (stays, gives_up):
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.mark.slow
async def test_the_follower_survives_a_temporal_restart_or_exits_3_with_the_attach_command(
    temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    from aiportrait import ReferenceCreateRequest
    from aiportrait import temporal as at

    url = temporal_emu.media_url
    reference, template = url(sample_media.astronaut[0]), url(sample_media.astronaut_template)
    items = [(f"r{i}", ReferenceCreateRequest(reference, f"{template}?again={i}")) for i in (0, 1)]

    async def start(client: Any, store: Any, queue: str) -> Any:
        return await at.start_batch(client, items, store=store, task_queue=queue)

    workflow_id, out = await restart_and_follow(temporal_emu, tmp_path, "batch", start)
    lines = out.splitlines()
    assert lines[-1] == f"batch {workflow_id}: 2 items: 2 succeeded"
    assert sorted(line.split()[1] for line in lines if line.startswith("ok ")) == ["r0", "r1"]
    assert temporal_emu.counters.creations == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_dev_starts_the_cluster_in_one_command(tmp_path: Path) -> None:
    ports = [_free_port() for _ in range(3)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiportrait",
        "temporal",
        "dev",
        "--dir",
        str(tmp_path / "c"),
        "--port",
        str(ports[0]),
        "--ui-port",
        str(ports[1]),
        "--emulator-port",
        str(ports[2]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines = []
        while not lines or lines[-1] != "stop with Ctrl-C":
            line = await asyncio.wait_for(process.stdout.readline(), timeout=180)
            assert line, (await process.stderr.read()).decode()  # type: ignore[union-attr]
            lines.append(line.decode().rstrip("\n"))
        text = "\n".join(lines)
        assert f"Temporal server  127.0.0.1:{ports[0]}" in text
        assert f"Temporal Web UI  http://127.0.0.1:{ports[1]}" in text
        assert f"emulator         http://127.0.0.1:{ports[2]}" in text
        env = tmp_path / "c" / "env.sh"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
        assert "AIPORTRAIT_TOKEN" in env.read_text()
        assert "AIPORTRAIT_TOKEN" not in text  # the token is in env.sh, not on the screen
        sample = [json.loads(x) for x in (tmp_path / "c" / "sample-batch.jsonl").open()]
        assert len(sample) == 22
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{ports[1]}/") as answer:
                assert answer.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    assert code == 0
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):  # the server is gone
        s.connect(("127.0.0.1", ports[0]))
    assert (tmp_path / "c" / "temporal.db").is_file()
    # every history is in it: its user's alone (the -wal and -shm beside it too, while open)
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700
    for name in ("temporal.db", "temporal.log"):
        assert stat.S_IMODE((tmp_path / "c" / name).stat().st_mode) == 0o600


async def test_batch_uploads_local_files_first_and_ships_urls(
    cluster: Any,
    temporal_emu_env: Any,
    sample_media: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    temporal_emu = temporal_emu_env
    folder = sample_media.folder
    rows = [
        {
            "kind": "reference",
            "key": "local",
            "reference": str(folder / sample_media.astronaut[0]),
            "template": str(folder / sample_media.astronaut_template),
        },
        {"kind": "train", "key": "t", "images": str(folder / "astronaut_*.jpg")},
    ]
    batch = tmp_path / "local.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, text = await run(capsys, "batch", str(batch), *_where(cluster))
    assert code == 0, text
    assert text.splitlines()[-1].endswith("2 items: 2 succeeded")
    # uploaded by the starter, each distinct image once: the 5 photos (the sample template is
    # the same image as the first photo, and the reference is the first photo)
    assert temporal_emu.bucket.puts == 5
    assert temporal_emu.counters.creations == 1 and temporal_emu.counters.trainings == 1

    missing = tmp_path / "bad.jsonl"
    missing.write_text(json.dumps({"kind": "train", "key": "x", "images": "nope/*.jpg"}) + "\n")
    code, _ = await run(capsys, "batch", str(missing), *_where(cluster))
    assert code == 2
    assert temporal_emu.counters.trainings == 1  # nothing more was sent


# -- warnings, errors and exit codes: every command's ----------------------------------------


def _closed_address() -> str:
    return f"127.0.0.1:{_free_port()}"


def test_a_batch_file_warning_is_one_line_once_then_no_temporal_is_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = {"kind": "solo", "model_id": "m", "template": "http://x/t.jpg"}
    rows = [{**row, "key": f"k{i}", "config": {"brand_new": 1}} for i in range(30_000)]
    batch = tmp_path / "big.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    address = _closed_address()
    assert main(["temporal", "batch", str(batch), "--address", address]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    warning, error = captured.err.splitlines()
    assert warning == (
        f"aiportrait: warning: ConfigWarning: {batch}: lines 1, 2, 3, 4, 5 and 29995 more: "
        "configure key 'brand_new' is not documented; it is sent unchanged"
    )
    assert error.startswith(f"aiportrait: error: ConnectError: cannot reach Temporal at {address}")


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["train", "http://x/a.jpg"], 3, "ConnectError: cannot reach Temporal at "),
        (["attach", "some-id"], 3, "ConnectError: cannot reach Temporal at "),
        (["train", "not a url"], 2, "InvalidArgument: "),
        (["batch", "missing.jsonl"], 2, "UsageError: missing.jsonl: cannot read"),
        (["train"], 2, "UsageError: Missing argument 'PHOTO_URL...'"),
        (["worker", "--concurrency", "0"], 2, "UsageError: Invalid value for '--concurrency'"),
        (["attach", "x", "--encryption-key", "c2VjcmV0"], 2, "InvalidArgument: an encryption key"),
    ],
)
def test_temporal_errors_are_one_line_with_the_class_and_the_exit_code(
    args: list[str], code: int, start: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["temporal", *args, "--address", _closed_address()]) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "warning: " not in line]
    assert lines == [lines[0]]
    assert lines[0].startswith(f"aiportrait: error: {start}")
    assert "c2VjcmV0" not in captured.err + captured.out  # a key is never shown
