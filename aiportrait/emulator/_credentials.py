"""The default app's credentials kept in a data directory, so a restarted emulator keeps its token.

``credentials.json`` holds ``{"app_id": ..., "token": ...}``, mode 0600, replaced atomically. An
unreadable file is ignored (with a warning) and a new token made.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

__all__ = ["CREDENTIALS_FILE", "keep_credentials", "kept_token"]

#: Where a kept data directory holds the default app's AppId and token (mode 0600).
CREDENTIALS_FILE = "credentials.json"

log = logging.getLogger("aiportrait.emulator")


def kept_token(data_dir: Path, app_id: str) -> str | None:
    """The token kept in ``data_dir`` for ``app_id``, if there is a readable one."""
    path = data_dir / CREDENTIALS_FILE
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s); a new token is made", path, type(exc).__name__)
        return None
    if not isinstance(kept, dict) or kept.get("app_id") != app_id:
        return None
    token = kept.get("token")
    return token if isinstance(token, str) and token else None


def keep_credentials(data_dir: Path, app_id: str, token: str) -> None:
    """Write ``credentials.json`` (mode 0600, replaced atomically) unless it already says this."""
    path = data_dir / CREDENTIALS_FILE
    if kept_token(data_dir, app_id) == token:
        os.chmod(path, 0o600)
        return
    temporary = path.with_name(f".{CREDENTIALS_FILE}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # in case a stale temporary file had other permissions
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"app_id": app_id, "token": token}, out)
        out.write("\n")
    os.replace(temporary, path)
