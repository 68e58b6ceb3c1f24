"""The in-process emulator: start it, point a client at ``emu.url``, read its counters."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .._files import make_dir
from .._session import Session
from ._activity import Activity
from ._app import build_app
from ._auth import AppConfig, signature
from ._bucket import DEFAULT_BUCKET, Bucket
from ._credentials import keep_credentials, kept_token
from ._dashboard import needs_auth
from ._dashboard_records import DASHBOARD_PATH
from ._faults import Counters, FaultInjector, Faults, Hold
from ._fetch import Fetcher, FetchPolicy
from ._http_log import http_log
from ._jobs import JobStore
from ._media import dashboard_image, local_media
from ._service import TRAIN_PREPROCESS_FAILED, Service
from ._wire import CREATE_PATH
from ._work import Worker

__all__ = ["DEFAULT_APP_ID", "Emulator"]

DEFAULT_APP_ID = "local-app"


class Emulator:
    """The AI Portrait service on loopback, for tests, demos and offline development.

    A local stand-in: it checks signatures, keeps jobs and answers with the documented shapes
    and errors, but does real face detection and compositing instead of diffusion.

    Use it as ``async with Emulator(train_seconds=0.05) as emu:``; ``emu.url``, ``emu.app_id``
    and ``emu.token`` configure a client. ``data_dir=None`` keeps everything in a temporary
    directory removed on close; with a directory, trained models and jobs survive a restart, and
    so do the credentials: ``token=None`` reuses the token kept in ``credentials.json`` there
    (mode 0600) for the same ``app_id``, or makes a random one and keeps it; a given ``token``
    is used as it is and nothing is kept. ``port=0`` picks a free port.

    Limits: ``max_body_bytes`` per request body (413), received within ``read_timeout`` seconds
    (else 408 and the connection is closed; a connection that sends no complete request within
    that time, or stays idle that long, is closed too); ``max_image_bytes`` and
    ``fetch_timeout`` per image download; ``max_pixels`` per image (from its header);
    ``max_request_pixels`` for all the photos one check or training decodes.

    The dashboard (:attr:`dashboard_url`, ``docs/guides/dashboard.md``) is open when ``host`` is
    a loopback address and needs HTTP Basic with an AppId and its token otherwise;
    ``dashboard_auth`` True or False decides instead.
    """

    def __init__(
        self,
        *,
        app_id: str = DEFAULT_APP_ID,
        token: str | None = None,
        data_dir: str | Path | None = None,
        train_seconds: float = 3.0,
        sdxl: bool = True,
        quota: int | None = None,
        faults: Faults | None = None,
        serve_dir: str | Path | None = None,
        file_root: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_remote: bool = False,
        workers: int | None = None,
        max_body_bytes: int = 64 * 1024 * 1024,
        max_image_bytes: int = 20 * 1024 * 1024,
        max_pixels: int = 16_000_000,
        max_request_pixels: int = 400_000_000,
        fetch_timeout: float = 10.0,
        time_skew: float | None = 900.0,
        read_timeout: float = 30.0,
        oss_bucket: str = DEFAULT_BUCKET,
        dashboard_auth: bool | None = None,
    ) -> None:
        if not read_timeout > 0:
            raise ValueError("read_timeout must be positive")
        self._app_id = app_id
        self._keep_token = token is None and data_dir is not None
        if token is None and data_dir is not None:
            token = kept_token(Path(data_dir), app_id)
        self._token = token if token is not None else secrets.token_hex(16)
        self._host = host
        self._port = port
        self._own_data_dir = data_dir is None
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._serve_dir = Path(serve_dir).resolve() if serve_dir is not None else None
        self.train_seconds = train_seconds
        self._policy = FetchPolicy(
            allow_remote=allow_remote,
            file_root=Path(file_root) if file_root is not None else None,
            max_bytes=max_image_bytes,
            timeout=fetch_timeout,
        )
        self._max_body = max_body_bytes
        self._time_skew = time_skew
        self._workers = workers
        self._max_pixels = max_pixels
        self._max_request_pixels = max_request_pixels
        self._read_timeout = read_timeout
        self._injector = FaultInjector(faults)
        self._apps: dict[str, AppConfig] = {app_id: AppConfig(app_id, self._token, sdxl, quota)}
        self._bucket = Bucket(oss_bucket, self._oss_secret)
        self._dashboard_auth = needs_auth(host) if dashboard_auth is None else dashboard_auth
        self._service: Service | None = None
        self._runner: web.AppRunner | None = None
        self._url = ""

    def __repr__(self) -> str:
        return f"<Emulator {self._url or 'not started'} app_id={self._app_id!r}>"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Bind the port and start serving; returns self."""
        if self._runner is not None:
            return self
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="aiportrait-emulator-"))
        make_dir(self._data_dir)  # private (0700) when made here
        if self._keep_token:
            keep_credentials(self._data_dir, self._app_id, self._token)
        worker = Worker(
            workers=self._workers,
            max_pixels=self._max_pixels,
            max_request_pixels=self._max_request_pixels,
        )
        activity = Activity(self._apps, locate=self._dashboard_image)
        self._bucket.changed = activity.object_changed
        service = Service(
            activity=activity,
            data_dir=self._data_dir,
            train_seconds=self.train_seconds,
            fetcher=Fetcher(self._policy, local=self._local_media),
            worker=worker,
            injector=self._injector,
            jobs=JobStore(self._data_dir),
        )
        service.apps = self._apps
        self._service = service
        app = build_app(
            service,
            max_body=self._max_body,
            time_skew=self._time_skew,
            serve_dir=self._serve_dir,
            read_timeout=self._read_timeout,
            bucket=self._bucket,
            dashboard_auth=self._dashboard_auth,
        )
        runner = web.AppRunner(
            app,
            access_log=None,
            logger=http_log,
            handle_signals=False,
            shutdown_timeout=1.0,
            # Bodies are never inflated (a compressed body is refused): no zip bomb to open.
            auto_decompress=False,
            # A connection that sends no complete request (or nothing) for this long is closed,
            keepalive_timeout=self._read_timeout,
            # and the unread rest of a refused request is discarded for at most this long.
            lingering_time=min(10.0, self._read_timeout),
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self._close_service()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self._port = int(bound[1])
        shown = self._host
        if shown in ("0.0.0.0", ""):
            shown = "127.0.0.1"
        elif shown == "::":
            shown = "::1"
        if ":" in shown:
            shown = f"[{shown}]"
        self._url = f"http://{shown}:{self._port}"
        return self

    async def close(self) -> None:
        """Stop serving, cancel running trainings, and remove a temporary data directory."""
        if self._service is not None:
            self._service.activity.close()  # the dashboards' event streams end
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._close_service()
        if self._own_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    async def _close_service(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.close()
            await service.fetcher.close()
            service.worker.close()
            service.jobs.close()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what clients need ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (empty before start)."""
        return self._url

    @property
    def port(self) -> int:
        """The bound port (the requested one before start)."""
        return self._port

    @property
    def app_id(self) -> str:
        """The AppId of the default app."""
        return self._app_id

    @property
    def token(self) -> str:
        """The token of the default app."""
        return self._token

    @property
    def kept_data_dir(self) -> bool:
        """Whether the data directory is the caller's (kept), not a temporary one."""
        return not self._own_data_dir

    @property
    def read_timeout(self) -> float:
        """Seconds a client has to send a request (see the class docs)."""
        return self._read_timeout

    @property
    def data_dir(self) -> Path | None:
        """Where models and the job log live (None before start when temporary)."""
        return self._data_dir

    @property
    def counters(self) -> Counters:
        """What the emulator did so far (see :class:`Counters`)."""
        return self._running.counters

    @property
    def faults(self) -> Faults:
        """The fault settings in force; assign a new :class:`Faults` to change them at once."""
        return self._injector.faults

    @faults.setter
    def faults(self, value: Faults | None) -> None:
        self._injector.configure(value)
        if self._service is not None:
            self._service.activity.faults_changed(self._injector.faults)

    @property
    def dashboard_url(self) -> str:
        """The dashboard's page (empty before start); see ``docs/guides/dashboard.md``."""
        return f"{self._url}{DASHBOARD_PATH}" if self._url else ""

    @property
    def dashboard_auth(self) -> bool:
        """Whether the dashboard asks for an AppId and its token (HTTP Basic): by default, when
        the emulator listens on an address that is not loopback."""
        return self._dashboard_auth

    @property
    def apps(self) -> Mapping[str, AppConfig]:
        """Apps by AppId."""
        return self._apps

    def add_app(
        self, app_id: str, token: str, *, sdxl: bool = True, quota: int | None = None
    ) -> AppConfig:
        """Accept another app (or replace one); returns its config, whose ``used`` is live."""
        app = AppConfig(app_id, token, sdxl, quota)
        self._apps[app_id] = app
        return app

    @property
    def bucket(self) -> Bucket:
        """The OSS-compatible bucket served at ``<url>/<bucket.name>/<key>`` (path-style).

        Its access key ids are the AppIds and their secrets the tokens; set
        ``bucket.refuse_puts = True`` to make uploads fail with ``AccessDenied``.
        """
        return self._bucket

    @property
    def oss_bucket(self) -> str:
        """The name of :attr:`bucket`."""
        return self._bucket.name

    def media_url(self, name: str) -> str:
        """URL of a file of ``serve_dir`` as the emulator serves it."""
        return f"{self._url}/media/{quote(name)}"

    def authorization(
        self, method: str, path: str, body: bytes, *, app_id: str | None = None
    ) -> str:
        """The ``Authorization`` value an official SDK would send for this request."""
        app = self._apps[app_id or self._app_id]
        return f"{app.app_id}:{signature(app.token, method, path, body)}"

    def add_synthetic_job(
        self,
        duration: float,
        *,
        succeed: bool = True,
        message: str | None = None,
        result: str | Mapping[str, Any] | None = None,
        app_id: str | None = None,
        batch_id: int = 0,
    ) -> int:
        """Add a job that needs no work: init for a tenth of ``duration``, then running, then
        state 2 (``succeed``) or 3, with ``message`` and ``Result`` ``result``.

        The state is computed from the clock when queried, so thousands cost almost nothing.
        By default the Result is a training result with a fresh ``model_id`` and no states, and
        a failure's message is EasyPhoto's preprocessing failure. Returns the job id.
        """
        if duration < 0:
            raise ValueError("duration must not be negative")
        if message is None:
            message = "success" if succeed else TRAIN_PREPROCESS_FAILED
        if result is None:
            result = {"cost_time": duration, "states": [], "model_id": str(uuid.uuid4())}
        text = result if isinstance(result, str) else json.dumps(dict(result))
        job = self._running.jobs.add(
            app_id=app_id or self._app_id,
            kind="synthetic",
            request_id=str(uuid.uuid4()),
            batch_id=batch_id,
            duration=duration,
            succeed=succeed,
            message=message,
            result=text,
        )
        return job.id

    def hold(self, path: str = CREATE_PATH, *, after: int = 0) -> Hold:
        """Hold the calls to ``path`` after the first ``after`` at the service: counted and
        charged, unanswered until :meth:`Hold.release` (replaces an earlier hold)."""
        hold = self._running.hold = Hold(path, after)
        return hold

    async def drain(self) -> None:
        """Wait until every training in progress has finished."""
        await self._running.drain()

    def session(self, **kwargs: Any) -> Session:
        """An ``aiportrait.Session`` bound to this emulator's URL, AppId and token; ``kwargs`` go
        to the Session (``poll=``, ``retry=``, ...)."""
        return Session(self._url, self._app_id, self._token, **kwargs)

    # -- internals ------------------------------------------------------------------------------

    @property
    def _running(self) -> Service:
        if self._service is None:
            raise RuntimeError("the emulator is not running; use 'async with Emulator() as emu'")
        return self._service

    def _oss_secret(self, access_key_id: str) -> str | None:
        app = self._apps.get(access_key_id)
        return None if app is None else app.token

    def _local_media(self, url: str) -> Path | None:
        """The file behind one of our own ``/media/`` URLs, read from disk instead of HTTP."""
        return local_media(url, self._port, self._serve_dir)

    def _dashboard_image(self, url: str) -> str | None:
        return dashboard_image(url, self._port, self._bucket.name)
