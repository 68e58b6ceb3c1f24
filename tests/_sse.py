"""Reading a server-sent event stream in tests (the dashboard's, the web examples')."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any


async def sse_events(response: Any) -> AsyncIterator[tuple[str | None, Any]]:
    """Yield (event, data) from an SSE response (``data`` parsed as JSON), and
    ``("comment", text)`` for comments; ends with the stream."""
    event = None
    while True:
        raw = await response.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            yield event, json.loads(line[len("data: ") :])
