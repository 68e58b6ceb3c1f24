"""``python -m aiportrait.cli``: the ``aiportrait`` command."""

import sys

from . import main

sys.exit(main())
