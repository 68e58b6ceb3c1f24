"""aiportrait: the asyncio-native client for Alibaba Cloud PAI AI Portrait.

Check photos, train a LoRA on them, then create portraits from templates::

    import aiportrait

    async with aiportrait.Session.from_env() as session:
        report = await session.check_images(urls)
        job = await session.train(report.passed)
        ...

A local emulator of the service ships in :mod:`aiportrait.emulator` (a stand-in doing real face
detection and compositing, not diffusion), so everything runs offline without an account.
"""

from typing import TYPE_CHECKING, Any

from . import hooks
from ._jobs.watch import JobUpdate, JobWatch, PollPolicy
from ._requests import (
    AnyCreateRequest,
    AnyRequest,
    BatchQuery,
    CheckRequest,
    CreateRequest,
    GroupCreateRequest,
    JobQuery,
    PromptCreateRequest,
    ReferenceCreateRequest,
    TrainRequest,
    request_from_dict,
)
from ._retrying.policy import RetryPolicy
from ._session import Session
from ._version import __version__
from ._wire.transport import DEFAULT_TIMEOUT
from .config import SD15_ONLY_KEYS, SDXL_ONLY_KEYS, CreateConfig
from .errors import (
    AIPortraitError,
    AIPortraitWarning,
    APIError,
    ClientError,
    ConfigWarning,
    ConflictingArguments,
    ConnectError,
    CreateError,
    CredentialsError,
    DiffusionError,
    FaceCountMismatch,
    FaceFusionError,
    FaceIdDecodeError,
    FirstDiffusionError,
    FirstFaceFusionError,
    GatewayError,
    InvalidArgument,
    InvalidInput,
    JobError,
    JobFailed,
    JobTimeout,
    JournalError,
    JournalLocked,
    LocalPhotoError,
    MalformedResponse,
    ModelIdError,
    ModelNotDeployed,
    ModelNotTrained,
    NoFaceInTemplate,
    PhotoCountWarning,
    PortraitMissing,
    PreflightFailed,
    PreviousFailure,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ResponseError,
    ResponseTooLarge,
    SecondDiffusionError,
    SecondFaceFusionError,
    ServerError,
    ServiceError,
    SessionClosed,
    SignatureMismatch,
    SubmitOutcomeUnknown,
    TemplateDecodeError,
    TemplateNotProvided,
    TemplateProcessError,
    ThirdDiffusionError,
    TransportError,
    UnknownApp,
    UploadError,
)
from .models import (
    CheckReport,
    CheckVerdict,
    ImageCheck,
    Job,
    JobState,
    Portrait,
    TrainJob,
    TrainResult,
)

if TYPE_CHECKING:
    from ._batches.outcomes import Outcome, Outcomes
    from ._display.progress import watch_with_progress
    from ._local.localrequest import LocalRequest
    from ._local.preflight import preflight

# Loaded on first use: no single call needs batches (sqlite3) or progress display.
_LAZY = {
    "LocalRequest": "._local.localrequest",
    "Outcome": "._batches.outcomes",
    "Outcomes": "._batches.outcomes",
    "preflight": "._local.preflight",
    "watch_with_progress": "._display.progress",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiportrait' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_TIMEOUT",
    "SD15_ONLY_KEYS",
    "SDXL_ONLY_KEYS",
    "AIPortraitError",
    "AIPortraitWarning",
    "APIError",
    "AnyCreateRequest",
    "AnyRequest",
    "BatchQuery",
    "CheckRequest",
    "CheckReport",
    "CheckVerdict",
    "ClientError",
    "ConfigWarning",
    "ConflictingArguments",
    "ConnectError",
    "CreateConfig",
    "CreateError",
    "CreateRequest",
    "CredentialsError",
    "DiffusionError",
    "FaceCountMismatch",
    "FaceFusionError",
    "FaceIdDecodeError",
    "FirstDiffusionError",
    "FirstFaceFusionError",
    "GatewayError",
    "GroupCreateRequest",
    "ImageCheck",
    "InvalidArgument",
    "InvalidInput",
    "Job",
    "JobError",
    "JobFailed",
    "JobQuery",
    "JobState",
    "JobTimeout",
    "JobUpdate",
    "JobWatch",
    "JournalError",
    "LocalRequest",
    "JournalLocked",
    "LocalPhotoError",
    "MalformedResponse",
    "ModelIdError",
    "ModelNotDeployed",
    "ModelNotTrained",
    "NoFaceInTemplate",
    "Outcome",
    "Outcomes",
    "PollPolicy",
    "Portrait",
    "PortraitMissing",
    "PhotoCountWarning",
    "PreflightFailed",
    "PreviousFailure",
    "PromptCreateRequest",
    "QuotaExceeded",
    "RateLimited",
    "ReferenceCreateRequest",
    "RequestTimeout",
    "ResponseError",
    "ResponseTooLarge",
    "RetryPolicy",
    "SecondDiffusionError",
    "SecondFaceFusionError",
    "ServerError",
    "ServiceError",
    "Session",
    "SessionClosed",
    "SignatureMismatch",
    "SubmitOutcomeUnknown",
    "TemplateDecodeError",
    "TemplateNotProvided",
    "TemplateProcessError",
    "ThirdDiffusionError",
    "TrainJob",
    "TrainRequest",
    "TrainResult",
    "TransportError",
    "UnknownApp",
    "UploadError",
    "__version__",
    "hooks",
    "preflight",
    "request_from_dict",
    "watch_with_progress",
]
