"""Where a portrait's file is looked for: every place uses the one table of extensions
(``aiportrait.models.EXTENSIONS``), so a portrait stored under any of them is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiportrait._batches.keys import find_portrait as find_in_folder
from aiportrait.models import EXTENSIONS, Portrait
from aiportrait.temporal import LocalPortraitStore
from aiportrait.temporal._store import find_portrait as find_in_store


@pytest.mark.parametrize("format", sorted(EXTENSIONS))
async def test_a_portrait_of_any_format_is_found_where_it_was_stored(
    format: str, tmp_path: Path
) -> None:
    portrait = Portrait(b"image", format, None, None, 1.0, "r")
    store = LocalPortraitStore(tmp_path / "store")
    await store.put(f"portraits/b/k{portrait.extension}", b"image", "image/x")
    found = await find_in_store(store, "portraits/b/k")
    assert found is not None and found.format == format
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"k{portrait.extension}").write_bytes(b"image")
    assert find_in_folder(tmp_path / "out", "k") == tmp_path / "out" / f"k{portrait.extension}"
