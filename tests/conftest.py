"""Shared fixtures for the client's unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def vectors() -> list[dict[str, Any]]:
    """The requests captured from the official Go SDK (tests/data/go_sdk_requests.json)."""
    return json.loads((DATA / "go_sdk_requests.json").read_text())  # type: ignore[no-any-return]
