"""Child of test_no_follow_stop: ``aiportrait temporal ARGV`` with SIGINT sent to itself while
the batch's workflow is being started (``Cluster.start`` wrapped): a Ctrl-C during the start."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from aiportrait.cli import _temporal, console

_start = _temporal.Cluster.start


async def _interrupted_start(self: Any, *args: Any, **kwargs: Any) -> Any:
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the start is on its way
    return await _start(self, *args, **kwargs)


_temporal.Cluster.start = _interrupted_start  # type: ignore[method-assign]
console(["temporal", *sys.argv[1:]])
