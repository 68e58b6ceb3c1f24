"""What a batch takes: its items, keyed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

__all__ = ["BatchItems"]

R = TypeVar("R")

BatchItems: TypeAlias = Mapping[Any, R] | Iterable[R | tuple[Any, R]]
"""The items of ``create_many`` / ``train_many``: a mapping ``key -> item``, ``(key, item)``
pairs, or bare items (the key is the position)."""
