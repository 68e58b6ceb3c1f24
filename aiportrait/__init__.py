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

import warnings
from typing import TYPE_CHECKING, Any

from . import errors, hooks
from ._batches.items import BatchItems
from ._jobs.schedule import PollPolicy
from ._requests import BatchQuery, CheckRequest, JobQuery, TrainRequest, request_from_dict
from ._retrying.policy import OutagePolicy, RetryPolicy
from ._session import Kept, Session, SessionLimits
from ._version import __version__
from ._wire.transport import DEFAULT_READ_TIMEOUT, DEFAULT_TIMEOUT
from .errors import (
    AIPortraitError,
    AIPortraitWarning,
    APIError,
    InvalidArgument,
    JobFailed,
    JobTimeout,
    ResponseError,
    SubmitOutcomeUnknown,
    TransportError,
)
from .hooks import OutcomeStatus
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
    from ._jobs.watch import JobUpdate, JobWatch
    from ._local.preflight import preflight
    from ._requests import (
        AnyCreateRequest,
        AnyRequest,
        CreateRequest,
        GroupCreateRequest,
        PromptCreateRequest,
        ReferenceCreateRequest,
    )
    from ._retrying.budget import Budget
    from .config import CreateConfig

#: Error classes that were top-level names before: each one row of the documentation's error
#: table, or a detail most callers handle through its base class. They live in
#: :mod:`aiportrait.errors`; the top-level name still works, with a DeprecationWarning.
_ERROR_ROWS = frozenset(
    {
        "ClientError", "ConfigWarning", "ConflictingArguments", "ConnectError", "CreateError",
        "CredentialsError", "DiffusionError", "FaceCountMismatch", "FaceFusionError",
        "FaceIdDecodeError", "FirstDiffusionError", "FirstFaceFusionError", "GatewayError",
        "InvalidInput", "JobError", "JournalError", "JournalLocked", "LocalPhotoError",
        "MalformedResponse", "ModelIdError", "ModelNotDeployed", "ModelNotTrained",
        "NoFaceInTemplate", "PhotoCountWarning", "PortraitMissing", "PreflightFailed",
        "PreviousFailure", "QuotaExceeded", "RateLimited", "RequestTimeout", "ResponseTooLarge",
        "SecondDiffusionError", "SecondFaceFusionError", "ServerError", "ServiceError",
        "SessionClosed", "SignatureMismatch", "TemplateDecodeError", "TemplateNotProvided",
        "TemplateProcessError", "ThirdDiffusionError", "UnknownApp", "UploadError",
    }
)  # fmt: skip

_CONFIG_KEYS = frozenset({"SD15_ONLY_KEYS", "SDXL_ONLY_KEYS"})
"""Names that live in :mod:`aiportrait.config` (the top-level ones warn)."""

# Loaded on first use: no single call needs batches (sqlite3) or progress display, and a
# check, a training or a job query needs no create request nor its config.
_LAZY = {
    "AnyCreateRequest": "._requests",
    "AnyRequest": "._requests",
    "Budget": "._retrying.budget",
    "CreateConfig": ".config",
    "CreateRequest": "._requests",
    "GroupCreateRequest": "._requests",
    "JobUpdate": "._jobs.watch",
    "JobWatch": "._jobs.watch",
    "PromptCreateRequest": "._requests",
    "ReferenceCreateRequest": "._requests",
    "LocalRequest": "._local.localrequest",
    "Outcome": "._batches.outcomes",
    "Outcomes": "._batches.outcomes",
    "preflight": "._local.preflight",
    "watch_with_progress": "._display.progress",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "config":  # a submodule: importing it makes it an attribute of this package
        return importlib.import_module(".config", __name__)
    if name in _ERROR_ROWS or name in _CONFIG_KEYS:
        home = errors if name in _ERROR_ROWS else importlib.import_module(".config", __name__)
        warnings.warn(
            f"aiportrait.{name} is {home.__name__}.{name}; the top-level name will go away",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(home, name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiportrait' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AIPortraitError",
    "AIPortraitWarning",
    "APIError",
    "AnyCreateRequest",
    "AnyRequest",
    "BatchItems",
    "BatchQuery",
    "Budget",
    "CheckRequest",
    "CheckReport",
    "CheckVerdict",
    "CreateConfig",
    "CreateRequest",
    "GroupCreateRequest",
    "ImageCheck",
    "InvalidArgument",
    "Job",
    "JobFailed",
    "JobQuery",
    "JobState",
    "JobTimeout",
    "JobUpdate",
    "JobWatch",
    "Kept",
    "OutagePolicy",
    "Outcome",
    "OutcomeStatus",
    "Outcomes",
    "PollPolicy",
    "Portrait",
    "PromptCreateRequest",
    "ReferenceCreateRequest",
    "ResponseError",
    "RetryPolicy",
    "Session",
    "SessionLimits",
    "SubmitOutcomeUnknown",
    "TrainJob",
    "TrainRequest",
    "TrainResult",
    "TransportError",
    "__version__",
    "errors",
    "hooks",
    "preflight",
    "request_from_dict",
    "watch_with_progress",
]
