"""The batch file reader's bounds that a test through the command line cannot reach cheaply:
the most rows of a file, and a file that grows past its bound while it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiportrait.cli import _batchtext
from aiportrait.cli._batchtext import json_value, read_rows
from aiportrait.cli._exit import UsageError

ROW = '{"kind": "prompt", "model_id": "m", "prompt": "p"}\n'


def test_a_file_of_more_rows_than_the_bound_is_refused_at_the_row_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batchtext, "MAX_ITEMS", 3)
    path = tmp_path / "items.jsonl"
    path.write_text(ROW * 3)
    assert [n for n, _ in read_rows(path)] == [1, 2, 3]
    path.write_text(ROW * 3 + "\n" + ROW)
    with pytest.raises(UsageError, match=r"^line 5: more than 3 items in one file$"):
        list(read_rows(path))


def test_a_file_that_grows_past_the_bound_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batchtext, "MAX_FILE_BYTES", 10 * len(ROW))
    path = tmp_path / "items.jsonl"
    path.write_text(ROW * 10)  # at the bound: read whole
    rows = read_rows(path)
    assert next(rows)[0] == 1
    with path.open("a") as file:  # another program appends
        file.write(ROW * 5)
    with pytest.raises(UsageError, match=r"^line 11: over the .* MiB a batch file may be$"):
        list(rows)


def test_json_depth_counts_every_level_and_a_scalar_as_none() -> None:
    assert json_value("[" * 31 + "[7]" + "]" * 31) is not None  # 32 levels
    with pytest.raises(UsageError, match="nested more than 32 levels deep"):
        json_value('{"a": ' * 32 + "{}" + "}" * 32)  # 33
    assert json_value("7") == 7 and json_value('{"a": [{"b": 1}]}', depth=3) == {"a": [{"b": 1}]}
    with pytest.raises(UsageError, match="nested more than 2 levels"):
        json_value('{"a": [{"b": 1}]}', depth=2)
