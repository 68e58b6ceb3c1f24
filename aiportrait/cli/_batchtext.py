"""A batch file's rows, read within bounds: JSON Lines or CSV, each row with its line number.

Whatever the file holds, reading it either gives rows or raises :class:`UsageError` saying
where (``line N``, ``column C`` where it helps) -- never another exception, and never after
reading more than :data:`MAX_FILE_BYTES`: the file is read a line at a time.

- The file must be a regular file (a directory, a FIFO or a device is refused before it is
  read: a FIFO with no writer would block for ever) of at most :data:`MAX_FILE_BYTES`, with
  lines of at most :data:`MAX_LINE_BYTES` and at most :data:`MAX_ITEMS` rows.
- It is UTF-8 text: a UTF-8 byte order mark at its start is skipped (spreadsheets write one);
  a UTF-16 or UTF-32 file, a byte order mark further in, a NUL byte or bytes that are not
  UTF-8 are refused.
- A JSON value (a JSON Lines row, a CSV ``config`` cell) has each field once, finite numbers
  (no ``NaN``, ``Infinity`` or ``1e999``), integers of at most :data:`MAX_DIGITS` digits and
  at most :data:`MAX_DEPTH` levels of nesting.
- A CSV header names each column once.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from .._args import short
from ._exit import UsageError

__all__ = [
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_FILE_BYTES",
    "MAX_ITEMS",
    "MAX_LINE_BYTES",
    "json_value",
    "read_rows",
]

MAX_FILE_BYTES: Final = 64 * 1024 * 1024
"""The largest batch file read, bytes: 64 MiB holds :data:`MAX_ITEMS` rows of 600 bytes."""
MAX_LINE_BYTES: Final = 1024 * 1024
"""The longest line, bytes: a row of 20 signed photo URLs and a large config is some 10 KB."""
MAX_ITEMS: Final = 100_000
"""The most rows of one file: a parsed row takes about 600 bytes of memory and more, and the
file is checked whole before anything is sent; split a larger batch into several files."""
MAX_DIGITS: Final = 20
"""The most digits of a JSON integer (a 64-bit integer has up to 19 or 20)."""
MAX_DEPTH: Final = 32
"""The deepest nesting of a JSON row (the row itself is level 1): a config is two levels."""

_OTHER_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def _where(number: int, column: int | None = None) -> str:
    return f"line {number}" if column is None else f"line {number}, column {column}"


def _open(path: Path) -> IO[bytes]:
    """``path`` open for reading, once known to be a regular file no larger than the bound.

    Opened without blocking, so that a FIFO is refused, not waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UsageError(f"cannot read: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UsageError(f"cannot read: {what} (give a batch file)")
    if info.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise UsageError(
            f"{info.st_size} bytes, over the {MAX_FILE_BYTES // 2**20} MiB a batch file may be"
        )
    return os.fdopen(fd, "rb")


def _decoded(raw: bytes, number: int) -> str:
    """One line's bytes as text: UTF-8, no NUL, no byte order mark."""
    nul = raw.find(b"\0")
    if nul >= 0:
        column = len(raw[:nul].decode("utf-8", "replace")) + 1
        raise UsageError(f"{_where(number, column)}: a NUL byte: not a text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
        byte = raw[exc.start]
        raise UsageError(f"{_where(number, column)}: not UTF-8 (byte 0x{byte:02x})") from None
    bom = text.find("\ufeff")
    if bom >= 0:
        raise UsageError(f"{_where(number, bom + 1)}: a byte order mark inside the file")
    return text


def _lines(file: IO[bytes]) -> Iterator[tuple[int, str]]:
    """The file's lines (with their line breaks) and their numbers, from 1; within bounds."""
    total = 0
    for number in itertools.count(1):
        raw = file.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        total += len(raw)
        if len(raw) > MAX_LINE_BYTES:
            raise UsageError(f"{_where(number)}: longer than {MAX_LINE_BYTES // 2**20} MiB")
        if total > MAX_FILE_BYTES:  # it grew while it was read
            raise UsageError(
                f"{_where(number)}: over the {MAX_FILE_BYTES // 2**20} MiB a batch file may be"
            )
        if number == 1:
            for bom, name in _OTHER_BOMS:
                if raw.startswith(bom):
                    raise UsageError(f"{_where(1)}: {name} text: save the file as UTF-8")
            raw = raw.removeprefix(codecs.BOM_UTF8)
        yield number, _decoded(raw, number)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits, over {MAX_DIGITS}")
    return int(text)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON allows")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"field {json.dumps(key)} is given twice")
        out[key] = value
    return out


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``[]`` 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def json_value(text: str, depth: int = MAX_DEPTH) -> Any:
    """``text`` as JSON (the one reader of a row and of a ``config`` cell): raises
    :class:`UsageError` unless each field is given once, numbers are finite and it nests at
    most ``depth`` levels. A column in the message counts from the text's start."""
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=_integer,
        )
    except json.JSONDecodeError as exc:
        raise UsageError(f"not JSON at column {exc.colno} ({exc.msg})") from None
    except RecursionError:
        raise UsageError(f"nested more than {depth} levels deep") from None
    except ValueError as exc:  # a field twice, NaN, 1e999, an integer of 5,000 digits
        raise UsageError(f"not JSON that can be used ({exc})") from None
    if _depth(value) > depth:
        raise UsageError(f"nested more than {depth} levels deep")
    return value


def _jsonl_rows(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json_value(line)
        except UsageError as exc:
            raise UsageError(f"{_where(number)}: {exc}") from None
        if not isinstance(row, dict):
            raise UsageError(f"{_where(number)}: expected a JSON object")
        yield number, row


def _csv_rows(lines: Iterator[tuple[int, str]], first: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV file whose header is on line ``first`` (the lines from there on)."""
    reader = csv.reader(line for _, line in lines)
    try:
        header = [cell.strip() for cell in next(reader)]
        twice = sorted(c for c, n in Counter(header).items() if n > 1 and c)
        if twice:
            raise UsageError(f"{_where(first)}: column {short(twice[0], 40)} is given twice")
        for cells in reader:
            number = first - 1 + reader.line_num
            if not cells:
                continue
            if len(cells) > len(header):
                raise UsageError(f"{_where(number)}: more cells than columns")
            yield number, dict(zip(header, cells, strict=False))
    except csv.Error as exc:  # a cell over the csv module's limit (128 KiB), a lone \r
        why = (
            "a carriage return alone as a line break: save the file with line feeds"
            if "new-line" in str(exc)
            else str(exc)
        )
        raise UsageError(f"{_where(first - 1 + reader.line_num)}: not CSV ({why})") from None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of the batch file at ``path`` with their line numbers, in order (see the
    module for what is refused); at most :data:`MAX_ITEMS`."""
    with _open(path) as file:
        lines = _lines(file)
        first = next(((n, line) for n, line in lines if line.strip()), None)
        if first is None:
            return
        suffix = path.suffix.lower()
        jsonl = suffix in (".jsonl", ".ndjson") or (
            suffix != ".csv" and first[1].lstrip().startswith("{")
        )
        rest = itertools.chain([first], lines)
        rows = _jsonl_rows(rest) if jsonl else _csv_rows(rest, first[0])
        for index, (number, row) in enumerate(rows, 1):
            if index > MAX_ITEMS:
                raise UsageError(f"{_where(number)}: more than {MAX_ITEMS} items in one file")
            yield number, row
