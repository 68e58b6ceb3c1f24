"""Bad batch files of any shape, through the command line (``main([...])``), for both batch
commands: each exits 2 with one error line naming the file and the line (and the column where it
helps), its text escaped, and nothing reaches the emulator (its counters) or the output folder.
A seeded loop over random byte strings holds the same: exit 2, or a clean run; never a crash.
"""

from __future__ import annotations

import asyncio
import codecs
import importlib.util
import json
import os
import random
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from aiportrait import cli
from aiportrait.cli import main, read_plan
from aiportrait.emulator import Emulator
from aiportrait.errors import ConfigWarning
from aiportrait.samples import sample_photos

TOKEN = "batch-files-token-0123456789"
SOLO = '{"kind": "solo", "model_id": "m", "template": "http://127.0.0.1:9/t.jpg"'
"""A good row's start: close it with ``}`` or add fields."""
CSV_HEAD = "kind,model_id,template,config\n"
REF = '{"kind": "reference", "reference": "http://x/r", "template": "http://x/t"'
"""A good reference row's start."""

needs_temporal = pytest.mark.skipif(
    importlib.util.find_spec("temporalio") is None, reason="needs aiportrait[temporal]"
)
COMMANDS = [
    pytest.param(["batch"], id="batch"),
    pytest.param(["temporal", "batch"], id="temporal-batch", marks=needs_temporal),
]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with path.open("wb") as file:
            file.truncate(size)

    return make


# (file name, its content or a function that makes it, what the error line says)
CASES: list[tuple[str, str | bytes | Callable[[Path], None], str]] = [
    # nesting
    ("deep.jsonl", f'{SOLO}, "config": {{"x": {_nested(100_000)}}}}}\n', "line 1: nested more"),
    ("deep33.jsonl", f'{SOLO}, "config": {{"x": {_nested(31)}}}}}\n', "nested more than 32"),
    (
        "deep.csv",
        f'{CSV_HEAD}solo,m,http://x/t,"{{""x"": {_nested(5000)}}}"\n',
        "line 2: config: nested",
    ),
    ("deep-list.jsonl", f'{{"kind": "train", "images": {_nested(3000)}}}\n', "line 1: nested"),
    # size
    (
        "long-line.jsonl",
        f'{SOLO}}}\n{SOLO}, "prompt": "{"p" * 1_100_000}"}}\n',
        "line 2: longer than 1 MiB",
    ),
    ("huge.jsonl", _sparse(2 * 1024**3), "2147483648 bytes, over the 64 MiB"),
    (
        "long-key.jsonl",
        f'{SOLO}, "key": "{"k" * 257}"}}\n',
        "line 1: key: 257 characters, over the 256",
    ),
    (
        "long-cell.csv",
        f'{CSV_HEAD}solo,m,"http://x/{"t" * 200_000}",\n',
        "line 2: not CSV (field larger",
    ),
    ("unclosed.csv", f'{CSV_HEAD}solo,"m,x\n' + "x,y\n" * 40_000, "not CSV (field larger"),
    (
        "many-digits.jsonl",
        f'{SOLO}, "config": {{"x": {"9" * 5000}}}}}\n',
        "an integer of 5000 digits",
    ),
    # encoding
    (
        "latin1.csv",
        (CSV_HEAD + "solo,m,http://x/t,\ncafé\n").encode("latin-1"),
        "line 3, column 4: not UTF-8 (byte 0xe9)",
    ),
    ("utf16.jsonl", (SOLO + "}\n").encode("utf-16"), "line 1: UTF-16 text: save the file as UTF-8"),
    ("utf32.csv", (CSV_HEAD + "solo,m,http://x/t,\n").encode("utf-32"), "line 1: UTF-32 text"),
    (
        "bom-inside.jsonl",
        f"{SOLO}}}\n\ufeff{SOLO}}}\n",
        "line 2, column 1: a byte order mark inside",
    ),
    ("old-mac.csv", "kind,model_id,template\rsolo,m,http://x/t\r", "line 1: not CSV (a carriage"),
    (
        "nul.jsonl",
        f'{SOLO}}}\n{SOLO}, "prompt": "a\0b"}}\n'.encode(),
        "line 2, column 87: a NUL byte",
    ),
    ("garbage.bin", bytes(range(256)) * 4, "line 1, column 1: a NUL byte"),
    ("utf16-no-bom.csv", CSV_HEAD.encode("utf-16-le"), "line 1, column 2: a NUL byte"),
    ("escape.jsonl", '{"kind": "so\\u001b[31mlo\\n"}\n', r"got 'so\x1b[31mlo'"),
    # types, field by field
    ("kind-list.jsonl", '{"kind": ["solo"]}\n', "kind: expected a string, got ['solo']"),
    ("kind-number.jsonl", '{"kind": 7}\n', "kind must be one of"),
    ("kind-object.jsonl", '{"kind": {"a": 1}}\n', "kind: expected a string"),
    ("key-object.jsonl", f'{SOLO}, "key": {{"a": 1}}}}\n', "key: expected a string"),
    ("key-bool.jsonl", f'{SOLO}, "key": true}}\n', "key: expected a string, got True"),
    ("key-surrogate.jsonl", f'{SOLO}, "key": "\\ud800"}}\n', "line 1: key '\\ud800' holds text"),
    (
        "model-list.jsonl",
        '{"kind": "solo", "model_id": ["m"], "template": "http://x/t"}\n',
        "model_id: expected a string",
    ),
    ("template-number.jsonl", '{"kind": "solo", "model_id": "m", "template": 5}\n', "template"),
    (
        "images-number.jsonl",
        '{"kind": "train", "images": 5}\n',
        "images: expected a list of strings",
    ),
    (
        "images-mixed.jsonl",
        '{"kind": "train", "images": ["http://x/a", 5]}\n',
        "images: expected a list",
    ),
    (
        "images-object.jsonl",
        '{"kind": "train", "images": {"a": "http://x/a"}}\n',
        "images: expected a list",
    ),
    (
        "model-ids-number.jsonl",
        '{"kind": "group", "model_ids": 3, "template": "http://x/t"}\n',
        "model_ids: expected",
    ),
    ("sdxl-list.jsonl", f'{SOLO}, "sdxl": [true]}}\n', "sdxl: expected true or false, got [True]"),
    (
        "sdxl-word.csv",
        "kind,model_id,template,sdxl\nsolo,m,http://x/t,maybe\n",
        "line 2: sdxl: expected true or false",
    ),
    (
        "force-number.jsonl",
        '{"kind": "train", "images": ["http://x/a"], "force": 2}\n',
        "force: expected true or false",
    ),
    (
        "weight-bool.jsonl",
        f'{REF}, "ipa_weight": true}}\n',
        "ipa_weight: expected a number, got True",
    ),
    (
        "weight-nan.csv",
        "kind,reference,template,ipa_weight\nreference,http://x/r,http://x/t,nan\n",
        "ipa_weight: expected a number, got 'nan'",
    ),
    ("weight-list.jsonl", f'{REF}, "ipa_weight": [1]}}\n', "ipa_weight: expected a number"),
    (
        "reference-list.jsonl",
        '{"kind": "reference", "reference": ["http://x/r"], "template": "http://x/t"}\n',
        "reference: expected a string",
    ),
    (
        "prompt-object.jsonl",
        '{"kind": "prompt", "model_id": "m", "prompt": {"text": "p"}}\n',
        "prompt: expected a string",
    ),
    (
        "scene-id-list.jsonl",
        '{"kind": "prompt", "model_id": "m", "prompt": "p", "scene_id": [1]}\n',
        "scene_id: expected a string",
    ),
    (
        "scene-lora-word.jsonl",
        '{"kind": "train", "images": ["http://x/a"], "scene_lora": "maybe"}\n',
        "scene_lora: expected true or false, got 'maybe'",
    ),
    (
        "scene-prompts-number.jsonl",
        '{"kind": "train", "images": ["http://x/a"], "scene_prompts": 3}\n',
        "scene_prompts: expected a list of strings",
    ),
    ("config-list.jsonl", f'{SOLO}, "config": [1]}}\n', "config: expected a JSON object"),
    (
        "config-text.csv",
        f"{CSV_HEAD}solo,m,http://x/t,not json\n",
        "line 2: config: not JSON at column 1",
    ),
    (
        "config-value.jsonl",
        f'{SOLO}, "config": {{"sharp_ratio": "{"x" * 10_000}"}}}}\n',
        "sharp_ratio=",
    ),
    ("config-nan.jsonl", f'{SOLO}, "config": {{"x": NaN}}}}\n', "NaN is not a number JSON allows"),
    ("config-infinite.jsonl", f'{SOLO}, "config": {{"x": -1e999}}}}\n', "-1e999 is out of range"),
    (
        "url-brackets.jsonl",
        '{"kind": "solo", "model_id": "m", "template": "http://[x/t"}\n',
        "Invalid IPv6 URL",
    ),
    ("prompt-null-kind.jsonl", '{"kind": null, "prompt": "p"}\n', "got 'nothing'"),
    ("row-list.jsonl", f"{SOLO}}}\n[1, 2]\n", "line 2: expected a JSON object"),
    ("row-string.jsonl", f'{SOLO}}}\n"solo"\n', "line 2: expected a JSON object"),
    # repeats
    ("field-twice.jsonl", f'{SOLO}, "model_id": "n"}}\n', 'field "model_id" is given twice'),
    (
        "config-field-twice.jsonl",
        f'{SOLO}, "config": {{"x": 1, "x": 2}}}}\n',
        'field "x" is given twice',
    ),
    (
        "column-twice.csv",
        "kind,model_id,template,model_id\nsolo,m,http://x/t,n\n",
        "line 1: column 'model_id' is given twice",
    ),
    (
        "key-twice.jsonl",
        f'{SOLO}, "key": "a"}}\n{SOLO}, "key": "a"}}\n',
        "line 2: key 'a' is used twice",
    ),
    (
        "unknown-fields.jsonl",
        "{" + ", ".join(f'"f{i}": 1' for i in range(5000)) + "}\n",
        "and 4995 more",
    ),
    # nothing, or not a file
    ("empty.jsonl", "", "no items"),
    ("blank.csv", "\n \n\t\n", "no items"),
    ("header-only.csv", CSV_HEAD, "no items"),
    ("dir.jsonl", lambda p: p.mkdir(), "cannot read: a directory"),
    ("fifo.jsonl", _fifo, "cannot read: not a regular file"),
    ("missing.jsonl", lambda p: None, "cannot read: No such file"),
]


@pytest.fixture
async def emu(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(data_dir=tmp_path / "emu", token=TOKEN) as emulator:
        yield emulator


def _args(command: list[str], path: Path, emu: Emulator, tmp_path: Path) -> list[str]:
    """The command on ``path``, with the emulator's credentials. ``temporal batch`` is given
    no Temporal (port 9): were the file accepted, the start would fail (exit 3)."""
    if command == ["batch"]:
        where = ["--out", str(tmp_path / "out")]
    else:
        where = ["--address", "127.0.0.1:9", "--store", str(tmp_path / "store")]
    service = ["--host", emu.url, "--app-id", emu.app_id, "--token", TOKEN]
    return [*command, str(path), *where, *service]


def _sent(emu: Emulator) -> int:
    """Requests the emulator saw: the service's and its bucket's (uploads)."""
    bucket = emu.bucket
    return emu.counters.requests + bucket.puts + bucket.heads + bucket.gets + bucket.refused


def _make(path: Path, content: str | bytes | Callable[[Path], None]) -> None:
    if isinstance(content, str):
        path.write_bytes(content.encode())
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("name", "content", "expected"), CASES)
async def test_a_bad_batch_file_exits_2_with_the_file_and_line_and_sends_nothing(
    command: list[str],
    name: str,
    content: str | bytes | Callable[[Path], None],
    expected: str,
    emu: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if name == "fifo.jsonl" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / name
    _make(path, content)
    code = await asyncio.to_thread(main, _args(command, path, emu, tmp_path))
    captured = capsys.readouterr()
    assert code == cli.EXIT_USAGE, captured.err
    (line,) = captured.err.splitlines()  # one line: warnings too are given only for good files
    assert line.startswith(f"aiportrait: error: UsageError: {path}: ")
    assert expected in line
    assert line.isprintable() and len(line) < 400  # escaped, and a value quoted only in part
    assert captured.out == ""
    assert _sent(emu) == 0
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def _item(size: int, key: str = "big") -> str:
    """A solo row whose config takes about ``size`` bytes."""
    return json.dumps(
        {
            "kind": "solo",
            "key": key,
            "model_id": "m",
            "template": "http://127.0.0.1:9/t.jpg",
            "config": {"extra_notes": "n" * size},
        }
    )


@needs_temporal
async def test_temporal_batch_refuses_an_item_too_large_for_temporal_before_anything_starts(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(f"{_item(100)}\n{_item(600_000, 'large')}\n")  # a line under 1 MiB
    code = await asyncio.to_thread(main, _args(["temporal", "batch"], path, emu, tmp_path))
    (line,) = capsys.readouterr().err.splitlines()
    assert code == cli.EXIT_USAGE
    assert line.startswith(f"aiportrait: error: UsageError: {path}: line 2: item 'large' takes 600")
    assert "over the 256 KiB an item may take" in line
    assert _sent(emu) == 0 and not (tmp_path / "store").exists()
    path.write_text(f"{_item(200_000)}\n")
    code = await asyncio.to_thread(main, _args(["temporal", "batch"], path, emu, tmp_path))
    assert code == cli.EXIT_TRANSPORT  # read, then Temporal does not answer on port 9
    assert "ConnectError: cannot reach Temporal" in capsys.readouterr().err


@needs_temporal
async def test_temporal_batch_counts_a_local_photo_as_the_url_it_will_be_uploaded_to(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = sample_photos(tmp_path / "me").astronaut[0]  # some 20 characters as a path
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"kind": "train", "images": [f"me/{photo}"] * 300}) + "\n")
    code = await asyncio.to_thread(main, _args(["temporal", "batch"], path, emu, tmp_path))
    (line,) = capsys.readouterr().err.splitlines()
    assert code == cli.EXIT_USAGE
    assert f"{path}: line 1: item 'row1' takes 3" in line  # 300 uploads of 1 KiB each
    assert _sent(emu) == 0 and not (tmp_path / "store").exists()


def test_batch_takes_an_item_of_900_kb_and_a_key_of_256_characters(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(f"{_item(900_000, 'k' * 256)}\n")  # no Temporal payload to fit in
    with pytest.warns(ConfigWarning, match="extra_notes"):
        plan = read_plan(path)
    assert list(plan.items) == ["k" * 256]


def test_a_huge_line_or_file_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    with path.open("w") as file:  # 40 MB, under the file bound: the line bound refuses it
        file.write(f"{SOLO}}}\n")
        file.write(f'{SOLO}, "prompt": "')
        for _ in range(40):
            file.write("p" * 1_000_000)
        file.write('"}\n')
    tracemalloc.start()
    try:
        with pytest.raises(cli.UsageError, match="line 2: longer than 1 MiB"):
            read_plan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024**2
    _sparse(2 * 1024**3)(path)
    with pytest.raises(cli.UsageError, match="over the 64 MiB a batch file may be"):
        read_plan(path)


def test_a_spreadsheets_utf8_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"kind,model_id,template\nsolo,m,http://x/t\n")
    assert len(read_plan(path)) == 1


_SEEDS = [
    (".jsonl", f"{SOLO}}}\n"),
    (".txt", f'{SOLO}, "key": "a", "config": {{"lora_weights": 0.5, "x": [1, {{"y": null}}]}}}}\n'),
    (".csv", 'kind,key,model_id,template,config\nsolo,a,m,http://127.0.0.1:9/t.jpg,"{""x"": 1}"\n'),
    (".jsonl", '{"kind": "prompt", "model_id": "m", "prompt": "p", "sdxl": "yes"}\n'),
]
_BYTES = b'{}[]",:\\\n\r\x00\xef\xbb\xbf\xff|0-e. a'


def _random_file(rng: random.Random) -> tuple[str, bytes]:
    """A name's suffix and random bytes, or a good file with a few random edits."""
    if rng.random() < 0.2:
        return rng.choice([".jsonl", ".csv", ".bin"]), rng.randbytes(rng.randrange(300))
    suffix, text = rng.choice(_SEEDS)
    data = bytearray(text.encode())
    for _ in range(rng.randint(0, 3)):
        at = rng.randrange(len(data))
        edit = rng.choice([bytes([rng.randrange(256)]), bytes([rng.choice(_BYTES)]) * 30, b""])
        data[at : at + rng.randint(0, 1)] = edit  # insert, replace or delete
    return suffix, bytes(data)


@pytest.mark.parametrize("command", COMMANDS)
async def test_random_bytes_exit_2_or_run_never_crash(
    command: list[str], emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20)  # the same files every run
    refused = 0
    for number in range(120):
        suffix, data = _random_file(rng)
        path = tmp_path / f"f{number}{suffix}"
        path.write_bytes(data)
        before = _sent(emu)
        code = await asyncio.to_thread(main, _args(command, path, emu, tmp_path))
        err = capsys.readouterr().err
        assert "Traceback" not in err and code != cli.EXIT_FAILED, (path.read_bytes(), err)
        if code == cli.EXIT_USAGE:
            refused += 1
            assert err.startswith(f"aiportrait: error: UsageError: {path}: "), err
            assert _sent(emu) == before  # nothing sent
        else:  # a good file: it ran (items failed: no such model), or Temporal is not there
            assert code in (cli.EXIT_BATCH_FAILED, cli.EXIT_TRANSPORT), err
    assert 60 < refused < 120  # mostly bad files, as the mix intends, and some good ones
    assert (emu.counters.requests > 0) == (command == ["batch"])  # the good ones ran


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX files (FIFOs, sparse files)")
