"""Logging set-up: a ``NullHandler`` by default, and ``AIPORTRAIT_LOG`` to turn it on without code.

Every record of the package goes to the ``aiportrait`` logger. Records about a request carry
``request_id``; records about a job carry ``job_id`` (as ``extra`` attributes). No record holds
the token, a signature or image data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

__all__ = ["configure_from_env"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}

logging.getLogger("aiportrait").addHandler(logging.NullHandler())


class _EnvHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``AIPORTRAIT_LOG`` installs (one at most)."""


def configure_from_env(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply ``AIPORTRAIT_LOG=debug|info|warning``: log the package to stderr at that level.

    Returns the level set, or ``None`` when the variable is unset or unknown.
    """
    env = os.environ if environ is None else environ
    value = env.get("AIPORTRAIT_LOG", "").strip().lower()
    level = _LEVELS.get(value)
    if level is None:
        return None
    logger = logging.getLogger("aiportrait")
    if not any(isinstance(h, _EnvHandler) for h in logger.handlers):
        handler = _EnvHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    return level
