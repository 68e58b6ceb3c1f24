"""What the dashboard shows of one job, and the dashboard's own addresses and times."""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "DASHBOARD_PATH",
    "JobRecord",
    "creation_mode",
    "iso_time",
    "object_url",
    "portrait_url",
]

#: Where the dashboard lives on the emulator.
DASHBOARD_PATH = "/_dashboard/"


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
