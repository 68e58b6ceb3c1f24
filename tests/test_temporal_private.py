"""What Temporal keeps of a batch of local photos: no usable presigned URL anywhere (workflow
and activity inputs and results, failure details, the store's batch files), the worker
presigning each uploaded photo just before the call; and with ``--encryption-key``, only
ciphertext (``temporal workflow show``).

Against a real local Temporal server, the emulator (whose bucket takes only signed GETs) and
workers in this process."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")

from temporalio.api.common.v1 import Payload

from aiportrait import temporal as at
from aiportrait.cli import main
from aiportrait.uploads import OSSUploader

SIGNED = "x-oss-signature"
KEY = base64.b64encode(bytes(range(32))).decode()


def _local_batch(tmp_path: Path, media: Any, emu: Any = None) -> Path:
    """A batch file of local photos: a training and a reference create; with ``emu``, a
    training whose check fails (four local photos and the emulator's two-face photo)."""
    folder = media.folder
    rows: list[dict[str, Any]] = [
        {
            "kind": "reference",
            "key": "portrait",
            "reference": str(folder / media.astronaut[0]),
            "template": str(folder / media.astronaut_template),
        },
        {"kind": "train", "key": "model", "images": str(folder / "astronaut_*.jpg")},
    ]
    if emu is not None:
        photos = [str(folder / n) for n in media.astronaut[:4]]
        rows.append(
            {
                "kind": "train",
                "key": "two",
                "images": [*photos, emu.media_url(media.group_template)],
            }
        )
    path = tmp_path / "local.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["temporal", *argv])
    return code, capsys.readouterr().out


def _payloads(message: Any) -> Iterator[Payload]:
    """Every payload inside a protobuf message (a history event)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if hasattr(value, "ListFields"):
            yield from _payloads(value)
            continue
        for item in value.values() if hasattr(value, "values") else value:  # repeated, map
            if hasattr(item, "ListFields"):
                yield from _payloads(item)


async def _histories(client: Any, workflow_id: str) -> list[Any]:
    """The history of every run of ``workflow_id`` and of its child workflows."""
    out = []
    handle = client.get_workflow_handle(workflow_id)
    history = await handle.fetch_history()
    out.append(history)
    for event in history.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            out += await _histories(client, child)
    return out


def _texts(histories: list[Any]) -> str:
    """Every history as JSON, and every payload's data, as one text to search."""
    parts = []
    for history in histories:
        parts.append(history.to_json())
        for event in history.events:
            parts += [p.data.decode("utf-8", "replace") for p in _payloads(event)]
    return "\n".join(parts)


def _store_text(root: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()
    )


async def test_a_batch_of_local_photos_leaves_no_presigned_url_in_temporal(
    cluster: Any, temporal_emu_env: Any, sample_media: Any, tmp_path: Path, capsys: Any
) -> None:
    temporal_emu = temporal_emu_env
    where = ["--address", cluster.server.address, "--task-queue", cluster.queue]
    where += ["--store", str(cluster.store.root), "--id", f"private-{uuid.uuid4().hex[:8]}"]
    batch = _local_batch(tmp_path, sample_media, temporal_emu)
    code, text = await _cli(capsys, "batch", str(batch), "--check", *where)
    assert code == 5, text  # the two-face training failed its check
    assert text.splitlines()[-1].endswith("3 items: 1 failed, 2 succeeded")
    # the emulator's bucket serves signed GETs only: the worker presigned what it sent
    assert temporal_emu.counters.trainings == 1 and temporal_emu.counters.creations == 1
    (failed,) = [line for line in text.splitlines() if " two " in f" {line} "]
    assert "FACE_COUNT" in failed and SIGNED not in failed
    wid = text.split()[1].rstrip(":")
    histories = await _histories(cluster.client, wid)
    assert len(histories) == 3  # the batch and its trainings
    found = _texts(histories)
    assert "aiportrait-local/aiportrait/" in found  # where the photos are: that stays
    assert "FACE_COUNT" in found  # the check's failure, its photos without their query
    assert SIGNED not in found and "x-oss-credential" not in found
    assert SIGNED not in _store_text(cluster.store.root)  # the item and outcome pages


async def test_encrypted_history_is_ciphertext_and_the_batch_runs(
    temporal_server: Any,
    temporal_emu_env: Any,
    sample_media: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    temporal_emu = temporal_emu_env
    client = await at.connect(temporal_server.address, data_converter=at.encrypted_converter(KEY))
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIPORTRAIT_TEMPORAL_KEY", KEY)  # the starter's key, as a user sets it
    where = ["--address", temporal_server.address, "--task-queue", queue, "--store"]
    where += [str(store.root), "--id", f"encrypted-{uuid.uuid4().hex[:8]}"]
    batch = str(_local_batch(tmp_path, sample_media))
    async with temporal_emu.session() as session, OSSUploader.for_emulator(temporal_emu) as up:
        async with at.new_worker(client, session, store, task_queue=queue, uploader=up):
            code, text = await _cli(capsys, "batch", batch, *where)
    assert code == 0, text
    assert text.splitlines()[-1].endswith("2 items: 2 succeeded")
    wid = text.split()[1].rstrip(":")

    # what the server stores, read without the key: every payload encrypted
    plain = await at.connect(temporal_server.address)
    histories = await _histories(plain, wid)
    payloads = [p for h in histories for e in h.events for p in _payloads(e)]
    sealed = [p for p in payloads if p.metadata["encoding"] == b"binary/encrypted"]
    clear = [p.data for p in payloads if p.metadata["encoding"] != b"binary/encrypted"]
    assert len(sealed) > 10
    # in clear: only Temporal's own (the patch markers' ids, the search attribute of them)
    assert all(b"aiportrait." in data and b"http" not in data for data in clear), clear
    # ``temporal workflow show``, as an operator would read it
    shown = "\n".join(_show(temporal_server.address, h.workflow_id) for h in histories)
    assert base64.b64encode(b"binary/encrypted").decode() in shown
    assert SIGNED not in shown and "aiportrait-local" not in shown
    decoded = "\n".join(base64.b64decode(s).decode("latin-1") for s in _strings(shown))
    assert SIGNED not in decoded and "aiportrait-local" not in decoded
    assert "json/aiportrait" not in decoded  # the library's payloads are all ciphertext


def _show(address: str, workflow_id: str) -> str:
    cli = at.find_temporal_cli()
    args = [cli, "workflow", "show", "--workflow-id", workflow_id, "--address", address]
    done = subprocess.run(
        [*args, "--output", "json"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def _strings(text: str) -> Iterator[str]:
    """Every JSON string value in ``text`` that is base64 (payload data and metadata)."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)
        elif isinstance(value, str) and len(value) % 4 == 0 and value:
            try:
                base64.b64decode(value, validate=True)
            except ValueError:
                return
            yield value

    decoder, pos = json.JSONDecoder(), 0
    while text[pos:].strip():  # one document per event, or one for all
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        document, pos = decoder.raw_decode(text, pos)
        yield from walk(document)
