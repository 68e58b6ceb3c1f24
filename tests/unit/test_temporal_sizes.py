"""What the Temporal layer cuts to size: the store's file names for batch keys, and the pages
a batch's items are started in."""

from __future__ import annotations

import pytest

pytest.importorskip("temporalio")

from aiportrait import TrainRequest
from aiportrait import temporal as at
from aiportrait.temporal._client import PAGE_BYTES, _pages
from aiportrait.temporal._store import MAX_NAME, safe_name


def test_store_names_are_short_distinct_and_cannot_be_forged() -> None:
    keys = [
        "a",
        "a~b",
        "a%7Eb",
        "写" * 120,
        "写" * 121,
        "张三的写真照片" * 4,
        "x" * 500,
        "../up",
        ".",
    ]
    names = [safe_name(k) for k in keys]
    assert len(set(names)) == len(keys)
    assert all(len(n) <= MAX_NAME and "/" not in n and not n.startswith(".") for n in names)
    assert safe_name("a~b") == "a%7Eb" and safe_name("a%7Eb") == "a%257Eb"
    assert names[3].count("~") == 1  # the long form: readable start, ~ and the key's hash


def test_batch_pages_are_cut_by_size_as_well_as_by_count() -> None:
    urls = [f"https://bucket.example/{'p' * 300}/{i}.jpg" for i in range(20)]
    items = [at.BatchItem(f"t{i}", TrainRequest(urls)) for i in range(300)]
    pages = list(_pages(items, 500))
    assert len(pages) > 1 and all(len(p) <= PAGE_BYTES for p in pages)
    assert sum(p.count("\n") for p in pages) == 300
    assert len(list(_pages(items[:3], 2))) == 2
