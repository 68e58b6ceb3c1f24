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

from ._codec import converter
from ._session import Session
from ._transport import DEFAULT_TIMEOUT
from ._version import __version__
from .config import SD15_ONLY_KEYS, SDXL_ONLY_KEYS, CreateConfig
from .errors import (
    AIPortraitError,
    APIError,
    ClientError,
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
    MalformedResponse,
    ModelIdError,
    ModelNotDeployed,
    ModelNotTrained,
    NoFaceInTemplate,
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
    TemplateDecodeError,
    TemplateNotProvided,
    TemplateProcessError,
    ThirdDiffusionError,
    TransportError,
    UnknownApp,
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

__all__ = [
    "DEFAULT_TIMEOUT",
    "SD15_ONLY_KEYS",
    "SDXL_ONLY_KEYS",
    "AIPortraitError",
    "APIError",
    "CheckReport",
    "CheckVerdict",
    "ClientError",
    "ConflictingArguments",
    "ConnectError",
    "CreateConfig",
    "CreateError",
    "CredentialsError",
    "DiffusionError",
    "FaceCountMismatch",
    "FaceFusionError",
    "FaceIdDecodeError",
    "FirstDiffusionError",
    "FirstFaceFusionError",
    "GatewayError",
    "ImageCheck",
    "InvalidArgument",
    "InvalidInput",
    "Job",
    "JobState",
    "MalformedResponse",
    "ModelIdError",
    "ModelNotDeployed",
    "ModelNotTrained",
    "NoFaceInTemplate",
    "Portrait",
    "QuotaExceeded",
    "RateLimited",
    "RequestTimeout",
    "ResponseError",
    "ResponseTooLarge",
    "SecondDiffusionError",
    "SecondFaceFusionError",
    "ServerError",
    "ServiceError",
    "Session",
    "SessionClosed",
    "SignatureMismatch",
    "TemplateDecodeError",
    "TemplateNotProvided",
    "TemplateProcessError",
    "ThirdDiffusionError",
    "TrainJob",
    "TrainResult",
    "TransportError",
    "UnknownApp",
    "__version__",
    "converter",
]
