"""``SessionCore``: what a Session is built of (construction, lifecycle, per-call options) and
the one send path.

Every call is a request value (:mod:`aiportrait._requests`) sent by :meth:`SessionCore.send`
through the one call loop (:class:`aiportrait._retrying.loop.Caller`) and the transport. The
endpoint methods (:mod:`.session`) only build a request and send it; batches get the ``send``
and ``wait`` callables and never see the Session.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

import aiohttp
import attrs

from .._args import of_type
from .._jobs.durations import Durations, train_kind
from .._jobs.schedule import PollPolicy
from .._local.upload import Uploader, UploadFunc, as_upload
from .._logging import configure_from_env
from .._requests import BatchQuery, CheckRequest, JobQuery, TrainRequest
from .._retrying.limits import DEFAULT_MAX_WAITING, Limits
from .._retrying.loop import Call, Caller, Claim
from .._retrying.policy import OutagePolicy, RetryPolicy
from .._wire.credentials import credentials_from_env
from .._wire.signing import PrivateMapping, redacted
from .._wire.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TIMEOUT,
    Answer,
    Transport,
    client_timeout,
)
from ..errors import InvalidArgument, PhotoCountWarning
from ..hooks import header_sources, installed, next_id, origin
from ..models import CheckReport, Job, Portrait, TrainJob, TrainResult
from .answers import decoded, log_result
from .kept import KeepCallback, Kept, kept_call, told
from .limits import SessionLimits

if TYPE_CHECKING:
    from .._jobs.feed import Feed, FeedKey
    from .._jobs.watch import JobWatch
    from .._requests import AnyCreateRequest, AnyRequest
    from .._retrying.budget import Budget
    from .._retrying.call import CallState
    from ..hooks.events import Hook

__all__ = ["PROBE", "SessionCore"]

log = logging.getLogger("aiportrait")

S = TypeVar("S", bound="SessionCore")

PROBE = BatchQuery(1)
"""While the service seems down, this free read (any answer will do: the jobs of a batch,
possibly none) tells when charged calls may go again."""


class SessionCore:
    """The Session's machinery: see :class:`aiportrait.Session` for its arguments."""

    def __init__(
        self,
        host: str,
        app_id: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout | float | None = None,
        user_agent: str | None = None,
        max_in_flight: int = 16,
        max_trainings: int | None = None,
        max_creations: int | None = None,
        per_second: float | None = None,
        trainings_per_second: float | None = None,
        creations_per_second: float | None = None,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        outage: OutagePolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        hooks: Sequence[Hook] = (),
        uploader: Uploader | UploadFunc | None = None,
        budget: Budget | None = None,
        max_waiting: int | None = DEFAULT_MAX_WAITING,
        max_wait: float | None = None,
    ) -> None:
        configure_from_env()  # AIPORTRAIT_LOG: read once, at the first Session (not at import)
        token = redacted(token)  # a traceback's locals show '<redacted>' from here on
        own = tuple(hooks)
        if not all(callable(h) for h in own):
            raise InvalidArgument("hooks must be callables taking one event")
        # This Session's hooks, then those added with hooks.add_hook() before it was built.
        self._hooks = (*own, *installed())
        self._timeout = client_timeout(timeout) if timeout is not None else DEFAULT_TIMEOUT
        self._transport = Transport(
            host,
            app_id,
            token,
            session=session,
            timeout=self._timeout,
            user_agent=user_agent,
            max_response_bytes=max_response_bytes,
            extra_headers=header_sources(self._hooks),
        )
        self.poll = of_type(poll or PollPolicy.TRAINING, PollPolicy, "poll")
        self._durations = Durations()
        self._feeds: dict[FeedKey, Feed] = {}  # the jobs watched now (views share it)
        outage = of_type(outage or OutagePolicy(), OutagePolicy, "outage")
        limits = Limits(
            max_in_flight,
            max_trainings,
            max_creations,
            per_second=per_second,
            trainings_per_second=trainings_per_second,
            creations_per_second=creations_per_second,
            outage=outage,
            max_waiting=max_waiting,
            max_wait=max_wait,
        )
        probe = PROBE
        self._caller = Caller(
            of_type(retry or RetryPolicy(), RetryPolicy, "retry"),
            limits,
            functools.partial(
                self._transport.call,
                probe.method,
                probe.path,
                accept=probe.accept,
                timeout=aiohttp.ClientTimeout(total=outage.probe_timeout),
            ),
            self._hooks,
            origin(self._transport.base_url, app_id),  # for the hooks' CallStarted
        )
        self._upload = as_upload(uploader)
        self._budget = None
        if budget is not None:
            from .._retrying.budget import Budget  # loaded with the first budget

            self._budget = of_type(budget, Budget, "budget")
        self._keep: KeepCallback | None = None
        self._kept: set[asyncio.Task[None]] = set()  # shared by the views: aclose waits
        self._owner = True

    @classmethod
    def from_env(cls: type[S], environ: Mapping[str, str] | None = None, **kwargs: Any) -> S:
        """Build a Session from environment variables.

        Reads ``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID`` and ``AIPORTRAIT_TOKEN``, falling back
        to the documentation's ``HOST`` (or ``Host``), ``AppId`` (or ``APP_ID``) and ``Token``
        (or ``TOKEN``). Keyword arguments go to the constructor.
        """
        environ = None if environ is None else PrivateMapping(environ)  # hidden in tracebacks
        return cls(*credentials_from_env(environ), **kwargs)

    def __reduce__(self) -> Any:
        raise TypeError("a Session holds credentials and a connection pool; it cannot be pickled")

    def __copy__(self: S) -> S:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        return view

    def __repr__(self) -> str:
        transport = self.__dict__.get("_transport")
        if transport is None:  # half-built: its constructor raised
            return "<aiportrait.Session (not constructed)>"
        state = " closed" if transport.closed else ""
        return f"<aiportrait.Session {transport.base_url} app_id={transport.app_id!r}{state}>"

    @property
    def host(self) -> str:
        """The normalised service address."""
        return self._transport.base_url

    @property
    def app_id(self) -> str:
        """The AppId requests are signed for."""
        return self._transport.app_id

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._transport.closed

    async def __aenter__(self: S) -> S:
        self._transport._client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the Session's resources, once the calls kept in the background (``keep=``)
        ended. A borrowed aiohttp session is left open. On a view this does nothing."""
        if self._owner:
            try:
                while self._kept:
                    await asyncio.wait(set(self._kept))
            finally:  # cut short (a server's shutdown): the kept calls log what is lost
                await self._transport.aclose()

    @property
    def limits(self) -> SessionLimits:
        """The Session's bounds on calls in flight, and how many run or wait now (read-only)."""
        return SessionLimits(self._caller.limits)

    @property
    def budget(self) -> Budget | None:
        """The :class:`~aiportrait.Budget` every charged call of this Session counts against
        (``None``: no bound); read ``spent()`` and ``left()`` on it."""
        return self._budget

    def with_options(
        self: S,
        *,
        timeout: aiohttp.ClientTimeout | float | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        uploader: Uploader | UploadFunc | None = None,
        keep: KeepCallback | None = None,
    ) -> S:
        """A view of this Session with other per-call options, for one call or a few.

        The view shares the connection pool, limiters and cool-down; closing it does nothing
        (close the original). ``timeout`` is an ``aiohttp.ClientTimeout`` for each try, or a
        number of seconds for each try in all; ``uploader`` replaces the one for local photos.
        Example::

            portrait = await session.with_options(timeout=600).create(model_id, template)

        ``keep``: a charged call (train, create) of the view cancelled after its request was
        written (a web client that left) finishes in the background, and ``keep`` gets an
        :class:`aiportrait.Kept` (awaited if it returns an awaitable; what it raises is
        logged); :meth:`aclose` waits for it. Without ``keep`` it is abandoned, with a WARNING.
        A batch's items are not kept: the batch's journal keeps what may have run.
        """
        view = copy.copy(self)
        view._owner = False
        if timeout is not None:
            view._timeout = client_timeout(timeout)
        if retry is not None:
            view._caller = attrs.evolve(self._caller, policy=of_type(retry, RetryPolicy, "retry"))
        if poll is not None:
            view.poll = of_type(poll, PollPolicy, "poll")
        if uploader is not None:
            view._upload = as_upload(uploader)
        if keep is not None:
            if not callable(keep):
                raise InvalidArgument("keep must be a callable taking an aiportrait.Kept")
            view._keep = keep
        return view

    # -- the one send path -----------------------------------------------------------------

    @overload
    async def send(self, request: CheckRequest) -> CheckReport: ...
    @overload
    async def send(self, request: TrainRequest) -> TrainJob: ...
    @overload
    async def send(self, request: AnyCreateRequest) -> Portrait: ...
    @overload
    async def send(self, request: JobQuery) -> Job: ...
    @overload
    async def send(self, request: BatchQuery) -> tuple[Job, ...]: ...

    async def send(self, request: AnyRequest) -> Any:
        """Send one request (a :class:`CheckRequest`, :class:`TrainRequest`, a create request,
        :class:`JobQuery` or :class:`BatchQuery`) and return what its answer holds.

        Retries follow the Session's :class:`RetryPolicy`; a charged request whose outcome is
        unknown raises :class:`~aiportrait.errors.SubmitOutcomeUnknown` and is never sent twice.
        A request with local inputs (files, bytes) has them read, checked (a training not
        forced), cleaned and uploaded with the Session's ``uploader`` first. A charged request
        beyond the Session's ``budget`` raises :class:`~aiportrait.errors.BudgetExhausted`
        before any of that.
        """
        if self._budget is None and not request.local:
            return await self._send(request, bounded=True)  # nothing to reserve or resolve
        from .._retrying.budget import reserve  # loaded with the first budget or local input

        with reserve((self._budget,), request.kind) as reservation:
            if request.local:
                from .._local.resolve import resolve  # loaded with the first local input

                self._caller.limits.check(request.kind, f"{request.method} {request.path}")
                try:
                    request = await resolve(request, self._upload)
                except asyncio.CancelledError:
                    if self._keep is not None and request.kind != "read":
                        told(Kept(request, sent=False), self._keep, self._kept)
                    raise
            return await self._send(request, claim=reservation.claim(), bounded=True)

    async def _send(
        self,
        request: AnyRequest,
        *,
        claim: Claim | None = None,
        within: int | None = None,
        tries: int | None = None,
        bounded: bool = False,
    ) -> Any:
        """:meth:`send`, with what a batch or a watch adds: the journal's ``claim`` on a
        charged item, the batch's or watch's id (``within``) and the tries in all. Only
        :meth:`send` is ``bounded`` by the Session's admission (``max_waiting``,
        ``max_wait``) and kept (``keep``): a batch's items and a watch's polls queue under
        bounds of their own (the batch's ``limit``, the jobs watched), and a batch's journal
        keeps what may have run."""
        if isinstance(request, TrainRequest):
            PhotoCountWarning.check(len(request.images))
        transport, timeout = self._transport, self._timeout
        if timeout is DEFAULT_TIMEOUT and request.kind == "read":
            timeout = DEFAULT_READ_TIMEOUT  # a small answer: 180 s in all, no read timer
        method, path, payload = request.method, request.path, request.payload()
        accept, lift = request.accept, request.lift
        call = Call(
            method, path, request.kind, payload, claim, within, tries, timeout.total, bounded
        )

        def try_once() -> Awaitable[Answer]:
            return transport.call(method, path, payload, accept=accept, timeout=timeout, lift=lift)

        if self._keep is None or request.kind == "read" or not bounded:
            result, _ = await self._called(request, call, try_once)
            return result
        state = self._caller.begin()
        work = self._called(request, call, try_once, state)
        return await kept_call(work, call, state, request, self._keep, self._kept)

    async def _called(
        self,
        request: AnyRequest,
        call: Call,
        try_once: Callable[[], Awaitable[Answer]],
        state: CallState | None = None,
    ) -> tuple[Any, Answer]:
        """The call through the call loop: what its answer becomes, and the answer."""
        if not self._hooks:
            answer = await self._caller.call(call, try_once, state=state)
            result = decoded(request, answer)
        else:  # decoded inside the call, so that CallEnded says what the caller gets
            box: list[Any] = []
            answer = await self._caller.call(
                call, try_once, lambda a: box.append(decoded(request, a)), state
            )
            result = box[0]
        if request.kind != "read":
            if isinstance(result, TrainJob) and isinstance(request, TrainRequest):
                self._durations.started(result.job_id, train_kind(request))
            log_result(result, answer)
        return result, answer

    async def _poll_once(self, job_id: int, *, within: int | None) -> Job:
        """One poll of a watch: a single try; the watcher decides about retrying."""
        job: Job = await self._send(JobQuery(job_id), within=within, tries=1)
        return job

    def _watch(
        self,
        job: int | TrainJob,
        *,
        poll: PollPolicy | None = None,
        timeout: float | None = None,
        within: int | None = None,
    ) -> JobWatch:
        """:meth:`watch`, for a batch whose id is ``within``."""
        from .._jobs.feed import follow  # loaded with the first watch
        from .._jobs.watch import JobWatch

        policy = poll or self.poll
        if timeout is not None:
            policy = attrs.evolve(policy, timeout=timeout)
        job_id = JobQuery(job).job_id
        durations = self._durations
        kind = durations.kind_of(job_id)  # None: its start is not known here, nothing to learn
        # Watches of this job on this schedule share one feed; each keeps its own deadline.
        schedule = attrs.evolve(policy, timeout=None)
        feed = follow(
            self._feeds,
            job_id,
            schedule,
            self._caller.policy,
            functools.partial(durations.policy, schedule, kind),  # asked before every wait
            None if kind is None else functools.partial(durations.ended, job_id),
        )
        watch_id = next_id() if self._hooks else 0  # what the events of its polls name
        return JobWatch._following(
            feed,
            functools.partial(self._poll_once, within=watch_id or None),
            policy.timeout,
            job.model_id if isinstance(job, TrainJob) else None,
            self._hooks,
            within,
            watch_id,
        )

    async def _wait(self, job: TrainJob, *, within: int | None = None) -> TrainResult:
        """:meth:`wait`, for a batch whose id is ``within``."""
        return await self._watch(job, within=within).result()
