"""The Session: :mod:`.core` (construction, lifecycle, options, the one send path),
:mod:`.session` (one thin method per endpoint, watching, batches), :mod:`.answers` (what an
answer becomes), :mod:`.limits` (the read-only view of its limits)."""

from .._wire.credentials import credentials_from_env
from .limits import SessionLimits
from .session import Session

__all__ = ["Session", "SessionLimits", "credentials_from_env"]
