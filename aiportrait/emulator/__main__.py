"""``python -m aiportrait.emulator``: ``aiportrait emulator`` (the one command tree)."""

import sys

from aiportrait.cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
