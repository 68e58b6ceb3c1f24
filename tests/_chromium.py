"""Debian's chromium as the dashboard's tests and ``benchmarks/dashboard_load.py`` launch it,
through Playwright's Python package (Playwright's own browser download is never used)."""

from __future__ import annotations

from pathlib import Path

#: Where Debian's ``chromium`` package puts it (``scripts/chromium`` installs it).
CHROMIUM = Path("/usr/bin/chromium")
#: Offline and quiet: no GPU, no sandbox (root in containers), nothing fetched in the background.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MISSING = (
    f"{CHROMIUM} is missing: the dashboard's browser tests need Debian's chromium "
    "(apt-get install -y --no-install-recommends chromium; scripts/test does it as root)"
)


def launch_options() -> dict[str, object]:
    """Keyword arguments of Playwright's ``launch_persistent_context`` (headless, offline)."""
    return {"executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}
