"""``python -m aiportrait``: the ``aiportrait`` command."""

import sys

from .cli import main

sys.exit(main())
