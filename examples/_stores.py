"""Shared by the two web examples: their stores (trainings in a JSON file, portraits by
ticket), and what their endpoints do with them: a create kept for a client that left, a
ticket's answer, a training's events. ``_web.py`` holds what an error answers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from _web import (
    BadRequest,
    ErrorAnswer,
    Problem,
    error_answer,
    new_ticket,
    not_sent,
    parse_config,
)

import aiportrait

__all__ = [
    "JobStore",
    "TicketStore",
    "create",
    "job_events",
    "parse_create",
    "portrait_headers",
    "stored_job",
    "ticket_answer",
    "tickets_folder",
    "train",
    "trainings",
]

TICKET = re.compile(r"[A-Za-z0-9_-]{8,64}")
#: The record of a ticket whose create has not ended (on disk from before it is sent).
PENDING = {"state": "pending"}


log = logging.getLogger("web_backend")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it, on disk (synced)
    before it returns: a power loss leaves the old file or the new one, never an empty one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself
    finally:
        os.close(folder)


class JobStore:
    """Training handles in a JSON file (``{job_id: {job_id, model_id, state, ...}}``).

    Each change rewrites the file atomically (a temporary file renamed over it), so a crash
    never leaves half a file behind. One process at a time; a real deployment would use its
    database, storing the same ``job.to_dict()`` dictionaries.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()
        self._read: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every stored training, by job id (as a string). The file is parsed again only when
        it changed (its size or time), not once per call: 200 followers of a store of 10,000
        trainings each ask it."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._read is None or self._read[0] != version:
            data = json.loads(self.path.read_text())
            self._read = (version, data if isinstance(data, dict) else {})
        return dict(self._read[1])

    def job(self, job_id: int) -> aiportrait.TrainJob | None:
        """The stored handle of a job, or ``None``."""
        entry = self.entries().get(str(job_id))
        if entry is None:
            return None
        return aiportrait.TrainJob.from_dict(
            {"job_id": entry["job_id"], "model_id": entry["model_id"]}
        )

    async def put(self, job: aiportrait.TrainJob, **fields: Any) -> None:
        """Store a handle (``job.to_dict()``) with extra fields, or update them; the file is
        written only when that changes it (once per state of a job, however many follow it)."""
        async with self._lock:
            data = self.entries()
            stored = data.get(str(job.job_id))
            if stored is not None and all(stored.get(k) == v for k, v in fields.items()):
                return
            data[str(job.job_id)] = {**(stored or job.to_dict()), **fields}
            text = json.dumps(data, indent=2).encode()
            await asyncio.to_thread(_write_atomic, self.path, text)


class TicketStore:
    """What became of each ``POST /portraits``, by its ticket: the portrait, or the error.

    A create that may have been charged is kept here: one answered (so a client whose answer
    was lost on the way can fetch it again), and one whose client left after it was sent (it
    finishes in the background, ``keep=``, and lands here). A create that provably ran
    nothing upstream (refused before sending, 429, ``Overloaded``, or its client left before
    it was sent: ``Kept.sent`` False, told at once) is not kept: its ticket is free to send
    again. Files in ``folder`` (``<ticket>.json`` and the image beside it), written
    atomically. A ticket's ``pending`` record is on disk before its create can be sent, so a
    backend stopped or crashed mid-create finds it after a restart and answers 409 "may have
    run" instead of 404 "send it again" (a second charge); tickets whose create is live in
    this process are also in memory. Entries are never removed: tickets act as passwords for
    their portraits, and the folder grows without limit; a real deployment would use its
    database and object storage, and expire old entries.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._pending: set[str] = set()  # tickets whose create has not ended

    def open(self, ticket: str | None) -> str:
        """Start a create under ``ticket`` (the client's ``X-Ticket``), or a new one."""
        if ticket is None:
            ticket = new_ticket()
        elif not TICKET.fullmatch(ticket):
            raise BadRequest("X-Ticket must be 8 to 64 letters, digits, '-' or '_'")
        if self.lookup(ticket) is not None:
            raise Problem(
                409,
                "TicketInUse",
                f"ticket {ticket} names a create already sent: fetch GET /portraits/{ticket}",
                ticket=ticket,
            )
        # On disk before the create can be sent: written here, synchronously (a small file).
        _write_atomic(self._path(ticket), json.dumps({"ticket": ticket, **PENDING}).encode())
        self._pending.add(ticket)
        return ticket

    def close(self, ticket: str) -> None:
        """The create ran nothing upstream: forget the ticket (it may be sent again)."""
        self._path(ticket).unlink(missing_ok=True)
        self._pending.discard(ticket)

    def _path(self, ticket: str) -> Path:
        return self.folder / f"{ticket}.json"

    async def done(self, ticket: str, portrait: aiportrait.Portrait) -> None:
        """Keep a portrait under its ticket."""
        record = {
            "state": "done",
            "format": portrait.format,
            "request_id": portrait.request_id,
            "cost_time": portrait.cost_time,
        }
        image = self.folder / f"{ticket}{portrait.extension}"
        try:
            await asyncio.to_thread(_write_atomic, image, portrait.image)
        except BaseException:
            self._pending.discard(ticket)  # its pending record answers "may have run"
            raise
        await self._record(ticket, record)

    async def failed(self, ticket: str, answer: ErrorAnswer) -> None:
        """Keep the error answer of a create that may have run."""
        await self._record(ticket, {"state": "failed", "status": answer.status, **answer.body})

    async def kept(self, ticket: str, kept: aiportrait.Kept) -> None:
        """``keep=`` callback: a create whose client left was not sent (told at once), or was
        sent and has ended."""
        if isinstance(kept.result, aiportrait.Portrait):
            await self.done(ticket, kept.result)
        elif not kept.sent or kept.error is None or not_sent(kept.error):  # ran nothing
            self.close(ticket)
        else:
            await self.failed(ticket, error_answer(kept.error, kept.request_id, ticket=ticket))

    async def _record(self, ticket: str, record: dict[str, Any]) -> None:
        text = json.dumps({"ticket": ticket, **record}).encode()
        try:
            await asyncio.to_thread(_write_atomic, self._path(ticket), text)
        finally:  # written, or not: its pending record answers "may have run" from now on
            self._pending.discard(ticket)

    def lookup(self, ticket: str) -> dict[str, Any] | None:
        """``{"state": "pending" | "interrupted" | "done" | "failed", ...}``, or ``None`` for
        a ticket with nothing kept (unknown, or its client left before it was sent).
        ``interrupted``: a ``pending`` record no create of this process is behind (the backend
        stopped or crashed during it, or could not write what became of it), or a record that
        cannot be read: it may have run."""
        if ticket in self._pending:
            return {"state": "pending", "ticket": ticket}
        try:
            loaded: Any = json.loads(self._path(ticket).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # there, but unreadable: never "send it again"
            loaded = None
        if not isinstance(loaded, dict):
            return {"ticket": ticket, "state": "interrupted"}
        record: dict[str, Any] = loaded
        if record.get("state") == PENDING["state"]:
            return {**record, "state": "interrupted"}
        return record

    def portrait(self, ticket: str, record: dict[str, Any]) -> aiportrait.Portrait:
        """The kept portrait of a ``done`` record."""
        image = (self.folder / f"{ticket}{_extension(record['format'])}").read_bytes()
        return aiportrait.Portrait.from_bytes(
            image, cost_time=record["cost_time"], request_id=record["request_id"]
        )


def _extension(format: str) -> str:
    return aiportrait.Portrait(b"", format=format).extension


def portrait_headers(portrait: aiportrait.Portrait, ticket: str) -> dict[str, str]:
    """The headers of an answer that is a portrait: its type, request id, cost and ticket."""
    return {
        "Content-Type": f"image/{portrait.format}",
        "X-Request-Id": portrait.request_id,
        "X-Cost-Time": str(portrait.cost_time),
        "X-Ticket": ticket,
    }


def ticket_answer(store: TicketStore, ticket: str) -> aiportrait.Portrait:
    """``GET /portraits/{ticket}``: the kept portrait, else the :class:`Problem` to answer."""
    if not TICKET.fullmatch(ticket):
        raise Problem(404, "NotFound", f"no ticket {ticket!r}")
    record = store.lookup(ticket)
    if record is None:
        raise Problem(
            404,
            "NotFound",
            f"nothing is kept under ticket {ticket}: unknown, or its create was not sent "
            "before its client left (nothing was charged): send it again",
            ticket=ticket,
        )
    if record["state"] == "pending":
        raise Problem(
            202,
            "Pending",
            "the create is in progress: ask again after Retry-After seconds",
            retry_after=1.0,
            ticket=ticket,
        )
    if record["state"] == "interrupted":
        raise Problem(
            409,
            "MayHaveRun",
            f"the create of ticket {ticket} was under way when this backend stopped: it may "
            "have run and been charged: check before sending again",
            ticket=ticket,
        )
    if record["state"] == "failed":
        fields = {k: v for k, v in record.items() if k not in ("state", "status", "error")}
        message = fields.pop("message", "")
        raise Problem(record["status"], record["error"], message, **fields)
    return store.portrait(ticket, record)


def tickets_folder(store_path: str | os.PathLike[str]) -> Path:
    """Where the portraits of ``POST /portraits`` are kept: beside the trainings' store."""
    path = Path(store_path)
    return path.with_name(path.stem + "_portraits")


# -- what the endpoints do with them -----------------------------------------------------


def parse_create(body: Any, store: JobStore) -> tuple[str, str, aiportrait.CreateConfig]:
    """``POST /portraits``: ``model_id`` (or a stored ``job_id``), ``template``, ``config``."""
    usage = 'expected {"model_id" or "job_id": ..., "template": URL}'
    if not isinstance(body, dict):
        raise BadRequest(usage)
    model_id = body.get("model_id")
    if model_id is None and "job_id" in body:
        job_id = body["job_id"]
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise BadRequest("job_id must be a number")
        job = store.job(job_id)
        if job is None:
            raise Problem(404, "NotFound", f"no training {job_id} was started here")
        model_id = job.model_id
    template = body.get("template")
    if not isinstance(model_id, str) or not isinstance(template, str):
        raise BadRequest(usage)
    return model_id, template, parse_config(body.get("config"))


def stored_job(store: JobStore, job_id: str) -> aiportrait.TrainJob:
    """``GET /trainings/{job_id}/events``: the stored job (400 not a number, 404 unknown)."""
    try:
        number = int(job_id)
    except ValueError:
        raise BadRequest("job_id must be a number") from None
    job = store.job(number)
    if job is None:
        raise Problem(404, "NotFound", f"no training {number} was started here")
    return job


async def trainings(
    session: aiportrait.Session, store: JobStore, request_id: str
) -> list[dict[str, Any]]:
    """``GET /trainings``: the stored handles, each with the state the service reports now,
    or the error (``error``, ``message``, ``request_id``) that kept it from being asked."""
    entries = list(store.entries().values())
    jobs = await asyncio.gather(
        *(session.get_job(entry["job_id"]) for entry in entries), return_exceptions=True
    )
    listed = []
    for entry, job in zip(entries, jobs, strict=True):
        if isinstance(job, aiportrait.Job):
            entry = {**entry, "state": job.state.name, "message": job.message}
        else:  # the service could not be asked: show what we stored, and why
            entry = {**entry, **error_answer(job, request_id).body}
        listed.append(entry)
    return listed


async def job_events(
    session: aiportrait.Session, store: JobStore, job: aiportrait.TrainJob, request_id: str
) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
    """The server-sent events of a training: ``state`` per change, then ``result``,
    ``failed``, or ``error`` (a deadline, or an error retrying cannot fix: the body of an
    error answer, ``request_id`` included)."""
    watch = session.watch(job)
    try:
        async for update in watch:
            previous = update.previous.name if update.previous is not None else None
            yield (
                "state",
                {
                    "job_id": job.job_id,
                    "state": update.state.name,
                    "previous": previous,
                    "elapsed": round(update.elapsed, 3),
                },
            )  # sent first; then stored, written once per state whatever the followers
            await store.put(job, state=update.state.name)
            if update.state is aiportrait.JobState.FAILED:
                yield "failed", {"job_id": job.job_id, "message": update.message}
            elif update.state is aiportrait.JobState.SUCCESS:
                result = update.result or aiportrait.TrainResult(model_id=job.model_id)
                yield "result", {"model_id": result.model_id, "cost_time": result.cost_time}
    except aiportrait.AIPortraitError as exc:
        yield "error", error_answer(exc, request_id).body
    finally:  # the client left (or the stream ended): this follower stops polling
        await watch.aclose()


# -- a training and a create, kept when their client leaves ----------------------------------------


async def train(
    session: aiportrait.Session, store: JobStore, photos: list[str]
) -> aiportrait.TrainJob:
    """``POST /trainings``: start a training and store its handle. A client that leaves after
    it was sent does not lose it: the handle is stored when the service answers, and
    ``GET /trainings`` lists it."""

    async def kept(kept: aiportrait.Kept) -> None:
        if isinstance(kept.result, aiportrait.TrainJob):
            await store.put(kept.result, state="INIT", photos=len(photos))

    job = await session.with_options(keep=kept).train(photos)
    await asyncio.shield(store.put(job, state="INIT", photos=len(photos)))
    return job


async def create(
    session: aiportrait.Session,
    tickets: TicketStore,
    ticket: str,
    create: tuple[str, str, aiportrait.CreateConfig],
    request_id: str,
) -> aiportrait.Portrait:
    """``POST /portraits``: create under ``ticket`` and keep what may have been charged.

    Cancelled (its client left) while the create waits for a slot, a cool-down or an outage
    pause: it is never sent, nothing is charged, and ``keep`` is told so at once
    (``Kept.sent`` False): the ticket is freed. Cancelled after it was sent: it goes on, and
    its result is kept under the ticket (``GET /portraits/{ticket}``). An error that ran
    nothing frees the ticket; any other error is kept under it, as the portrait is.
    """
    model_id, template, config = create
    try:
        keep = functools.partial(tickets.kept, ticket)
        portrait = await session.with_options(keep=keep).create(model_id, template, config=config)
    except asyncio.CancelledError:
        raise  # its client left: ``keep`` is told what became of it
    except aiportrait.AIPortraitError as exc:
        if not_sent(exc):
            tickets.close(ticket)
        else:
            answer = error_answer(exc, request_id, ticket=ticket)
            await asyncio.shield(tickets.failed(ticket, answer))
        raise
    except BaseException:
        tickets.close(ticket)
        raise
    try:
        await asyncio.shield(tickets.done(ticket, portrait))  # paid for: kept even if cancelled
    except OSError:  # not kept (a full disk): the client still gets what it paid for
        log.exception("ticket %s: its portrait could not be kept", ticket)
    return portrait
