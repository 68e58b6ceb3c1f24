"""The process-wide thread pool and face engine that the image work runs on.

Face work never runs on an event loop. dlib's models load once per thread (about half a second
each), so one small pool, shared by every emulator in the process and by the client's check of
local photos, keeps them warm and their number bounded.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .face_engine import FaceEngine

__all__ = ["THREAD_PREFIX", "default_workers", "run_in", "shared_engine", "shared_pool"]

P = ParamSpec("P")
T = TypeVar("T")

#: Name prefix of the image threads.
THREAD_PREFIX = "aiportrait-emu"

_shared_lock = threading.Lock()
_shared_pool: ThreadPoolExecutor | None = None
_shared_engine: FaceEngine | None = None


def default_workers() -> int:
    """Threads of the shared pool: one core is left to the event loop (at most 4 threads).

    Composing holds the GIL part of the time; with as many busy threads as cores, requests
    that need no image work (job queries) slow down tenfold on a two-core machine.
    """
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def shared_pool() -> ThreadPoolExecutor:
    """The process-wide pool of :func:`default_workers` threads, started on first use."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = ThreadPoolExecutor(
                max_workers=default_workers(), thread_name_prefix=THREAD_PREFIX
            )
        return _shared_pool


def shared_engine() -> FaceEngine:
    """The process-wide face engine (thread-safe; its models load once per thread).

    Importing it needs the ``emulator`` extra (dlib, OpenCV).
    """
    global _shared_engine
    with _shared_lock:
        if _shared_engine is None:
            from .face_engine import FaceEngine

            _shared_engine = FaceEngine()
        return _shared_engine


async def run_in(pool: Executor, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn(*args, **kwargs)`` in ``pool`` and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))
