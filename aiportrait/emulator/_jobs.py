"""The job store: training jobs and synthetic jobs, persisted as an append-only JSON-lines log.

A *training* job's state is written by the training task as it moves 0 -> 1 -> 2 or 3. A
*synthetic* job (for tests and benchmarks) has no task at all: its state is computed from the
clock when it is read (init for the first tenth of its duration, running until the duration has
passed, then its chosen outcome), so ten thousand of them cost a few megabytes.

Every job record is appended to ``jobs.jsonl`` when created and when it changes; on start the log
is replayed (the last record of an id wins) and compacted. A training that was still running when
the emulator stopped is marked failed, since its task is gone. The log is private (``0600``) and
keeps every signed URL (a job's result echoes the photos') without its query: a presigned URL
reads a person's photo.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from .._files import open_new
from .._wire.signing import public_json
from ._wire import JOB_FAILED, JOB_INIT, JOB_RUNNING, JOB_SUCCESS

__all__ = ["INTERRUPTED_MESSAGE", "Job", "JobStore"]

INTERRUPTED_MESSAGE = "Train error, error info:the emulator stopped during training"
STATE_MESSAGES = {JOB_INIT: "init", JOB_RUNNING: "running", JOB_SUCCESS: "success"}


@dataclass(slots=True)
class Job:
    """One asynchronous job as the store keeps it.

    ``kind`` is ``"train"`` (state written by its task) or ``"synthetic"`` (state computed from
    ``created``, ``duration`` and the outcome fields ``succeed``, ``message`` and ``result``).
    """

    id: int
    app_id: str
    kind: str
    request_id: str
    created: float
    state: int = JOB_INIT
    message: str = STATE_MESSAGES[JOB_INIT]
    result: str = ""
    model_id: str = ""
    batch_id: int = 0
    duration: float = 0.0
    succeed: bool = True
    scene: bool = False

    def view(self, now: float) -> tuple[int, str, str]:
        """Return ``(state, message, Result)`` as seen at wall-clock time ``now``."""
        if self.kind != "synthetic":
            return self.state, self.message, self.result
        elapsed = now - self.created
        if elapsed >= self.duration:
            return (JOB_SUCCESS if self.succeed else JOB_FAILED), self.message, self.result
        if elapsed < self.duration / 10:
            return JOB_INIT, STATE_MESSAGES[JOB_INIT], ""
        return JOB_RUNNING, STATE_MESSAGES[JOB_RUNNING], ""

    def to_wire(self, now: float, *, batch: bool = False) -> dict[str, Any]:
        """Return the job object of the job query (``"Result"`` with a capital R, a string)."""
        state, message, result = self.view(now)
        wire: dict[str, Any] = {
            "id": self.id,
            "app_id": self.app_id,
            "state": state,
            "message": message,
            "Result": result,
            "request_id": self.request_id,
        }
        if batch:
            wire["batch_id"] = self.batch_id
        return wire


class JobStore:
    """All jobs, by id, with their log under ``directory`` (None keeps them in memory only)."""

    def __init__(self, directory: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._jobs: dict[int, Job] = {}
        self._batches: dict[int, list[int]] = {}
        self._models: dict[str, int] = {}
        self._next_id = 1
        self._log: IO[str] | None = None
        self._path = None if directory is None else directory / "jobs.jsonl"
        if self._path is not None:
            self._load(self._path)
            fd = open_new(self._path, os.O_WRONLY | os.O_APPEND)  # results hold URLs: 0600
            self._log = os.fdopen(fd, "a", encoding="utf-8")

    def __len__(self) -> int:
        return len(self._jobs)

    def close(self) -> None:
        """Close the log file."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def _load(self, path: Path) -> None:
        if path.exists():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        job = Job(**json.loads(line))
                    except (ValueError, TypeError):
                        continue  # a torn last line after a crash
                    self._index(job)
        for job in self._jobs.values():
            if job.kind == "train" and job.state in (JOB_INIT, JOB_RUNNING):
                job.state, job.message = JOB_FAILED, INTERRUPTED_MESSAGE
        tmp = path.with_suffix(".tmp")
        with os.fdopen(open_new(tmp, os.O_WRONLY | os.O_TRUNC), "w", encoding="utf-8") as fh:
            for job in self._jobs.values():
                fh.write(json.dumps(public_json(asdict(job))) + "\n")
        os.replace(tmp, path)

    def _index(self, job: Job) -> None:
        if job.id not in self._jobs and job.batch_id:
            self._batches.setdefault(job.batch_id, []).append(job.id)
        self._jobs[job.id] = job
        if job.model_id:
            self._models[job.model_id] = job.id
        self._next_id = max(self._next_id, job.id + 1)

    def _persist(self, job: Job) -> None:
        if self._log is not None:
            self._log.write(json.dumps(public_json(asdict(job))) + "\n")
            self._log.flush()

    def add(
        self,
        *,
        app_id: str,
        kind: str,
        request_id: str,
        model_id: str = "",
        batch_id: int = 0,
        duration: float = 0.0,
        succeed: bool = True,
        message: str = "",
        result: str = "",
        scene: bool = False,
    ) -> Job:
        """Create, index and persist a job with the next id."""
        job = Job(
            id=self._next_id,
            app_id=app_id,
            kind=kind,
            request_id=request_id,
            created=self.clock(),
            model_id=model_id,
            batch_id=batch_id,
            duration=duration,
            succeed=succeed,
            scene=scene,
        )
        if kind == "synthetic":
            job.message, job.result = message, result
        self._index(job)
        self._persist(job)
        return job

    def update(self, job: Job, state: int, message: str | None = None, result: str = "") -> None:
        """Move a training job to ``state`` and persist it."""
        job.state = state
        job.message = STATE_MESSAGES.get(state, "") if message is None else message
        job.result = result
        self._persist(job)

    def by_id(self, job_id: int) -> Job:
        """Return the job with this id (KeyError when there is none)."""
        return self._jobs[job_id]

    def get(self, job_id: int, app_id: str) -> Job | None:
        """Return the app's job with this id, or None (another app's job is not found)."""
        job = self._jobs.get(job_id)
        return job if job is not None and job.app_id == app_id else None

    def batch(self, batch_id: int, app_id: str) -> list[Job]:
        """Return the app's jobs grouped under ``batch_id`` (possibly none)."""
        ids = self._batches.get(batch_id, ())
        return [self._jobs[i] for i in ids if self._jobs[i].app_id == app_id]

    def model_job(self, model_id: str) -> Job | None:
        """Return the training job that produces ``model_id``, if any."""
        job_id = self._models.get(model_id)
        return None if job_id is None else self._jobs[job_id]
