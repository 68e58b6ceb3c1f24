"""The logger of the emulator's HTTP server, with client errors kept to one line."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["http_log"]

log = logging.getLogger("aiportrait.emulator")


class _ClientErrors(logging.Filter):
    """aiohttp logs a request it cannot parse (bad headers, a broken chunked body) at ERROR with a
    traceback; that is the client's doing, answered 400: one INFO line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= (exc.code or 500) < 500:
            return True
        if not log.isEnabledFor(logging.INFO):
            return False
        record.msg, record.args = "%s: %s", (record.getMessage(), exc.message.strip())
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return True


#: The logger of the emulator's HTTP server (aiohttp's own messages about connections).
http_log = logging.getLogger("aiportrait.emulator.http")
http_log.addFilter(_ClientErrors())
