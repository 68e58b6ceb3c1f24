"""The Session: :mod:`.core` (construction, lifecycle, options, the one send path),
:mod:`.session` (one thin method per endpoint, watching), :mod:`.batches` (create_many,
train_many, plan_many), :mod:`.answers` (what an answer becomes), :mod:`.limits` (the
read-only view of its limits), :mod:`.kept` (a charged call finished for a caller that
left)."""

from .._wire.credentials import credentials_from_env
from .kept import Kept
from .limits import SessionLimits
from .session import Session

__all__ = ["Kept", "Session", "SessionLimits", "credentials_from_env"]
