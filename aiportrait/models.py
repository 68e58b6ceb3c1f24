"""The values a caller holds: check reports, job handles, jobs, training results and portraits.

All are frozen attrs classes. Enum-valued fields tolerate values the documentation does not list
(a future service version may add them): they become pseudo-members named ``UNKNOWN_<n>``
instead of raising.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ._files import write_atomic
from ._states import CheckVerdict, JobState
from ._wire.convert import converter
from ._wire.imageinfo import sniff
from .errors import InvalidArgument

if TYPE_CHECKING:
    from ._batches.planned import BatchPlan as BatchPlan
    from ._batches.planned import PlannedItem as PlannedItem
    from ._batches.planned import PlanStep as PlanStep

_T = TypeVar("_T")


def _to_dict(value: object) -> dict[str, Any]:
    data: dict[str, Any] = converter().unstructure(value)
    return data


def _from_dict(cls: type[_T], data: Any) -> _T:
    try:
        return converter().structure(data, cls)
    except Exception as exc:  # cattrs' validation errors, TypeError, ValueError...
        raise InvalidArgument(f"not a {cls.__name__} dict: {data!r:.200} ({exc})") from None


__all__ = [
    "BatchPlan",
    "CheckReport",
    "CheckVerdict",
    "ImageCheck",
    "Job",
    "JobState",
    "PlanStep",
    "PlannedItem",
    "Portrait",
    "TrainJob",
    "TrainResult",
]


@attrs.frozen
class ImageCheck:
    """The verdict on one photo.

    Attributes:
        url: the photo's URL as sent: a presigned one is a
            :class:`~aiportrait.uploads.PresignedURL`, equal to it, whose ``repr``, ``str`` and
            pickle hold no signature (``str`` is the photo's path when it was uploaded from
            one); ``url.reveal()`` is the usable URL.
        code: the verdict; ``code.known`` is False for codes the documentation does not list.
        message: the service's message for the verdict.
        frontal: whether the face looks at the camera.
        detail: a sentence saying more than ``message`` (what exactly went wrong), when the
            server sends one (the local emulator does, as ``emulator_detail``); else ``""``.
    """

    url: str
    code: CheckVerdict
    message: str = ""
    frontal: bool = False
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the photo is usable for training."""
        return self.code is CheckVerdict.SUCCESS


@attrs.frozen
class CheckReport:
    """The result of :meth:`Session.check_images`.

    Attributes:
        results: one :class:`ImageCheck` per photo, in the service's order.
        images: the URLs the service lists as verified (presigned ones as in ``results``).
        cost_time: server compute seconds.
        request_id: the service's request id.
    """

    results: tuple[ImageCheck, ...]
    images: tuple[str, ...] = ()
    cost_time: float = 0.0
    request_id: str = ""

    @property
    def ok(self) -> bool:
        """True when there is at least one result and every photo passed."""
        return bool(self.results) and all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[ImageCheck, ...]:
        """The photos that did not pass."""
        return tuple(r for r in self.results if not r.ok)

    @property
    def passed(self) -> tuple[str, ...]:
        """URLs of the photos that passed, in order."""
        return tuple(r.url for r in self.results if r.ok)

    def _repr_html_(self) -> str:
        caption = f"{len(self.passed)} of {len(self.results)} photos usable"
        return _table(caption, ("photo", "verdict", "message", "frontal"), _rows(self.results))


@attrs.frozen
class TrainJob:
    """A handle on a training: plain data that can be stored and resumed in another process.

    Attributes:
        job_id: the asynchronous job to watch.
        model_id: the LoRA id to create portraits with once the job succeeds (for a scene
            LoRA training, the ``scene_id``).
    """

    job_id: int
    model_id: str

    def to_dict(self) -> dict[str, Any]:
        """``{"job_id": ..., "model_id": ...}``: store it, and :meth:`from_dict` brings it back."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TrainJob:
        """The handle :meth:`to_dict` gave ``data`` for (``InvalidArgument`` if it is not one)."""
        return _from_dict(cls, data)


@attrs.frozen
class TrainResult:
    """What a successful training reports.

    Attributes:
        model_id: the trained LoRA id (equal to ``TrainJob.model_id``).
        cost_time: total training seconds.
        states: the per-photo verdicts of the check run before training.
    """

    model_id: str
    cost_time: float = 0.0
    states: tuple[ImageCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; :meth:`from_dict` brings it back."""
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TrainResult:
        """The result :meth:`to_dict` gave ``data`` for (``InvalidArgument`` if it is not one)."""
        return _from_dict(cls, data)

    def _repr_html_(self) -> str:
        caption = f"model {self.model_id} trained in {self.cost_time:.1f}s"
        return _table(caption, ("photo", "verdict", "message", "frontal"), _rows(self.states))


@attrs.frozen
class Job:
    """One answer of the job query.

    Attributes:
        job_id: the job's id.
        state: the job's state; ``state.terminal`` tells whether it can change.
        message: the service's message (``success``, or why the job failed).
        app_id: the AppId that owns the job.
        raw_result: the ``Result`` string as sent (``None`` when absent), with each presigned
            URL in it without its query (no signature: the text is kept, logged, pickled).
        result: ``raw_result`` parsed as a training result, when it is one.
        request_id: the request id of this query.
    """

    job_id: int
    state: JobState
    message: str = ""
    app_id: str = ""
    raw_result: str | None = attrs.field(default=None, repr=False)
    result: TrainResult | None = None
    request_id: str = ""

    @property
    def done(self) -> bool:
        """True when the job has finished, successfully or not."""
        return self.state.terminal


def _rows(checks: tuple[ImageCheck, ...]) -> list[tuple[str, ...]]:
    return [(c.url, c.code.name, c.message, "yes" if c.frontal else "no") for c in checks]


def _table(caption: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A small HTML table for notebooks (every cell escaped)."""
    import html  # notebooks only: not loaded by ``import aiportrait``

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _image_repr(value: bytes) -> str:
    return f"<{len(value)} bytes>"


EXTENSIONS: Final = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "unknown": ".bin"}
"""A portrait's file extension by its format (:attr:`Portrait.extension`): the one table every
place that writes or looks for a portrait's file uses."""


@attrs.frozen
class Portrait:
    """A created portrait.

    Attributes:
        image: the decoded image bytes, exactly as the service encoded them.
        format: ``"jpeg"``, ``"png"``, ``"webp"`` or ``"unknown"``, sniffed from magic bytes.
        width: pixels, read from the image header (``None`` if it cannot be read).
        height: pixels, read from the image header (``None`` if it cannot be read).
        cost_time: server seconds spent on the portrait.
        request_id: the service's request id.
    """

    image: bytes = attrs.field(repr=_image_repr)
    format: str = "unknown"
    width: int | None = None
    height: int | None = None
    cost_time: float = 0.0
    request_id: str = ""

    @classmethod
    def from_bytes(cls, image: bytes, *, cost_time: float = 0.0, request_id: str = "") -> Portrait:
        """Build a Portrait from image bytes, sniffing the format and size."""
        info = sniff(image)
        return cls(
            image=image,
            format=info.format,
            width=info.width,
            height=info.height,
            cost_time=cost_time,
            request_id=request_id,
        )

    @property
    def extension(self) -> str:
        """The usual file extension for the format, with the dot (``.bin`` when unknown)."""
        return EXTENSIONS.get(self.format, EXTENSIONS["unknown"])

    def save(self, path: str | os.PathLike[str], *, shared: bool = False) -> Path:
        """Write the image to ``path`` atomically and durably; return the path written.

        A path without a suffix gets the format's extension. The file is written to a temporary
        name in the same folder, flushed to disk, and renamed, so a reader never sees a
        half-written portrait; the folder is then flushed too, so that once this returns the
        file survives a power cut. A portrait is personal data: the file is created ``0600``
        (a missing folder ``0700``); ``shared=True`` creates them by the umask instead
        (``0644`` under the usual ``022``), for a web server running as another user.
        """
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(self.extension)
        return write_atomic(target, self.image, shared=shared)

    def _repr_png_(self) -> bytes | None:
        return self.image if self.format == "png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.image if self.format == "jpeg" else None


_PLANS = frozenset({"BatchPlan", "PlanStep", "PlannedItem"})
"""A batch's dry run (:meth:`Session.plan_many`): built on first use, in
:mod:`aiportrait._batches.planned` (a single call needs none of them)."""


def __getattr__(name: str) -> Any:
    if name not in _PLANS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ._batches import planned

    value = getattr(planned, name)
    globals()[name] = value
    return value
