"""A small synchronous facade, for scripts and notebooks that do not want ``async``.

It runs one event loop in a background thread and hands each call to it, so it works in a plain
script and inside Jupyter (whose own loop is already running) alike, without ``nest_asyncio``::

    from aiportrait import sync

    with sync.Session.from_env() as session:
        job = session.train(urls)
        for update in session.watch(job):
            print(update.state.name)
        portrait = session.create(session.wait(job).model_id, template_url)

``sync.emulator(...)`` starts the local emulator on the same background loop and returns a
Session bound to it. Ctrl-C during a call cancels that call in the background loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from ._retrying.budget import Budget
from ._session import Session as _AsyncSession
from ._session import credentials_from_env
from ._wire.signing import PrivateMapping, redacted

__all__ = ["Session", "emulator"]

T = TypeVar("T")
P = ParamSpec("P")


class _LoopThread:
    """An event loop running for ever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="aiportrait-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except (KeyboardInterrupt, concurrent.futures.CancelledError):
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _iterate(runner: _LoopThread, aiterator: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from synchronous code, closing it if the loop stops early."""
    try:
        while True:
            try:
                yield runner.run(_anext(aiterator))
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(aiterator, "aclose", None)
        if aclose is not None:
            runner.run(aclose())


async def _anext(aiterator: AsyncIterator[T]) -> T:
    return await aiterator.__anext__()


_DONE = object()


def _iterate_in_one_task(runner: _LoopThread, aiterator: AsyncIterator[T]) -> Iterator[T]:
    """Like :func:`_iterate`, for iterators that must live in one task (a batch holds a task
    group): one task in the loop pumps them into a small thread-safe queue."""
    items: queue.Queue[Any] = queue.Queue(maxsize=4)

    async def pump() -> None:
        try:
            async for item in aiterator:
                await asyncio.to_thread(items.put, item)
        except asyncio.CancelledError:  # the consumer left early
            raise
        except Exception as exc:  # handed to the consumer, raised there
            await asyncio.to_thread(items.put, _Failed(exc))
        else:
            await asyncio.to_thread(items.put, _DONE)
        finally:
            aclose = getattr(aiterator, "aclose", None)
            if aclose is not None:  # cancel and await the batch's workers, in this task
                await aclose()

    unwound = threading.Event()  # set when the pump has ended, its batch stopped and awaited

    async def start() -> asyncio.Task[None]:
        task = asyncio.ensure_future(pump())
        task.add_done_callback(lambda _task: unwound.set())  # also when cancelled unstarted
        return task

    task = asyncio.run_coroutine_threadsafe(start(), runner.loop).result()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        if not unwound.is_set() and not runner.loop.is_closed():
            runner.loop.call_soon_threadsafe(task.cancel)
            # Wait until the batch has stopped (its calls cut, its workers awaited); keep the
            # queue drained meanwhile, so a pump blocked on a full queue can unwind.
            while not unwound.wait(0.05):
                with contextlib.suppress(queue.Empty):
                    items.get_nowait()


class _Failed:
    def __init__(self, error: Exception) -> None:
        self.error = error


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


def _blocking(
    method: Callable[Concatenate[_AsyncSession, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Session, P], T]:
    """``method`` of the asynchronous Session, run to its end on the background loop."""

    def blocking(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._runner.run(method(self._session, *args, **kwargs))

    functools.update_wrapper(blocking, method)  # name, docstring, and the signature through
    return blocking  # ``__wrapped__``


def _iterating(
    method: Callable[Concatenate[_AsyncSession, P], AsyncIterator[T]],
    item: str,
    *,
    one_task: bool = True,
) -> Callable[Concatenate[Session, P], Iterator[T]]:
    """``method`` of the asynchronous Session (a watch or a batch), as a plain iterator of
    its items; a batch is driven in one task of the background loop (it holds a task group)."""

    def iterating(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        aiterator = method(self._session, *args, **kwargs)
        if one_task:
            return _iterate_in_one_task(self._runner, aiterator)
        return _iterate(self._runner, aiterator)

    functools.update_wrapper(iterating, method)
    signature = inspect.signature(method)
    iterating.__signature__ = signature.replace(  # type: ignore[attr-defined]
        return_annotation=f"Iterator[{item}]"
    )
    return iterating


class Session:
    """The synchronous twin of :class:`aiportrait.Session`: same arguments, same methods.

    Use it as a context manager or call :meth:`close`.
    """

    def __init__(self, host: str, app_id: str, token: str, **kwargs: Any) -> None:
        token = redacted(token)  # a traceback's locals show '<redacted>'
        self._runner = _LoopThread()
        self._owns_runner = True

        async def make() -> _AsyncSession:
            return _AsyncSession(host, app_id, token, **kwargs)

        try:
            self._session = self._runner.run(make())
        except BaseException:
            self._runner.stop()
            raise
        self._on_close: list[Callable[[], Coroutine[Any, Any, None]]] = []

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Session:
        """Credentials from the environment, as :meth:`aiportrait.Session.from_env`."""
        environ = None if environ is None else PrivateMapping(environ)  # hidden in tracebacks
        return cls(*credentials_from_env(environ), **kwargs)

    def __repr__(self) -> str:
        session = self.__dict__.get("_session")
        if session is None:  # half-built: its constructor raised
            return "<aiportrait.sync.Session (not constructed)>"
        return f"<aiportrait.sync.Session {session.host} app_id={session.app_id!r}>"

    @property
    def aio(self) -> _AsyncSession:
        """The asynchronous Session underneath."""
        return self._session

    @property
    def budget(self) -> Budget | None:
        """The Session's :class:`~aiportrait.Budget` (``budget=`` when built), as
        :attr:`aiportrait.Session.budget`."""
        return self._session.budget

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the Session (and the emulator, for :func:`emulator`) and stop the loop."""
        if self._runner.loop.is_closed():
            return
        self._runner.run(self._session.aclose())
        for closer in reversed(self._on_close):
            self._runner.run(closer())
        self._runner.stop()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    # Each method is the asynchronous Session's, run on the background loop: the same
    # signature (``inspect.signature``, type checkers) and docstring, one definition.
    check_images = _blocking(_AsyncSession.check_images)
    train = _blocking(_AsyncSession.train)
    get_job = _blocking(_AsyncSession.get_job)
    get_batch_jobs = _blocking(_AsyncSession.get_batch_jobs)
    wait = _blocking(_AsyncSession.wait)
    create = _blocking(_AsyncSession.create)
    create_group = _blocking(_AsyncSession.create_group)
    create_from_reference = _blocking(_AsyncSession.create_from_reference)
    create_from_prompt = _blocking(_AsyncSession.create_from_prompt)
    send = _blocking(_AsyncSession.send)
    watch = _iterating(_AsyncSession.watch, "JobUpdate", one_task=False)
    create_many = _iterating(_AsyncSession.create_many, "Outcome[Any, Portrait]")
    train_many = _iterating(_AsyncSession.train_many, "Outcome[Any, Any]")
    plan_many = _blocking(_AsyncSession.plan_many)


@contextmanager
def emulator(**options: Any) -> Iterator[Session]:
    """Start the local emulator in the background loop; yield a sync Session bound to it.

    Keyword arguments go to :class:`aiportrait.emulator.Emulator`; ``session_options`` (a
    dict) to the Session. The Session has ``.emulator`` for URLs (``media_url``) and counters.
    """
    from .emulator import Emulator

    session_options = options.pop("session_options", {})
    session = Session.__new__(Session)
    session._runner = _LoopThread()
    session._owns_runner = True
    emu = Emulator(**options)
    session._runner.run(emu.start())

    async def make() -> _AsyncSession:
        return _AsyncSession(emu.url, emu.app_id, emu.token, **session_options)

    session._session = session._runner.run(make())
    session._on_close = [emu.close]
    session.emulator = emu  # type: ignore[attr-defined]
    try:
        yield session
    finally:
        session.close()
