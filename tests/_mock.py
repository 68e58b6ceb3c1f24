"""The one aioresponses shim, for aiohttp 3.14.

Fact: aioresponses 0.7.9 builds ``ClientResponse`` without the ``stream_writer`` argument that
aiohttp 3.14 requires (``ClientResponse.__init__() missing ... 'stream_writer'``, aioresponses
issue 289). Passing this class as ``response_class`` supplies a stand-in writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aioresponses import aioresponses


class _NoWriter:
    output_size = 0


class ShimResponse(aiohttp.ClientResponse):
    """A ClientResponse that tolerates aioresponses' missing ``stream_writer``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("stream_writer", _NoWriter())
        super().__init__(*args, **kw)


@contextmanager
def mocked() -> Iterator[aioresponses]:
    """``aioresponses`` with the shim applied to every registered response."""
    with aioresponses() as mock:
        original = mock.add

        def add(*args: Any, **kw: Any) -> None:
            kw.setdefault("response_class", ShimResponse)
            original(*args, **kw)

        mock.add = add  # type: ignore[method-assign]
        yield mock


def sent(mock: aioresponses, method: str = "POST") -> list[dict[str, Any]]:
    """The keyword arguments of every request of ``method`` aiohttp was asked to send."""
    out = []
    for (m, _url), calls in mock.requests.items():
        if m == method:
            out.extend(call.kwargs for call in calls)
    return out
