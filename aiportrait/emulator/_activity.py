"""What the emulator did, kept for its dashboard: jobs, portraits, the last requests, charges per
app and the charged bodies that arrived more than once.

Recording never waits and costs O(1): an append to a bounded container, then the change offered
to each dashboard :class:`Subscriber` (a bounded queue, never awaited); with no dashboard open, no
event is even encoded. :meth:`Activity.state` is the JSON twin of the page, documented field by
field in ``docs/guides/dashboard.md``. Nothing recorded holds a token, a signature or a body: a
request keeps its path without the query, a charged body only a short SHA-256 digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import hashlib
import itertools
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ._auth import AppConfig
from ._bucket import StoredObject
from ._faults import Counters, Faults, faults_json
from ._wire import CREATE_PATH, TRAIN_PATH
from ._work import JPEG_MAGIC

__all__ = [
    "DASHBOARD_PATH",
    "JOBS_KEPT",
    "REQUESTS_KEPT",
    "SUBSCRIBER_LIMIT",
    "Activity",
    "JobRecord",
    "creation_mode",
    "Subscriber",
    "iso_time",
    "object_url",
]

#: Where the dashboard lives on the emulator.
DASHBOARD_PATH = "/_dashboard/"
JOBS_KEPT = 200
PORTRAITS_KEPT = 200
OBJECTS_SHOWN = 200
REQUESTS_KEPT = 100
DUPLICATES_KEPT = 200
#: Most bytes of created images kept for the gallery (the oldest go first).
PORTRAIT_BYTES_KEPT = 64 * 1024 * 1024
#: Events a subscriber may have waiting; one more and it is told to resync.
SUBSCRIBER_LIMIT = 1000
DIGEST_CHARS = 12
_CHARGED_PATHS = (TRAIN_PATH, CREATE_PATH)


def iso_time(seconds: float | None) -> str | None:
    """``seconds`` since the epoch as ISO 8601 UTC with milliseconds (``...Z``)."""
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def object_url(key: str) -> str:
    """Where the dashboard serves the bucket object ``key``."""
    return f"{DASHBOARD_PATH}objects/{quote(key)}"


def portrait_url(job_id: str) -> str:
    """Where the dashboard serves the image a creation made."""
    return f"{DASHBOARD_PATH}portraits/{job_id}"


def creation_mode(model: str, *, t2i: bool, reference: bool, group: bool) -> str:
    """How a creation was asked for, as the dashboard shows it (with the model name, if any)."""
    kind = (
        "text-to-image" if t2i else "reference" if reference else "group" if group else "template"
    )
    return ", ".join(filter(None, (kind, model)))


@dataclass(slots=True)
class JobRecord:
    """One training or creation as the dashboard shows it."""

    job_id: str
    kind: str  # "train" or "create"
    app_id: str
    created: float  # wall clock
    started: float  # monotonic, for the duration
    state: str = "queued"
    ended: float | None = None
    duration: float | None = None
    photos: list[str] = dataclasses.field(default_factory=list)
    photo_count: int = 0
    template: str | None = None
    model_id: str | None = None
    mode: str | None = None
    result: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The job object of the twin."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "app_id": self.app_id,
            "state": self.state,
            "created_at": iso_time(self.created),
            "ended_at": iso_time(self.ended),
            "duration": self.duration,
            "photos": self.photos,
            "photo_count": self.photo_count,
            "template": self.template,
            "model_id": self.model_id,
            "mode": self.mode,
            "result": self.result,
            "error": self.error,
        }


@dataclass(slots=True)
class _Seen:
    """A charged body's first and last arrival (its count is the Counters' fingerprint)."""

    digest: str
    app_id: str
    first: float
    last: float


class Subscriber:
    """One open event stream: the encoded events waiting for it, at most ``limit``.

    :meth:`offer` never blocks; a subscriber that has ``limit`` events waiting drops them all
    and is marked :attr:`behind` (its stream is told to resync and ends).
    """

    def __init__(self, limit: int = SUBSCRIBER_LIMIT) -> None:
        self._limit = limit
        self._events: deque[tuple[str, str]] = deque()
        self._ready = asyncio.Event()
        self.behind = False
        self.closed = False

    def offer(self, name: str, data: str) -> None:
        """Queue one event (``data``: its JSON text), or mark the subscriber behind."""
        if self.behind or self.closed:
            return
        if len(self._events) >= self._limit:
            self.behind = True
            self._events.clear()
        else:
            self._events.append((name, data))
        self._ready.set()

    def close(self) -> None:
        """End the stream (the emulator is stopping)."""
        self.closed = True
        self._ready.set()

    async def next_events(self, timeout: float) -> list[tuple[str, str]]:
        """The events queued since the last call, waiting up to ``timeout`` seconds for one
        (none when the time passed, or the subscriber is behind or closed)."""
        if not self._events and not self.behind and not self.closed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        self._ready.clear()
        events = list(self._events)
        self._events.clear()
        return events


class Activity:
    """Everything the dashboard shows, recorded as it happens, and its subscribers.

    ``apps`` are the emulator's apps (for the charges per app and the quota left); ``locate``
    turns an input image URL into a URL the dashboard's browser can load from the emulator (a
    relative one), or None when it cannot (a ``data:`` or ``file://`` URL, another host).
    """

    def __init__(
        self,
        apps: Mapping[str, AppConfig],
        *,
        locate: Callable[[str], str | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.counters = Counters()
        self.started_at = clock()
        self._apps = apps
        self._locate = locate
        self._clock = clock
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._portraits: deque[dict[str, Any]] = deque(maxlen=PORTRAITS_KEPT)
        self._images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._image_bytes = 0
        self._requests: deque[dict[str, Any]] = deque(maxlen=REQUESTS_KEPT)
        self._charged: dict[str, list[int]] = {}  # app id -> [trainings, creations]
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._duplicates: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._creations = itertools.count(1)
        self._subscribers: set[Subscriber] = set()

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(self) -> Subscriber:
        """A new subscriber to every change from now on."""
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber`` (its stream ended)."""
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every open stream."""
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()

    def _publish(self, name: str, build: Callable[[], Any]) -> None:
        if not self._subscribers:
            return
        data = json.dumps(build(), separators=(",", ":"))
        for subscriber in self._subscribers:
            subscriber.offer(name, data)

    def faults_changed(self, faults: Faults) -> None:
        """Tell the dashboards the fault settings changed."""
        self._publish("faults", lambda: faults_json(faults))

    def object_changed(self, key: str, stored: StoredObject | None) -> None:
        """Tell the dashboards a bucket object was stored (``stored``) or deleted (None)."""
        self._publish("object", lambda: _object_json(key, stored))

    # -- jobs -----------------------------------------------------------------------------------

    def _add_job(self, record: JobRecord) -> None:
        self._jobs[record.job_id] = record
        if len(self._jobs) > JOBS_KEPT:
            self._jobs.popitem(last=False)
        self._publish("job", record.to_json)

    def training(
        self, job_id: int, app_id: str, photos: list[str], *, model_id: str, scene: bool, model: str
    ) -> None:
        """A training of a face (or a ``scene``) with ``model`` (a model name, or "") was
        accepted (queued)."""
        record = JobRecord(str(job_id), "train", app_id, self._clock(), time.monotonic())
        record.photos = self._located(photos)
        record.photo_count = len(photos)
        record.model_id = model_id
        record.mode = ", ".join(filter(None, ("scene" if scene else "face", model)))
        self._add_job(record)

    def creation(self, app_id: str) -> JobRecord:
        """A creation started (running); fill in its inputs, then call :meth:`created` or
        :meth:`ended`."""
        job_id = f"c{next(self._creations)}"
        record = JobRecord(job_id, "create", app_id, self._clock(), time.monotonic(), "running")
        self._add_job(record)
        return record

    def inputs(
        self, record: JobRecord, *, model_id: str, template: str, mode: str, photos: list[str]
    ) -> None:
        """The inputs of a creation, read from its body."""
        record.model_id = model_id or None
        record.template = self._locate(template) if template else None
        record.mode = mode
        record.photos = self._located(photos)
        record.photo_count = len(photos)

    def _located(self, urls: list[str]) -> list[str]:
        return [found for found in map(self._locate, urls) if found is not None]

    def job_state(self, job_id: int, state: str, error: str | None = None) -> None:
        """A training moved to ``state`` ("running", "succeeded" or "failed")."""
        record = self._jobs.get(str(job_id))
        if record is not None:
            self.ended(record, state, error)

    def ended(self, record: JobRecord, state: str, error: str | None = None) -> None:
        """A job changed state (to an end state: its time and duration are kept)."""
        record.state = state
        record.error = error
        if state in ("succeeded", "failed"):
            record.ended = self._clock()
            record.duration = round(time.monotonic() - record.started, 3)
            self._publish("charges", self.charges)
        self._publish("job", record.to_json)

    def created(self, record: JobRecord, image: bytes) -> None:
        """A creation made ``image`` (JPEG or PNG): kept for the gallery (within the bounds)."""
        content_type = "image/jpeg" if image.startswith(JPEG_MAGIC) else "image/png"
        self._images[record.job_id] = (image, content_type)
        self._image_bytes += len(image)
        while len(self._images) > PORTRAITS_KEPT or self._image_bytes > PORTRAIT_BYTES_KEPT:
            _, (old, _type) = self._images.popitem(last=False)
            self._image_bytes -= len(old)
        record.result = portrait_url(record.job_id)
        portrait = {
            "job_id": record.job_id,
            "url": record.result,
            "model_id": record.model_id,
            "template": record.template,
            "mode": record.mode,
            "created_at": iso_time(self._clock()),
        }
        self._portraits.append(portrait)
        self.ended(record, "succeeded")
        self._publish("portrait", lambda: portrait)

    def portrait(self, job_id: str) -> tuple[bytes, str] | None:
        """A kept created image and its content type."""
        return self._images.get(job_id)

    # -- requests and charged bodies ------------------------------------------------------------

    def charged(self, app_id: str, path: str) -> None:
        """A call to ``path`` was charged to ``app_id`` (it passed the signature and quota)."""
        if path in _CHARGED_PATHS:
            self._charged.setdefault(app_id, [0, 0])[path == CREATE_PATH] += 1
            self._publish("charges", self.charges)

    def request(
        self,
        method: str,
        path: str,
        status: int | None,
        seconds: float,
        fault: str | None,
        app_id: str | None,
    ) -> None:
        """An API request was answered (``status`` None: dropped without an answer)."""
        entry = {
            "at": iso_time(self._clock()),
            "method": method,
            "path": path,
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
            "fault": fault,
            "app_id": app_id,
        }
        self._requests.append(entry)
        self._publish("request", lambda: entry)

    def body_seen(self, path: str, fingerprint: str, raw: bytes, app_id: str) -> None:
        """A body was processed; ``fingerprint`` is its key in :attr:`Counters.fingerprints`."""
        if path not in _CHARGED_PATHS:
            return
        key = (path, fingerprint)
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None:
            digest = hashlib.sha256(raw).hexdigest()[:DIGEST_CHARS]
            self._seen[key] = _Seen(digest, app_id, now, now)
            return
        seen.last, seen.app_id = now, app_id
        self._duplicates[key] = None
        self._duplicates.move_to_end(key)
        if len(self._duplicates) > DUPLICATES_KEPT:
            self._duplicates.popitem(last=False)
        self._publish("charges", self.charges)

    # -- the twin -------------------------------------------------------------------------------

    def charges(self) -> dict[str, Any]:
        """The ``charges`` event: counters, charges per app, duplicates."""
        return {
            "counters": self._counters(),
            "charges": self._per_app(),
            "duplicates": self._duplicates_json(),
        }

    def _counters(self) -> dict[str, Any]:
        c = self.counters
        shown = {
            f.name: getattr(c, f.name)
            for f in dataclasses.fields(c)
            if f.name not in ("faults", "fingerprints", "arrivals")
        }
        shown["faults"] = dict(c.faults)
        return shown

    def _per_app(self) -> list[dict[str, Any]]:
        rows = []
        for app_id in dict.fromkeys([*self._apps, *self._charged]):
            app = self._apps.get(app_id)
            trainings, creations = self._charged.get(app_id, (0, 0))
            left = None
            if app is not None and app.quota is not None:
                left = max(0, app.quota - app.used)
            rows.append(
                {"app_id": app_id, "trainings": trainings, "creations": creations,
                 "quota_left": left}
            )  # fmt: skip
        return rows

    def _duplicates_json(self) -> list[dict[str, Any]]:
        rows = []
        for key in reversed(self._duplicates):
            seen = self._seen[key]
            rows.append(
                {
                    "path": key[0],
                    "app_id": seen.app_id,
                    "count": self.counters.fingerprints[key],
                    "first_at": iso_time(seen.first),
                    "last_at": iso_time(seen.last),
                    "digest": seen.digest,
                }
            )
        return rows

    def state(self, *, faults: Faults, objects: dict[str, StoredObject]) -> dict[str, Any]:
        """The JSON twin of the dashboard (every list newest first)."""
        newest_objects = itertools.islice(reversed(objects.items()), OBJECTS_SHOWN)
        return {
            "stand_in": True,
            "started_at": iso_time(self.started_at),
            **self.charges(),
            "jobs": [record.to_json() for record in reversed(self._jobs.values())],
            "portraits": list(reversed(self._portraits)),
            "objects": [_object_json(key, stored) for key, stored in newest_objects],
            "faults": faults_json(faults),
            "requests": list(reversed(self._requests)),
        }


def _object_json(key: str, stored: StoredObject | None) -> dict[str, Any]:
    """A bucket object of the twin (size None: it was deleted)."""
    return {
        "key": key,
        "size": None if stored is None else len(stored.data),
        "url": object_url(key),
    }
