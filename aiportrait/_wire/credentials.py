"""Credentials from the environment, kept out of reprs and traceback locals."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

from ..errors import CredentialsError
from .signing import PrivateMapping, redacted

__all__ = ["ENV_NAMES", "credentials_from_env"]

ENV_NAMES: Final = {
    "host": ("AIPORTRAIT_HOST", "HOST", "Host"),
    "app_id": ("AIPORTRAIT_APP_ID", "AppId", "APP_ID"),
    "token": ("AIPORTRAIT_TOKEN", "Token", "TOKEN"),
}
"""The variables each credential is read from, in order: aiportrait's own name, then the
names the service's documentation uses."""


def credentials_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """``(host, app_id, token)`` from the environment (see :meth:`Session.from_env`).

    Reads ``AIPORTRAIT_HOST``, ``AIPORTRAIT_APP_ID`` and ``AIPORTRAIT_TOKEN``, falling back to
    the documentation's ``HOST`` (or ``Host``), ``AppId`` (or ``APP_ID``) and ``Token`` (or
    ``TOKEN``): :data:`ENV_NAMES`. The token comes back as a string whose ``repr`` is redacted.
    """
    env = PrivateMapping(os.environ if environ is None else environ)
    environ = None  # a traceback's locals show the view, never the values
    found: dict[str, str] = {}
    missing = []
    for key, names in ENV_NAMES.items():
        value = next((env[n] for n in names if env.get(n, "").strip()), None)
        if value is None:
            missing.append(f"{key} (tried {', '.join(names)})")
        else:
            found[key] = redacted(value.strip()) if key == "token" else value.strip()
    value = None  # the loop's last value may be the token: keep it out of a traceback
    if missing:
        raise CredentialsError("missing credentials: " + "; ".join(missing))
    return found["host"], found["app_id"], found["token"]
