"""The unit tests' one fake server: aioresponses, with the shim for aiohttp 3.14.

Fact: aioresponses 0.7.9 builds ``ClientResponse`` without the ``stream_writer`` argument that
aiohttp 3.14 requires (``ClientResponse.__init__() missing ... 'stream_writer'``, aioresponses
issue 289). Passing :class:`ShimResponse` as ``response_class`` supplies a stand-in writer.

Two ways to use it:

- :func:`mocked` is plain aioresponses (register answers per URL, read ``mock.requests``);
- :class:`Fake` answers every request to :data:`HOST` from a script, like a server would, and
  records what arrived. An *action* is

  - an answer ``(status, headers, body)`` (``body``: bytes as they are, anything else as JSON);
  - an exception class or instance, raised where aiohttp would raise it: :data:`DROP` (the
    connection closed after the request went out), :data:`TIMEOUT` (no answer in time);
  - a callable taking the :class:`Arrival` and returning an action, or an awaitable of one
    (per-request logic; :func:`hang` never answers, until the call is cancelled).

  Requests whose path starts with a key of ``routes`` get that route's action; the others get
  the next scripted action, and ``ok`` once the script is used up (an action, or a payload
  answered with 200).

Tests about the wire itself (what aiohttp puts on a socket, a try hung on a real connection)
use the loopback server of :mod:`tests._server` instead.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aioresponses import CallbackResult, aioresponses

HOST = "https://h.example"
"""Where a :class:`Fake` answers."""

OK_JOB = {"code": "OK", "data": {"job": {"state": 1}}}
"""A job query's answer: the job is running."""
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg"
    "AAAABJRU5ErkJggg=="
)
OK_IMAGE = {"code": "OK", "data": {"image": PNG_1X1}}
"""A create's answer: a 1x1 PNG."""
PHOTOS = tuple(f"https://x/{i}.jpg" for i in range(5))
"""Photo URLs for a training that reaches no real host: five, the fewest the documentation asks
for, so that training on them warns nothing (:class:`~aiportrait.errors.PhotoCountWarning`)."""

DROP = aiohttp.ServerDisconnectedError
"""The action of a connection closed after the request was written (the answer never came)."""
TIMEOUT = asyncio.TimeoutError
"""The action of an answer that did not come within the aiohttp timeout."""

Action = Any
"""An answer tuple, an exception, or a callable returning an action (see the module doc)."""


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
    out: list[dict[str, Any]] = []
    for (m, _url), calls in mock.requests.items():
        if m == method:
            out.extend(call.kwargs for call in calls)
    return out


@dataclass(frozen=True)
class Arrival:
    """One request as it arrived: what the library handed to aiohttp (or the server read)."""

    method: str
    path: str
    body: bytes
    headers: Mapping[str, str]
    """The request's headers; names lower-cased."""
    at: float
    """``time.monotonic()`` on arrival."""
    timeout: aiohttp.ClientTimeout | None = None
    """The aiohttp timeout the request was sent with (``None`` when unknown)."""

    @property
    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


async def hang(arrival: Arrival) -> Action:
    """An action that never answers: the request stays in flight until it is cancelled."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def resolve(action: Action, arrival: Arrival) -> tuple[int, Mapping[str, str], bytes]:
    """Run ``action`` for ``arrival``: raise its exception or return ``(status, headers, body)``."""
    while callable(action) and not _is_exception(action):
        action = action(arrival)
        if inspect.isawaitable(action):
            action = await action
    if _is_exception(action):
        raise action
    if not (isinstance(action, tuple) and len(action) == 3):
        raise TypeError(f"not an answer (status, headers, body): {action!r}")
    status, headers, payload = action
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return status, headers, body


def _is_exception(action: Action) -> bool:
    return isinstance(action, BaseException) or (
        isinstance(action, type) and issubclass(action, BaseException)
    )


class Script:
    """The answering logic shared by :class:`Fake` and :class:`tests._server.Server`."""

    def __init__(
        self,
        actions: list[Action] | tuple[Action, ...] = (),
        *,
        ok: Action = OK_JOB,
        routes: Mapping[str, Action] | None = None,
    ) -> None:
        self.actions = list(actions)
        self.ok = ok
        self.routes = dict(routes or {})
        self.requests: list[Arrival] = []
        """Every request, in the order it arrived."""
        self.active = 0
        """Requests being answered now."""
        self.peak = 0
        """The most requests ever being answered at once."""
        self.answered = 0
        """Requests whose action ran to its end (an answer or an exception) so far."""
        self.cancelled = 0
        """Requests cut while being answered: their call was cancelled."""

    def paths(self) -> list[str]:
        """The path of every request, in order."""
        return [r.path for r in self.requests]

    def _next(self, arrival: Arrival) -> Action:
        for prefix, action in self.routes.items():
            if arrival.path.startswith(prefix):
                return action
        if self.actions:
            return self.actions.pop(0)
        ok = self.ok  # an action, or the payload of a 200
        return ok if callable(ok) or isinstance(ok, tuple) else (200, {}, ok)

    async def answer(self, arrival: Arrival) -> tuple[int, Mapping[str, str], bytes]:
        """Record ``arrival`` and run its action."""
        self.requests.append(arrival)
        action = self._next(arrival)
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            answer = await resolve(action, arrival)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except BaseException:
            self.answered += 1
            raise
        finally:
            self.active -= 1
        self.answered += 1
        return answer


class Fake(Script):
    """Scripted answers for every request to :data:`HOST`, through aioresponses.

    Use it as ``with Fake(actions, ok=..., routes=...) as fake:`` and point a Session at
    ``fake.url``. ``fake.requests`` holds the :class:`Arrival` of every request, with the
    headers the library gave aiohttp (not those aiohttp adds). One at a time: aioresponses
    patches aiohttp for the whole process (change ``fake.routes`` instead of nesting).
    """

    url = HOST

    @contextmanager
    def _patched(self) -> Iterator[Fake]:
        pattern = re.compile("^" + re.escape(HOST) + "/")
        with mocked() as mock:
            for method in ("GET", "POST"):
                callback = functools.partial(self._callback, method)
                mock.add(pattern, method=method, callback=callback, repeat=True)
            self.mock = mock
            yield self

    def __enter__(self) -> Fake:
        self._context = self._patched()
        return self._context.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)

    async def _callback(self, method: str, url: Any, **kw: Any) -> CallbackResult:
        headers = {k.lower(): v for k, v in (kw.get("headers") or {}).items()}
        arrival = Arrival(
            method=method,
            path=urlsplit(str(url)).path,
            body=kw.get("data") or b"",
            headers=headers,
            at=time.monotonic(),
            timeout=kw.get("timeout"),
        )
        status, answer_headers, body = await self.answer(arrival)
        return CallbackResult(
            status=status, body=body, headers=dict(answer_headers), response_class=ShimResponse
        )


async def until(condition: Callable[[], object], what: str, seconds: float = 30.0) -> None:
    """Wait (polling, no fixed sleep) until ``condition()`` holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)
