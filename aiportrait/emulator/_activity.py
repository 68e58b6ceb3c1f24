"""What the emulator did, kept for its dashboard: jobs, portraits, the last requests, charges per
app and the charged bodies that arrived more than once.

Recording never waits and costs O(1): an append to a bounded container, then the change offered
to each dashboard :class:`Subscriber` (a bounded queue, never awaited); with no dashboard open, no
event is even encoded. What moves with every API request (the requests, the counters and charges)
is not encoded when it happens: each subscriber is only marked, and its stream builds the newest
state once per write (:meth:`Activity.requests_after`, :meth:`Activity.charges`), so an open
dashboard adds a few attribute sets to a request, not an encoding. :meth:`Activity.state` is the
JSON twin of the page, documented field by field in ``docs/guides/dashboard.md``. Nothing
recorded holds a token, a signature or a body: a request keeps its path without the query, a
charged body only a short SHA-256 digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._auth import AppConfig
from ._bucket import StoredObject
from ._dashboard_events import Subscriber, event_json
from ._dashboard_records import JobRecord, iso_time, object_url, portrait_url
from ._faults import Counters, Faults, faults_json
from ._wire import CREATE_PATH, TRAIN_PATH
from ._work import JPEG_MAGIC

__all__ = ["JOBS_KEPT", "REQUESTS_KEPT", "Activity"]

JOBS_KEPT = 200
PORTRAITS_KEPT = 200
OBJECTS_SHOWN = 200
REQUESTS_KEPT = 100
DUPLICATES_KEPT = 200
#: Most bytes of created images kept for the gallery (the oldest go first).
PORTRAIT_BYTES_KEPT = 64 * 1024 * 1024
DIGEST_CHARS = 12
#: The charged bodies whose first arrival is kept (for a duplicate's ``first_at``).
FIRSTS_KEPT = 10_000
_CHARGED_PATHS = (TRAIN_PATH, CREATE_PATH)


@dataclass(slots=True)
class _Seen:
    """A charged body that arrived again: its digest, its last app, its first and last arrival
    (how many times: its count in :attr:`Counters.fingerprints`)."""

    digest: str
    app_id: str
    first: float | None  # None: it arrived first before the last FIRSTS_KEPT charged bodies
    last: float


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
        self._requests_recorded = 0  # ever: the last of them is self._requests[-1]
        self._request_texts: dict[int, str] = {}  # kept requests' JSON, by number, once built
        self._charged: dict[str, list[int]] = {}  # app id -> [trainings, creations]
        # The first arrival of the latest charged bodies (whether one arrived before: its count).
        self._first: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._duplicates: OrderedDict[tuple[str, str], _Seen] = OrderedDict()
        self._creations = itertools.count(1)
        self._subscribers: set[Subscriber] = set()

    # -- subscribers ----------------------------------------------------------------------------

    def subscribe(self) -> Subscriber:
        """A new subscriber to every change from now on."""
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    @property
    def streams(self) -> int:
        """How many subscribers there are (open event streams)."""
        return len(self._subscribers)

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
        data = event_json(build())
        for subscriber in self._subscribers:
            subscriber.offer(name, data)

    def _mark(self, name: str) -> None:
        for subscriber in self._subscribers:
            subscriber.mark(name)

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
        :meth:`moved`."""
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
            self.moved(record, state, error)

    def moved(self, record: JobRecord, state: str, error: str | None = None) -> None:
        """A job moved to ``state`` (to an end state: its time and duration are kept)."""
        record.state = state
        record.error = error
        if state in ("succeeded", "failed"):
            record.ended = self._clock()
            record.duration = round(time.monotonic() - record.started, 3)
            self._mark("charges")
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
        self.moved(record, "succeeded")
        self._publish("portrait", lambda: portrait)

    def portrait(self, job_id: str) -> tuple[bytes, str] | None:
        """A kept created image and its content type."""
        return self._images.get(job_id)

    # -- requests and charged bodies ------------------------------------------------------------

    def charged(self, app_id: str, path: str, calls: int = 1) -> None:
        """A call to ``path`` was charged to ``app_id`` (it passed the signature and quota);
        ``calls=-1``: it was given back (the emulator failed)."""
        if path in _CHARGED_PATHS:
            self._charged.setdefault(app_id, [0, 0])[path == CREATE_PATH] += calls
            self._mark("charges")

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
        self._requests_recorded += 1
        self._mark("request")

    @property
    def requests_recorded(self) -> int:
        """How many requests were recorded so far (for :meth:`requests_after`)."""
        return self._requests_recorded

    def requests_after(self, seen: int) -> tuple[list[str], int]:
        """The ``request`` events of the requests recorded after the first ``seen`` (at most
        the last :data:`REQUESTS_KEPT`, oldest first; each encoded once whatever the number of
        streams), and how many were recorded so far (the next ``seen``)."""
        recorded = self._requests_recorded
        oldest = recorded - len(self._requests)  # the number of self._requests[0]
        texts = {n: t for n, t in self._request_texts.items() if n >= oldest}
        for number in range(max(seen, oldest), recorded):
            if number not in texts:
                texts[number] = event_json(self._requests[number - oldest])
        self._request_texts = texts
        return [texts[n] for n in range(max(seen, oldest), recorded)], recorded

    def body_seen(self, path: str, fingerprint: str, raw: bytes, app_id: str) -> None:
        """A body was processed; ``fingerprint`` is its key in :attr:`Counters.fingerprints`
        (counted already: whether it arrived before is its count there)."""
        if path not in _CHARGED_PATHS:
            return
        key = (path, fingerprint)
        now = self._clock()
        if self.counters.fingerprints[key] < 2:
            self._first[key] = now
            if len(self._first) > FIRSTS_KEPT:
                self._first.popitem(last=False)
            return
        seen = self._duplicates.pop(key, None)  # put back last: the newest duplicate
        if seen is None:  # the body arrives again: its digest, once
            digest = hashlib.sha256(raw).hexdigest()[:DIGEST_CHARS]
            seen = _Seen(digest, app_id, self._first.get(key), now)
        seen.last, seen.app_id = now, app_id
        self._duplicates[key] = seen
        if len(self._duplicates) > DUPLICATES_KEPT:
            self._duplicates.popitem(last=False)
        self._mark("charges")

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
        for key, seen in reversed(self._duplicates.items()):
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
