"""``AIPORTRAIT_LOG``: the handler the library installs from the environment, once."""

from __future__ import annotations

import logging

from aiportrait._logging import _EnvHandler, configure_from_env


def test_configure_from_env_is_idempotent() -> None:
    logger = logging.getLogger("aiportrait")
    before = (logger.level, list(logger.handlers))
    try:
        assert configure_from_env({"AIPORTRAIT_LOG": "INFO"}) == logging.INFO
        assert configure_from_env({"AIPORTRAIT_LOG": "info"}) == logging.INFO
        assert sum(isinstance(h, _EnvHandler) for h in logger.handlers) == 1
        assert configure_from_env({"AIPORTRAIT_LOG": "loud"}) is None
        assert configure_from_env({}) is None
    finally:
        logger.setLevel(before[0])
        logger.handlers[:] = before[1]
