"""The exception tree: everything aiportrait raises derives from :class:`AIPortraitError`.

No aiohttp, cattrs or JSON exception reaches a caller: the transport translates them at one
boundary. API errors carry the HTTP ``status``, the service ``code`` and ``message``, and the
``request_id`` to quote to support. No exception text ever holds the token or a signature.

::

    AIPortraitError
    ├── InvalidArgument (ValueError)          bad argument or config, raised before any request
    │   ├── ConflictingArguments              an explicit argument and the same config key disagree
    │   ├── LocalPhotoError                   a local photo is missing, unreadable or not an image
    │   └── PreflightFailed                   local photos failed the check on this machine
    ├── CredentialsError (ValueError)         from_env(): a variable is missing
    ├── SessionClosed                         a call on a Session after aclose()
    ├── UploadError                           a local photo could not be uploaded
    ├── JobError                              a watched job did not bring a result
    │   ├── JobFailed                         the job ended in state 3 (failed)
    │   └── JobTimeout                        the deadline passed before the job ended
    ├── SubmitOutcomeUnknown                  a charged call may or may not have run
    ├── BudgetExhausted                       a charged call beyond the budget: not sent
    ├── Overloaded                            the Session's queue is full or too slow: not sent
    ├── PreviousFailure                       a journalled batch item failed in an earlier run
    ├── PortraitMissing                       a finished batch item's portrait file is gone
    ├── BatchStopped                          a batch stopped before this item was submitted
    ├── JournalError                          a batch journal cannot be read or used
    │   └── JournalLocked                     another run holds the batch journal
    ├── TransportError                        the request did not get an HTTP answer
    │   ├── ConnectError                      could not connect, or the connection dropped
    │   └── RequestTimeout                    no answer within the timeout
    ├── ResponseError                         an answer we cannot read
    │   ├── MalformedResponse                 not JSON, not the envelope, wrong field types
    │   └── ResponseTooLarge                  the body exceeds the configured bound
    └── APIError                              the service answered with an error
        ├── GatewayError                      documented gateway errors
        │   ├── UnknownApp                    400 PARAMETER_ERROR "not found appid"
        │   ├── QuotaExceeded                 400 EXCEEDED_QUOTA_ERROR "exceeded quota"
        │   ├── SignatureMismatch             401 PARAMETER_ERROR "sign error"
        │   └── ModelNotDeployed              404 PARAMETER_ERROR "model not found"
        ├── CreateError                       documented portrait-creation errors (code "error")
        │   ├── InvalidInput                  462 Invalid input data
        │   ├── TemplateNotProvided           462 Image not provided
        │   ├── ModelIdError                  462 Prompts get error (bad model_id)
        │   ├── ModelNotTrained               462 Roop image decode error (LoRA not trained)
        │   ├── TemplateDecodeError           462 Template image decode error
        │   ├── NoFaceInTemplate              462 There is not face in template
        │   ├── TemplateProcessError          462 Template image process error
        │   ├── FaceFusionError               469 face fusion could not find the template face
        │   │   ├── FirstFaceFusionError      469 First Face Fusion Error
        │   │   └── SecondFaceFusionError     469 Second Face Fusion Error
        │   ├── DiffusionError                469 a Stable Diffusion stage failed
        │   │   ├── FirstDiffusionError       469 First Stable Diffusion Process error
        │   │   ├── SecondDiffusionError      469 Second Stable Diffusion Process error
        │   │   └── ThirdDiffusionError       469 Third Stable Diffusion Process error
        │   ├── FaceCountMismatch             469 template faces != model ids
        │   └── FaceIdDecodeError             500 Face id image decode error
        ├── ClientError                       any other 4xx
        │   └── RateLimited                   429 (``retry_after`` in seconds when sent)
        ├── ServerError                       any other 5xx
        └── ServiceError                      HTTP 2xx with a code other than "OK"

Unknown errors fall back by status: 429 to :class:`RateLimited`, other 4xx to
:class:`ClientError`, 5xx to :class:`ServerError`, anything else to :class:`APIError`.

Warnings (``warnings.warn``; the request is still sent unchanged)::

    AIPortraitWarning (UserWarning)
    ├── PhotoCountWarning                     a training with fewer than 5 or more than 20 photos
    └── ConfigWarning                         an undocumented configure key, or one for the
                                              other model family (SD1.5 vs SDXL)
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from ._states import JobState

__all__ = [
    "LocalPhotoError",
    "PreflightFailed",
    "UploadError",
    "AIPortraitError",
    "AIPortraitWarning",
    "APIError",
    "BatchStopped",
    "BudgetExhausted",
    "ClientError",
    "ConfigWarning",
    "ConflictingArguments",
    "ConnectError",
    "CreateError",
    "CredentialsError",
    "DiffusionError",
    "FaceCountMismatch",
    "FaceFusionError",
    "FaceIdDecodeError",
    "FirstDiffusionError",
    "FirstFaceFusionError",
    "GatewayError",
    "InvalidArgument",
    "JobError",
    "JobFailed",
    "JobTimeout",
    "JournalError",
    "JournalLocked",
    "InvalidInput",
    "Overloaded",
    "MalformedResponse",
    "ModelIdError",
    "ModelNotDeployed",
    "ModelNotTrained",
    "NoFaceInTemplate",
    "PhotoCountWarning",
    "PortraitMissing",
    "PreviousFailure",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "ResponseError",
    "ResponseTooLarge",
    "SecondDiffusionError",
    "SecondFaceFusionError",
    "ServerError",
    "ServiceError",
    "SessionClosed",
    "SignatureMismatch",
    "SubmitOutcomeUnknown",
    "TemplateDecodeError",
    "TemplateNotProvided",
    "TemplateProcessError",
    "ThirdDiffusionError",
    "TransportError",
    "UnknownApp",
    "error_from_response",
]


class AIPortraitError(Exception):
    """Base class of every exception aiportrait raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle attributes too (process pools), whatever the constructor's signature.
        return (_rebuild, (type(self), self.args, self.__dict__))


class InvalidArgument(AIPortraitError, ValueError):
    """An argument or config value is wrong; raised before any request is sent."""


class ConflictingArguments(InvalidArgument):
    """An explicit argument and the same key in ``config`` (or ``extra``) disagree."""


class CredentialsError(AIPortraitError, ValueError):
    """Credentials could not be found (``Session.from_env``)."""


class SessionClosed(AIPortraitError):
    """The Session was closed; create a new one."""


class JobError(AIPortraitError):
    """A watched job did not bring a result.

    Attributes:
        job_id: the job's id.
    """

    def __init__(self, message: str, *, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobFailed(JobError):
    """The job ended in the failed state.

    Attributes:
        job_id: the job's id.
        message: the service's message for the failure.
        raw_result: the job's ``Result`` string as sent, if any, with each presigned URL in
            it without its query (see :attr:`aiportrait.models.Job.raw_result`).
    """

    def __init__(self, job_id: int, message: str, raw_result: str | None = None) -> None:
        super().__init__(f"job {job_id} failed: {message or '(no message)'}", job_id=job_id)
        self.message = message
        self.raw_result = raw_result


class JobTimeout(JobError, TimeoutError):
    """The deadline passed before the job ended.

    Attributes:
        job_id: the job's id.
        last_state: the last state seen (``None`` if no poll succeeded).
        elapsed: seconds since the watch started.
    """

    def __init__(self, job_id: int, last_state: int | None, elapsed: float) -> None:
        seen = "no state seen" if last_state is None else f"last state {_state_name(last_state)}"
        super().__init__(f"job {job_id} did not end within {elapsed:.1f}s ({seen})", job_id=job_id)
        self.last_state = last_state
        self.elapsed = elapsed


def _state_name(state: int) -> str:
    """``RUNNING`` for 1 (``UNKNOWN_<n>`` for a state the documentation does not list)."""
    return JobState(state).name


class SubmitOutcomeUnknown(AIPortraitError):
    """A charged call (train or create) may or may not have run on the service.

    Raised instead of a silent second submission: the request may have reached the service
    (the connection dropped after sending, or the answer timed out), or a batch was killed
    while the call was in flight. Decide yourself whether to submit again.

    Attributes:
        action: ``"train"`` or ``"create"``.
        request: what was sent (the request object or the JSON payload; never credentials).
        request_id: the service's request id of the answer that left the outcome open (an
            OK answer that could not be read, a 5xx), to quote to support; ``""`` when the
            service never answered.
    """

    request_id = ""  # also what an instance pickled before this attribute existed reads

    def __init__(self, message: str, *, action: str, request: object, request_id: str = "") -> None:
        super().__init__(message)
        self.action = action
        self.request = request
        self.request_id = request_id


class BudgetExhausted(AIPortraitError):
    """A charged call (train or create) beyond the :class:`~aiportrait.Budget`: it was not
    sent and not charged (nothing of it was uploaded either).

    A batch item refused so is left new in the journal: run the batch again with a larger
    budget to go on.

    Attributes:
        kind: ``"train"`` or ``"create"``.
        limit: the budget's bound for that kind.
    """

    sent = False
    """Never sent (as :attr:`TransportError.sent`)."""

    def __init__(self, message: str, *, kind: str, limit: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.limit = limit


class Overloaded(AIPortraitError):
    """The Session turned a call away before sending it: ``max_waiting`` calls were already
    waiting (for a slot, the 429 cool-down, the outage pause, their rate's turn), or this
    call waited ``max_wait`` seconds without getting through. It was not sent and nothing was
    charged: send it again after ``retry_after`` seconds (a web backend answers 429 or 503
    with ``Retry-After``).

    Attributes:
        retry_after: seconds to wait before trying again, an estimate (> 0): what is left of
            the cool-down or the outage pause, else how long the calls ahead of it take.
        kind: ``"read"``, ``"train"`` or ``"create"``.
        waiting: the calls waiting when it was turned away.
    """

    sent = False
    """Never sent (as :attr:`TransportError.sent`)."""

    def __init__(self, message: str, *, retry_after: float, kind: str, waiting: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.kind = kind
        self.waiting = waiting


class PreviousFailure(AIPortraitError):
    """A journalled batch item that failed in an earlier run (re-run with ``retry_failed``).

    Attributes:
        recorded: the error as the journal recorded it.
    """

    def __init__(self, recorded: str) -> None:
        super().__init__(f"failed in an earlier run: {recorded}")
        self.recorded = recorded


class PortraitMissing(AIPortraitError):
    """A journalled portrait was created in an earlier run, but its file is not where expected.

    It is not created again on its own (that would be paid for a second time): put the file
    back, or re-run with ``recreate_missing=True``.

    Attributes:
        path: where the batch looked for the file (in this run's output folder).
        recorded: where the earlier run wrote it, as the journal recorded it (``None`` when
            the journal holds no file name).
    """

    def __init__(self, key: object, path: Path, recorded: Path | None) -> None:
        where = f"; the journal recorded it at {recorded}" if recorded not in (None, path) else ""
        super().__init__(
            f"item {key!r} was created in an earlier run, but its portrait is not at {path}"
            f"{where}. It was not created again: put the file back, or re-run with "
            "recreate_missing=True to create it (and pay for it) again"
        )
        self.path = path
        self.recorded = recorded


class BatchStopped(AIPortraitError):
    """The batch stopped (:meth:`aiportrait.batches.BatchStop.stop`, Ctrl-C in ``aiportrait batch``,
    or an error that would repeat for every item) before this item was submitted, or while
    its training was being watched.

    Nothing was charged for it in this run: its journal row is as it was, so running the batch
    again does it (a training whose watch stopped is watched again, not trained again).

    Attributes:
        reason: what stopped the batch: the error that would repeat for every item
            (:class:`QuotaExceeded`, :class:`UnknownApp`, :class:`SignatureMismatch`), or
            ``None`` when it was stopped on request.
        job_id: for a training submitted before the stop, its job (it goes on at the
            service); ``None`` for an item not submitted.
    """

    def __init__(
        self, key: object, reason: BaseException | None, job_id: int | None = None
    ) -> None:
        why = "stopped" if reason is None else f"stopped on {type(reason).__name__}: {reason}"
        if job_id is None:
            text = f"item {key!r} not submitted (batch {why}); a re-run submits it"
        else:
            text = (
                f"item {key!r}: watching job {job_id} stopped (batch {why}); the training goes "
                "on, and a re-run watches it again"
            )
        super().__init__(text)
        self.reason = reason
        self.job_id = job_id


class JournalError(AIPortraitError):
    """A batch journal (an SQLite file) cannot be read or used as it is.

    Attributes:
        path: the journal file.
        key: the item whose row cannot be read, or ``None`` when the whole file is concerned.
    """

    def __init__(self, message: str, *, path: Path, key: object = None) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class JournalLocked(JournalError):
    """Another run (in this process or another) holds the batch journal.

    A journal is owned by one run at a time, so that no item is submitted twice.

    Attributes:
        path: the journal file.
        holder: who holds it (process id, host, start time), as it recorded itself.
    """

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(
            f"journal {path} is in use by another run ({holder}); wait for that run to end, "
            "or use another journal",
            path=path,
        )
        self.holder = holder


# -- warnings --------------------------------------------------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _ours(filename: str) -> bool:
    """A frame of aiportrait itself, or of the ``__init__`` attrs generates for its classes."""
    return filename.startswith((_PACKAGE_DIR, "<attrs generated"))


class AIPortraitWarning(UserWarning):
    """Base class of the warnings aiportrait issues: the call goes ahead, but look at it.

    Silence them all with ``warnings.filterwarnings("ignore", category=AIPortraitWarning)``.
    """

    @classmethod
    def warn(cls, message: str) -> None:
        """``warnings.warn(message, cls)``, shown at the first caller outside aiportrait."""
        level = 2
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and _ours(frame.f_code.co_filename):
            frame, level = frame.f_back, level + 1
        warnings.warn(message, cls, stacklevel=level if frame is not None else 2)


class PhotoCountWarning(AIPortraitWarning):
    """A training got fewer than 5 or more than 20 photos: the documentation asks for 5 to 20.

    The service may accept the training anyway (nothing is sent differently); few photos make
    a weak likeness.
    """

    minimum: ClassVar[int] = 5
    maximum: ClassVar[int] = 20

    @classmethod
    def problem(cls, count: int) -> str | None:
        """What is wrong with training on ``count`` photos, or ``None`` when nothing is."""
        if cls.minimum <= count <= cls.maximum:
            return None
        photos = f"{count} photo{'' if count == 1 else 's'}"
        return (
            f"training on {photos}, but the documentation asks for {cls.minimum} to "
            f"{cls.maximum} photos of one person (sent anyway)"
        )

    @classmethod
    def check(cls, count: int) -> None:
        """Warn when ``count`` photos is outside the documented 5 to 20."""
        problem = cls.problem(count)
        if problem is not None:
            cls.warn(problem)


class ConfigWarning(AIPortraitWarning):
    """A ``configure`` key that is undocumented (a typo?) or documented for the other model only.

    The other model: a key the documentation lists for SD1.5 only in an SDXL creation, or the
    other way round. The key is sent unchanged either way.
    """


def _rebuild(cls: type[Exception], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    """Unpickle an exception whose constructor takes keyword-only arguments."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class TransportError(AIPortraitError):
    """The request got no HTTP answer.

    Attributes:
        method: HTTP method.
        path: resource path (never the host's credentials).
        sent: False when the request provably never left (the connection could not be
            made); ``None`` when it may have reached the service.
    """

    def __init__(
        self, message: str, *, method: str = "", path: str = "", sent: bool | None = None
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.sent = sent


class ConnectError(TransportError):
    """Could not connect, or the connection dropped before a full answer arrived."""


class RequestTimeout(TransportError):
    """No answer within the configured timeout."""


class ResponseError(AIPortraitError):
    """The service answered, but the answer cannot be read.

    Attributes:
        status: HTTP status of the answer.
        request_id: the request id, when one could be read.
    """

    def __init__(self, message: str, *, status: int = 0, request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class MalformedResponse(ResponseError):
    """The body is not JSON, not the documented envelope, or holds fields of the wrong type."""


class ResponseTooLarge(ResponseError):
    """The body is larger than the Session's ``max_response_bytes``."""


class APIError(AIPortraitError):
    """The service answered with an error.

    Attributes:
        status: HTTP status code.
        code: the service's ``code`` field (``PARAMETER_ERROR``, ``error``, ...).
        message: the service's ``message`` field, verbatim.
        request_id: the service's request id (quote it to support).
        retry_after: seconds from a ``Retry-After`` header, or ``None``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(status, code, message, request_id)

    def __str__(self) -> str:
        rid = f" (request_id={self.request_id})" if self.request_id else ""
        return f"HTTP {self.status} {self.code}: {self.message}{rid}"


class GatewayError(APIError):
    """A documented gateway error (app, quota, signature, deployment)."""


class UnknownApp(GatewayError):
    """400 ``not found appid``: the AppId is not known to the service."""


class QuotaExceeded(GatewayError):
    """400 ``exceeded quota``: the account's call quota is used up."""


class SignatureMismatch(GatewayError):
    """401 ``sign error``: the token is wrong (or the body changed after signing)."""


class ModelNotDeployed(GatewayError):
    """404 ``model not found``: the model service (e.g. SDXL) is not enabled for this app."""


class CreateError(APIError):
    """A documented portrait-creation error (HTTP 462, 469 or 500, code ``error``)."""


class InvalidInput(CreateError):
    """462: the request could not be parsed (``Invalid input data``)."""


class TemplateNotProvided(CreateError):
    """462: no template image (``Image not provided``)."""


class ModelIdError(CreateError):
    """462: the model id is malformed or unknown (``Prompts get error``)."""


class ModelNotTrained(CreateError):
    """462: the LoRA is not trained (``Roop image decode error``)."""


class TemplateDecodeError(CreateError):
    """462: the template image cannot be decoded; provide a new template."""


class NoFaceInTemplate(CreateError):
    """462: no face found in the template; provide a new template."""


class TemplateProcessError(CreateError):
    """462: the template could not be preprocessed; provide a new template."""


class FaceFusionError(CreateError):
    """469: a face-fusion stage could not find the face in the template."""


class FirstFaceFusionError(FaceFusionError):
    """469: the first face fusion failed."""


class SecondFaceFusionError(FaceFusionError):
    """469: the second face fusion failed."""


class DiffusionError(CreateError):
    """469: a Stable Diffusion stage failed on the service side."""


class FirstDiffusionError(DiffusionError):
    """469: the first Stable Diffusion pass failed."""


class SecondDiffusionError(DiffusionError):
    """469: the second Stable Diffusion pass failed."""


class ThirdDiffusionError(DiffusionError):
    """469: the background (third) pass failed; replace the template."""


class FaceCountMismatch(CreateError):
    """469: the number of template faces does not match the number of model ids."""


class FaceIdDecodeError(CreateError):
    """500: the face-id image could not be decoded; check that the LoRA is trained."""


class ClientError(APIError):
    """An undocumented 4xx answer."""


class RateLimited(ClientError):
    """429: too many requests; ``retry_after`` holds the seconds asked for, when sent."""


class ServerError(APIError):
    """An undocumented 5xx answer."""


class ServiceError(APIError):
    """HTTP 2xx, but the envelope's ``code`` is not ``OK``."""


_BY_MESSAGE: Mapping[str, type[APIError]] = {
    "not found appid": UnknownApp,
    "exceeded quota": QuotaExceeded,
    "sign error": SignatureMismatch,
    "model not found": ModelNotDeployed,
    "Invalid input data. Please check the input dict.": InvalidInput,
    "Image not provided. Please check the template_image.": TemplateNotProvided,
    "Prompts get error. Please check the model_id.": ModelIdError,
    "Roop image decode error. Please check the user's lora is trained or not.": ModelNotTrained,
    "Template image decode error. Provide a new template": TemplateDecodeError,
    "There is not face in template. Please Give a new template.": NoFaceInTemplate,
    "Template image process error. Please Give a new template.": TemplateProcessError,
    "First Face Fusion Error, Can't get face in template image.": FirstFaceFusionError,
    "First Stable Diffusion Process error. Check the webui status.": FirstDiffusionError,
    "Second Face Fusion Error, Can't get face in template image.": SecondFaceFusionError,
    "Second Stable Diffusion Process error. Check the webui status.": SecondDiffusionError,
    "Please confirm if the number of faces in the template corresponds to the user ID.": (
        FaceCountMismatch
    ),
    "Third Stable Diffusion Process error. Check the webui status.": ThirdDiffusionError,
    "Face id image decode error. Pleace check the user's lora is trained or not.": (
        FaceIdDecodeError
    ),
}

_BY_CODE: Mapping[str, type[APIError]] = {
    "EXCEEDED_QUOTA_ERROR": QuotaExceeded,
}


def _normalise(message: str) -> str:
    return " ".join(message.split())


_BY_NORMALISED = {_normalise(k).casefold(): v for k, v in _BY_MESSAGE.items()}


class LocalPhotoError(InvalidArgument):
    """A local photo cannot be used: missing, a directory, unreadable, not a JPEG or PNG image,
    or too large. Raised before anything is uploaded or sent.

    Attributes:
        photo: the path (or ``bytes #N``) as given.
    """

    def __init__(self, photo: str, reason: str) -> None:
        super().__init__(f"{photo}: {reason}")
        self.photo = photo


class PreflightFailed(InvalidArgument):
    """Local photos failed the check made on this machine, so the training was not started
    (nothing was uploaded or charged); pass ``force=True`` to train on them anyway.

    Attributes:
        report: the :class:`~aiportrait.models.CheckReport` of the local photos.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


class UploadError(AIPortraitError):
    """A local photo could not be uploaded (the bucket refused it, or it was unreachable);
    nothing was charged. The message never holds credentials or signed URLs."""


def _by_status(status: int) -> type[APIError]:
    if status == 429:
        return RateLimited
    if 400 <= status < 500:
        return ClientError
    if status >= 500:
        return ServerError
    if 200 <= status < 300:
        return ServiceError
    return APIError


def error_from_response(
    status: int,
    code: str,
    message: str,
    request_id: str = "",
    *,
    retry_after: float | None = None,
) -> APIError:
    """Build the most specific :class:`APIError` for an error answer.

    The documented message decides first (compared with white space folded and case ignored),
    then the documented ``code``, then the HTTP status.
    """
    cls = _BY_NORMALISED.get(_normalise(message).casefold()) or _BY_CODE.get(code)
    if cls is None:
        cls = _by_status(status)
    return cls(status, code, message, request_id, retry_after)
